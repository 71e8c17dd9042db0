//go:build cgo && go1.24

package kinesisbatcher

// The pure compute functions neither keep the pointers they are given past the call
// nor call back into Go, so Go may keep the slices passed to them on the stack. The
// directives are honoured from Go 1.24 on; older toolchains build without them.

/*
#cgo noescape kb_record_sizes_fill
#cgo nocallback kb_record_sizes_fill
#cgo noescape kb_limits_check
#cgo nocallback kb_limits_check
#cgo noescape kb_limits_profile
#cgo nocallback kb_limits_profile
#cgo noescape kb_limits_for_stream
#cgo nocallback kb_limits_for_stream
#cgo noescape kb_stats_fill
#cgo nocallback kb_stats_fill
#cgo noescape kbgo_push
#cgo noescape kbgo_plan_chunk
#cgo nocallback kbgo_plan_chunk
#cgo nocallback kbgo_push
#cgo noescape kb_delivery_next_request_sizes
#cgo nocallback kb_delivery_next_request_sizes
#cgo noescape kb_delivery_settle
#cgo nocallback kb_delivery_settle
#cgo noescape kb_delivery_settle_all
#cgo nocallback kb_delivery_settle_all
#cgo noescape kb_error_kind_from_code
#cgo nocallback kb_error_kind_from_code
*/
import "C"
