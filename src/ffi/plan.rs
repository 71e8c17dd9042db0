//! The planner (bulk and cursor) and the accumulator, over both record forms.

use super::cost::kb_limits;
use super::records::{check_records, checked, checked_one, kb_record};
use super::status::*;
use super::{
    check, free_handle, get, guard, input, new_object, non_null, object, object_mut, output, set,
};
use crate::cost::{Measure, Reason, RecordSize};
use crate::plan::{Accumulator, Batch, Event, Planner, Push, Refusal, Stats, Status};

/// Plans one input array across as many calls as the caller likes: bulk
/// (`kb_planner_plan`), one event at a time (`kb_planner_next`), or both mixed. Pass the
/// same array to every call: the first call fixes `n_records`, and a call with another
/// count writes nothing and returns `KB_INPUT_CHANGED` (where a planner reused on a new
/// array would have skipped its first records). Only the length can be checked: another
/// array of the same length is planned from where the last call stopped, so call
/// `kb_planner_reset` before planning another array. Its state is a few words,
/// allocated by `kb_planner_new`.
pub struct kb_planner {
    planner: Planner,
}

/// Receives records one at a time (`kb_accumulator_push`) and says when a request is
/// complete. Records are numbered by push order from 0; `kb_accumulator_reset` starts
/// the numbering (and the counters) over.
pub struct kb_accumulator {
    accumulator: Accumulator,
}

/// Creates a planner at the start of an input, under `limits` (checked).
///
/// Requires: `limits` is NULL or readable; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_planner_new(
    limits: *const kb_limits,
    out: *mut *mut kb_planner,
) -> kb_status {
    guard!({
        // SAFETY: the caller's promises above.
        unsafe {
            new_object(limits, out, |limits| {
                Ok(kb_planner {
                    planner: Planner::new(limits),
                })
            })
        }
    })
}

/// Releases a planner. NULL is ignored.
///
/// Requires: `planner` is NULL or came from `kb_planner_new` and is not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_planner_free(planner: *mut kb_planner) {
    guard!((), {
        // SAFETY: the caller's promise above.
        unsafe { free_handle(planner) }
    })
}

/// Starts a planner over, with the same limits, for another input array: as a planner
/// fresh from `kb_planner_new` (position 0, counters 0, no input length fixed yet).
/// `KB_NULL_POINTER` when `planner` is NULL.
///
/// Requires: `planner` is NULL or came from `kb_planner_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_planner_reset(planner: *mut kb_planner) -> kb_status {
    guard!({
        non_null!(planner);
        // SAFETY: non-NULL, from kb_planner_new, one thread at a time.
        unsafe { object_mut(planner) }.planner.reset();
        KB_OK
    })
}

/// The bulk call for either record form. A record the core cannot read stops the call
/// before it (`Status::Unreadable`): when something was written, the call returns it
/// with `KB_BATCHES_FULL` ("call again") and the next call, which can make no progress,
/// reports the record; when nothing was written, the planner is put back as it was and
/// `unreadable(position)` says which error it is.
///
/// # Safety
/// Every pointer is NULL or valid as `kb_planner_plan` documents.
#[allow(clippy::too_many_arguments)]
unsafe fn plan<M: Measure>(
    planner: &mut Planner,
    records: &[M],
    batches: *mut Batch,
    batches_cap: usize,
    n_batches: *mut usize,
    refusals: *mut Refusal,
    refusals_cap: usize,
    n_refusals: *mut usize,
    unreadable: impl FnOnce(usize) -> kb_status,
) -> kb_status {
    // SAFETY: the caller's promise above.
    let batches = check!(unsafe { output(batches, batches_cap) });
    // SAFETY: the caller's promise above.
    let refusals = check!(unsafe { output(refusals, refusals_cap) });
    let before = *planner;
    let progress = planner.plan_uninit(records, batches, refusals);
    let status = match progress.status {
        Status::Done => KB_OK,
        Status::BatchesFull => KB_BATCHES_FULL,
        Status::RefusalsFull => KB_REFUSALS_FULL,
        Status::InputChanged => return KB_INPUT_CHANGED,
        Status::Unreadable if progress.batches + progress.refusals > 0 => KB_BATCHES_FULL,
        Status::Unreadable => {
            let position = planner.position();
            *planner = before;
            return unreadable(position);
        }
    };
    // SAFETY: both non-NULL (checked by the callers) and writable. (On an error the
    // callers' guard sets them to 0.)
    unsafe {
        set(n_batches, progress.batches);
        set(n_refusals, progress.refusals);
    }
    status
}

