//! Statuses: stable numbers with a static message each. Values are never renumbered;
//! a retired value is commented out, never reused.

use core::ffi::c_char;

use super::guard;
use crate::LimitsError;

/// What a call did. `KB_OK` (0) and the other values below 100 say how a call ended
/// and are not errors; 100 and above are errors. After an error nothing was written
/// except that every count out-parameter passed (n_batches, n_refusals, n_entries,
/// bytes, consumed, settled) is set to 0, and the optional bad_index (or key_reason,
/// for KB_KEY_REFUSED) names what was wrong; output arrays and objects are unchanged.
/// A fixed-width integer, not a C enum, whose size would be the compiler's choice.
pub type kb_status = u32;

/// Success: done, or the value asked for is written.
pub const KB_OK: kb_status = 0;
/// The batch array filled: handle what was written, then call again to go on. A bulk
/// plan also returns it when it stopped before a record it cannot read, after writing
/// what came before; the next call reports that record.
pub const KB_BATCHES_FULL: kb_status = 1;
/// The refusal array filled: handle what was written, then call again to go on.
pub const KB_REFUSALS_FULL: kb_status = 2;
/// The input ends inside a line: keep the unconsumed bytes, append more, call again
/// (with `eof` set when there is no more).
pub const KB_NEED_MORE: kb_status = 3;
/// Nothing more, and nothing was written with it: the plan is complete, there is no
/// line left, nothing is pending, (kb_delivery_next_request) every record is settled, or
/// (kb_engine_next_request) nothing is buffered that was not sent. The only status that says "stop": a loop may run `while (status != KB_END)`, with a
/// kb_status_is_error check inside.
pub const KB_END: kb_status = 4;
// 5 was KB_IN_FLIGHT, a non-error status: now the error KB_REQUEST_IN_FLIGHT.
/// The pushed record did not fit: send the batch written first. The record now starts
/// the next batch.
pub const KB_SEND_FIRST: kb_status = 6;
/// The record can never be sent; its reason is written (kb_engine_push: it was not
/// taken).
pub const KB_REFUSED: kb_status = 7;
/// kb_delivery_next_request wrote no request, only refusals (`*n_refusals > 0`; the
/// refusal array filled, or the rest of the input is refused): report them, then call
/// again. Not KB_END: a loop `while (next == KB_OK)` would stop here with work left.
pub const KB_ONLY_REFUSALS: kb_status = 8;
/// The aggregate array filled: handle what was written, then call kb_aggregate_plan
/// again from `*next`. Also returned when planning stopped before a record it cannot
/// read, after writing what came before; the next call reports that record.
pub const KB_AGGREGATES_FULL: kb_status = 9;
/// kb_engine_push: the engine's buffer is at its capacity in records or bytes, and
/// nothing was taken. Settle a request, then push the record again (backpressure: nothing
/// is dropped to make room).
pub const KB_FULL: kb_status = 10;
/// kb_engine_next_request: records are buffered but none is due yet: call again at
/// `*until_ms`, or sooner after a push, a settle or kb_engine_flush.
pub const KB_WAIT: kb_status = 11;
/// kb_engine_next_request: the most requests are in flight (or every buffered record
/// waits on one in flight): settle one first.
pub const KB_BUSY: kb_status = 12;
/// kb_engine_next_request: a request failed on credentials and the engine is paused:
/// refresh the credentials, then call kb_engine_resume. The records wait, nothing is lost.
pub const KB_PAUSED: kb_status = 13;

