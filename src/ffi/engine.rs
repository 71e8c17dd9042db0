//! The producer engine: records pushed one at a time, requests handed out when due, many
//! in flight, settled in any order.
//!
//! The core's [`Engine`] never allocates: it borrows the caller's [`Storage`]. Here the
//! `kb_engine` object is that caller. `kb_engine_new` allocates every slice (fallibly:
//! `KB_OUT_OF_MEMORY`, never an abort) and keeps them, and the engine that borrows them,
//! in one heap object; see [`Owned`] for why that self-reference is sound.

use core::ffi::c_int;
use core::mem::MaybeUninit;
use core::ptr::NonNull;
use std::boxed::Box;
use std::vec::Vec;

use super::codes::{kb_error_kind, kb_reason};
use super::cost::kb_limits;
use super::records::{checked_one, kb_record};
use super::retry::{KB_OUTCOME_ACCEPTED, kb_retry_policy};
use super::shards::{kb_shard_range, map_status};
use super::status::*;
use super::{
    check, free_handle, guard, input, into_handle, non_null, object, object_mut, output, set,
};
use crate::Reason;
use crate::aggregate::AsRecord;
use crate::engine::{
    Engine, EngineConfig, EngineError, EngineStats, Handle, KeyEntry, Poll, PushError, RequestId,
    RequestSlot, ShardState, Slot, Storage, StorageSizes, Terminal,
};
use crate::limits::Limits;
use crate::retry::{ErrorKind, Outcome, RetryPolicy};
use crate::shards::{self, ShardMap, ShardRange};

/// A buffered record: the slot the engine keeps it in, `0` to `capacity - 1`. Keep the
/// record's payload under this index until the record is settled for good (accepted, or
/// reported in a `kb_terminal_entry`); a handle is reused only after that.
pub type kb_handle = u32;

/// `kb_engine_config.flags`: records of one key may overtake each other (several in
/// flight at once). Without it (the default), each key's records (its explicit hash key
/// if it has one, else its partition key) are stored in the order they were pushed.
pub const KB_ENGINE_ALLOW_REORDERING: u32 = 1;

/// The most requests in flight a `kb_engine_config` may ask for.
pub const KB_ENGINE_MAX_IN_FLIGHT: u32 = 1024;

const _: () = assert!(KB_ENGINE_MAX_IN_FLIGHT == EngineConfig::MAX_IN_FLIGHT);

/// Every `kb_engine_config.flags` bit.
const FLAGS: u32 = KB_ENGINE_ALLOW_REORDERING;

/// How the engine batches over time. Zeroed (or a NULL pointer) is the default, and every
/// field that is 0 means its default: 100 ms linger, one request in flight, 64 MiB
/// buffered, each key's records in order, and the service's shard rates.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kb_engine_config {
    /// How long a record may wait for others to share its request, in milliseconds (the
    /// KPL's RecordMaxBufferedTime). 0: 100.
    pub linger_ms: u64,
    /// Bytes buffered at most (record sizes as the service counts them, requests in
    /// flight included): a push beyond answers KB_FULL. 0: 64 MiB.
    pub max_buffered_bytes: u64,
    /// Requests in flight at once, 1 to KB_ENGINE_MAX_IN_FLIGHT (1024; above:
    /// KB_INVALID_ARGUMENT). 0: 1.
    pub max_in_flight: u32,
    /// KB_ENGINE_* bits (0: each key's records in order). Other bits are
    /// KB_INVALID_ARGUMENT.
    pub flags: u32,
    /// With a shard map: records sent to one shard in any one second, at most. 0: the
    /// service's 1,000.
    pub shard_records_per_sec: u32,
    /// With a shard map: bytes sent to one shard in any one second, at most. 0: the
    /// service's 1 MiB.
    pub shard_bytes_per_sec: u32,
}

impl kb_engine_config {
    fn to_core(self) -> Result<EngineConfig, kb_status> {
        if self.flags & !FLAGS != 0 {
            return Err(KB_INVALID_ARGUMENT);
        }
        Ok(EngineConfig {
            linger_ms: self.linger_ms,
            max_in_flight: self.max_in_flight,
            max_buffered_bytes: self.max_buffered_bytes,
            allow_reordering: self.flags & KB_ENGINE_ALLOW_REORDERING != 0,
            shard_records_per_sec: self.shard_records_per_sec,
            shard_bytes_per_sec: self.shard_bytes_per_sec,
        })
    }
}