/// Plans as much of `records[0..n_records]` as the output arrays hold, from where the
/// previous call stopped: batches and refusals in input order, at the front of each array,
/// their counts in `*n_batches` and `*n_refusals`.
///
/// Each batch is a request: send `records[start..end)` as it is. By default a refused
/// record closes the open batch, so no batch holds one (`end - start == records`). Under
/// `KB_LIMITS_SPAN_REFUSALS` a batch may span refused records (fewer requests), which
/// are then written before, or in the same call as, the batch whose range spans them, and
/// must be skipped when sending.
///
/// Returns `KB_OK` when the whole input is planned (further calls write nothing),
/// `KB_BATCHES_FULL` or `KB_REFUSALS_FULL` when an array filled: handle what was
/// written and call again with the same records. The plan is the same whatever the
/// capacities (each at least 1). `KB_INPUT_CHANGED`: `n_records` is not the first
/// call's (see `kb_planner`).
///
/// Records are checked as they are read, in the same pass: a NULL field with a non-zero
/// length is `KB_NULL_FIELD`, lengths that overflow `KB_LENGTH_OVERFLOW`, with the
/// record's index in `*bad_index` (which may be NULL). A call that meets such a record
/// after writing something returns what it wrote with `KB_BATCHES_FULL`; the next call,
/// which can make no progress, returns the error and changes nothing.
///
/// Requires: `planner` came from `kb_planner_new`; `records` is NULL or points to
/// `n_records` records whose non-NULL fields point to their lengths in bytes; each output
/// array is NULL or holds its capacity; the count pointers are NULL or writable; nothing
/// overlaps.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_planner_plan(
    planner: *mut kb_planner,
    records: *const kb_record,
    n_records: usize,
    batches: *mut Batch,
    batches_cap: usize,
    n_batches: *mut usize,
    refusals: *mut Refusal,
    refusals_cap: usize,
    n_refusals: *mut usize,
    bad_index: *mut usize,
) -> kb_status {
    guard!(counts: [n_batches, n_refusals], {
        non_null!(planner, n_batches, n_refusals);
        // SAFETY: non-NULL, from kb_planner_new, one thread at a time.
        let planner = &mut unsafe { object_mut(planner) }.planner;
        // SAFETY: the caller's promise above.
        let records = check!(unsafe { input(records, n_records) });
        let unreadable = |index: usize| {
            // SAFETY: NULL or writable (the caller's promise).
            unsafe { set(bad_index, index) };
            let status = records[index].check();
            debug_assert_ne!(status, KB_OK, "an unreadable record passes its check");
            status
        };
        // SAFETY: the caller's promises above.
        unsafe {
            plan(
                planner,
                checked(records),
                batches,
                batches_cap,
                n_batches,
                refusals,
                refusals_cap,
                n_refusals,
                unreadable,
            )
        }
    })
}

