//! The limits a request must respect: three shipped profiles and validated custom sets.
//!
//! Every number here is the service's, compared inclusively: a record of exactly
//! `max_record_bytes` is accepted, one byte more is refused. Sources are in the README.

use core::fmt;

/// 1 MiB, the default per-record cap of a Kinesis data stream.
pub const MIB: u32 = 1024 * 1024;

/// The most records one `PutRecords` or `PutRecordBatch` request may hold.
pub const SERVICE_MAX_RECORDS: u32 = 500;

/// The largest `PutRecords` request the service accepts (10 MiB, keys included).
pub const SERVICE_MAX_REQUEST_BYTES: u32 = 10 * MIB;

/// The largest record a stream can be set to accept (`MaxRecordSizeInKiB` = 10240).
pub const SERVICE_MAX_RECORD_BYTES: u32 = 10 * MIB;

/// The longest partition key, in the unit chosen by [`KeyUnit`].
pub const MAX_KEY_UNITS: u32 = 256;

/// The range a stream's `MaxRecordSizeInKiB` may take (`UpdateMaxRecordSize`).
pub const STREAM_RECORD_SIZE_KIB: core::ops::RangeInclusive<u32> = 1024..=10240;

/// How the length of a partition key is counted against [`MAX_KEY_UNITS`].
///
/// The API reference says "1 to 256 Unicode characters"; producers in the wild read that
/// three ways. A key of at most 256 UTF-8 bytes passes under all three. The size of a
/// record always counts the key's UTF-8 bytes, whatever the unit here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum KeyUnit {
    /// Unicode scalar values (code points): the documentation's reading. The default.
    #[default]
    CodePoints,
    /// UTF-16 code units, as the Java KPL counts (`String.length()`).
    Utf16Units,
    /// UTF-8 bytes: the strictest reading, as some Go and C producers count.
    Utf8Bytes,
}

/// A validated set of limits. Build one from a profile ([`Limits::KDS`],
/// [`Limits::KDS_5MIB`], [`Limits::FIREHOSE`]) or with [`Limits::new`]; every constructor
/// that takes numbers checks them, so a `Limits` value is always usable.
///
/// ```
/// use kinesis_batcher::{KeyUnit, Limits};
///
/// // A stream whose MaxRecordSizeInKiB was raised to 4 MiB, keys counted as the KPL does.
/// let limits = Limits::kds_for_stream(4096)?.with_key_unit(KeyUnit::Utf16Units);
/// assert_eq!(limits.max_record_bytes(), 4 * 1024 * 1024);
/// assert_eq!(limits.max_request_bytes(), 10 * 1024 * 1024);
/// # Ok::<(), kinesis_batcher::LimitsError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Limits {
    max_records: u32,
    max_request_bytes: u32,
    max_record_bytes: u32,
    partition_keys: bool,
    key_unit: KeyUnit,
    count_hash_key: bool,
    span_refusals: bool,
    /// The highest record cap the service behind these limits accepts.
    record_ceiling: u32,
    /// The highest request cap the service behind these limits accepts.
    request_ceiling: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits::KDS
    }
}

impl Limits {
    /// Kinesis Data Streams today: 500 records, 10 MiB per request, 1 MiB per record
    /// (the stream default), partition keys required. The default.
    pub const KDS: Limits = Limits::unchecked(SERVICE_MAX_RECORDS, 10 * MIB, MIB);

    /// Kinesis Data Streams before the October 2025 increase: 500 records, 5 MiB per
    /// request, 1 MiB per record. The original Python KinesisBatcher's defaults, and what
    /// emulators such as moto enforce.
    pub const KDS_5MIB: Limits =
        Limits::unchecked(SERVICE_MAX_RECORDS, 5 * MIB, MIB).with_ceilings(5 * MIB, MIB);

