//! `Limits`: the core's limits and their profiles, for Python.

use kinesis_batcher::{KeyUnit, Limits, LimitsError};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

fn limits_error(error: LimitsError) -> PyErr {
    PyValueError::new_err(error.message())
}

/// Limits for one service: records and bytes per request, bytes per record, and how keys
/// are counted. Build one from a profile (``Limits.KDS``, ``Limits.KDS_5MIB``,
/// ``Limits.FIREHOSE``), ``Limits.kds_for_stream(kib)``, or
/// ``Limits(max_records, max_request_bytes, max_record_bytes)``; every constructor checks
/// its numbers and raises ``ValueError`` naming the broken rule.
#[pyclass(name = "Limits", module = "kinesis_batcher._native", frozen, eq, hash)]
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct PyLimits {
    inner: Limits,
}

fn key_unit_name(unit: KeyUnit) -> &'static str {
    match unit {
        KeyUnit::CodePoints => "code_points",
        KeyUnit::Utf16Units => "utf16_units",
        KeyUnit::Utf8Bytes => "utf8_bytes",
    }
}

/// A number of records or bytes as the core takes it: a value above `u32::MAX` becomes
/// `u32::MAX`, which every limit check then refuses as above the service's maximum.
fn clamp(n: u64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[pymethods]
impl PyLimits {
    #[new]
    fn new(max_records: u64, max_request_bytes: u64, max_record_bytes: u64) -> PyResult<Self> {
        Limits::new(
            clamp(max_records),
            clamp(max_request_bytes),
            clamp(max_record_bytes),
        )
        .map(|inner| PyLimits { inner })
        .map_err(limits_error)
    }

    /// Kinesis Data Streams today: 500 records, 10 MiB a request, 1 MiB a record.
    #[classattr]
    #[pyo3(name = "KDS")]
    fn kds() -> Self {
        PyLimits { inner: Limits::KDS }
    }

    /// Kinesis Data Streams before 2025 (and moto): 500 records, 5 MiB, 1 MiB.
    #[classattr]
    #[pyo3(name = "KDS_5MIB")]
    fn kds_5mib() -> Self {
        PyLimits {
            inner: Limits::KDS_5MIB,
        }
    }

    /// Firehose ``PutRecordBatch``: 500 records, 4 MiB, 1,024,000 bytes, no key.
    #[classattr]
    #[pyo3(name = "FIREHOSE")]
    fn firehose() -> Self {
        PyLimits {
            inner: Limits::FIREHOSE,
        }
    }

    /// ``KDS`` for a stream whose ``MaxRecordSizeInKiB`` is ``kib`` (1024..10240).
    #[staticmethod]
    fn kds_for_stream(kib: u64) -> PyResult<Self> {
        Limits::kds_for_stream(clamp(kib))
            .map(|inner| PyLimits { inner })
            .map_err(limits_error)
    }

    /// The same limits with another record cap (up to the profile's service's).
    fn with_max_record_bytes(&self, max_record_bytes: u64) -> PyResult<Self> {
        self.inner
            .with_max_record_bytes(clamp(max_record_bytes))
            .map(|inner| PyLimits { inner })
            .map_err(limits_error)
    }

    /// The same limits with other caps (up to the profile's service's).
    fn with_caps(
        &self,
        max_records: u64,
        max_request_bytes: u64,
        max_record_bytes: u64,
    ) -> PyResult<Self> {
        self.inner
            .with_caps(
                clamp(max_records),
                clamp(max_request_bytes),
                clamp(max_record_bytes),
            )
            .map(|inner| PyLimits { inner })
            .map_err(limits_error)
    }

    /// The same limits with key length counted in ``unit``: ``"code_points"`` (the
    /// default), ``"utf16_units"`` (the Java KPL) or ``"utf8_bytes"``.
    fn with_key_unit(&self, unit: &str) -> PyResult<Self> {
        let unit = match unit {
            "code_points" => KeyUnit::CodePoints,
            "utf16_units" => KeyUnit::Utf16Units,
            "utf8_bytes" => KeyUnit::Utf8Bytes,
            _ => {
                return Err(PyValueError::new_err(
                    "key unit must be \"code_points\", \"utf16_units\" or \"utf8_bytes\"",
                ));
            }
        };
        Ok(PyLimits {
            inner: self.inner.with_key_unit(unit),
        })
    }

    /// The same limits with no partition key: a record's size is its data's length.
    fn without_partition_keys(&self) -> Self {
        PyLimits {
            inner: self.inner.without_partition_keys(),
        }
    }

    /// The same limits with partition keys required and counted.
    fn with_partition_keys(&self) -> Self {
        PyLimits {
            inner: self.inner.with_partition_keys(),
        }
    }

    /// The same limits, counting explicit hash keys' bytes or not (default: not).
    fn counting_hash_key(&self, count: bool) -> Self {
        PyLimits {
            inner: self.inner.counting_hash_key(count),
        }
    }

    /// The same limits, letting a batch span refused records or not (default: not).
    fn spanning_refusals(&self, span: bool) -> Self {
        PyLimits {
            inner: self.inner.spanning_refusals(span),
        }
    }

    #[getter]
    fn max_records(&self) -> u32 {
        self.inner.max_records()
    }

    #[getter]
    fn max_request_bytes(&self) -> u32 {
        self.inner.max_request_bytes()
    }

    #[getter]
    fn max_record_bytes(&self) -> u32 {
        self.inner.max_record_bytes()
    }

    #[getter]
    fn partition_keys(&self) -> bool {
        self.inner.partition_keys()
    }

    #[getter]
    fn key_unit(&self) -> &'static str {
        key_unit_name(self.inner.key_unit())
    }

    #[getter]
    fn counts_hash_key(&self) -> bool {
        self.inner.counts_hash_key()
    }

    #[getter]
    fn spans_refusals(&self) -> bool {
        self.inner.spans_refusals()
    }

    fn __repr__(&self) -> String {
        let l = &self.inner;
        format!(
            "Limits(max_records={}, max_request_bytes={}, max_record_bytes={}, partition_keys={}, key_unit={:?}, counts_hash_key={}, spans_refusals={})",
            l.max_records(),
            l.max_request_bytes(),
            l.max_record_bytes(),
            if l.partition_keys() { "True" } else { "False" },
            key_unit_name(l.key_unit()),
            if l.counts_hash_key() { "True" } else { "False" },
            if l.spans_refusals() { "True" } else { "False" },
        )
    }
}

/// The limits passed, or the core's default (`Limits.KDS`).
pub(crate) fn limits_or_default(limits: Option<&Bound<'_, PyLimits>>) -> Limits {
    limits.map_or(Limits::KDS, |l| l.get().inner)
}
