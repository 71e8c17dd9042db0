//! Retry planning: requests re-planned after partial failures, and backoff.

use core::ffi::c_char;
use core::mem::MaybeUninit;

use super::cost::kb_limits;
use super::records::{check_records, checked, kb_record};
use super::status::*;
use super::{
    check, free_handle, get, guard, input, new_object, non_null, object, object_mut, output, set,
};
use crate::cost::{Measure, RecordSize};
use crate::plan::Refusal;
use crate::retry::{
    Backoff, Delivery, DeliveryError, DeliveryStats, ErrorKind, NextStatus, Outcome, Pending,
    RetryPolicy, Settled, Terminal,
};

/// An outcome meaning the entry was stored (it has a `SequenceNumber`). Any other
/// outcome is the `kb_error_kind` of the entry's `ErrorCode`.
pub const KB_OUTCOME_ACCEPTED: u8 = 255;
/// `kb_error_kind_from_http_status`'s answer for a status that is not an error.
pub const KB_ERROR_KIND_NONE: u8 = 255;

/// How long to keep trying a record. `kb_retry_policy_default` fills the defaults.
///
/// Every field that is 0 means its default, never "off" or "give up": a policy zeroed
/// with memset and given only `max_attempts` still backs off from 100 ms and retries for
/// up to 5 minutes. To retry as little as possible, set `max_attempts` to 1.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct kb_retry_policy {
    /// Backoff: the delay ceiling after the first failure, in milliseconds (0: 100).
    pub backoff_base_ms: u64,
    /// Backoff: the highest delay ceiling, in milliseconds (0: 10,000).
    pub backoff_cap_ms: u64,
    /// Milliseconds from a record's first send after which it is no longer retried
    /// (0: 300,000, 5 minutes).
    pub max_age_ms: u64,
    /// Sends of one record at most, the first included (0: 10).
    pub max_attempts: u32,
    /// Non-zero: a request never holds two records with the same key, so each key's
    /// records are stored in input order.
    pub per_key_order: u32,
}

impl kb_retry_policy {
    pub(crate) fn to_core(self) -> RetryPolicy {
        RetryPolicy {
            backoff: Backoff {
                base_ms: self.backoff_base_ms,
                cap_ms: self.backoff_cap_ms,
            },
            max_attempts: self.max_attempts,
            max_age_ms: self.max_age_ms,
            per_key_order: self.per_key_order != 0,
        }
    }
}

/// Plans requests over an input and re-plans the failed entries of each response: only
/// failed entries with a retryable error are sent again, in input order, at the front of
/// the next request. One request is in flight at a time. Pass the same array to every
/// call: one that no longer holds what was planned (shorter, or a waiting record now
/// refused) is `KB_INPUT_CHANGED`, but another array at least as long cannot be told
/// apart, so call `kb_delivery_reset` before delivering another. State is fixed-size
/// (about 33 KiB), allocated by `kb_delivery_new`.
pub struct kb_delivery {
    delivery: Delivery,
}

fn error_kind(kind: u32) -> Option<ErrorKind> {
    ErrorKind::ALL.get(kind as usize).copied()
}

/// Fills `out` with the default policy: up to 10 attempts over at most 5 minutes,
/// backoff from 100 ms doubling up to 10 s, no per-key ordering.
///
/// Requires: `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_retry_policy_default(out: *mut kb_retry_policy) -> kb_status {
    guard!({
        non_null!(out);
        let policy = RetryPolicy::DEFAULT;
        let policy = kb_retry_policy {
            backoff_base_ms: policy.backoff.base_ms,
            backoff_cap_ms: policy.backoff.cap_ms,
            max_age_ms: policy.max_age_ms,
            max_attempts: policy.max_attempts,
            per_key_order: u32::from(policy.per_key_order),
        };
        // SAFETY: non-NULL and writable (the caller's promise).
        unsafe { set(out, policy) };
        KB_OK
    })
}