    /// Amazon Data Firehose `PutRecordBatch`: 500 records, 4 MiB per request,
    /// 1,000 KiB (1,024,000 bytes) per record, no partition key.
    pub const FIREHOSE: Limits = Limits::unchecked(SERVICE_MAX_RECORDS, 4 * MIB, 1_024_000)
        .with_ceilings(4 * MIB, 1_024_000)
        .without_partition_keys();

    const fn unchecked(max_records: u32, max_request_bytes: u32, max_record_bytes: u32) -> Limits {
        Limits {
            max_records,
            max_request_bytes,
            max_record_bytes,
            partition_keys: true,
            key_unit: KeyUnit::CodePoints,
            count_hash_key: false,
            span_refusals: false,
            record_ceiling: SERVICE_MAX_RECORD_BYTES,
            request_ceiling: SERVICE_MAX_REQUEST_BYTES,
        }
    }

    /// The same limits for a service whose requests and records can never exceed these.
    const fn with_ceilings(self, request: u32, record: u32) -> Limits {
        Limits {
            request_ceiling: request,
            record_ceiling: record,
            ..self
        }
    }

    /// Custom limits, with partition keys required and counted in code points.
    ///
    /// Refused with the first rule broken, in this order: a zero limit, a limit above the
    /// service's maximum (500 records, 10 MiB per request, 10 MiB per record), a record
    /// cap above the request cap.
    ///
    /// ```
    /// use kinesis_batcher::{Limits, LimitsError};
    ///
    /// assert!(Limits::new(2, 500, 100).is_ok());
    /// assert_eq!(Limits::new(0, 500, 100), Err(LimitsError::ZeroRecords));
    /// assert_eq!(Limits::new(2, 100, 500), Err(LimitsError::RecordAboveRequest));
    /// ```
    pub const fn new(
        max_records: u32,
        max_request_bytes: u32,
        max_record_bytes: u32,
    ) -> Result<Limits, LimitsError> {
        let error = if max_records == 0 {
            LimitsError::ZeroRecords
        } else if max_request_bytes == 0 {
            LimitsError::ZeroRequestBytes
        } else if max_record_bytes == 0 {
            LimitsError::ZeroRecordBytes
        } else if max_records > SERVICE_MAX_RECORDS {
            LimitsError::RecordsAboveService
        } else if max_request_bytes > SERVICE_MAX_REQUEST_BYTES {
            LimitsError::RequestBytesAboveService
        } else if max_record_bytes > SERVICE_MAX_RECORD_BYTES {
            LimitsError::RecordBytesAboveService
        } else if max_record_bytes > max_request_bytes {
            LimitsError::RecordAboveRequest
        } else {
            return Ok(Limits::unchecked(
                max_records,
                max_request_bytes,
                max_record_bytes,
            ));
        };
        Err(error)
    }

    /// [`Limits::KDS`] for a stream whose `MaxRecordSizeInKiB` is `kib`
    /// (1024..=10240, as `DescribeStreamSummary` reports it).
    ///
    /// ```
    /// use kinesis_batcher::{Limits, LimitsError};
    ///
    /// assert_eq!(Limits::kds_for_stream(1024), Ok(Limits::KDS));
    /// assert_eq!(Limits::kds_for_stream(1023), Err(LimitsError::StreamRecordSizeOutOfRange));
    /// ```
    pub const fn kds_for_stream(kib: u32) -> Result<Limits, LimitsError> {
        if kib < *STREAM_RECORD_SIZE_KIB.start() || kib > *STREAM_RECORD_SIZE_KIB.end() {
            return Err(LimitsError::StreamRecordSizeOutOfRange);
        }
        Limits::KDS.with_max_record_bytes(kib * 1024)
    }

    /// The same limits with another per-record cap, validated as in [`Limits::new`] and
    /// against the profile's own ceiling: records of at most 1 MiB for
    /// [`Limits::KDS_5MIB`] and 1,024,000 bytes for [`Limits::FIREHOSE`], whose services
    /// accept no larger ones.
    pub const fn with_max_record_bytes(self, max_record_bytes: u32) -> Result<Limits, LimitsError> {
        self.with_caps(self.max_records, self.max_request_bytes, max_record_bytes)
    }