/// A record the engine will not send again, from kb_engine_settle or
/// kb_engine_settle_all: its handle (free for reuse from now on), its last error, and
/// whether it gave up on a retryable error (out of the policy's attempts or time).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kb_terminal_entry {
    /// The record.
    pub handle: kb_handle,
    /// Its last error, a KB_ERROR_KIND_* value.
    pub kind: kb_error_kind,
    /// 1: the error is retryable, but the record is out of attempts or time; 0: the error
    /// is terminal.
    pub gave_up: u8,
}

/// The engine's counters (kb_engine_stats).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct kb_engine_counters {
    /// Records pushed and not yet accepted or terminal (in flight included).
    pub buffered_records: u64,
    /// Their size, as the service counts it.
    pub buffered_bytes: u64,
    /// Requests handed out and not yet settled.
    pub in_flight_requests: u64,
    /// Records in them.
    pub in_flight_records: u64,
    /// Requests handed out in all.
    pub requests: u64,
    /// Records stored by the service.
    pub accepted_records: u64,
    /// Their size.
    pub accepted_bytes: u64,
    /// Entries that failed and were buffered again, to be sent again.
    pub retried: u64,
    /// Entries that failed on throughput or throttling.
    pub throttled: u64,
    /// Settles that paused the engine on credentials.
    pub credential_failures: u64,
    /// Records reported terminal.
    pub terminal: u64,
    /// Records refused by kb_engine_push, indexed by their kb_reason.
    pub refused: [u64; 5],
}

const _: () = assert!(
    Reason::COUNT == 5,
    "kb_engine_counters.refused has one per reason"
);

impl kb_engine_counters {
    fn from_core(stats: &EngineStats) -> kb_engine_counters {
        kb_engine_counters {
            buffered_records: stats.buffered_records,
            buffered_bytes: stats.buffered_bytes,
            in_flight_requests: stats.in_flight_requests,
            in_flight_records: stats.in_flight_records,
            requests: stats.requests,
            accepted_records: stats.accepted_records,
            accepted_bytes: stats.accepted_bytes,
            retried: stats.retried,
            throttled: stats.throttled,
            credential_failures: stats.credential_failures,
            terminal: stats.terminal,
            refused: stats.refused,
        }
    }
}

/// A slice on the heap that an engine borrows for as long as the `kb_engine` lives.
///
/// Why this is sound. The engine is an `Engine<'static>` holding `&'static mut` slices
/// into memory that the same `kb_engine` frees. The slices are allocated as boxes and
/// turned into raw pointers at once ([`Owned::new`]): no `Box` (which asserts unique
/// access whenever it is moved) is kept beside the borrows. Each slice is borrowed
/// exactly once, by [`Owned::borrow_once`] in `kb_engine_new`, for the one engine that is
/// ever made over it (`kb_engine_reset` resets that engine in place), so no two live
/// references to it ever exist. The memory is freed only when the `kb_engine` is dropped
/// (`kb_engine_free`): `engine` is its first field, so it is dropped before the `Owned`
/// fields free the slices, and dropping an engine runs no code (it only holds borrows and
/// plain values: checked below), so its borrows are never used after the free. Nothing
/// hands a borrow out past a call: every `kb_engine_*` function reaches the engine
/// through the `kb_engine` it was given.
struct Owned<T> {
    ptr: NonNull<[T]>,
}

const _: () = assert!(
    !core::mem::needs_drop::<Engine<'static>>(),
    "dropping an engine must not touch the storage it borrowed"
);

impl<T: Copy + Default> Owned<T> {
    /// `len` default values on the heap; `KB_LENGTH_OVERFLOW` when their size would be
    /// above `isize::MAX` bytes, `KB_OUT_OF_MEMORY` when the allocation fails.
    fn new(len: usize) -> Result<Owned<T>, kb_status> {
        Owned::from_fn(len, |_| T::default())
    }

    /// `len` values `value(i)` on the heap, allocated as [`Owned::new`] does.
    fn from_fn(len: usize, value: impl Fn(usize) -> T) -> Result<Owned<T>, kb_status> {
        if len > isize::MAX as usize / core::mem::size_of::<T>().max(1) {
            return Err(KB_LENGTH_OVERFLOW);
        }
        let mut values = Vec::new();
        values
            .try_reserve_exact(len)
            .map_err(|_| KB_OUT_OF_MEMORY)?;
        values.extend((0..len).map(value));
        // The capacity is exactly `len`, so this does not reallocate.
        let slice: &mut [T] = Box::leak(values.into_boxed_slice());
        Ok(Owned {
            ptr: NonNull::from(slice),
        })
    }
}

