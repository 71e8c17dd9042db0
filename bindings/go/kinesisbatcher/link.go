//go:build cgo && !kinesisbatcher_shared

package kinesisbatcher

// The library comes from a `make install`, found by pkg-config, and is linked
// statically: kinesis_batcher-static.pc names libkinesis_batcher.a by path, so a program
// carries the library and needs no LD_LIBRARY_PATH. It is a package of its own because
// cgo passes pkg-config no options (no --static). When pkg-config cannot find it, its
// message names kinesis_batcher-static: install the library, set PKG_CONFIG_PATH.

/*
#cgo pkg-config: kinesis_batcher-static
*/
import "C"