/// A required pointer (an object, an out-parameter) is NULL.
pub const KB_NULL_POINTER: kb_status = 100;
/// An array is NULL while its length or capacity is not 0.
pub const KB_NULL_ARRAY: kb_status = 101;
/// A record's data, key or hash key is NULL while its length is not 0 (`bad_index`
/// names the record).
pub const KB_NULL_FIELD: kb_status = 102;
/// A length is larger than any object can be: a record's lengths add up past
/// 2^64 - 1 or one is above `PTRDIFF_MAX` (`bad_index` names the record), or an
/// array's size in bytes would be above `PTRDIFF_MAX`.
pub const KB_LENGTH_OVERFLOW: kb_status = 103;
/// An output capacity is 0: the call could never make progress.
pub const KB_ZERO_CAPACITY: kb_status = 104;
/// An integer code is out of range: a key unit, option bits, an error kind or an
/// outcome (`bad_index` names the entry, for outcomes), a kb_engine_config field, or
/// (kb_engine_settle) an outcome count that is not the request's.
pub const KB_INVALID_ARGUMENT: kb_status = 105;
/// The bytes are not valid UTF-8.
pub const KB_NOT_UTF8: kb_status = 106;
/// The partition key given for every line is refused (its reason is written).
pub const KB_KEY_REFUSED: kb_status = 107;
/// Settling, but no request is in flight.
pub const KB_NOTHING_IN_FLIGHT: kb_status = 108;
/// Settling with `sent` that is not the request in flight: its length, or any entry
/// (index, attempts, first send time), differs from what kb_delivery_next_request wrote;
/// or (kb_engine_settle) a request id that is not in flight: settled already, or never
/// handed out.
pub const KB_NOT_THE_REQUEST_IN_FLIGHT: kb_status = 109;
/// Settling with a terminal array shorter than `sent` (kb_engine_settle: than the
/// request).
pub const KB_TERMINAL_ARRAY_TOO_SMALL: kb_status = 110;
/// An object could not be allocated.
pub const KB_OUT_OF_MEMORY: kb_status = 111;
/// kb_delivery_next_request while the previous request has not been settled
/// (kb_delivery_settle or kb_delivery_settle_all).
pub const KB_REQUEST_IN_FLIGHT: kb_status = 112;
/// The records are not the ones this object planned: their count differs from the
/// first call's (a kb_planner), or records already planned or waiting to be sent again
/// are no longer there or no longer sendable (a kb_delivery). Pass the same array to
/// every call, or call kb_planner_reset / kb_delivery_reset to plan another.
pub const KB_INPUT_CHANGED: kb_status = 113;
/// Not a hash key: a hash key is a decimal integer in 0 to 2^128-1 without leading zeros.
pub const KB_NOT_A_HASH_KEY: kb_status = 114;
/// kb_engine_next_request: the handle array holds fewer entries than the limits'
/// max_records (a request can hold that many); nothing was taken.
pub const KB_HANDLE_ARRAY_TOO_SMALL: kb_status = 115;

/// Limits: `profile` is not one of the `KB_PROFILE_*` values.
pub const KB_LIMITS_BAD_PROFILE: kb_status = 120;
/// Limits: `key_unit` is not one of the `KB_KEY_UNIT_*` values.
pub const KB_LIMITS_BAD_KEY_UNIT: kb_status = 121;
/// Limits: `options` has bits other than KB_LIMITS_NO_PARTITION_KEYS,
/// KB_LIMITS_COUNT_HASH_KEY and KB_LIMITS_SPAN_REFUSALS.
pub const KB_LIMITS_BAD_OPTIONS: kb_status = 122;
/// Limits: `max_records` is 0.
pub const KB_LIMITS_ZERO_RECORDS: kb_status = 123;
/// Limits: `max_request_bytes` is 0.
pub const KB_LIMITS_ZERO_REQUEST_BYTES: kb_status = 124;
/// Limits: `max_record_bytes` is 0.
pub const KB_LIMITS_ZERO_RECORD_BYTES: kb_status = 125;
/// Limits: `max_records` is above the service's 500.
pub const KB_LIMITS_RECORDS_ABOVE_SERVICE: kb_status = 126;
/// Limits: `max_request_bytes` is above the service's 10 MiB.
pub const KB_LIMITS_REQUEST_BYTES_ABOVE_SERVICE: kb_status = 127;
/// Limits: `max_record_bytes` is above the service's 10 MiB.
pub const KB_LIMITS_RECORD_BYTES_ABOVE_SERVICE: kb_status = 128;
/// Limits: `max_record_bytes` is above `max_request_bytes`.
pub const KB_LIMITS_RECORD_ABOVE_REQUEST: kb_status = 129;
/// Limits: a stream's `MaxRecordSizeInKiB` must be in 1024..=10240.
pub const KB_LIMITS_STREAM_RECORD_SIZE_OUT_OF_RANGE: kb_status = 130;
/// Limits: `max_record_bytes` is above what the profile's service accepts.
pub const KB_LIMITS_RECORD_BYTES_ABOVE_PROFILE: kb_status = 131;
/// Limits: `max_request_bytes` is above what the profile's service accepts (5 MiB for
/// KB_PROFILE_KDS_5MIB, 4 MiB for KB_PROFILE_FIREHOSE).
pub const KB_LIMITS_REQUEST_BYTES_ABOVE_PROFILE: kb_status = 132;

