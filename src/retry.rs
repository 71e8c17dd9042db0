//! Partial failures without loss, duplicates or reordering.
//!
//! A `PutRecords` call can succeed and still fail some of its records
//! (`FailedRecordCount > 0`, with an `ErrorCode` per failed entry), or fail as a whole.
//! [`Delivery`] plans requests like [`Planner`](crate::Planner), and after each response
//! says which records to send again: only the failed ones, in their original order, ahead
//! of the records not sent yet, under the same limits. Records that can never succeed
//! come back as [`Terminal`]s with their reason; nothing is dropped silently.
//!
//! The protocol, one request in flight at a time:
//!
//! ```text
//! loop {
//!     next = delivery.next_request(records, request, refusals, now)?
//!     report refusals[..next.refusals]
//!     if next.status == Done { break }     // alone: nothing written, nothing left
//!     if next.entries == 0 { continue }    // OnlyRefusals: reported, call again
//!     send records[request[i].index] for i in 0..next.entries
//!     on a response:  delivery.settle(&request[..n], outcomes, now, terminal)?
//!     on no response: delivery.settle_all(&request[..n], kind, now, terminal)?
//!     report terminal[..settled.terminal]
//!     sleep(delivery.backoff_ms(random()))
//! }
//! ```
//!
//! Pass the same records to every call ([`Delivery::reset`] before another array) and
//! settle with exactly the request handed out: anything else is a [`DeliveryError`] that
//! wrote and changed nothing.
//!
//! Everything is caller-driven: the caller supplies the clock (`now`, in milliseconds of
//! any monotonic clock) and the random numbers, so the core stays free of threads, time and
//! allocation.

use core::fmt;
use core::mem::MaybeUninit;

use crate::cost::{Measure, Reason, measure_within};
use crate::limits::{Limits, SERVICE_MAX_RECORDS};
use crate::output::Slots;
use crate::plan::{Packer, Refusal};

/// What went wrong with an entry or a request, sorted from the service's error codes and
/// HTTP statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum ErrorKind {
    /// `ProvisionedThroughputExceededException`: the shard is over its write limit.
    ThroughputExceeded = 0,
    /// `InternalFailure` (per entry) or `InternalFailureException`.
    InternalFailure = 1,
    /// `ThrottlingException`, `LimitExceededException`, `KMSThrottlingException`, HTTP 429.
    Throttling = 2,
    /// HTTP 5xx or `ServiceUnavailable`: the request as a whole failed on the server.
    ServerError = 3,
    /// No response: the connection failed or timed out. The service may have stored the
    /// records, so sending them again can duplicate them (at-least-once delivery).
    Transport = 4,
    /// A response whose entry count does not match the request's.
    BadResponse = 5,
    /// An error code not known here. Retried, within the attempt and age limits.
    Unknown = 6,
    /// `ValidationException`.
    Validation = 7,
    /// `InvalidArgumentException`.
    InvalidArgument = 8,
    /// `ResourceNotFoundException`: no such stream.
    ResourceNotFound = 9,
    /// `AccessDeniedException`, `NotAuthorized`: the credentials are valid but lack the
    /// permission (a policy problem, not a credential one).
    AccessDenied = 10,
    /// `KMSDisabledException`, `KMSInvalidStateException`, `KMSAccessDeniedException`,
    /// `KMSNotFoundException`, `KMSOptInRequired`.
    Kms = 11,
    /// Any other HTTP 4xx.
    ClientError = 12,
    /// The credentials are expired or invalid, or the request is not signed right:
    /// `ExpiredTokenException`, `ExpiredToken`, `InvalidSignatureException`,
    /// `SignatureDoesNotMatch`, `RequestExpired` (clock skew), `UnrecognizedClientException`,
    /// `InvalidClientTokenId`, `MissingAuthenticationToken(Exception)`,
    /// `IncompleteSignatureException`. Sending again with the same credentials fails the
    /// same way: refresh them (or fix the clock) first. Terminal for [`Delivery`]; the
    /// producer engine instead keeps the records waiting and pauses until the caller
    /// resumes it.
    Credentials = 13,
}

