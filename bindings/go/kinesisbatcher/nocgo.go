//go:build !cgo

package kinesisbatcher

// This package calls the kinesis-batcher C library, so it needs cgo: CGO_ENABLED=1 and a
// C compiler (the go command turns cgo off by itself when it finds none), and the
// library installed where pkg-config finds it. Without cgo every other file is left out
// and this one stops the build; the undefined name below is the whole error message.
var _ = kinesisbatcher_needs_cgo__set_CGO_ENABLED_1_with_a_C_compiler_and_make_install_the_library__see_README