/// Shard map: no range.
pub const KB_SHARD_MAP_EMPTY: kb_status = 140;
/// Shard map: a range ends before it starts (`bad_index` names it).
pub const KB_SHARD_MAP_REVERSED: kb_status = 141;
/// Shard map: a range does not start right after the previous one ends, or the first
/// does not start at 0 (`bad_index` names it): a gap, an overlap, ranges out of order, or
/// closed shards listed with the open ones.
pub const KB_SHARD_MAP_NOT_CONTIGUOUS: kb_status = 142;
/// Shard map: the last range does not end at 2^128-1.
pub const KB_SHARD_MAP_INCOMPLETE: kb_status = 143;

/// Aggregation: `kb_aggregation.mode` is not one of the `KB_AGGREGATE_*` values.
pub const KB_AGGREGATION_BAD_MODE: kb_status = 150;
/// Aggregation: the limits have no partition keys (Firehose, or
/// KB_LIMITS_NO_PARTITION_KEYS): aggregation is a Kinesis Data Streams format.
pub const KB_AGGREGATION_NEEDS_KEYS: kb_status = 151;
/// Aggregation: a `kb_aggregate`'s range is empty, reversed, past the end of the records,
/// or more than one record for KB_LAYOUT_PLAIN.
pub const KB_AGGREGATE_OUT_OF_RANGE: kb_status = 152;
/// Aggregation: the output buffer is shorter than the aggregate's `data_len`.
pub const KB_BUFFER_TOO_SMALL: kb_status = 153;
/// Deaggregation: the record starts with the aggregation magic but its MD5 digest does
/// not match (a damaged aggregate, or a plain record that starts with those bytes). The
/// KCL hands such a record to the application as it is: treat its data as one record.
pub const KB_AGGREGATE_DIGEST_MISMATCH: kb_status = 154;
/// Deaggregation: the digest matches but the protobuf is not a valid aggregate
/// (`bad_offset` says where).
pub const KB_AGGREGATE_MALFORMED: kb_status = 155;

/// A bug in this library panicked; the call was abandoned and its object must not be
/// used again. (The shipped library aborts instead; this is for builds that unwind.)
pub const KB_PANIC: kb_status = 199;