/// The delay in milliseconds after `failures` failures in a row (0: no delay), with full
/// jitter: uniform in `0..=min(cap_ms, base_ms * 2^(failures-1))`, drawn with `random`,
/// any uniformly random 64-bit number the caller supplies.
#[unsafe(no_mangle)]
pub extern "C" fn kb_backoff_delay_ms(
    base_ms: u64,
    cap_ms: u64,
    failures: u32,
    random: u64,
) -> u64 {
    guard!(cap_ms, {
        Backoff { base_ms, cap_ms }.delay_ms(failures, random)
    })
}

/// The kind of a service error code (`ErrorCode`, `__type` or `X-Amzn-ErrorType`;
/// a `namespace#` prefix and a `:url` suffix are ignored), written to `*kind`. Unknown
/// codes are `KB_ERROR_KIND_UNKNOWN`.
///
/// Requires: `code` is NULL or points to `len` readable bytes; `kind` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_error_kind_from_code(
    code: *const u8,
    len: usize,
    kind: *mut ErrorKind,
) -> kb_status {
    guard!({
        non_null!(kind);
        // SAFETY: the caller's promise above.
        let code = check!(unsafe { input(code, len) });
        // SAFETY: non-NULL and writable (the caller's promise).
        unsafe { set(kind, ErrorKind::from_code(code)) };
        KB_OK
    })
}

/// The kind of an HTTP status for a request that failed as a whole (429: throttling;
/// other 4xx: client error; 5xx: server error) in `*kind`, or `KB_ERROR_KIND_NONE`
/// for any other status.
///
/// Requires: `kind` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_error_kind_from_http_status(
    http_status: u32,
    kind: *mut ErrorKind,
) -> kb_status {
    guard!({
        non_null!(kind);
        let found = u16::try_from(http_status)
            .ok()
            .and_then(ErrorKind::from_http_status)
            .map_or(KB_ERROR_KIND_NONE, |kind| kind as u8);
        // SAFETY: non-NULL and writable (the caller's promise). Written as its underlying
        // `uint8_t`, since KB_ERROR_KIND_NONE is not a kind; Rust never reads it back.
        unsafe { set(kind.cast::<u8>(), found) };
        KB_OK
    })
}

/// Whether entries that failed with `kind` are sent again (within the policy's limits).
/// False for values that are not a kind.
#[unsafe(no_mangle)]
pub extern "C" fn kb_error_kind_is_retryable(kind: u32) -> bool {
    guard!(false, {
        error_kind(kind).is_some_and(ErrorKind::is_retryable)
    })
}

/// A short stable identifier for a `kb_error_kind`, such as `"throttling"`: static,
/// never NULL; `"unknown"` for values that are not a kind.
#[unsafe(no_mangle)]
pub extern "C" fn kb_error_kind_name(kind: u32) -> *const c_char {
    guard!(c_message!("unknown").as_ptr().cast(), {
        let name: &'static str = match error_kind(kind) {
            Some(ErrorKind::ThroughputExceeded) => c_message!("throughput_exceeded"),
            Some(ErrorKind::InternalFailure) => c_message!("internal_failure"),
            Some(ErrorKind::Throttling) => c_message!("throttling"),
            Some(ErrorKind::ServerError) => c_message!("server_error"),
            Some(ErrorKind::Transport) => c_message!("transport"),
            Some(ErrorKind::BadResponse) => c_message!("bad_response"),
            Some(ErrorKind::Unknown) | None => c_message!("unknown"),
            Some(ErrorKind::Validation) => c_message!("validation"),
            Some(ErrorKind::InvalidArgument) => c_message!("invalid_argument"),
            Some(ErrorKind::ResourceNotFound) => c_message!("resource_not_found"),
            Some(ErrorKind::AccessDenied) => c_message!("access_denied"),
            Some(ErrorKind::Kms) => c_message!("kms"),
            Some(ErrorKind::ClientError) => c_message!("client_error"),
            Some(ErrorKind::Credentials) => c_message!("credentials"),
        };
        name.as_ptr().cast()
    })
}