impl ErrorKind {
    /// Every kind, in the order of their values.
    ///
    /// cbindgen:ignore
    pub const ALL: [ErrorKind; 14] = [
        ErrorKind::ThroughputExceeded,
        ErrorKind::InternalFailure,
        ErrorKind::Throttling,
        ErrorKind::ServerError,
        ErrorKind::Transport,
        ErrorKind::BadResponse,
        ErrorKind::Unknown,
        ErrorKind::Validation,
        ErrorKind::InvalidArgument,
        ErrorKind::ResourceNotFound,
        ErrorKind::AccessDenied,
        ErrorKind::Kms,
        ErrorKind::ClientError,
        ErrorKind::Credentials,
    ];

    /// The kind of an error code: a per-entry `ErrorCode`, or a request's error type, with
    /// or without its namespace (`com.amazonaws.kinesis.v20131202#...`).
    ///
    /// ```
    /// use kinesis_batcher::retry::ErrorKind;
    ///
    /// assert_eq!(ErrorKind::from_code(b"ProvisionedThroughputExceededException"), ErrorKind::ThroughputExceeded);
    /// assert_eq!(ErrorKind::from_code(b"com.amazonaws.kinesis.v20131202#ResourceNotFoundException"), ErrorKind::ResourceNotFound);
    /// assert!(!ErrorKind::from_code(b"KMSDisabledException").is_retryable());
    /// ```
    pub fn from_code(code: &[u8]) -> ErrorKind {
        // The wire form may also carry a `:url` suffix (the `X-Amzn-ErrorType` header):
        // keep what comes before the first `:`, as the AWS SDKs do.
        let code = match code.iter().position(|&b| b == b':') {
            Some(colon) => &code[..colon],
            None => code,
        };
        let name = match code.iter().rposition(|&b| b == b'#') {
            Some(hash) => &code[hash + 1..],
            None => code,
        };
        match name {
            b"ProvisionedThroughputExceededException" => ErrorKind::ThroughputExceeded,
            b"InternalFailure" | b"InternalFailureException" | b"InternalServerError" => {
                ErrorKind::InternalFailure
            }
            b"ThrottlingException"
            | b"LimitExceededException"
            | b"KMSThrottlingException"
            | b"Throttling"
            | b"RequestLimitExceeded"
            | b"TooManyRequestsException" => ErrorKind::Throttling,
            b"ServiceUnavailable" | b"ServiceUnavailableException" => ErrorKind::ServerError,
            b"ValidationException" | b"ValidationError" | b"SerializationException" => {
                ErrorKind::Validation
            }
            b"InvalidArgumentException" => ErrorKind::InvalidArgument,
            b"ResourceNotFoundException" => ErrorKind::ResourceNotFound,
            b"AccessDeniedException" | b"NotAuthorized" => ErrorKind::AccessDenied,
            b"ExpiredTokenException"
            | b"ExpiredToken"
            | b"InvalidSignatureException"
            | b"SignatureDoesNotMatch"
            | b"RequestExpired"
            | b"UnrecognizedClientException"
            | b"InvalidClientTokenId"
            | b"MissingAuthenticationToken"
            | b"MissingAuthenticationTokenException"
            | b"IncompleteSignatureException" => ErrorKind::Credentials,
            b"KMSDisabledException"
            | b"KMSInvalidStateException"
            | b"KMSAccessDeniedException"
            | b"KMSNotFoundException"
            | b"KMSOptInRequired" => ErrorKind::Kms,
            _ => ErrorKind::Unknown,
        }
    }

    /// The kind of a failed HTTP status when the body names no error type: 429 is
    /// throttling, 5xx a server error, any other 4xx a client error; `None` for a status
    /// that is not an error.
    pub const fn from_http_status(status: u16) -> Option<ErrorKind> {
        match status {
            429 => Some(ErrorKind::Throttling),
            500..=599 => Some(ErrorKind::ServerError),
            400..=499 => Some(ErrorKind::ClientError),
            _ => None,
        }
    }

    /// Whether sending again can succeed. Terminal kinds (validation, invalid argument,
    /// resource not found, access denied, KMS, other 4xx, credentials) are returned to the
    /// caller.
    ///
    /// `Credentials` is not retryable: sending again cannot succeed until the caller has
    /// refreshed its credentials, so [`Delivery`] (one request at a time, no pause)
    /// reports it as terminal. The producer engine treats it as "wait and resume": the
    /// records stay buffered, no attempt counted, while the caller refreshes.
    pub const fn is_retryable(self) -> bool {
        // The retryable kinds are exactly the values up to `Unknown`.
        (self as u8) <= (ErrorKind::Unknown as u8)
    }