/// The status for a refused set of limits.
pub(crate) const fn limits_status(error: LimitsError) -> kb_status {
    match error {
        LimitsError::ZeroRecords => KB_LIMITS_ZERO_RECORDS,
        LimitsError::ZeroRequestBytes => KB_LIMITS_ZERO_REQUEST_BYTES,
        LimitsError::ZeroRecordBytes => KB_LIMITS_ZERO_RECORD_BYTES,
        LimitsError::RecordsAboveService => KB_LIMITS_RECORDS_ABOVE_SERVICE,
        LimitsError::RequestBytesAboveService => KB_LIMITS_REQUEST_BYTES_ABOVE_SERVICE,
        LimitsError::RecordBytesAboveService => KB_LIMITS_RECORD_BYTES_ABOVE_SERVICE,
        LimitsError::RecordAboveRequest => KB_LIMITS_RECORD_ABOVE_REQUEST,
        LimitsError::StreamRecordSizeOutOfRange => KB_LIMITS_STREAM_RECORD_SIZE_OUT_OF_RANGE,
        LimitsError::RecordBytesAboveProfile => KB_LIMITS_RECORD_BYTES_ABOVE_PROFILE,
        LimitsError::RequestBytesAboveProfile => KB_LIMITS_REQUEST_BYTES_ABOVE_PROFILE,
    }
}

/// NUL-terminates a static message at compile time.
macro_rules! c_message {
    ($text:expr) => {
        concat!($text, "\0")
    };
}
pub(crate) use c_message;

/// A static, NUL-terminated sentence describing `status`; never NULL, never freed.
/// Unknown values get `"unknown status"`.
#[unsafe(no_mangle)]
pub extern "C" fn kb_status_message(status: kb_status) -> *const c_char {
    guard!(c_message!("unknown status").as_ptr().cast(), {
        message(status).as_ptr().cast()
    })
}

