//! The refusal reasons and error kinds as C sees them: `uint8_t` codes with named
//! values, one type in C and C++ alike.
//!
//! The Rust enums [`Reason`] and [`ErrorKind`] are `#[repr(u8)]`, so a struct field of
//! either type is one byte in C. cbindgen would print them as C enums, which C++ treats
//! as types distinct from `uint8_t` (`kb_reason *p = &refusal.reason;` compiles as C and
//! fails as C++). So cbindgen.toml excludes the enums, declares the `kb_reason` and
//! `kb_error_kind` typedefs itself (in `after_includes`: cbindgen would order an exported
//! alias after the structs that use it, since their fields name the Rust enums), and
//! these constants give the values. They are typed `u8`, the aliases' type, so that
//! cbindgen writes them next to the typedefs. The values are checked against the enums
//! at compile time, below.

use crate::cost::Reason;
use crate::retry::ErrorKind;

/// [`Reason`] as a C `kb_reason` holds it: one of the `KB_REASON_*` values. (The
/// header's typedef and its documentation are in cbindgen.toml.)
pub type kb_reason = u8;

/// `kb_reason`: the partition key is not valid UTF-8.
pub const KB_REASON_KEY_NOT_UTF8: u8 = 0;
/// `kb_reason`: the partition key is empty (the service requires 1 to 256 characters).
pub const KB_REASON_KEY_EMPTY: u8 = 1;
/// `kb_reason`: the partition key is longer than 256 units of the limits' key unit.
pub const KB_REASON_KEY_TOO_LONG: u8 = 2;
/// `kb_reason`: the explicit hash key is not a decimal integer from 0 to 2^128 - 1.
pub const KB_REASON_HASH_KEY_INVALID: u8 = 3;
/// `kb_reason`: data plus key (plus hash key, when counted) is larger than the record
/// cap.
pub const KB_REASON_RECORD_TOO_LARGE: u8 = 4;

/// [`ErrorKind`] as a C `kb_error_kind` holds it: one of the `KB_ERROR_KIND_*` values.
/// (The header's typedef and its documentation are in cbindgen.toml.)
pub type kb_error_kind = u8;

/// `kb_error_kind`: `ProvisionedThroughputExceededException`, the shard is over its
/// write limit. Retried.
pub const KB_ERROR_KIND_THROUGHPUT_EXCEEDED: u8 = 0;
/// `kb_error_kind`: `InternalFailure` (per entry) or `InternalFailureException`.
/// Retried.
pub const KB_ERROR_KIND_INTERNAL_FAILURE: u8 = 1;
/// `kb_error_kind`: `ThrottlingException`, `LimitExceededException`,
/// `KMSThrottlingException`, HTTP 429. Retried.
pub const KB_ERROR_KIND_THROTTLING: u8 = 2;
/// `kb_error_kind`: HTTP 5xx or `ServiceUnavailable`, the request as a whole failed on
/// the server. Retried.
pub const KB_ERROR_KIND_SERVER_ERROR: u8 = 3;
/// `kb_error_kind`: no response, the connection failed or timed out. The service may
/// have stored the records, so sending them again can duplicate them (at-least-once
/// delivery). Retried.
pub const KB_ERROR_KIND_TRANSPORT: u8 = 4;
/// `kb_error_kind`: a response whose entry count does not match the request's.
/// Retried.
pub const KB_ERROR_KIND_BAD_RESPONSE: u8 = 5;
/// `kb_error_kind`: an error code not known here. Retried, within the attempt and age
/// limits.
pub const KB_ERROR_KIND_UNKNOWN: u8 = 6;
/// `kb_error_kind`: `ValidationException`. Terminal.
pub const KB_ERROR_KIND_VALIDATION: u8 = 7;
/// `kb_error_kind`: `InvalidArgumentException`. Terminal.
pub const KB_ERROR_KIND_INVALID_ARGUMENT: u8 = 8;
/// `kb_error_kind`: `ResourceNotFoundException`, no such stream. Terminal.
pub const KB_ERROR_KIND_RESOURCE_NOT_FOUND: u8 = 9;
/// `kb_error_kind`: `AccessDeniedException`, `NotAuthorized`: the credentials lack the
/// permission. Terminal.
pub const KB_ERROR_KIND_ACCESS_DENIED: u8 = 10;
/// `kb_error_kind`: `KMSDisabledException`, `KMSInvalidStateException`,
/// `KMSAccessDeniedException`, `KMSNotFoundException`, `KMSOptInRequired`. Terminal.
pub const KB_ERROR_KIND_KMS: u8 = 11;
/// `kb_error_kind`: any other HTTP 4xx. Terminal.
pub const KB_ERROR_KIND_CLIENT_ERROR: u8 = 12;
/// `kb_error_kind`: expired or invalid credentials, or a bad signature
/// (`ExpiredTokenException`, `UnrecognizedClientException`, `InvalidSignatureException`,
/// `SignatureDoesNotMatch`, `RequestExpired`: clock skew, ...). Refresh the credentials
/// before sending again. Terminal for `kb_delivery`; `kb_engine` keeps the records and
/// pauses until `kb_engine_resume`.
pub const KB_ERROR_KIND_CREDENTIALS: u8 = 13;