impl<T> Owned<T> {
    /// The slice, for the engine.
    ///
    /// # Safety
    /// Called at most once per `Owned`, and the borrow is not used after the `Owned` is
    /// dropped (see [`Owned`]).
    unsafe fn borrow_once(&mut self) -> &'static mut [T] {
        // SAFETY: from a leaked box: aligned, initialised, `len` elements, alive until
        // `drop`; the caller's promise makes this the only reference to it.
        unsafe { &mut *self.ptr.as_ptr() }
    }

    /// The slice as an ordinary box, for memory no engine borrows.
    fn into_box(self) -> Box<[T]> {
        let this = core::mem::ManuallyDrop::new(self);
        // SAFETY: from `Box::leak` in `from_fn`, never borrowed, and not freed: `this`
        // is not dropped, so the box takes the only ownership.
        unsafe { Box::from_raw(this.ptr.as_ptr()) }
    }
}

impl<T> Drop for Owned<T> {
    fn drop(&mut self) {
        // SAFETY: `ptr` came from `Box::leak` of a `Box<[T]>` in `from_fn`, is freed only
        // here, and the one borrow of it is dead by now (see [`Owned`]).
        drop(unsafe { Box::from_raw(self.ptr.as_ptr()) });
    }
}

/// The storage an engine borrows, and the shard ranges its map borrows.
struct Parts {
    slots: Owned<Slot>,
    keys: Owned<KeyEntry>,
    requests: Owned<RequestSlot>,
    entries: Owned<Handle>,
    shards: Owned<ShardState>,
    ranges: Option<Owned<ShardRange>>,
}

/// A producer engine: records pushed as they come (kb_engine_push), requests handed out
/// when full, lingered or flushed (kb_engine_next_request), several in flight, settled
/// in any order (kb_engine_settle). It never reads, copies or keeps a payload: keep each
/// record under its kb_handle until it is settled. All its memory is allocated by
/// kb_engine_new, sized by the capacity; nothing allocates after that. One thread at a
/// time: one engine per thread, or a lock around every call.
pub struct kb_engine {
    /// First, so it is dropped before the storage it borrows (see [`Owned`]).
    engine: Engine<'static>,
    /// Where settles write their terminal records, one request's worth.
    terminal: Box<[Terminal]>,
    /// Kept alive for `engine`, freed after it.
    _parts: Parts,
}

fn error_kind(kind: u32) -> Option<ErrorKind> {
    ErrorKind::ALL.get(kind as usize).copied()
}

/// The status of a refusal of the core; `NotInFlight` is decided by the callers.
fn engine_status(error: EngineError) -> kb_status {
    match error {
        EngineError::InvalidConfig | EngineError::OutcomeCount => KB_INVALID_ARGUMENT,
        EngineError::ZeroCapacity => KB_ZERO_CAPACITY,
        EngineError::SizeOverflow => KB_LENGTH_OVERFLOW,
        EngineError::TerminalArrayTooSmall => KB_TERMINAL_ARRAY_TOO_SMALL,
        EngineError::NotInFlight => KB_NOT_THE_REQUEST_IN_FLIGHT,
        // This layer sizes the storage with StorageSizes and hands over the map it
        // counted: a refusal is a bug here, reported as the other internal errors are.
        EngineError::StorageTooSmall => KB_PANIC,
    }
}

/// `KB_NOTHING_IN_FLIGHT` when no request is out, else `KB_NOT_THE_REQUEST_IN_FLIGHT`.
fn not_in_flight(engine: &Engine<'_>) -> kb_status {
    if engine.stats().in_flight_requests == 0 {
        KB_NOTHING_IN_FLIGHT
    } else {
        KB_NOT_THE_REQUEST_IN_FLIGHT
    }
}

/// Allocates the storage and the engine over it.
fn build(
    limits: Limits,
    policy: RetryPolicy,
    config: EngineConfig,
    capacity: usize,
    ranges: &[kb_shard_range],
) -> Result<kb_engine, kb_status> {
    let sizes =
        StorageSizes::new(&limits, &config, capacity, ranges.len()).map_err(engine_status)?;
    let mut parts = Parts {
        slots: Owned::new(sizes.slots)?,
        keys: Owned::new(sizes.keys)?,
        requests: Owned::new(sizes.requests)?,
        entries: Owned::new(sizes.entries)?,
        shards: Owned::new(sizes.shards)?,
        ranges: if ranges.is_empty() {
            None
        } else {
            Some(Owned::from_fn(ranges.len(), |i| ShardRange {
                start: ranges[i].start.to_u128(),
                end: ranges[i].end.to_u128(),
            })?)
        },
    };
    let terminal = Owned::<Terminal>::new(limits.max_records() as usize)?;
    // SAFETY: the only borrows ever made of these slices, for the one engine made over
    // them, which lives in the same kb_engine as `parts`, dropped first (see `Owned`).
    let (storage, ranges) = unsafe {
        let storage = Storage {
            slots: parts.slots.borrow_once(),
            keys: parts.keys.borrow_once(),
            requests: parts.requests.borrow_once(),
            entries: parts.entries.borrow_once(),
            shards: parts.shards.borrow_once(),
        };
        let ranges: Option<&'static [ShardRange]> =
            parts.ranges.as_mut().map(|ranges| &*ranges.borrow_once());
        (storage, ranges)
    };
    // The caller checked the same values already.
    let map = match ranges {
        Some(ranges) => Some(ShardMap::new(ranges).map_err(|error| map_status(error).0)?),
        None => None,
    };
    let engine = Engine::new(limits, policy, config, storage, map).map_err(engine_status)?;
    Ok(kb_engine {
        engine,
        terminal: terminal.into_box(),
        _parts: parts,
    })
}