/// Creates a delivery at the start of an input, under `limits` (checked) and `policy`
/// (its zero fields mean their defaults).
///
/// Requires: `limits` and `policy` are NULL or readable; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_delivery_new(
    limits: *const kb_limits,
    policy: *const kb_retry_policy,
    out: *mut *mut kb_delivery,
) -> kb_status {
    guard!({
        non_null!(policy);
        // SAFETY: non-NULL and readable; plain integers.
        let policy = unsafe { *policy }.to_core();
        // SAFETY: the caller's promises above.
        unsafe {
            new_object(limits, out, |limits| {
                Ok(kb_delivery {
                    delivery: Delivery::new(limits, policy),
                })
            })
        }
    })
}

/// Releases a delivery. NULL is ignored.
///
/// Requires: `delivery` is NULL or came from `kb_delivery_new` and is not used again.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_delivery_free(delivery: *mut kb_delivery) {
    guard!((), {
        // SAFETY: the caller's promise above.
        unsafe { free_handle(delivery) }
    })
}

/// Starts a delivery over, with the same limits and policy, for another input array: as
/// one fresh from `kb_delivery_new`. Entries waiting to be sent again, the request in
/// flight and the counters are dropped. `KB_NULL_POINTER` when `delivery` is NULL.
///
/// Requires: `delivery` is NULL or came from `kb_delivery_new`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_delivery_reset(delivery: *mut kb_delivery) -> kb_status {
    guard!({
        non_null!(delivery);
        // SAFETY: non-NULL, from kb_delivery_new, one thread at a time.
        unsafe { object_mut(delivery) }.delivery.reset();
        KB_OK
    })
}

/// `next_request` for either record form, once the records are safe to read.
///
/// # Safety
/// Every pointer is NULL or valid as `kb_delivery_next_request` documents.
#[allow(clippy::too_many_arguments)]
unsafe fn next_request<M: Measure>(
    delivery: &mut Delivery,
    records: &[M],
    request: *mut Pending,
    request_cap: usize,
    n_entries: *mut usize,
    bytes: *mut u32,
    refusals: *mut Refusal,
    refusals_cap: usize,
    n_refusals: *mut usize,
    now_ms: u64,
) -> kb_status {
    // SAFETY: the caller's promise above.
    let request = check!(unsafe { output(request, request_cap) });
    // SAFETY: the caller's promise above.
    let refusals = check!(unsafe { output(refusals, refusals_cap) });
    let next = check!(
        delivery
            .next_request_uninit(records, request, refusals, now_ms)
            .map_err(delivery_status)
    );
    // SAFETY: non-NULL (checked by the callers) or optional, and writable. (On an
    // error the callers' guard sets them to 0.)
    unsafe {
        set(n_entries, next.entries);
        set(bytes, next.bytes);
        set(n_refusals, next.refusals);
    }
    match next.status {
        NextStatus::Ready => KB_OK,
        NextStatus::OnlyRefusals => KB_ONLY_REFUSALS,
        NextStatus::Done => KB_END,
    }
}