/// Every `KB_REASON_*` value with its reason, in value order.
const REASONS: [(kb_reason, Reason); Reason::COUNT] = [
    (KB_REASON_KEY_NOT_UTF8, Reason::KeyNotUtf8),
    (KB_REASON_KEY_EMPTY, Reason::KeyEmpty),
    (KB_REASON_KEY_TOO_LONG, Reason::KeyTooLong),
    (KB_REASON_HASH_KEY_INVALID, Reason::HashKeyInvalid),
    (KB_REASON_RECORD_TOO_LARGE, Reason::RecordTooLarge),
];

/// Every `KB_ERROR_KIND_*` value with its kind, in value order.
const ERROR_KINDS: [(kb_error_kind, ErrorKind); ErrorKind::ALL.len()] = [
    (
        KB_ERROR_KIND_THROUGHPUT_EXCEEDED,
        ErrorKind::ThroughputExceeded,
    ),
    (KB_ERROR_KIND_INTERNAL_FAILURE, ErrorKind::InternalFailure),
    (KB_ERROR_KIND_THROTTLING, ErrorKind::Throttling),
    (KB_ERROR_KIND_SERVER_ERROR, ErrorKind::ServerError),
    (KB_ERROR_KIND_TRANSPORT, ErrorKind::Transport),
    (KB_ERROR_KIND_BAD_RESPONSE, ErrorKind::BadResponse),
    (KB_ERROR_KIND_UNKNOWN, ErrorKind::Unknown),
    (KB_ERROR_KIND_VALIDATION, ErrorKind::Validation),
    (KB_ERROR_KIND_INVALID_ARGUMENT, ErrorKind::InvalidArgument),
    (
        KB_ERROR_KIND_RESOURCE_NOT_FOUND,
        ErrorKind::ResourceNotFound,
    ),
    (KB_ERROR_KIND_ACCESS_DENIED, ErrorKind::AccessDenied),
    (KB_ERROR_KIND_KMS, ErrorKind::Kms),
    (KB_ERROR_KIND_CLIENT_ERROR, ErrorKind::ClientError),
    (KB_ERROR_KIND_CREDENTIALS, ErrorKind::Credentials),
];

/// Each constant is its enum's discriminant, and the tables list every variant once, in
/// order (with the enums' own `ALL` tables, whose lengths fix the tables' lengths).
/// A wrong value does not compile.
///
/// cbindgen:ignore
const _: () = {
    let mut i = 0;
    while i < REASONS.len() {
        assert!(REASONS[i].0 as usize == i && REASONS[i].1 as usize == i);
        assert!(Reason::ALL[i] as usize == i);
        i += 1;
    }
    let mut i = 0;
    while i < ERROR_KINDS.len() {
        assert!(ERROR_KINDS[i].0 as usize == i && ERROR_KINDS[i].1 as usize == i);
        assert!(ErrorKind::ALL[i] as usize == i);
        i += 1;
    }
    // The C types are as wide as the Rust enums in the structs the header shows.
    assert!(size_of::<kb_reason>() == size_of::<Reason>());
    assert!(size_of::<kb_error_kind>() == size_of::<ErrorKind>());
};