/// Creates an engine for at most `capacity` records buffered at once (their handles are
/// 0 to `capacity - 1`). All its memory is allocated here: about 100 to 140 bytes per
/// record of capacity (about 70 with KB_ENGINE_ALLOW_REORDERING), 2 KiB per request in
/// flight (at 500 records a request) and 250 bytes per shard. NULL `limits` is the Kinesis Data Streams
/// profile (kb_limits_profile(KB_PROFILE_KDS)), NULL `policy` the default policy, NULL
/// `config` the default config; zero fields of `policy` and `config` are their defaults
/// (the policy's per_key_order is not used: see KB_ENGINE_ALLOW_REORDERING). With
/// `shards[0..n_shards)`, the open shards of the stream (checked as kb_shard_map_check
/// does; the engine keeps a copy), each shard is kept under the config's rates; `n_shards`
/// 0 means no shard map.
///
/// Errors: the limits' KB_LIMITS_* statuses; KB_INVALID_ARGUMENT (unknown config flags,
/// `max_in_flight` above 1024); KB_ZERO_CAPACITY; KB_LENGTH_OVERFLOW (a capacity of
/// 2^32 - 1 records or more, or storage larger than memory can address); the
/// KB_SHARD_MAP_* statuses, the bad range in `*bad_index` (which may be NULL);
/// KB_OUT_OF_MEMORY.
///
/// Requires: `limits`, `policy` and `config` are NULL or readable; `shards` is NULL or
/// holds `n_shards` ranges; `out` is NULL or writable; `bad_index` is NULL or writable.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn kb_engine_new(
    limits: *const kb_limits,
    policy: *const kb_retry_policy,
    config: *const kb_engine_config,
    capacity: usize,
    shards: *const kb_shard_range,
    n_shards: usize,
    out: *mut *mut kb_engine,
    bad_index: *mut usize,
) -> kb_status {
    guard!({
        non_null!(out);
        let limits = if limits.is_null() {
            Limits::KDS
        } else {
            // SAFETY: non-NULL and readable (the caller's promise); plain integers.
            check!(unsafe { *limits }.to_core())
        };
        let policy = if policy.is_null() {
            RetryPolicy::DEFAULT
        } else {
            // SAFETY: non-NULL and readable (the caller's promise); plain integers.
            unsafe { *policy }.to_core()
        };
        let config = if config.is_null() {
            kb_engine_config::default()
        } else {
            // SAFETY: non-NULL and readable (the caller's promise); plain integers.
            unsafe { *config }
        };
        let config = check!(config.to_core());
        // SAFETY: the caller's promise above.
        let ranges = check!(unsafe { input(shards, n_shards) });
        if !ranges.is_empty() {
            let range = |i: usize| ShardRange {
                start: ranges[i].start.to_u128(),
                end: ranges[i].end.to_u128(),
            };
            if let Err(error) = shards::check_ranges_with(ranges.len(), range) {
                let (status, index) = map_status(error);
                // SAFETY: NULL or writable (the caller's promise).
                unsafe { set(bad_index, index) };
                return status;
            }
        }
        let engine = check!(build(limits, policy, config, capacity, ranges));
        let handle = check!(into_handle(engine));
        // SAFETY: non-NULL and writable (the caller's promise).
        unsafe { out.write(handle) };
        KB_OK
    })
}

/// Releases an engine and all its memory. NULL is ignored. Records still buffered or in
/// flight are forgotten: settle them first if they matter.
///
/// Requires: `engine` is NULL or came from `kb_engine_new` and is not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_engine_free(engine: *mut kb_engine) {
    guard!((), {
        // SAFETY: the caller's promise above.
        unsafe { free_handle(engine) }
    })
}