    /// The same limits (profile, key options) with all three caps replaced, validated as
    /// in [`Limits::new`] and against the profile's own ceilings: requests of at most
    /// 5 MiB for [`Limits::KDS_5MIB`] and 4 MiB for [`Limits::FIREHOSE`], records as in
    /// [`Limits::with_max_record_bytes`]. The C ABI builds limits this way from a profile
    /// and three numbers.
    ///
    /// ```
    /// use kinesis_batcher::{Limits, LimitsError};
    ///
    /// let small = Limits::FIREHOSE.with_caps(10, 1 << 20, 1000)?;
    /// assert!(!small.partition_keys()); // still Firehose
    /// assert_eq!(
    ///     Limits::FIREHOSE.with_caps(500, 4 << 20, 1 << 20),
    ///     Err(LimitsError::RecordBytesAboveProfile)
    /// );
    /// assert_eq!(
    ///     Limits::FIREHOSE.with_caps(500, 4 << 20 | 1, 1000),
    ///     Err(LimitsError::RequestBytesAboveProfile)
    /// );
    /// assert!(Limits::KDS_5MIB.with_caps(500, 5 << 20, 1 << 20).is_ok());
    /// assert_eq!(
    ///     Limits::KDS_5MIB.with_caps(500, (5 << 20) + 1, 1 << 20),
    ///     Err(LimitsError::RequestBytesAboveProfile)
    /// );
    /// # Ok::<(), LimitsError>(())
    /// ```
    pub const fn with_caps(
        self,
        max_records: u32,
        max_request_bytes: u32,
        max_record_bytes: u32,
    ) -> Result<Limits, LimitsError> {
        match Limits::new(max_records, max_request_bytes, max_record_bytes) {
            Ok(_) if max_request_bytes > self.request_ceiling => {
                Err(LimitsError::RequestBytesAboveProfile)
            }
            Ok(_) if max_record_bytes > self.record_ceiling => {
                Err(LimitsError::RecordBytesAboveProfile)
            }
            Ok(_) => Ok(Limits {
                max_records,
                max_request_bytes,
                max_record_bytes,
                ..self
            }),
            Err(error) => Err(error),
        }
    }

    /// The same limits with partition-key length counted in `unit`.
    #[must_use]
    pub const fn with_key_unit(self, unit: KeyUnit) -> Limits {
        Limits {
            key_unit: unit,
            ..self
        }
    }

    /// The same limits for records without a partition key (Firehose, or batching for
    /// any other purpose). Keys and explicit hash keys are then neither read, validated
    /// nor counted: a record's size is its data length.
    #[must_use]
    pub const fn without_partition_keys(self) -> Limits {
        Limits {
            partition_keys: false,
            ..self
        }
    }

    /// The same limits with partition keys required (the default of every profile but
    /// [`Limits::FIREHOSE`]).
    #[must_use]
    pub const fn with_partition_keys(self) -> Limits {
        Limits {
            partition_keys: true,
            ..self
        }
    }

    /// Whether an explicit hash key's bytes count towards record and request size.
    /// The service does not document that they do and the KPL does not count them, so
    /// the default is `false`; `true` is the conservative choice some producers make.
    #[must_use]
    pub const fn counting_hash_key(self, count: bool) -> Limits {
        Limits {
            count_hash_key: count,
            ..self
        }
    }

    /// Whether a batch may span refused records.
    ///
    /// `false`, the default: a refused record closes the open batch, so every batch is a
    /// contiguous run of accepted records and `&records[batch.range()]` is exactly the
    /// request to send. `true`: the records on either side of a refused one still share
    /// a request when they fit (the fewest requests), and a batch's range can hold refused
    /// indices ([`Batch::refused`](crate::Batch::refused) says how many), which the caller
    /// must skip when sending.
    #[must_use]
    pub const fn spanning_refusals(self, span: bool) -> Limits {
        Limits {
            span_refusals: span,
            ..self
        }
    }