/// The NUL-terminated message of a status.
fn message(status: kb_status) -> &'static str {
    match status {
        KB_OK => c_message!("ok"),
        KB_BATCHES_FULL => c_message!("the batch array is full: call again to go on"),
        KB_REFUSALS_FULL => c_message!("the refusal array is full: call again to go on"),
        KB_NEED_MORE => c_message!("the input ends inside a line: append more input"),
        KB_END => c_message!("nothing more"),
        KB_SEND_FIRST => c_message!("send the batch first: the record starts the next one"),
        KB_REFUSED => c_message!("the record can never be sent"),
        KB_ONLY_REFUSALS => c_message!("no request, only refusals: report them and call again"),
        KB_AGGREGATES_FULL => c_message!("the aggregate array is full: call again from next"),
        KB_FULL => c_message!("the engine's buffer is full: settle a request, then push again"),
        KB_WAIT => c_message!("no request is due yet: call again at until_ms"),
        KB_BUSY => c_message!("the most requests are in flight: settle one first"),
        KB_PAUSED => c_message!("paused on a credentials failure: refresh them, then resume"),
        KB_NULL_POINTER => c_message!("a required pointer is NULL"),
        KB_NULL_ARRAY => c_message!("an array is NULL but its length is not 0"),
        KB_NULL_FIELD => {
            c_message!("a record's data, key or hash key is NULL but its length is not 0")
        }
        KB_LENGTH_OVERFLOW => c_message!("a length is larger than any object can be"),
        KB_ZERO_CAPACITY => c_message!("an output capacity is 0"),
        KB_INVALID_ARGUMENT => c_message!("an integer code is out of range"),
        KB_NOT_UTF8 => c_message!("the bytes are not valid UTF-8"),
        KB_KEY_REFUSED => c_message!("the partition key is refused"),
        KB_NOTHING_IN_FLIGHT => c_message!("no request is in flight"),
        KB_NOT_THE_REQUEST_IN_FLIGHT => c_message!("sent is not the request in flight"),
        KB_TERMINAL_ARRAY_TOO_SMALL => c_message!("the terminal array is shorter than sent"),
        KB_OUT_OF_MEMORY => c_message!("out of memory"),
        KB_REQUEST_IN_FLIGHT => c_message!("the previous request has not been settled"),
        KB_INPUT_CHANGED => c_message!(
            "the records are not the ones this object planned: pass the same array, or reset it"
        ),
        KB_LIMITS_BAD_PROFILE => c_message!("limits: profile is not a KB_PROFILE_* value"),
        KB_LIMITS_BAD_KEY_UNIT => c_message!("limits: key_unit is not a KB_KEY_UNIT_* value"),
        KB_LIMITS_BAD_OPTIONS => c_message!("limits: options has unknown bits"),
        KB_LIMITS_ZERO_RECORDS => c_message!("limits: max_records is 0"),
        KB_LIMITS_ZERO_REQUEST_BYTES => c_message!("limits: max_request_bytes is 0"),
        KB_LIMITS_ZERO_RECORD_BYTES => c_message!("limits: max_record_bytes is 0"),
        KB_LIMITS_RECORDS_ABOVE_SERVICE => c_message!("limits: max_records is above 500"),
        KB_LIMITS_REQUEST_BYTES_ABOVE_SERVICE => {
            c_message!("limits: max_request_bytes is above 10 MiB")
        }
        KB_LIMITS_RECORD_BYTES_ABOVE_SERVICE => {
            c_message!("limits: max_record_bytes is above 10 MiB")
        }
        KB_LIMITS_RECORD_ABOVE_REQUEST => {
            c_message!("limits: max_record_bytes is above max_request_bytes")
        }
        KB_LIMITS_STREAM_RECORD_SIZE_OUT_OF_RANGE => {
            c_message!("limits: MaxRecordSizeInKiB must be between 1024 and 10240")
        }
        KB_LIMITS_RECORD_BYTES_ABOVE_PROFILE => {
            c_message!("limits: max_record_bytes is above the profile's maximum")
        }
        KB_LIMITS_REQUEST_BYTES_ABOVE_PROFILE => {
            c_message!("limits: max_request_bytes is above the profile's maximum")
        }
        KB_HANDLE_ARRAY_TOO_SMALL => {
            c_message!("the handle array holds fewer entries than the limits' max_records")
        }
        KB_NOT_A_HASH_KEY => {
            c_message!("not a hash key: a decimal integer in 0 to 2^128-1 without leading zeros")
        }
        KB_SHARD_MAP_EMPTY => c_message!("shard map: no range"),
        KB_SHARD_MAP_REVERSED => c_message!("shard map: a range ends before it starts"),
        KB_SHARD_MAP_NOT_CONTIGUOUS => c_message!(
            "shard map: the open shards' ranges must be sorted, from 0, each starting right after the previous one"
        ),
        KB_SHARD_MAP_INCOMPLETE => {
            c_message!("shard map: the last range does not end at 2^128-1")
        }
        KB_AGGREGATION_BAD_MODE => {
            c_message!("aggregation: mode is not a KB_AGGREGATE_* value")
        }
        KB_AGGREGATION_NEEDS_KEYS => {
            c_message!("aggregation needs limits with partition keys (Kinesis Data Streams)")
        }
        KB_AGGREGATE_OUT_OF_RANGE => {
            c_message!("the aggregate's range is not within the records")
        }
        KB_BUFFER_TOO_SMALL => c_message!("the buffer is shorter than the aggregate's data_len"),
        KB_AGGREGATE_DIGEST_MISMATCH => c_message!(
            "the record starts with the aggregation magic but its MD5 digest does not match"
        ),
        KB_AGGREGATE_MALFORMED => {
            c_message!("the aggregated record's protobuf is malformed or refers to a missing key")
        }
        KB_PANIC => c_message!("internal error: the library panicked"),
        _ => c_message!("unknown status"),
    }
}

/// Whether `status` is an error (100 or more): nothing was written but the count
/// out-parameters, set to 0 (and bad_index or key_reason), and no object changed.
#[unsafe(no_mangle)]
pub extern "C" fn kb_status_is_error(status: kb_status) -> bool {
    guard!(true, { is_error(status) })
}

/// Whether `status` is an error.
pub(crate) const fn is_error(status: kb_status) -> bool {
    status >= KB_NULL_POINTER
}