/// Starts an engine over, as fresh from `kb_engine_new` with the same arguments: every
/// buffered record and request in flight is forgotten (their handles are free), the
/// counters are zeroed, a pause ends. No allocation. `KB_NULL_POINTER` when `engine` is
/// NULL.
///
/// Requires: `engine` is NULL or came from `kb_engine_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_engine_reset(engine: *mut kb_engine) -> kb_status {
    guard!({
        non_null!(engine);
        // SAFETY: non-NULL, from kb_engine_new, one thread at a time.
        unsafe { object_mut(engine) }.engine.reset();
        KB_OK
    })
}

/// The most records buffered at once: handles are 0 to this minus 1. 0 for NULL.
///
/// Requires: `engine` is NULL or came from `kb_engine_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_engine_capacity(engine: *const kb_engine) -> usize {
    guard!(0, {
        if engine.is_null() {
            return 0;
        }
        // SAFETY: non-NULL, from kb_engine_new (the caller's promise).
        unsafe { object(engine) }.engine.capacity()
    })
}

/// Buffers one record, measured now (its size, key and shard; the engine keeps no
/// pointer into it). Returns:
///
/// * `KB_OK`: taken, its handle in `*handle`. Keep its payload (and what you need to
///   send it) under that handle until it is accepted or reported terminal.
/// * `KB_FULL`: the buffer is at its capacity in records or bytes; nothing was taken.
///   Settle a request (or wait for one to finish), then push it again: backpressure,
///   nothing is dropped to make room.
/// * `KB_REFUSED`: the record can never be sent (its kb_reason in `*reason`); it is
///   counted in the stats' `refused`, not kept.
///
/// A record with a NULL field and a length is KB_NULL_FIELD, one whose lengths cannot be
/// summed KB_LENGTH_OVERFLOW. `now_ms` is your monotonic clock in milliseconds, the same
/// clock for every call.
///
/// Requires: `engine` came from `kb_engine_new`; `record` is NULL or readable, its
/// non-NULL fields pointing to their lengths in bytes; `handle` and `reason` are NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_engine_push(
    engine: *mut kb_engine,
    record: *const kb_record,
    now_ms: u64,
    handle: *mut kb_handle,
    reason: *mut kb_reason,
) -> kb_status {
    guard!({
        non_null!(engine, record, handle, reason);
        // SAFETY: non-NULL, from kb_engine_new, one thread at a time.
        let engine = &mut unsafe { object_mut(engine) }.engine;
        // SAFETY: non-NULL and readable (the caller's promise); plain fields.
        let record = check!(checked_one(unsafe { &*record }));
        // Checked just above, so readable.
        let Some(record) = record.as_record() else {
            return KB_NULL_FIELD;
        };
        match engine.push(&record, now_ms) {
            Ok(taken) => {
                // SAFETY: non-NULL and writable (the caller's promise).
                unsafe { set(handle, slot_handle(taken)) };
                KB_OK
            }
            Err(PushError::Full) => KB_FULL,
            Err(PushError::Refused(why)) => {
                // SAFETY: non-NULL and writable (the caller's promise).
                unsafe { set(reason, why as kb_reason) };
                KB_REFUSED
            }
        }
    })
}

/// A handle as C sees it: its slot, below the capacity, which is below 2^32 - 1.
fn slot_handle(handle: Handle) -> kb_handle {
    handle.slot() as kb_handle
}