    /// A short stable identifier, such as `throughput_exceeded`.
    pub const fn as_str(self) -> &'static str {
        match self {
            ErrorKind::ThroughputExceeded => "throughput_exceeded",
            ErrorKind::InternalFailure => "internal_failure",
            ErrorKind::Throttling => "throttling",
            ErrorKind::ServerError => "server_error",
            ErrorKind::Transport => "transport",
            ErrorKind::BadResponse => "bad_response",
            ErrorKind::Unknown => "unknown",
            ErrorKind::Validation => "validation",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::ResourceNotFound => "resource_not_found",
            ErrorKind::AccessDenied => "access_denied",
            ErrorKind::Kms => "kms",
            ErrorKind::ClientError => "client_error",
            ErrorKind::Credentials => "credentials",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of one request entry, in request order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Stored (the entry has a `SequenceNumber`).
    Accepted,
    /// Not stored, with the kind of its `ErrorCode`.
    Failed(ErrorKind),
}

/// Exponential backoff with full jitter: the delay before attempt `n` of a run of
/// failures is uniform in `0..=min(cap, base * 2^(n-1))`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Backoff {
    /// The ceiling after the first failure, in milliseconds.
    pub base_ms: u64,
    /// The highest ceiling, in milliseconds.
    pub cap_ms: u64,
}

impl Backoff {
    /// 100 ms doubling up to 10 s: in line with the AWS SDKs' defaults for throttling.
    pub const DEFAULT: Backoff = Backoff {
        base_ms: 100,
        cap_ms: 10_000,
    };

    /// The delay after `failures` failures in a row (0 means none: no delay), drawn with
    /// `random`, any uniformly random `u64` the caller supplies.
    ///
    /// ```
    /// use kinesis_batcher::retry::Backoff;
    ///
    /// let b = Backoff { base_ms: 100, cap_ms: 1000 };
    /// assert_eq!(b.delay_ms(0, u64::MAX), 0);
    /// assert_eq!(b.delay_ms(1, u64::MAX), 100);
    /// assert_eq!(b.delay_ms(3, u64::MAX), 400);
    /// assert_eq!(b.delay_ms(30, u64::MAX), 1000);
    /// assert_eq!(b.delay_ms(30, 0), 0);
    /// ```
    pub const fn delay_ms(&self, failures: u32, random: u64) -> u64 {
        if failures == 0 {
            return 0;
        }
        // In u128 up to 2^64: base * 2^64 is above any u64 cap unless base is 0.
        let shift = if failures - 1 > 64 { 64 } else { failures - 1 };
        let grown = (self.base_ms as u128) << shift;
        let ceiling = if grown < self.cap_ms as u128 {
            grown as u64
        } else {
            self.cap_ms
        };
        // Scale `random` onto 0..=ceiling without the bias of `%`.
        ((random as u128 * (ceiling as u128 + 1)) >> 64) as u64
    }
}

/// How long to keep trying a record.
///
/// Every field that is 0 means its default ([`RetryPolicy::DEFAULT`]), never "off" or
/// "give up": a policy with only `max_attempts` set still backs off and still retries
/// for five minutes. The same holds for a zeroed C `kb_retry_policy` and a Go
/// `RetryPolicy{}`. To retry as little as possible, set `max_attempts` to 1.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RetryPolicy {
    /// The delays between requests that failed; a `base_ms` or `cap_ms` of 0 means the
    /// default's (100 ms, 10 s).
    pub backoff: Backoff,
    /// Sends of one record, at most (the first included); then it is returned as terminal.
    /// 0 means the default, 10.
    pub max_attempts: u32,
    /// Milliseconds from a record's first send after which it is no longer retried.
    /// 0 means the default, 300,000 (5 minutes).
    pub max_age_ms: u64,
    /// Keep each key's records in input order (see [`Delivery`]).
    pub per_key_order: bool,
}

