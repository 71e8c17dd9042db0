//! Newline-delimited buffers: splitting (one line or packed run at a time) and planning
//! in the same pass, streamed across chunks.

use super::cost::kb_limits;
use super::status::*;
use super::{
    check, free_handle, get, guard, input, new_object, non_null, object, object_mut, output, set,
};
use crate::cost::Reason;
use crate::limits::Limits;
use crate::lines::{
    LineBatch, LinePacker, LinePlanner, LineProgress, LineRefusal, LineStatus, LineStep, Lines,
};
use crate::plan::Stats;

/// Options: each record packs as many consecutive lines (joined by their `\n`) as fit
/// the record cap with the key, instead of one record per line.
pub const KB_LINES_PACK: u32 = 1;
/// Options: empty lines are records too (with no data) instead of being skipped. Not
/// with `KB_LINES_PACK`.
pub const KB_LINES_KEEP_EMPTY: u32 = 2;

/// One line, or a packed run of lines, found by `kb_lines_next`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct kb_line {
    /// The line without its terminator, pointing into the caller's input. For a line
    /// longer than the record cap, only the part seen so far (`bytes_len < len`).
    pub bytes: *const u8,
    /// How many bytes `bytes` points to.
    pub bytes_len: usize,
    /// The line's length in bytes (for a line over the cap, at least `bytes_len`).
    pub len: u64,
    /// Its 1-based line number in the whole stream (empty lines count).
    pub number: u64,
    /// The number of its last line: `number`, but for a packed run.
    pub last_number: u64,
    /// Byte offset of its first byte in the whole stream.
    pub offset: u64,
    /// True when `bytes` holds the whole line. False only for a line over the record
    /// cap, reported before its end arrived (`bytes_len < len`): such a line is always
    /// refused as too large, and `bytes_len` alone is already above the cap (above the
    /// cap minus the key, for a packing splitter), so a record made of `bytes` is
    /// refused too.
    pub whole: bool,
}

enum Splitter {
    Lines(Lines),
    Packer(LinePacker),
}

/// Splits a stream at `\n` (a `\r` before it is dropped) across chunks, one line per
/// call: a line longer than the record cap is reported as soon as that is certain.
pub struct kb_lines {
    splitter: Splitter,
}

enum AnyLinePlanner {
    Lines(LinePlanner<Lines>),
    Packer(LinePlanner<LinePacker>),
}

/// Splits (or packs) lines and plans them in one pass, every record with one partition
/// key. Batches are written once they close, which can be after the bytes of their
/// first lines were consumed: keep the buffer from `kb_line_planner_keep_from` on.
pub struct kb_line_planner {
    planner: AnyLinePlanner,
}

fn options(options: u32) -> Result<(bool, bool), kb_status> {
    let pack = options & KB_LINES_PACK != 0;
    let keep_empty = options & KB_LINES_KEEP_EMPTY != 0;
    if options & !(KB_LINES_PACK | KB_LINES_KEEP_EMPTY) != 0 || (pack && keep_empty) {
        return Err(KB_INVALID_ARGUMENT);
    }
    Ok((pack, keep_empty))
}

fn lines(limits: &Limits, keep_empty: bool) -> Lines {
    let lines = Lines::new(limits);
    if keep_empty {
        lines.keep_empty()
    } else {
        lines
    }
}

/// Creates a line splitter for records under `limits`; with `KB_LINES_PACK`, packed
/// records leave room for a key of `key_len` bytes. `options`: `KB_LINES_*`.
///
/// Requires: `limits` is NULL or readable; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_lines_new(
    limits: *const kb_limits,
    options_bits: u32,
    key_len: u32,
    out: *mut *mut kb_lines,
) -> kb_status {
    guard!({
        // SAFETY: the caller's promises above.
        unsafe {
            new_object(limits, out, |limits| {
                let (pack, keep_empty) = options(options_bits)?;
                let splitter = if pack {
                    Splitter::Packer(LinePacker::new(&limits, key_len))
                } else {
                    Splitter::Lines(lines(&limits, keep_empty))
                };
                Ok(kb_lines { splitter })
            })
        }
    })
}

/// Releases a line splitter. NULL is ignored.
///
/// Requires: `lines` is NULL or came from `kb_lines_new` and is not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_lines_free(lines: *mut kb_lines) {
    guard!((), {
        // SAFETY: the caller's promise above.
        unsafe { free_handle(lines) }
    })
}

