//go:build !kinesisbatcher_pkgconfig

package kinesisbatcher

// The default: the static archive built by `make` at the repository root, so a program
// carries the library inside its binary and needs no shared library at run time. The
// system libraries are the ones a Rust staticlib needs (the Libs.private of
// kinesis_batcher.pc); the C compiler driver adds libc and libgcc_s.

/*
#cgo CFLAGS: -I${SRCDIR}/../../include
#cgo LDFLAGS: ${SRCDIR}/../../target/capi/libkinesis_batcher.a -lm -ldl -lpthread
*/
import "C"