/// Writes the next request into `request`: first every entry waiting to be sent again,
/// then records not sent yet, greedily under the limits (give it room for `max_records`
/// entries, or requests are smaller). `*n_entries` entries are written, summing
/// `*bytes` (which may be NULL); refused records met on the way go to `refusals`.
/// Send `records[request[i].index]` for each entry, then settle with
/// `kb_delivery_settle` or `kb_delivery_settle_all` before the next call.
///
/// Returns one of three statuses, or an error:
///
/// * `KB_OK`: a request of `*n_entries > 0` entries is ready (refusals may have been
///   written too): report the refusals, send the request, settle it, call again.
/// * `KB_ONLY_REFUSALS`: no request, only `*n_refusals > 0` refusals (the refusal array
///   filled, or the rest of the input is refused): report them and call again.
/// * `KB_END`: nothing was written: every record is stored, terminal or refused. The
///   only status that means "stop".
///
/// So the loop to write is
///
#[cfg_attr(doc, doc = "```c")]
///     while ((st = kb_delivery_next_request(d, ...)) != KB_END) {
///         if (kb_status_is_error(st)) break;     /* report st */
///         /* report refusals[0..n_refusals) */
///         if (n_entries == 0) continue;          /* KB_ONLY_REFUSALS */
///         /* send request[0..n_entries), settle, sleep kb_delivery_backoff_ms */
///     }
#[cfg_attr(doc, doc = "```")]
///
/// (`while (... == KB_OK)` would stop at a `KB_ONLY_REFUSALS` with records left, though
/// never on an input without refusals.) Errors: `KB_REQUEST_IN_FLIGHT` (the previous
/// request is not settled), `KB_INPUT_CHANGED` (`records` no longer holds a record
/// already planned or waiting to be sent again: a shorter array, or a waiting record
/// that is now refused). Records are checked as in `kb_planner_plan`. `now_ms` is the
/// caller's monotonic clock.
///
/// Requires: `delivery` came from `kb_delivery_new`; `records` is NULL or points to
/// `n_records` records whose non-NULL fields point to their lengths in bytes; each
/// output array is NULL or holds its capacity; the count pointers are NULL or writable;
/// nothing overlaps.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_delivery_next_request(
    delivery: *mut kb_delivery,
    records: *const kb_record,
    n_records: usize,
    request: *mut Pending,
    request_cap: usize,
    n_entries: *mut usize,
    bytes: *mut u32,
    refusals: *mut Refusal,
    refusals_cap: usize,
    n_refusals: *mut usize,
    now_ms: u64,
    bad_index: *mut usize,
) -> kb_status {
    guard!(counts: [n_entries, bytes, n_refusals], {
        non_null!(delivery, n_entries, n_refusals);
        // SAFETY: non-NULL, from kb_delivery_new, one thread at a time.
        let delivery = &mut unsafe { object_mut(delivery) }.delivery;
        // SAFETY: the caller's promise above.
        let records = check!(unsafe { input(records, n_records) });
        let reach = delivery.reach(request_cap, refusals_cap);
        let waiting = delivery
            .waiting()
            .iter()
            .try_for_each(|pending| check_records(records, pending.index, 1));
        if let Err((index, status)) =
            waiting.and_then(|()| check_records(records, delivery.position(), reach))
        {
            // SAFETY: NULL or writable (the caller's promise).
            unsafe { set(bad_index, index) };
            return status;
        }
        // SAFETY: the caller's promises above.
        unsafe {
            next_request(
                delivery,
                checked(records),
                request,
                request_cap,
                n_entries,
                bytes,
                refusals,
                refusals_cap,
                n_refusals,
                now_ms,
            )
        }
    })
}

/// `kb_delivery_next_request` over size-form records. Per-key ordering needs key bytes,
/// which sizes do not carry: with sizes it has no effect.
///
/// Requires: as for `kb_delivery_next_request`, with `records` NULL or pointing to sizes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_delivery_next_request_sizes(
    delivery: *mut kb_delivery,
    records: *const RecordSize,
    n_records: usize,
    request: *mut Pending,
    request_cap: usize,
    n_entries: *mut usize,
    bytes: *mut u32,
    refusals: *mut Refusal,
    refusals_cap: usize,
    n_refusals: *mut usize,
    now_ms: u64,
) -> kb_status {
    guard!(counts: [n_entries, bytes, n_refusals], {
        non_null!(delivery, n_entries, n_refusals);
        // SAFETY: non-NULL, from kb_delivery_new, one thread at a time.
        let delivery = &mut unsafe { object_mut(delivery) }.delivery;
        // SAFETY: the caller's promise above.
        let records = check!(unsafe { input(records, n_records) });
        // SAFETY: the caller's promises above.
        unsafe {
            next_request(
                delivery,
                records,
                request,
                request_cap,
                n_entries,
                bytes,
                refusals,
                refusals_cap,
                n_refusals,
                now_ms,
            )
        }
    })
}

