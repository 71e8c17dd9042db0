//go:build cgo && kinesisbatcher_shared

package kinesisbatcher

// With -tags kinesisbatcher_shared: the shared library, for systems that install it
// where the loader looks (a distribution package). Programs then need
// libkinesis_batcher.so.0 at run time.

/*
#cgo pkg-config: kinesis_batcher
*/
import "C"