/// The next request to send, if one is due. Returns one of these, or an error:
///
/// * `KB_OK`: send it now. Its id is in `*id`, its `*n` records' handles in
///   `handles[0..*n)` (in request order: the order of the PutRecords entries and of the
///   outcomes to settle it with), their size as the service counts it in `*bytes`.
///   Settle it with that id, in any order with the other requests in flight.
/// * `KB_WAIT`: records are buffered but none is due before `*until_ms`: call again then,
///   or sooner after a push, a settle or kb_engine_flush.
/// * `KB_BUSY`: the most requests are in flight (or every buffered record waits on one
///   in flight): settle one first.
/// * `KB_PAUSED`: a request failed on credentials: refresh them, then kb_engine_resume.
/// * `KB_END`: nothing is buffered that was not sent (requests may still be in flight:
///   see kb_engine_stats).
///
/// `*n` and `*bytes` are 0 for any status but KB_OK; `*id` is written only with KB_OK,
/// `*until_ms` only with KB_WAIT. `handles` must hold the limits' max_records (500 for
/// the Kinesis profiles), else KB_HANDLE_ARRAY_TOO_SMALL and nothing is taken. `bytes`
/// and `until_ms` may be NULL.
///
/// Requires: `engine` came from `kb_engine_new`; `handles` is NULL or holds
/// `handles_cap` entries; `id`, `n`, `bytes` and `until_ms` are NULL or writable;
/// nothing overlaps.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn kb_engine_next_request(
    engine: *mut kb_engine,
    now_ms: u64,
    id: *mut u64,
    handles: *mut kb_handle,
    handles_cap: usize,
    n: *mut usize,
    bytes: *mut u32,
    until_ms: *mut u64,
) -> kb_status {
    guard!(counts: [n, bytes], {
        non_null!(engine, id, n);
        // SAFETY: non-NULL, from kb_engine_new, one thread at a time.
        let engine = &mut unsafe { object_mut(engine) }.engine;
        if handles_cap < engine.limits().max_records() as usize {
            return KB_HANDLE_ARRAY_TOO_SMALL;
        }
        // SAFETY: NULL or holding `handles_cap` entries, not overlapping (the caller's
        // promise).
        let out: &mut [MaybeUninit<kb_handle>] = check!(unsafe { output(handles, handles_cap) });
        let (status, count, size) = match engine.next_request(now_ms) {
            Poll::Ready(request) => {
                for (slot, &taken) in out.iter_mut().zip(request.handles) {
                    slot.write(slot_handle(taken));
                }
                // SAFETY: non-NULL and writable (the caller's promise).
                unsafe { set(id, request.id.0) };
                (KB_OK, request.handles.len(), request.bytes)
            }
            Poll::Wait { until_ms: until } => {
                // SAFETY: NULL or writable (the caller's promise).
                unsafe { set(until_ms, until) };
                (KB_WAIT, 0, 0)
            }
            Poll::Busy => (KB_BUSY, 0, 0),
            Poll::Paused => (KB_PAUSED, 0, 0),
            Poll::Idle => (KB_END, 0, 0),
        };
        // SAFETY: non-NULL (n) or NULL (bytes), and writable (the caller's promise).
        unsafe {
            set(n, count);
            set(bytes, size);
        }
        status
    })
}

/// The terminal array for a request of `entries` entries.
///
/// # Safety
/// `terminal` is NULL or holds `terminal_cap` writable entries, not overlapping anything
/// else of the call.
unsafe fn terminal_output<'a>(
    terminal: *mut kb_terminal_entry,
    terminal_cap: usize,
    entries: usize,
) -> Result<&'a mut [MaybeUninit<kb_terminal_entry>], kb_status> {
    if terminal_cap < entries {
        return Err(KB_TERMINAL_ARRAY_TOO_SMALL);
    }
    // SAFETY: the caller's promise above. (A request is never empty, so `terminal_cap`
    // is not 0 here.)
    unsafe { output(terminal, terminal_cap) }
}

/// Copies the terminal records of a settle to C's array, and their count.
///
/// # Safety
/// `n_terminal` is writable.
unsafe fn report_terminal(
    written: &[Terminal],
    out: &mut [MaybeUninit<kb_terminal_entry>],
    n_terminal: *mut usize,
) -> kb_status {
    for (slot, terminal) in out.iter_mut().zip(written) {
        slot.write(kb_terminal_entry {
            handle: slot_handle(terminal.handle),
            kind: terminal.kind as kb_error_kind,
            gave_up: u8::from(terminal.gave_up),
        });
    }
    // SAFETY: the caller's promise above.
    unsafe { set(n_terminal, written.len()) };
    KB_OK
}