fn delivery_status(error: DeliveryError) -> kb_status {
    match error {
        DeliveryError::NothingInFlight => KB_NOTHING_IN_FLIGHT,
        DeliveryError::NotTheRequestInFlight => KB_NOT_THE_REQUEST_IN_FLIGHT,
        DeliveryError::TerminalArrayTooSmall => KB_TERMINAL_ARRAY_TOO_SMALL,
        DeliveryError::RequestInFlight => KB_REQUEST_IN_FLIGHT,
        DeliveryError::InputChanged => KB_INPUT_CHANGED,
        DeliveryError::ZeroCapacity => KB_ZERO_CAPACITY,
    }
}

/// Settles the request in flight with its response. `sent[0..n_sent)` must be the
/// request exactly as `kb_delivery_next_request` wrote it (every entry's index,
/// attempts and first send time), else `KB_NOT_THE_REQUEST_IN_FLIGHT` and nothing
/// changes. `outcomes[i]` is the outcome of `sent[i]`: `KB_OUTCOME_ACCEPTED`, or the
/// entry's `kb_error_kind`. Retryable failures wait for the next request; the others
/// are written to `terminal` (which must hold `n_sent` entries), their count and the
/// others' in `*settled`. An outcome count that differs from `n_sent` fails every entry
/// as a bad response. An outcome that is neither is `KB_INVALID_ARGUMENT`, its entry in
/// `*bad_index`.
///
/// Requires: `delivery` came from `kb_delivery_new`; `sent`, `outcomes` and `terminal`
/// are NULL or hold their lengths; `settled` and `bad_index` are NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_delivery_settle(
    delivery: *mut kb_delivery,
    sent: *const Pending,
    n_sent: usize,
    outcomes: *const u8,
    n_outcomes: usize,
    now_ms: u64,
    terminal: *mut Terminal,
    terminal_cap: usize,
    settled: *mut Settled,
    bad_index: *mut usize,
) -> kb_status {
    guard!(counts: [settled], {
        non_null!(delivery, settled);
        // SAFETY: non-NULL, from kb_delivery_new, one thread at a time.
        let delivery = &mut unsafe { object_mut(delivery) }.delivery;
        // SAFETY: the caller's promises above.
        let sent = check!(unsafe { input(sent, n_sent) });
        // SAFETY: the caller's promises above.
        let codes = check!(unsafe { input(outcomes, n_outcomes) });
        // An empty terminal array is allowed here (for an empty `sent`).
        let terminal: &mut [MaybeUninit<Terminal>] = if terminal_cap == 0 {
            &mut []
        } else {
            // SAFETY: NULL or holding `terminal_cap` entries (the caller's promise).
            check!(unsafe { output(terminal, terminal_cap) })
        };
        // A request holds at most 500 entries; a longer response fails as a whole below.
        let mut converted = [Outcome::Accepted; 500];
        let n = codes.len().min(converted.len());
        for (i, &code) in codes[..n].iter().enumerate() {
            converted[i] = match code {
                KB_OUTCOME_ACCEPTED => Outcome::Accepted,
                kind => match error_kind(u32::from(kind)) {
                    Some(kind) => Outcome::Failed(kind),
                    None => {
                        // SAFETY: NULL or writable (the caller's promise).
                        unsafe { set(bad_index, i) };
                        return KB_INVALID_ARGUMENT;
                    }
                },
            };
        }
        let result = if codes.len() > converted.len() {
            delivery.settle_all_uninit(sent, ErrorKind::BadResponse, now_ms, terminal)
        } else {
            delivery.settle_uninit(sent, &converted[..n], now_ms, terminal)
        };
        let done = check!(result.map_err(delivery_status));
        // SAFETY: non-NULL and writable (the caller's promise).
        unsafe { set(settled, done) };
        KB_OK
    })
}