/// `kb_planner_plan` over size-form records (nothing in them can be invalid).
///
/// Requires: as for `kb_planner_plan`, with `records` NULL or pointing to `n_records`
/// sizes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_planner_plan_sizes(
    planner: *mut kb_planner,
    records: *const RecordSize,
    n_records: usize,
    batches: *mut Batch,
    batches_cap: usize,
    n_batches: *mut usize,
    refusals: *mut Refusal,
    refusals_cap: usize,
    n_refusals: *mut usize,
) -> kb_status {
    guard!(counts: [n_batches, n_refusals], {
        non_null!(planner, n_batches, n_refusals);
        // SAFETY: non-NULL, from kb_planner_new, one thread at a time.
        let planner = &mut unsafe { object_mut(planner) }.planner;
        // SAFETY: the caller's promise above.
        let records = check!(unsafe { input(records, n_records) });
        // SAFETY: the caller's promises above.
        unsafe {
            plan(
                planner,
                records,
                batches,
                batches_cap,
                n_batches,
                refusals,
                refusals_cap,
                n_refusals,
                // Size-form records are plain integers: always readable.
                |_| KB_PANIC,
            )
        }
    })
}

/// `KB_INPUT_CHANGED` when the planner has planned an input of another length: the
/// cursor's `next_event` then says `None`, which must not reach C as `KB_END`.
fn same_input(planner: &Planner, n_records: usize) -> Result<(), kb_status> {
    match planner.input_len() {
        Some(len) if len != n_records => Err(KB_INPUT_CHANGED),
        _ => Ok(()),
    }
}

/// Writes one cursor event.
///
/// # Safety
/// `batch` and `refusal` are writable.
unsafe fn event(event: Option<Event>, batch: *mut Batch, refusal: *mut Refusal) -> kb_status {
    match event {
        Some(Event::Batch(closed)) => {
            // SAFETY: the caller's promise above.
            unsafe { set(batch, closed) };
            KB_OK
        }
        Some(Event::Refused(refused)) => {
            // SAFETY: the caller's promise above.
            unsafe { set(refusal, refused) };
            KB_REFUSED
        }
        None => KB_END,
    }
}

/// The next event of the plan, in input order: `KB_OK` with a closed batch in `*batch`
/// (a request: send `records[start..end)`, as for `kb_planner_plan`), `KB_REFUSED` with
/// a refused record in `*refusal`, or `KB_END` once the whole input is planned. Records
/// are checked as in `kb_planner_plan`; `n_records` other than the first call's is
/// `KB_INPUT_CHANGED`, never `KB_END`.
///
/// Requires: as for `kb_planner_plan`; `batch` and `refusal` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_planner_next(
    planner: *mut kb_planner,
    records: *const kb_record,
    n_records: usize,
    batch: *mut Batch,
    refusal: *mut Refusal,
    bad_index: *mut usize,
) -> kb_status {
    guard!({
        non_null!(planner, batch, refusal);
        // SAFETY: non-NULL, from kb_planner_new, one thread at a time.
        let planner = &mut unsafe { object_mut(planner) }.planner;
        // SAFETY: the caller's promise above.
        let records = check!(unsafe { input(records, n_records) });
        check!(same_input(planner, n_records));
        if let Err((index, status)) =
            check_records(records, planner.position(), planner.event_reach())
        {
            // SAFETY: NULL or writable (the caller's promise).
            unsafe { set(bad_index, index) };
            return status;
        }
        // SAFETY: both non-NULL and writable (the caller's promise).
        unsafe { event(planner.next_event(checked(records)), batch, refusal) }
    })
}

/// `kb_planner_next` over size-form records.
///
/// Requires: as for `kb_planner_next`, with `records` NULL or pointing to `n_records`
/// sizes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_planner_next_sizes(
    planner: *mut kb_planner,
    records: *const RecordSize,
    n_records: usize,
    batch: *mut Batch,
    refusal: *mut Refusal,
) -> kb_status {
    guard!({
        non_null!(planner, batch, refusal);
        // SAFETY: non-NULL, from kb_planner_new, one thread at a time.
        let planner = &mut unsafe { object_mut(planner) }.planner;
        // SAFETY: the caller's promise above.
        let records = check!(unsafe { input(records, n_records) });
        check!(same_input(planner, n_records));
        // SAFETY: both non-NULL and writable (the caller's promise).
        unsafe { event(planner.next_event(records), batch, refusal) }
    })
}

