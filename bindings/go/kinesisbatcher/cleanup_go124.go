//go:build cgo && go1.24

package kinesisbatcher

import "runtime"

// cleanupHandle releases a C object when its Go owner becomes unreachable without
// having been closed (runtime.AddCleanup from Go 1.24 on).
type cleanupHandle struct{ c runtime.Cleanup }

func addCleanup[T, S any](owner *T, release func(S), arg S) cleanupHandle {
	return cleanupHandle{runtime.AddCleanup(owner, release, arg)}
}

func stopCleanup[T any](h *cleanupHandle, _ *T) { h.c.Stop() }