/// Settles the request in flight when it failed as a whole (an error response, a lost
/// connection): every entry failed with `kind` (a `kb_error_kind`; `KB_INVALID_ARGUMENT`
/// otherwise). See `kb_delivery_settle`.
///
/// Requires: as for `kb_delivery_settle`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_delivery_settle_all(
    delivery: *mut kb_delivery,
    sent: *const Pending,
    n_sent: usize,
    kind: u32,
    now_ms: u64,
    terminal: *mut Terminal,
    terminal_cap: usize,
    settled: *mut Settled,
) -> kb_status {
    guard!(counts: [settled], {
        non_null!(delivery, settled);
        // SAFETY: non-NULL, from kb_delivery_new, one thread at a time.
        let delivery = &mut unsafe { object_mut(delivery) }.delivery;
        let Some(kind) = error_kind(kind) else {
            return KB_INVALID_ARGUMENT;
        };
        // SAFETY: the caller's promises above.
        let sent = check!(unsafe { input(sent, n_sent) });
        let terminal: &mut [MaybeUninit<Terminal>] = if terminal_cap == 0 {
            &mut []
        } else {
            // SAFETY: NULL or holding `terminal_cap` entries (the caller's promise).
            check!(unsafe { output(terminal, terminal_cap) })
        };
        let done = check!(
            delivery
                .settle_all_uninit(sent, kind, now_ms, terminal)
                .map_err(delivery_status)
        );
        // SAFETY: non-NULL and writable (the caller's promise).
        unsafe { set(settled, done) };
        KB_OK
    })
}

/// The delay in milliseconds before the next request, after the failures so far, drawn
/// with `random` (any uniformly random 64-bit number); 0 after a request without
/// failures. Any failure counts, terminal ones too (an `AccessDenied` response backs
/// off like a throttled one); a request that stored something restarts the run at its
/// first step. Sleep only if another request follows.
///
/// Requires: `delivery` came from `kb_delivery_new`; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_delivery_backoff_ms(
    delivery: *const kb_delivery,
    random: u64,
    out: *mut u64,
) -> kb_status {
    guard!({
        // SAFETY: the caller's promises above.
        unsafe { get(delivery, out, |o| o.delivery.backoff_ms(random)) }
    })
}

/// The failed entries waiting to be sent again: `*entries` points into the delivery,
/// valid until the next call that changes it; `*n_entries` of them.
///
/// Requires: `delivery` came from `kb_delivery_new`; `entries` and `n_entries` are NULL or
/// writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_delivery_waiting(
    delivery: *const kb_delivery,
    entries: *mut *const Pending,
    n_entries: *mut usize,
) -> kb_status {
    guard!(counts: [n_entries], {
        non_null!(delivery, entries, n_entries);
        // SAFETY: non-NULL, from kb_delivery_new (the caller's promise).
        let waiting = unsafe { object(delivery) }.delivery.waiting();
        // SAFETY: both non-NULL and writable (the caller's promise).
        unsafe {
            set(entries, waiting.as_ptr());
            set(n_entries, waiting.len());
        }
        KB_OK
    })
}

/// The index of the next input record not planned yet.
///
/// Requires: `delivery` came from `kb_delivery_new`; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_delivery_position(
    delivery: *const kb_delivery,
    out: *mut usize,
) -> kb_status {
    guard!({
        // SAFETY: the caller's promises above.
        unsafe { get(delivery, out, |o| o.delivery.position()) }
    })
}

/// The delivery's counters so far.
///
/// Requires: `delivery` came from `kb_delivery_new`; `out` is NULL or writable.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn kb_delivery_stats(
    delivery: *const kb_delivery,
    out: *mut DeliveryStats,
) -> kb_status {
    guard!({
        // SAFETY: the caller's promises above.
        unsafe { get(delivery, out, |o| *o.delivery.stats()) }
    })
}