impl RetryPolicy {
    /// Up to 10 attempts over at most 5 minutes, default backoff, no per-key ordering.
    pub const DEFAULT: RetryPolicy = RetryPolicy {
        backoff: Backoff::DEFAULT,
        max_attempts: 10,
        max_age_ms: 300_000,
        per_key_order: false,
    };
}

impl RetryPolicy {
    /// The policy in force: every zero field replaced by [`RetryPolicy::DEFAULT`]'s.
    ///
    /// ```
    /// use kinesis_batcher::retry::RetryPolicy;
    ///
    /// let policy = RetryPolicy { max_attempts: 20, ..RetryPolicy::DEFAULT };
    /// assert_eq!(policy.effective(), policy);
    /// let zero = RetryPolicy { max_attempts: 20, max_age_ms: 0, ..RetryPolicy::DEFAULT };
    /// assert_eq!(zero.effective().max_age_ms, 300_000);
    /// ```
    pub const fn effective(self) -> RetryPolicy {
        const fn or(value: u64, default: u64) -> u64 {
            if value == 0 { default } else { value }
        }
        let d = RetryPolicy::DEFAULT;
        RetryPolicy {
            backoff: Backoff {
                base_ms: or(self.backoff.base_ms, d.backoff.base_ms),
                cap_ms: or(self.backoff.cap_ms, d.backoff.cap_ms),
            },
            max_attempts: if self.max_attempts == 0 {
                d.max_attempts
            } else {
                self.max_attempts
            },
            max_age_ms: or(self.max_age_ms, d.max_age_ms),
            per_key_order: self.per_key_order,
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy::DEFAULT
    }
}

/// A record in a request or waiting to be sent again.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct Pending {
    /// Its index in the input.
    pub index: usize,
    /// How many times it has been sent before this request.
    pub attempts: u32,
    /// When it was first sent (the caller's clock), for the age limit.
    pub first_sent_ms: u64,
}

/// A record that will not be sent again: its index, the last error, and whether it gave up
/// on a retryable error because of the attempt or age limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct Terminal {
    /// Its index in the input.
    pub index: usize,
    /// The last error it met.
    pub kind: ErrorKind,
    /// True when `kind` is retryable and the policy's limits ran out.
    pub gave_up: bool,
}

impl Default for Terminal {
    fn default() -> Self {
        Terminal {
            index: 0,
            kind: ErrorKind::Unknown,
            gave_up: false,
        }
    }
}

/// How a [`Delivery::next_request`] call ended. Only `Done` says "stop", and it never
/// comes with anything written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NextStatus {
    /// A request of `entries > 0` records is ready (refusals may have been written too):
    /// send it, settle it, call again.
    Ready,
    /// No request, only `refusals > 0` refused records (the refusal array filled, or the
    /// rest of the input is refused): report them and call again.
    OnlyRefusals,
    /// Nothing was written: every record is settled (stored, terminal or refused).
    Done,
}

/// What [`Delivery::next_request`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[must_use]
pub struct Next {
    /// See [`NextStatus`].
    pub status: NextStatus,
    /// Entries of the request written at the front of the request array.
    pub entries: usize,
    /// Sum of their sizes.
    pub bytes: u32,
    /// Refusals written at the front of the refusal array.
    pub refusals: usize,
}

/// What settling a request found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct Settled {
    /// Entries the service stored.
    pub accepted: usize,
    /// Entries that will be sent again.
    pub retrying: usize,
    /// Entries written to the terminal array: they will not be sent again.
    pub terminal: usize,
}

/// A call a [`Delivery`] refused: the caller broke the protocol. Nothing was written and
/// nothing changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum DeliveryError {
    /// `settle`: no request is in flight.
    NothingInFlight,
    /// `settle`: `sent` is not the request in flight (an entry or the length differs).
    NotTheRequestInFlight,
    /// `settle`: the terminal array is shorter than `sent`.
    TerminalArrayTooSmall,
    /// `next_request`: the previous request has not been settled.
    RequestInFlight,
    /// `next_request`: the input no longer holds a record this delivery planned (it is
    /// shorter than what was planned, or a record waiting to be sent again is now
    /// refused): pass the same input to every call, or [`Delivery::reset`].
    InputChanged,
    /// `next_request`: the request or the refusal array has no room.
    ZeroCapacity,
}