/// Starts a line splitter over at the beginning of another stream (line 1, offset 0),
/// with the same limits and options. `KB_NULL_POINTER` when `lines` is NULL.
///
/// Requires: `lines` is NULL or came from `kb_lines_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_lines_reset(lines: *mut kb_lines) -> kb_status {
    guard!({
        non_null!(lines);
        // SAFETY: non-NULL, from kb_lines_new, one thread at a time.
        match &mut unsafe { object_mut(lines) }.splitter {
            Splitter::Lines(lines) => lines.reset(),
            Splitter::Packer(packer) => packer.reset(),
        }
        KB_OK
    })
}

/// The next line of `input`: `KB_OK` with it in `*line`, `KB_NEED_MORE` (the input ends
/// inside a line: call again with the unconsumed bytes and more appended, or with `eof`),
/// or `KB_END` (`eof` is set and every line was reported). `*consumed` says how many
/// bytes of `input` are used up; the next call's input starts after them. A packing
/// splitter must be passed its unconsumed bytes again.
///
/// Requires: `lines` came from `kb_lines_new`; `input` is NULL or points to `len`
/// readable bytes; `line` and `consumed` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_lines_next(
    lines: *mut kb_lines,
    input_bytes: *const u8,
    len: usize,
    eof: bool,
    line: *mut kb_line,
    consumed: *mut usize,
) -> kb_status {
    guard!(counts: [consumed], {
        non_null!(lines, line, consumed);
        // SAFETY: non-NULL, from kb_lines_new, one thread at a time.
        let splitter = &mut unsafe { object_mut(lines) }.splitter;
        // SAFETY: the caller's promise above.
        let bytes = check!(unsafe { input(input_bytes, len) });
        let (step, used) = match splitter {
            Splitter::Lines(lines) => lines.next_line(bytes, eof),
            Splitter::Packer(packer) => packer.next_line(bytes, eof),
        };
        // SAFETY: non-NULL and writable (the caller's promise).
        unsafe { set(consumed, used) };
        match step {
            LineStep::Line(found) => {
                let found = kb_line {
                    bytes: found.bytes.as_ptr(),
                    bytes_len: found.bytes.len(),
                    len: found.len,
                    number: found.number,
                    last_number: found.last_number,
                    offset: found.offset,
                    whole: found.is_whole(),
                };
                // SAFETY: non-NULL and writable (the caller's promise).
                unsafe { set(line, found) };
                KB_OK
            }
            LineStep::NeedMore => KB_NEED_MORE,
            LineStep::End => KB_END,
        }
    })
}

/// How many lines the splitter has started so far, empty ones included: the 1-based
/// number of the last line seen.
///
/// Requires: `lines` came from `kb_lines_new`; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_lines_seen(lines: *const kb_lines, out: *mut u64) -> kb_status {
    guard!({
        // SAFETY: the caller's promises above.
        unsafe {
            get(lines, out, |o| match &o.splitter {
                Splitter::Lines(lines) => lines.lines_seen(),
                Splitter::Packer(packer) => packer.lines_seen(),
            })
        }
    })
}

/// Creates a line planner under `limits`, every record with the partition key
/// `key[0..key_len]` (ignored when the limits have no keys). `options`: `KB_LINES_*`.
/// A key that every line would be refused for is `KB_KEY_REFUSED`, with the reason in
/// `*key_reason` (which may be NULL).
///
/// Requires: `limits` is NULL or readable; `key` is NULL or points to `key_len` readable
/// bytes (read only during this call); `out` and `key_reason` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_line_planner_new(
    limits: *const kb_limits,
    key: *const u8,
    key_len: usize,
    options_bits: u32,
    out: *mut *mut kb_line_planner,
    key_reason: *mut Reason,
) -> kb_status {
    guard!({
        // SAFETY: the caller's promise above.
        let key = check!(unsafe { input(key, key_len) });
        let make = |limits| {
            let (pack, keep_empty) = options(options_bits)?;
            let planner = if pack {
                LinePlanner::packing(limits, key).map(AnyLinePlanner::Packer)
            } else {
                LinePlanner::with_source(limits, key, lines(&limits, keep_empty))
                    .map(AnyLinePlanner::Lines)
            };
            match planner {
                Ok(planner) => Ok(kb_line_planner { planner }),
                Err(reason) => {
                    // SAFETY: NULL or writable (the caller's promise).
                    unsafe { set(key_reason, reason) };
                    Err(KB_KEY_REFUSED)
                }
            }
        };
        // SAFETY: the caller's promises above.
        unsafe { new_object(limits, out, make) }
    })
}

/// Releases a line planner. NULL is ignored.
///
/// Requires: `planner` is NULL or came from `kb_line_planner_new` and is not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_line_planner_free(planner: *mut kb_line_planner) {
    guard!((), {
        // SAFETY: the caller's promise above.
        unsafe { free_handle(planner) }
    })
}