/// Settles request `id` with its response: `outcomes[i]` is the outcome of the request's
/// entry `i` (the record under `handles[i]` of kb_engine_next_request):
/// KB_OUTCOME_ACCEPTED for an entry with a SequenceNumber, else the kb_error_kind of its
/// ErrorCode (kb_error_kind_from_code). Accepted records are done (their handles are
/// free). Retryable failures are buffered again and go first after their backoff, drawn
/// with `random` (any uniformly random 64-bit number). KB_ERROR_KIND_CREDENTIALS keeps
/// the records too, without counting an attempt, and pauses the engine until
/// kb_engine_resume. The others, and records out of attempts or time, are written to
/// `terminal[0..*n_terminal)` (their handles are free); `terminal` must hold as many
/// entries as the request.
///
/// Errors, after which nothing changed: KB_NOTHING_IN_FLIGHT (no request is in flight),
/// KB_NOT_THE_REQUEST_IN_FLIGHT (`id` is not one of them: settled already, or never
/// handed out), KB_INVALID_ARGUMENT (`n` is not the request's entry count, or an outcome
/// is neither a kind nor KB_OUTCOME_ACCEPTED), KB_TERMINAL_ARRAY_TOO_SMALL.
///
/// Requires: `engine` came from `kb_engine_new`; `outcomes` is NULL or holds `n` bytes;
/// `terminal` is NULL or holds `terminal_cap` entries; `n_terminal` is NULL or writable.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn kb_engine_settle(
    engine: *mut kb_engine,
    id: u64,
    outcomes: *const u8,
    n: usize,
    now_ms: u64,
    random: u64,
    terminal: *mut kb_terminal_entry,
    terminal_cap: usize,
    n_terminal: *mut usize,
) -> kb_status {
    guard!(counts: [n_terminal], {
        non_null!(engine, n_terminal);
        // SAFETY: non-NULL, from kb_engine_new, one thread at a time.
        let kb_engine { engine, terminal: written, .. } = unsafe { object_mut(engine) };
        // SAFETY: the caller's promise above.
        let codes = check!(unsafe { input(outcomes, n) });
        let id = RequestId(id);
        let Some(entries) = engine.request(id).map(<[Handle]>::len) else {
            return not_in_flight(engine);
        };
        if codes.len() != entries {
            return KB_INVALID_ARGUMENT;
        }
        // A request holds at most 500 entries (the service's maximum).
        let mut converted = [Outcome::Accepted; 500];
        if entries > converted.len() {
            return KB_INVALID_ARGUMENT;
        }
        for (slot, &code) in converted.iter_mut().zip(codes) {
            *slot = match code {
                KB_OUTCOME_ACCEPTED => Outcome::Accepted,
                kind => match error_kind(u32::from(kind)) {
                    Some(kind) => Outcome::Failed(kind),
                    None => return KB_INVALID_ARGUMENT,
                },
            };
        }
        // SAFETY: the caller's promise above.
        let out = check!(unsafe { terminal_output(terminal, terminal_cap, entries) });
        let settled = check!(
            engine
                .settle(id, &converted[..entries], now_ms, random, written)
                .map_err(engine_status)
        );
        // SAFETY: non-NULL and writable (the caller's promise).
        unsafe { report_terminal(&written[..settled.terminal], out, n_terminal) }
    })
}

/// Settles request `id` when it got no usable response: every entry failed with `kind`
/// (a kb_error_kind; KB_INVALID_ARGUMENT otherwise), such as KB_ERROR_KIND_TRANSPORT for
/// a lost connection, KB_ERROR_KIND_BAD_RESPONSE for a response whose entry count is
/// wrong, or the kind of the whole request's error (kb_error_kind_from_code,
/// kb_error_kind_from_http_status). As kb_engine_settle otherwise.
///
/// Requires: as for `kb_engine_settle`.
#[unsafe(no_mangle)]
#[allow(clippy::too_many_arguments)]
pub unsafe extern "C" fn kb_engine_settle_all(
    engine: *mut kb_engine,
    id: u64,
    kind: u8,
    now_ms: u64,
    random: u64,
    terminal: *mut kb_terminal_entry,
    terminal_cap: usize,
    n_terminal: *mut usize,
) -> kb_status {
    guard!(counts: [n_terminal], {
        non_null!(engine, n_terminal);
        // SAFETY: non-NULL, from kb_engine_new, one thread at a time.
        let kb_engine { engine, terminal: written, .. } = unsafe { object_mut(engine) };
        let Some(kind) = error_kind(u32::from(kind)) else {
            return KB_INVALID_ARGUMENT;
        };
        let id = RequestId(id);
        let Some(entries) = engine.request(id).map(<[Handle]>::len) else {
            return not_in_flight(engine);
        };
        // SAFETY: the caller's promise above.
        let out = check!(unsafe { terminal_output(terminal, terminal_cap, entries) });
        let settled = check!(
            engine
                .settle_all(id, kind, now_ms, random, written)
                .map_err(engine_status)
        );
        // SAFETY: non-NULL and writable (the caller's promise).
        unsafe { report_terminal(&written[..settled.terminal], out, n_terminal) }
    })
}

/// Makes everything buffered now due at once, without waiting for linger (records
/// pushed later linger as usual). At the end of the input: flush, then call
/// kb_engine_next_request and settle until it returns KB_END with no request in flight.
///
/// Requires: `engine` is NULL or came from `kb_engine_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_engine_flush(engine: *mut kb_engine) -> kb_status {
    guard!({
        non_null!(engine);
        // SAFETY: non-NULL, from kb_engine_new, one thread at a time.
        unsafe { object_mut(engine) }.engine.flush();
        KB_OK
    })
}