impl DeliveryError {
    /// A static sentence for people.
    pub const fn message(self) -> &'static str {
        match self {
            DeliveryError::NothingInFlight => "no request is in flight",
            DeliveryError::NotTheRequestInFlight => "sent is not the request in flight",
            DeliveryError::TerminalArrayTooSmall => "the terminal array is shorter than sent",
            DeliveryError::RequestInFlight => "the previous request has not been settled",
            DeliveryError::InputChanged => {
                "the input no longer holds the records this delivery planned"
            }
            DeliveryError::ZeroCapacity => "the request or refusal array has no room",
        }
    }
}

impl core::error::Error for DeliveryError {}

impl fmt::Display for DeliveryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

/// Counters of a delivery so far.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct DeliveryStats {
    /// Requests handed out.
    pub requests: u64,
    /// Records stored by the service.
    pub accepted: u64,
    /// Entries sent again after a retryable failure.
    pub retried: u64,
    /// Records returned as terminal.
    pub terminal: u64,
    /// Records refused by planning, indexed by the reason's value.
    pub refused: [u64; 5],
}

const QUEUE: usize = SERVICE_MAX_RECORDS as usize;

/// Plans requests over an input, and re-plans the failed entries of each response.
///
/// * Failed entries with a retryable error are sent again, in input order, at the front
///   of the next request, which is then filled with records not sent yet (greedy, same
///   limits). Entries with a terminal error, or past the policy's attempt or age limit,
///   come back as [`Terminal`]s.
/// * A response whose entry count differs from the request's fails every entry
///   ([`ErrorKind::BadResponse`]); a request with no response is settled with
///   [`Delivery::settle_all`].
/// * With [`RetryPolicy::per_key_order`], a request never holds two records with the same
///   key (the explicit hash key when there is one, else the partition key): it closes
///   before the second. With one request in flight at a time and failures sent first,
///   each key's records are then stored in input order, while other keys go ahead.
///   Not guaranteed: any order across keys (PutRecords guarantees none), and the order of
///   duplicates that a lost connection makes unavoidable (records the service stored
///   before the connection failed are sent again).
///
/// State is fixed-size (about 33 KiB: the failed entries of one request, a copy of the
/// request in flight to check `settle` against and, for per-key
/// ordering, a hash set of the keys in the request being built); no allocation.
#[derive(Clone, Debug)]
pub struct Delivery {
    limits: Limits,
    policy: RetryPolicy,
    next: usize,
    queue: [Pending; QUEUE],
    queued: usize,
    /// The request in flight, as handed out: `settle` checks `sent` against it.
    flight: [Pending; QUEUE],
    in_flight: usize,
    keys: KeySet,
    failures: u32,
    stats: DeliveryStats,
}

impl Delivery {
    /// A delivery at the start of an input.
    /// Zero fields of `policy` mean the defaults ([`RetryPolicy::effective`]).
    pub const fn new(limits: Limits, policy: RetryPolicy) -> Delivery {
        const NONE: Pending = Pending {
            index: 0,
            attempts: 0,
            first_sent_ms: 0,
        };
        Delivery {
            limits,
            policy: policy.effective(),
            next: 0,
            queue: [NONE; QUEUE],
            queued: 0,
            flight: [NONE; QUEUE],
            in_flight: 0,
            keys: KeySet::EMPTY,
            failures: 0,
            stats: DeliveryStats {
                requests: 0,
                accepted: 0,
                retried: 0,
                terminal: 0,
                refused: [0; Reason::COUNT],
            },
        }
    }

    /// Starts over, with the same limits and policy, for a new input: as
    /// [`Delivery::new`]. Records waiting to be sent again and the request in flight are
    /// forgotten.
    pub fn reset(&mut self) {
        *self = Delivery::new(self.limits, self.policy);
    }

    /// The limits in force.
    pub const fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The policy in force (zero fields replaced by the defaults).
    pub const fn policy(&self) -> &RetryPolicy {
        &self.policy
    }

    /// Counters so far.
    pub const fn stats(&self) -> &DeliveryStats {
        &self.stats
    }

    /// Failed entries waiting to be sent again.
    pub fn waiting(&self) -> &[Pending] {
        &self.queue[..self.queued]
    }

