//go:build cgo && !go1.24

package kinesisbatcher

import "runtime"

// cleanupHandle releases a C object when its Go owner becomes unreachable without
// having been closed (a finalizer before Go 1.24, which has no runtime.AddCleanup).
type cleanupHandle struct{}

func addCleanup[T, S any](owner *T, release func(S), arg S) cleanupHandle {
	runtime.SetFinalizer(owner, func(*T) { release(arg) })
	return cleanupHandle{}
}

func stopCleanup[T any](_ *cleanupHandle, owner *T) { runtime.SetFinalizer(owner, nil) }