/// The index of the next record the planner will read: how far planning got.
///
/// Requires: `planner` is NULL or came from `kb_planner_new`; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_planner_position(
    planner: *const kb_planner,
    out: *mut usize,
) -> kb_status {
    guard!({
        // SAFETY: the caller's promises above.
        unsafe { get(planner, out, |o| o.planner.position()) }
    })
}

/// The planner's counters so far.
///
/// Requires: `planner` is NULL or came from `kb_planner_new`; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_planner_stats(
    planner: *const kb_planner,
    out: *mut Stats,
) -> kb_status {
    guard!({
        // SAFETY: the caller's promises above.
        unsafe { get(planner, out, |o| *o.planner.stats()) }
    })
}

/// Creates an empty accumulator under `limits` (checked).
///
/// Requires: `limits` is NULL or readable; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_accumulator_new(
    limits: *const kb_limits,
    out: *mut *mut kb_accumulator,
) -> kb_status {
    guard!({
        // SAFETY: the caller's promises above.
        unsafe {
            new_object(limits, out, |limits| {
                Ok(kb_accumulator {
                    accumulator: Accumulator::new(limits),
                })
            })
        }
    })
}

/// Releases an accumulator. NULL is ignored.
///
/// Requires: `accumulator` is NULL or came from `kb_accumulator_new` and is not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_accumulator_free(accumulator: *mut kb_accumulator) {
    guard!((), {
        // SAFETY: the caller's promise above.
        unsafe { free_handle(accumulator) }
    })
}

/// Starts an accumulator over, with the same limits: as one fresh from
/// `kb_accumulator_new` (the next push is index 0, counters 0). The open batch, if any,
/// is dropped: flush it first to keep it. `KB_NULL_POINTER` when `accumulator` is NULL.
///
/// Requires: `accumulator` is NULL or came from `kb_accumulator_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_accumulator_reset(accumulator: *mut kb_accumulator) -> kb_status {
    guard!({
        non_null!(accumulator);
        // SAFETY: non-NULL, from kb_accumulator_new, one thread at a time.
        unsafe { object_mut(accumulator) }.accumulator.reset();
        KB_OK
    })
}

/// Writes what became of a pushed record.
///
/// # Safety
/// `send_first` and `reason` are writable.
unsafe fn pushed(push: Push, send_first: *mut Batch, reason: *mut Reason) -> kb_status {
    match push {
        Push::Added => KB_OK,
        Push::SendFirst(batch) => {
            // SAFETY: the caller's promise above.
            unsafe { set(send_first, batch) };
            KB_SEND_FIRST
        }
        Push::Refused(why) => {
            // SAFETY: the caller's promise above.
            unsafe { set(reason, why) };
            KB_REFUSED
        }
    }
}

/// Measures `record` and adds it: `KB_OK` (it joined the open batch), `KB_SEND_FIRST`
/// (the open batch, written to `*send_first`, is complete: send it; this record starts
/// the next), or `KB_REFUSED` (its reason in `*reason`; it takes an index but joins no
/// batch, and by default closes the open batch, so that the next accepted record returns
/// `KB_SEND_FIRST`). A record with a NULL field is `KB_NULL_FIELD` and takes no index.
///
/// Requires: `accumulator` came from `kb_accumulator_new`; `record` is NULL or readable,
/// with non-NULL fields pointing to their lengths in bytes; the out-pointers are NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_accumulator_push(
    accumulator: *mut kb_accumulator,
    record: *const kb_record,
    send_first: *mut Batch,
    reason: *mut Reason,
) -> kb_status {
    guard!({
        non_null!(accumulator, record, send_first, reason);
        // SAFETY: non-NULL, from kb_accumulator_new, one thread at a time.
        let accumulator = &mut unsafe { object_mut(accumulator) }.accumulator;
        // SAFETY: non-NULL and readable (the caller's promise); plain fields.
        let record = check!(checked_one(unsafe { &*record }));
        // SAFETY: both non-NULL and writable (the caller's promise).
        unsafe { pushed(accumulator.push(record), send_first, reason) }
    })
}