    /// The index of the next input record not planned yet.
    pub const fn position(&self) -> usize {
        self.next
    }

    /// The delay before the next request, after the failures so far, drawn with `random`.
    /// 0 after a request without failures. A request with failures that still stored
    /// something resets the run to its first step rather than lengthening it.
    pub const fn backoff_ms(&self, random: u64) -> u64 {
        self.policy.backoff.delay_ms(self.failures, random)
    }

    /// The most input records past [`Delivery::position`] one
    /// [`Delivery::next_request`] call with these capacities reads (it also reads the
    /// [`waiting`](Delivery::waiting) ones): a binding that must check the caller's
    /// records before the core reads them checks these.
    pub const fn reach(&self, request: usize, refusals: usize) -> usize {
        let entries = if request < self.limits.max_records() as usize {
            request
        } else {
            self.limits.max_records() as usize
        };
        entries.saturating_add(refusals).saturating_add(1)
    }

    /// Writes the next request into `request` (its capacity should be at least the
    /// limits' `max_records`, or requests are smaller): first every entry waiting to be
    /// sent again, then records not sent yet, greedily under the limits. Refused records
    /// met on the way are written to `refusals`. See [`NextStatus`] for what to do next;
    /// an `Err` (a broken protocol) wrote nothing and changed nothing.
    pub fn next_request<M: Measure>(
        &mut self,
        input: &[M],
        request: &mut [Pending],
        refusals: &mut [Refusal],
        now_ms: u64,
    ) -> Result<Next, DeliveryError> {
        self.next_request_into(input, request, refusals, now_ms)
    }

    /// [`Delivery::next_request`] into arrays whose memory need not be initialised (the
    /// C ABI's): the entries counted in the [`Next`] are written, the others are left as
    /// they were.
    pub fn next_request_uninit<M: Measure>(
        &mut self,
        input: &[M],
        request: &mut [MaybeUninit<Pending>],
        refusals: &mut [MaybeUninit<Refusal>],
        now_ms: u64,
    ) -> Result<Next, DeliveryError> {
        self.next_request_into(input, request, refusals, now_ms)
    }

    fn next_request_into<M: Measure, Q: Slots<Pending> + ?Sized, R: Slots<Refusal> + ?Sized>(
        &mut self,
        input: &[M],
        request: &mut Q,
        refusals: &mut R,
        now_ms: u64,
    ) -> Result<Next, DeliveryError> {
        if self.in_flight != 0 {
            return Err(DeliveryError::RequestInFlight);
        }
        if request.capacity() == 0 || refusals.capacity() == 0 {
            return Err(DeliveryError::ZeroCapacity);
        }
        let limits = self.limits;
        // The input must be the one planned: every waiting record still in it and still
        // sendable. Checked before anything changes, so a wrong input loses nothing.
        let waiting_gone = self.queue[..self.queued].iter().any(|p| {
            input
                .get(p.index)
                .is_none_or(|r| measure_within(r, &limits).is_err())
        });
        if self.next > input.len() || waiting_gone {
            return Err(DeliveryError::InputChanged);
        }
        let mut next = Next {
            status: NextStatus::Ready,
            entries: 0,
            bytes: 0,
            refusals: 0,
        };
        let per_key = self.policy.per_key_order;
        let mut packer = Packer::new(limits);
        self.keys.clear();

        // Waiting entries first. They are the failures of one request, so together they
        // fit one request again (same limits; distinct keys when ordering per key).
        let mut taken = 0;
        while taken < self.queued && next.entries < request.capacity() {
            let pending = self.queue[taken];
            let record = &input[pending.index];
            let Ok(size) = measure_within(record, &limits) else {
                break;
            };
            if !packer.fits(size) || !self.keys.insert(key_of(per_key, &limits, record)) {
                break;
            }
            packer.add(pending.index, size);
            request.put(next.entries, pending);
            self.flight[next.entries] = pending;
            next.entries += 1;
            taken += 1;
        }
        self.queue.copy_within(taken..self.queued, 0);
        self.queued -= taken;

        // Then new records, unless some waiting ones did not fit.
        if self.queued == 0 {
            while let Some(record) = input.get(self.next) {
                if next.entries == request.capacity() {
                    break;
                }
                match measure_within(record, &limits) {
                    Ok(size) => {
                        if !packer.fits(size) || !self.keys.insert(key_of(per_key, &limits, record))
                        {
                            break;
                        }
                        packer.add(self.next, size);
                        let pending = Pending {
                            index: self.next,
                            attempts: 0,
                            first_sent_ms: now_ms,
                        };
                        request.put(next.entries, pending);
                        self.flight[next.entries] = pending;
                        next.entries += 1;
                    }
                    Err(reason) => {
                        let refusal = Refusal {
                            index: self.next,
                            reason,
                        };
                        if !refusals.try_put(next.refusals, refusal) {
                            break;
                        }
                        next.refusals += 1;
                        self.stats.refused[reason as usize] += 1;
                    }
                }
                self.next += 1;
            }
        }
        next.bytes = packer.open().map_or(0, |batch| batch.bytes);
        // Only `Done` says "stop", so it must never come with work: with a capacity of at
        // least one in each array, a call that wrote nothing has nothing left to do.
        next.status = if next.entries > 0 {
            self.in_flight = next.entries;
            self.stats.requests += 1;
            NextStatus::Ready
        } else if next.refusals > 0 {
            NextStatus::OnlyRefusals
        } else {
            debug_assert!(self.queued == 0 && self.next >= input.len());
            NextStatus::Done
        };
        Ok(next)
    }