/// Ends the pause that a credentials failure started (KB_PAUSED): call it once the
/// credentials are refreshed. The records that failed are sent again first. Harmless
/// when not paused.
///
/// Requires: `engine` is NULL or came from `kb_engine_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_engine_resume(engine: *mut kb_engine) -> kb_status {
    guard!({
        non_null!(engine);
        // SAFETY: non-NULL, from kb_engine_new, one thread at a time.
        unsafe { object_mut(engine) }.engine.resume();
        KB_OK
    })
}

/// `*paused` is 1 while a credentials failure has paused the engine (until
/// kb_engine_resume), else 0.
///
/// Requires: `engine` is NULL or came from `kb_engine_new`; `paused` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_engine_is_paused(
    engine: *const kb_engine,
    paused: *mut c_int,
) -> kb_status {
    guard!({
        non_null!(engine, paused);
        // SAFETY: non-NULL, from kb_engine_new (the caller's promise).
        let value = c_int::from(unsafe { object(engine) }.engine.is_paused());
        // SAFETY: non-NULL and writable (the caller's promise).
        unsafe { set(paused, value) };
        KB_OK
    })
}

/// The engine's counters so far.
///
/// Requires: `engine` is NULL or came from `kb_engine_new`; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_engine_stats(
    engine: *const kb_engine,
    out: *mut kb_engine_counters,
) -> kb_status {
    guard!({
        non_null!(engine, out);
        // SAFETY: non-NULL, from kb_engine_new (the caller's promise).
        let counters = kb_engine_counters::from_core(unsafe { object(engine) }.engine.stats());
        // SAFETY: non-NULL and writable (the caller's promise).
        unsafe { set(out, counters) };
        KB_OK
    })
}

/// How many responses throttled shard `shard` (an index into the map given to
/// kb_engine_new) in `*out`: 0 without a map, or for an index out of range.
///
/// Requires: `engine` is NULL or came from `kb_engine_new`; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_engine_shard_throttled(
    engine: *const kb_engine,
    shard: usize,
    out: *mut u64,
) -> kb_status {
    guard!({
        non_null!(engine, out);
        // SAFETY: non-NULL, from kb_engine_new (the caller's promise).
        let throttled = unsafe { object(engine) }.engine.shard_throttled(shard);
        // SAFETY: non-NULL and writable (the caller's promise).
        unsafe { set(out, throttled) };
        KB_OK
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn owned_slices_refuse_sizes_past_isize_and_failed_allocations() {
        assert_eq!(
            Owned::<Slot>::new(isize::MAX as usize / core::mem::size_of::<Slot>() + 1).err(),
            Some(KB_LENGTH_OVERFLOW)
        );
        let Ok(empty) = Owned::<Slot>::new(0) else {
            panic!("an empty slice needs no memory");
        };
        assert!(empty.into_box().is_empty());
    }

    /// 2^62 bytes: more than any address space, so the allocation fails on every system,
    /// whatever its overcommit policy, and must come back as a status, not an abort.
    #[test]
    #[cfg_attr(miri, ignore = "Miri stops on allocations it cannot make")]
    fn a_failed_allocation_is_out_of_memory() {
        let len = (1usize << 62) / core::mem::size_of::<Slot>();
        assert_eq!(Owned::<Slot>::new(len).err(), Some(KB_OUT_OF_MEMORY));
    }

    #[test]
    fn every_engine_error_has_a_status() {
        let errors = [
            (EngineError::InvalidConfig, KB_INVALID_ARGUMENT),
            (EngineError::OutcomeCount, KB_INVALID_ARGUMENT),
            (EngineError::ZeroCapacity, KB_ZERO_CAPACITY),
            (EngineError::SizeOverflow, KB_LENGTH_OVERFLOW),
            (
                EngineError::TerminalArrayTooSmall,
                KB_TERMINAL_ARRAY_TOO_SMALL,
            ),
            (EngineError::NotInFlight, KB_NOT_THE_REQUEST_IN_FLIGHT),
            (EngineError::StorageTooSmall, KB_PANIC),
        ];
        for (error, status) in errors {
            assert_eq!(engine_status(error), status, "{error:?}");
        }
    }

    #[test]
    fn a_zeroed_config_is_the_core_default() {
        let config = kb_engine_config::default().to_core().expect("valid");
        assert_eq!(config.effective(), EngineConfig::DEFAULT);
        let reordering = kb_engine_config {
            flags: KB_ENGINE_ALLOW_REORDERING,
            ..kb_engine_config::default()
        };
        assert!(reordering.to_core().expect("valid").allow_reordering);
        let unknown = kb_engine_config {
            flags: 1 << 7,
            ..kb_engine_config::default()
        };
        assert_eq!(unknown.to_core(), Err(KB_INVALID_ARGUMENT));
    }
}