    /// Whether a batch may span refused records (see [`Limits::spanning_refusals`]).
    pub const fn spans_refusals(&self) -> bool {
        self.span_refusals
    }

    /// Records per request, at most.
    pub const fn max_records(&self) -> u32 {
        self.max_records
    }

    /// Bytes per request (sum of record sizes), at most.
    pub const fn max_request_bytes(&self) -> u32 {
        self.max_request_bytes
    }

    /// Bytes per record (data + partition key), at most.
    pub const fn max_record_bytes(&self) -> u32 {
        self.max_record_bytes
    }

    /// Whether records carry a partition key that is validated and counted.
    pub const fn partition_keys(&self) -> bool {
        self.partition_keys
    }

    /// How partition-key length is counted.
    pub const fn key_unit(&self) -> KeyUnit {
        self.key_unit
    }

    /// Whether explicit hash keys count towards sizes.
    pub const fn counts_hash_key(&self) -> bool {
        self.count_hash_key
    }
}

/// Why a set of limits was refused. Each value names the limit and the rule it broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LimitsError {
    /// Records per request is zero.
    ZeroRecords,
    /// Bytes per request is zero.
    ZeroRequestBytes,
    /// Bytes per record is zero.
    ZeroRecordBytes,
    /// Records per request is above the service's 500.
    RecordsAboveService,
    /// Bytes per request is above the service's 10 MiB.
    RequestBytesAboveService,
    /// Bytes per record is above the service's 10 MiB.
    RecordBytesAboveService,
    /// Bytes per record is above bytes per request: such a record could never be sent.
    RecordAboveRequest,
    /// A stream's `MaxRecordSizeInKiB` must be between 1024 and 10240.
    StreamRecordSizeOutOfRange,
    /// Bytes per record is above what the profile's service accepts (1 MiB for the
    /// pre-2025 Kinesis API, 1,024,000 bytes for Firehose).
    RecordBytesAboveProfile,
    /// Bytes per request is above what the profile's service accepts (5 MiB for the
    /// pre-2025 Kinesis API, 4 MiB for Firehose).
    RequestBytesAboveProfile,
}

impl LimitsError {
    /// A static sentence saying which limit is wrong and why.
    pub const fn message(self) -> &'static str {
        match self {
            LimitsError::ZeroRecords => "max_records is 0: a request must hold at least one record",
            LimitsError::ZeroRequestBytes => {
                "max_request_bytes is 0: a request must hold at least one byte"
            }
            LimitsError::ZeroRecordBytes => {
                "max_record_bytes is 0: a record must be allowed at least one byte"
            }
            LimitsError::RecordsAboveService => {
                "max_records is above 500, the service's maximum per request"
            }
            LimitsError::RequestBytesAboveService => {
                "max_request_bytes is above 10 MiB (10485760), the service's maximum per request"
            }
            LimitsError::RecordBytesAboveService => {
                "max_record_bytes is above 10 MiB (10485760), the service's maximum per record"
            }
            LimitsError::RecordAboveRequest => {
                "max_record_bytes is above max_request_bytes: a record that large could never be sent"
            }
            LimitsError::StreamRecordSizeOutOfRange => {
                "MaxRecordSizeInKiB must be between 1024 and 10240"
            }
            LimitsError::RequestBytesAboveProfile => {
                "max_request_bytes is above this profile's maximum request size (5242880 for KDS_5MIB, 4194304 for FIREHOSE)"
            }
            LimitsError::RecordBytesAboveProfile => {
                "max_record_bytes is above this profile's maximum record size (1048576 for KDS_5MIB, 1024000 for FIREHOSE)"
            }
        }
    }
}

impl fmt::Display for LimitsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl core::error::Error for LimitsError {}