    /// Settles the request in flight with its response: `outcomes[i]` is the outcome of
    /// `sent[i]`. Failed entries that can be retried wait for the next request; the
    /// others are written to `terminal`, which must hold `sent.len()` entries.
    pub fn settle(
        &mut self,
        sent: &[Pending],
        outcomes: &[Outcome],
        now_ms: u64,
        terminal: &mut [Terminal],
    ) -> Result<Settled, DeliveryError> {
        self.settle_into(sent, outcomes, now_ms, terminal)
    }

    /// [`Delivery::settle`] into a terminal array whose memory need not be initialised
    /// (the C ABI's): the entries counted in [`Settled::terminal`] are written.
    pub fn settle_uninit(
        &mut self,
        sent: &[Pending],
        outcomes: &[Outcome],
        now_ms: u64,
        terminal: &mut [MaybeUninit<Terminal>],
    ) -> Result<Settled, DeliveryError> {
        self.settle_into(sent, outcomes, now_ms, terminal)
    }

    fn settle_into<T: Slots<Terminal> + ?Sized>(
        &mut self,
        sent: &[Pending],
        outcomes: &[Outcome],
        now_ms: u64,
        terminal: &mut T,
    ) -> Result<Settled, DeliveryError> {
        self.check(sent, terminal.capacity())?;
        if outcomes.len() != sent.len() {
            return self.settle_all_into(sent, ErrorKind::BadResponse, now_ms, terminal);
        }
        Ok(self.apply(sent, |i| outcomes[i], now_ms, terminal))
    }

    /// Settles the request in flight when it failed as a whole (an error response, a
    /// lost connection): every entry failed with `kind`.
    pub fn settle_all(
        &mut self,
        sent: &[Pending],
        kind: ErrorKind,
        now_ms: u64,
        terminal: &mut [Terminal],
    ) -> Result<Settled, DeliveryError> {
        self.settle_all_into(sent, kind, now_ms, terminal)
    }

    /// [`Delivery::settle_all`] into a terminal array whose memory need not be
    /// initialised (the C ABI's).
    pub fn settle_all_uninit(
        &mut self,
        sent: &[Pending],
        kind: ErrorKind,
        now_ms: u64,
        terminal: &mut [MaybeUninit<Terminal>],
    ) -> Result<Settled, DeliveryError> {
        self.settle_all_into(sent, kind, now_ms, terminal)
    }

    fn settle_all_into<T: Slots<Terminal> + ?Sized>(
        &mut self,
        sent: &[Pending],
        kind: ErrorKind,
        now_ms: u64,
        terminal: &mut T,
    ) -> Result<Settled, DeliveryError> {
        self.check(sent, terminal.capacity())?;
        Ok(self.apply(sent, |_| Outcome::Failed(kind), now_ms, terminal))
    }