/// Starts a line planner over at the beginning of another stream (record 0, line 1,
/// offset 0, counters 0), with the same limits, key and options. The open batch, if any,
/// is dropped. `KB_NULL_POINTER` when `planner` is NULL.
///
/// Requires: `planner` is NULL or came from `kb_line_planner_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_line_planner_reset(planner: *mut kb_line_planner) -> kb_status {
    guard!({
        non_null!(planner);
        // SAFETY: non-NULL, from kb_line_planner_new, one thread at a time.
        match &mut unsafe { object_mut(planner) }.planner {
            AnyLinePlanner::Lines(planner) => planner.reset(),
            AnyLinePlanner::Packer(planner) => planner.reset(),
        }
        KB_OK
    })
}

/// Plans as many lines of `input` as the output arrays hold. Record indices count
/// records from 0 in stream order; offsets are stream offsets. `*consumed` bytes of
/// `input` are used up: the next call's input starts after them.
///
/// Returns `KB_OK` (`eof` was set and everything is planned and written),
/// `KB_NEED_MORE` (the input ends inside a line: drop the consumed bytes, append more,
/// call again), `KB_BATCHES_FULL` or `KB_REFUSALS_FULL` (call again with
/// `input + consumed`). The plan is the same whatever the chunking and capacities.
///
/// Requires: `planner` came from `kb_line_planner_new`; `input` is NULL or points to `len`
/// readable bytes; each output array is NULL or holds its capacity; the count pointers
/// are NULL or writable; nothing overlaps.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_line_planner_plan(
    planner: *mut kb_line_planner,
    input_bytes: *const u8,
    len: usize,
    eof: bool,
    batches: *mut LineBatch,
    batches_cap: usize,
    n_batches: *mut usize,
    refusals: *mut LineRefusal,
    refusals_cap: usize,
    n_refusals: *mut usize,
    consumed: *mut usize,
) -> kb_status {
    guard!(counts: [n_batches, n_refusals, consumed], {
        non_null!(planner, n_batches, n_refusals, consumed);
        // SAFETY: non-NULL, from kb_line_planner_new, one thread at a time.
        let planner = &mut unsafe { object_mut(planner) }.planner;
        // SAFETY: the caller's promise above.
        let bytes = check!(unsafe { input(input_bytes, len) });
        // SAFETY: the caller's promise above.
        let batches = check!(unsafe { output(batches, batches_cap) });
        // SAFETY: the caller's promise above.
        let refusals = check!(unsafe { output(refusals, refusals_cap) });
        let progress: LineProgress = match planner {
            AnyLinePlanner::Lines(planner) => planner.plan_uninit(bytes, eof, batches, refusals),
            AnyLinePlanner::Packer(planner) => planner.plan_uninit(bytes, eof, batches, refusals),
        };
        // SAFETY: all non-NULL and writable (the caller's promise).
        unsafe {
            set(n_batches, progress.batches);
            set(n_refusals, progress.refusals);
            set(consumed, progress.consumed);
        }
        match progress.status {
            LineStatus::Done => KB_OK,
            LineStatus::NeedMore => KB_NEED_MORE,
            LineStatus::BatchesFull => KB_BATCHES_FULL,
            LineStatus::RefusalsFull => KB_REFUSALS_FULL,
        }
    })
}

/// The stream offset of the open batch's first byte: `KB_OK` with it in `*offset`, or
/// `KB_END` when no batch is open. A caller that builds requests from the bytes keeps
/// its buffer from there on.
///
/// Requires: `planner` came from `kb_line_planner_new`; `offset` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_line_planner_keep_from(
    planner: *const kb_line_planner,
    offset: *mut u64,
) -> kb_status {
    guard!({
        non_null!(planner, offset);
        // SAFETY: non-NULL, from kb_line_planner_new (the caller's promise).
        let keep = match &unsafe { object(planner) }.planner {
            AnyLinePlanner::Lines(planner) => planner.keep_from(),
            AnyLinePlanner::Packer(planner) => planner.keep_from(),
        };
        match keep {
            Some(from) => {
                // SAFETY: non-NULL and writable (the caller's promise).
                unsafe { set(offset, from) };
                KB_OK
            }
            None => KB_END,
        }
    })
}

/// The line planner's counters so far.
///
/// Requires: `planner` came from `kb_line_planner_new`; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_line_planner_stats(
    planner: *const kb_line_planner,
    out: *mut Stats,
) -> kb_status {
    guard!({
        // SAFETY: the caller's promises above.
        unsafe {
            get(planner, out, |o| match &o.planner {
                AnyLinePlanner::Lines(planner) => *planner.stats(),
                AnyLinePlanner::Packer(planner) => *planner.stats(),
            })
        }
    })
}
