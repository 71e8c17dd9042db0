//go:build kinesisbatcher_pkgconfig

package kinesisbatcher

// With the build tag kinesisbatcher_pkgconfig: an installed library (`make install`),
// found through pkg-config. pkg-config has no static switch in cgo, so this links the
// shared library: set LD_LIBRARY_PATH (or install to a directory the loader searches).

/*
#cgo pkg-config: kinesis_batcher
*/
import "C"