/// `kb_accumulator_push` for a size-form record.
///
/// Requires: as for `kb_accumulator_push`, with `record` NULL or pointing to a size.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_accumulator_push_size(
    accumulator: *mut kb_accumulator,
    record: *const RecordSize,
    send_first: *mut Batch,
    reason: *mut Reason,
) -> kb_status {
    guard!({
        non_null!(accumulator, record, send_first, reason);
        // SAFETY: non-NULL, from kb_accumulator_new, one thread at a time.
        let accumulator = &mut unsafe { object_mut(accumulator) }.accumulator;
        // SAFETY: non-NULL and readable; plain integers.
        let record = unsafe { &*record };
        // SAFETY: both non-NULL and writable (the caller's promise).
        unsafe { pushed(accumulator.push(record), send_first, reason) }
    })
}

/// Takes the next index for a record the caller refused itself, without measuring it;
/// the index is written to `*index`. Like a refused push, a skip closes the open batch
/// (the next accepted push returns `KB_SEND_FIRST` with it), so every batch is exactly
/// records[start..end); with `KB_LIMITS_SPAN_REFUSALS` a batch may span the skipped index
/// (`end - start - records` counts it), to be left out when sending.
///
/// Requires: `accumulator` came from `kb_accumulator_new`; `index` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_accumulator_skip(
    accumulator: *mut kb_accumulator,
    index: *mut usize,
) -> kb_status {
    guard!({
        non_null!(accumulator, index);
        // SAFETY: non-NULL, from kb_accumulator_new, one thread at a time.
        let taken = unsafe { object_mut(accumulator) }.accumulator.skip();
        // SAFETY: non-NULL and writable (the caller's promise).
        unsafe { set(index, taken) };
        KB_OK
    })
}

/// Closes the open batch: `KB_OK` with it in `*batch`, or `KB_END` when no record is
/// pending.
///
/// Requires: `accumulator` came from `kb_accumulator_new`; `batch` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_accumulator_flush(
    accumulator: *mut kb_accumulator,
    batch: *mut Batch,
) -> kb_status {
    guard!({
        non_null!(accumulator, batch);
        // SAFETY: non-NULL, from kb_accumulator_new, one thread at a time.
        match unsafe { object_mut(accumulator) }.accumulator.flush() {
            Some(closed) => {
                // SAFETY: non-NULL and writable (the caller's promise).
                unsafe { set(batch, closed) };
                KB_OK
            }
            None => KB_END,
        }
    })
}

/// The batch being filled, without closing it: `KB_OK` with it in `*batch`, or `KB_END`
/// when no record is pending.
///
/// Requires: `accumulator` came from `kb_accumulator_new`; `batch` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_accumulator_pending(
    accumulator: *const kb_accumulator,
    batch: *mut Batch,
) -> kb_status {
    guard!({
        non_null!(accumulator, batch);
        // SAFETY: non-NULL, from kb_accumulator_new (the caller's promise).
        match unsafe { object(accumulator) }.accumulator.pending() {
            Some(open) => {
                // SAFETY: non-NULL and writable (the caller's promise).
                unsafe { set(batch, *open) };
                KB_OK
            }
            None => KB_END,
        }
    })
}

/// How many records have been pushed or skipped: the index the next push gets.
///
/// Requires: `accumulator` came from `kb_accumulator_new`; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_accumulator_pushed(
    accumulator: *const kb_accumulator,
    out: *mut usize,
) -> kb_status {
    guard!({
        // SAFETY: the caller's promises above.
        unsafe { get(accumulator, out, |o| o.accumulator.pushed()) }
    })
}

/// The accumulator's counters so far (the open batch counts once it closes).
///
/// Requires: `accumulator` came from `kb_accumulator_new`; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_accumulator_stats(
    accumulator: *const kb_accumulator,
    out: *mut Stats,
) -> kb_status {
    guard!({
        // SAFETY: the caller's promises above.
        unsafe { get(accumulator, out, |o| *o.accumulator.stats()) }
    })
}