    fn check(&self, sent: &[Pending], terminal: usize) -> Result<(), DeliveryError> {
        if self.in_flight == 0 {
            Err(DeliveryError::NothingInFlight)
        } else if sent != &self.flight[..self.in_flight] {
            Err(DeliveryError::NotTheRequestInFlight)
        } else if terminal < sent.len() {
            Err(DeliveryError::TerminalArrayTooSmall)
        } else {
            Ok(())
        }
    }

    fn apply<T: Slots<Terminal> + ?Sized>(
        &mut self,
        sent: &[Pending],
        outcome: impl Fn(usize) -> Outcome,
        now_ms: u64,
        terminal: &mut T,
    ) -> Settled {
        let mut settled = Settled::default();
        for (i, pending) in sent.iter().enumerate() {
            let kind = match outcome(i) {
                Outcome::Accepted => {
                    settled.accepted += 1;
                    continue;
                }
                Outcome::Failed(kind) => kind,
            };
            let attempts = pending.attempts.saturating_add(1);
            let age = now_ms.saturating_sub(pending.first_sent_ms);
            let exhausted = attempts >= self.policy.max_attempts || age >= self.policy.max_age_ms;
            if kind.is_retryable() && !exhausted && self.queued < QUEUE {
                self.enqueue(Pending {
                    attempts,
                    ..*pending
                });
                settled.retrying += 1;
            } else {
                let gave_up = Terminal {
                    index: pending.index,
                    kind,
                    gave_up: kind.is_retryable(),
                };
                terminal.put(settled.terminal, gave_up);
                settled.terminal += 1;
            }
        }
        self.in_flight = 0;
        self.failures = match (settled.retrying + settled.terminal, settled.accepted) {
            (0, _) => 0,
            (_, 0) => self.failures.saturating_add(1),
            _ => 1,
        };
        self.stats.accepted += settled.accepted as u64;
        self.stats.retried += settled.retrying as u64;
        self.stats.terminal += settled.terminal as u64;
        settled
    }

    /// Inserts into the waiting queue, keeping it in input order.
    fn enqueue(&mut self, pending: Pending) {
        let at = self.queue[..self.queued].partition_point(|p| p.index < pending.index);
        self.queue.copy_within(at..self.queued, at + 1);
        self.queue[at] = pending;
        self.queued += 1;
    }
}

/// A record's key identity when ordering per key, else `None`.
fn key_of<M: Measure>(per_key: bool, limits: &Limits, record: &M) -> Option<u64> {
    // A record with no key identity shares one with every other: at most one such record
    // per request, which keeps the guarantee at a cost.
    per_key.then(|| record.key_identity(limits).unwrap_or(0))
}

/// The key identities in the request being built: open addressing over twice as many
/// slots as a request has records, so a lookup is a probe or two.
#[derive(Clone, Debug)]
struct KeySet {
    /// 0 marks an empty slot; identity 0 is stored as 1 (a collision only closes a
    /// request early, which is safe).
    slots: [u64; KeySet::SLOTS],
    /// Which slots are taken, to clear them without sweeping the whole table.
    taken: [u16; QUEUE],
    len: usize,
}

impl KeySet {
    const SLOTS: usize = 1024;
    const EMPTY: KeySet = KeySet {
        slots: [0; KeySet::SLOTS],
        taken: [0; QUEUE],
        len: 0,
    };

    fn clear(&mut self) {
        for &slot in &self.taken[..self.len] {
            self.slots[usize::from(slot)] = 0;
        }
        self.len = 0;
    }

    /// Adds `key` unless it is there already; `None` (no ordering) always fits.
    fn insert(&mut self, key: Option<u64>) -> bool {
        let Some(key) = key else {
            return true;
        };
        let key = key.max(1);
        // Fibonacci hashing onto the table's 10 bits, then linear probing.
        let mut slot = (key.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 54) as usize;
        loop {
            match self.slots[slot] {
                0 if self.len < QUEUE => {
                    self.slots[slot] = key;
                    self.taken[self.len] = slot as u16;
                    self.len += 1;
                    return true;
                }
                0 => return false,
                k if k == key => return false,
                _ => slot = (slot + 1) % KeySet::SLOTS,
            }
        }
    }
}
