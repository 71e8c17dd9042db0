//! `kinesis_batcher._native`: the core's planner, limits, line splitter and retry planning
//! for Python, through PyO3.
//!
//! This crate only translates. Python records are read one at a time into the core's size
//! form (`records::Reader`: the data's length, never its bytes; the keys' lengths and
//! validity, read in place) and handed to the core ([`Accumulator`], [`LinePlanner`],
//! [`Delivery`], [`Aggregation`]); its answers become Python objects. No size is added up
//! and no batch boundary is decided here.

use kinesis_batcher::aggregate::{Aggregation, AsRecord, Mode, Step, encode};
use kinesis_batcher::lines::{LineBatch, LinePlanner, LineRefusal, LineStatus, Lines};
use kinesis_batcher::retry::{
    Backoff, Delivery, ErrorKind, NextStatus, Outcome, Pending, RetryPolicy, Terminal,
};
use kinesis_batcher::shards::MAX_HASH_KEY_DIGITS;
use kinesis_batcher::{
    Accumulator, Batch, KeyUnit, Limits, LimitsError, Measure, Push, Reason, Refusal,
};
use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

mod records;

use records::{Key, Reader};

/// The reason name of a record the binding could not read (not a record shape, data that
/// is not bytes-like, a key that is not a `str`): refused like any record, never raised.
const INVALID_RECORD: &str = "invalid_record";

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
struct PyLimits {
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

/// The input as a list, whatever sequence or iterable it came as: batches are slices of
/// it.
fn as_list<'py>(records: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
    if let Ok(list) = records.cast::<PyList>() {
        return Ok(list.clone());
    }
    if records.is_instance_of::<PyBytes>() || records.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "records must be a sequence of records, not one bytes or str (plan_lines splits a buffer)",
        ));
    }
    records
        .py()
        .get_type::<PyList>()
        .call1((records,))?
        .cast_into::<PyList>()
        .map_err(Into::into)
}

/// One request: input indices ``start`` to ``end`` (excluded), ``count`` accepted records
/// of ``bytes`` bytes as the service counts them, and ``records``, the accepted input
/// records themselves, ready to send (sliced from the input list when first read).
/// ``refused`` counts the refused records inside the range (always 0 unless the limits
/// span refusals).
#[pyclass(name = "Batch", module = "kinesis_batcher._native", frozen)]
struct PyBatch {
    #[pyo3(get)]
    start: usize,
    #[pyo3(get)]
    end: usize,
    #[pyo3(get)]
    count: u32,
    #[pyo3(get)]
    bytes: u32,
    /// The planned list, and the accepted records once read (or built at once when the
    /// range holds refused records, which only the planner knows).
    list: Py<PyList>,
    records: std::sync::OnceLock<Py<PyList>>,
}

#[pymethods]
impl PyBatch {
    #[getter]
    fn records(&self, py: Python<'_>) -> Py<PyList> {
        self.records
            .get_or_init(|| self.list.bind(py).get_slice(self.start, self.end).unbind())
            .clone_ref(py)
    }

    #[getter]
    fn refused(&self) -> usize {
        Batch {
            start: self.start,
            end: self.end,
            records: self.count,
            bytes: self.bytes,
        }
        .refused()
    }

    fn __len__(&self) -> usize {
        self.count as usize
    }

    fn __repr__(&self) -> String {
        format!(
            "Batch(start={}, end={}, count={}, bytes={})",
            self.start, self.end, self.count, self.bytes
        )
    }
}

/// A record that can never be sent: its ``index`` in the input, the ``reason`` (a stable
/// name such as ``"record_too_large"``), a ``message`` for people, and the ``record``.
#[pyclass(name = "Refusal", module = "kinesis_batcher._native", frozen)]
struct PyRefusal {
    #[pyo3(get)]
    index: usize,
    #[pyo3(get)]
    reason: &'static str,
    #[pyo3(get)]
    message: &'static str,
    #[pyo3(get)]
    record: Py<PyAny>,
}

#[pymethods]
impl PyRefusal {
    fn __repr__(&self) -> String {
        format!("Refusal(index={}, reason={:?})", self.index, self.reason)
    }
}

/// The plan of a list of records: ``batches`` in input order and ``refusals`` in input
/// order. Every input index is in exactly one batch or one refusal.
#[pyclass(name = "Plan", module = "kinesis_batcher._native", frozen)]
struct PyPlan {
    #[pyo3(get)]
    batches: Py<PyList>,
    #[pyo3(get)]
    refusals: Py<PyList>,
}

#[pymethods]
impl PyPlan {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Plan(batches={}, refusals={})",
            self.batches.bind(py).len(),
            self.refusals.bind(py).len()
        )
    }
}

/// How many batches and refusals one bulk call of the core writes before handing back.
const CHUNK: usize = 256;

fn limits_or_default(limits: Option<&Bound<'_, PyLimits>>) -> Limits {
    limits.map_or(Limits::KDS, |l| l.get().inner)
}

/// The accepted records of a batch whose range holds refused records (only when the
/// limits span refusals), as a list; `refused` holds the refused indices in order.
fn batch_records<'py>(
    list: &Bound<'py, PyList>,
    batch: &Batch,
    refused: &[usize],
) -> PyResult<Bound<'py, PyList>> {
    let out = PyList::empty(list.py());
    for i in batch.range() {
        if refused.binary_search(&i).is_err() {
            out.append(list.get_item(i)?)?;
        }
    }
    Ok(out)
}

/// What [`plan`] builds while the records stream through the core's accumulator.
struct PlanOut<'py> {
    list: Bound<'py, PyList>,
    batches: Bound<'py, PyList>,
    refusals: Bound<'py, PyList>,
    /// The refused indices, kept only when a batch's range can span them.
    refused: Vec<usize>,
    spans_refusals: bool,
}

impl<'py> PlanOut<'py> {
    fn batch(&mut self, b: Batch) -> PyResult<()> {
        let records = std::sync::OnceLock::new();
        if b.refused() != 0 {
            let _ = records.set(batch_records(&self.list, &b, &self.refused)?.unbind());
        }
        self.batches.append(PyBatch {
            start: b.start,
            end: b.end,
            count: b.records,
            bytes: b.bytes,
            list: self.list.clone().unbind(),
            records,
        })
    }

    fn refusal(
        &mut self,
        index: usize,
        (reason, message): (&'static str, &'static str),
        record: Bound<'py, PyAny>,
    ) -> PyResult<()> {
        if self.spans_refusals {
            self.refused.push(index);
        }
        self.refusals.append(PyRefusal {
            index,
            reason,
            message,
            record: record.unbind(),
        })
    }
}

/// plan(records, limits=Limits.KDS, *, key=None)
/// --
///
/// Plans ``records`` into requests under ``limits``. See ``kinesis_batcher.plan``.
#[pyfunction]
#[pyo3(signature = (records, limits = None, *, key = None))]
fn plan<'py>(
    py: Python<'py>,
    records: &Bound<'py, PyAny>,
    limits: Option<&Bound<'py, PyLimits>>,
    key: Option<&Bound<'py, PyAny>>,
) -> PyResult<PyPlan> {
    let limits = limits_or_default(limits);
    let list = as_list(records)?;
    let mut reader = Reader::new(limits, key, false)?;
    // One pass: each record is read and handed to the core's accumulator (the same plan
    // as the bulk planner's), so no per-record array is built.
    let mut accumulator = Accumulator::new(limits);
    let mut out = PlanOut {
        list: list.clone(),
        batches: PyList::empty(py),
        refusals: PyList::empty(py),
        refused: Vec::new(),
        spans_refusals: limits.spans_refusals(),
    };
    let len = list.len();
    for index in 0..len {
        let record = list.get_item(index)?;
        match reader.read(&record) {
            Ok(read) => match accumulator.push(&read.size) {
                Push::Added => {}
                Push::SendFirst(batch) => out.batch(batch)?,
                Push::Refused(reason) => {
                    out.refusal(index, (reason.as_str(), reason.message()), record)?;
                }
            },
            Err(why) => {
                accumulator.skip();
                out.refusal(index, (INVALID_RECORD, why), record)?;
            }
        }
    }
    if let Some(batch) = accumulator.flush() {
        out.batch(batch)?;
    }
    if list.len() != len {
        // Only Python code run by a record (a buffer exporter, a key's __eq__) can do
        // this; the ranges would no longer match the list.
        return Err(PyRuntimeError::new_err(
            "the records changed while being planned",
        ));
    }
    Ok(PyPlan {
        batches: out.batches.unbind(),
        refusals: out.refusals.unbind(),
    })
}

/// One request of newline-delimited records: records ``start`` to ``end`` (counted
/// from 0 in the buffer), ``count`` and ``bytes`` as for any batch, the buffer's bytes
/// ``offset`` to ``end_offset`` (the last terminator excluded) and the 1-based line
/// numbers ``first_line`` to ``last_line``.
#[pyclass(name = "LineBatch", module = "kinesis_batcher._native", frozen)]
struct PyLineBatch {
    #[pyo3(get)]
    start: usize,
    #[pyo3(get)]
    end: usize,
    #[pyo3(get)]
    count: u32,
    #[pyo3(get)]
    bytes: u32,
    #[pyo3(get)]
    offset: u64,
    #[pyo3(get)]
    end_offset: u64,
    #[pyo3(get)]
    first_line: u64,
    #[pyo3(get)]
    last_line: u64,
}

#[pymethods]
impl PyLineBatch {
    fn __len__(&self) -> usize {
        self.count as usize
    }

    fn __repr__(&self) -> String {
        format!(
            "LineBatch(start={}, end={}, count={}, bytes={}, offset={}, end_offset={})",
            self.start, self.end, self.count, self.bytes, self.offset, self.end_offset
        )
    }
}

/// A refused line: record ``index``, ``line`` number (1-based), byte ``offset``, and
/// the ``reason`` and ``message`` as for any refusal.
#[pyclass(name = "LineRefusal", module = "kinesis_batcher._native", frozen)]
struct PyLineRefusal {
    #[pyo3(get)]
    index: usize,
    #[pyo3(get)]
    line: u64,
    #[pyo3(get)]
    offset: u64,
    #[pyo3(get)]
    reason: &'static str,
    #[pyo3(get)]
    message: &'static str,
}

#[pymethods]
impl PyLineRefusal {
    fn __repr__(&self) -> String {
        format!(
            "LineRefusal(index={}, line={}, reason={:?})",
            self.index, self.line, self.reason
        )
    }
}

/// The plan of a buffer of lines.
#[pyclass(name = "LinePlan", module = "kinesis_batcher._native", frozen)]
struct PyLinePlan {
    #[pyo3(get)]
    batches: Py<PyList>,
    #[pyo3(get)]
    refusals: Py<PyList>,
}

#[pymethods]
impl PyLinePlan {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "LinePlan(batches={}, refusals={})",
            self.batches.bind(py).len(),
            self.refusals.bind(py).len()
        )
    }
}

/// Plans the lines of `input` (one key for all) with the core's line planner.
fn plan_line_bytes<'py>(
    py: Python<'py>,
    input: &[u8],
    limits: Limits,
    key: &[u8],
    keep_empty: bool,
) -> PyResult<PyLinePlan> {
    let source = if keep_empty {
        Lines::new(&limits).keep_empty()
    } else {
        Lines::new(&limits)
    };
    let mut planner = LinePlanner::with_source(limits, key, source)
        .map_err(|reason| PyValueError::new_err(format!("key refused: {}", reason.message())))?;
    let mut batches = [LineBatch::default(); CHUNK];
    let mut refusals = [LineRefusal::default(); CHUNK];
    let out_batches = PyList::empty(py);
    let out_refusals = PyList::empty(py);
    let mut at = 0;
    loop {
        let progress = planner.plan(&input[at..], true, &mut batches, &mut refusals);
        for r in &refusals[..progress.refusals] {
            out_refusals.append(PyLineRefusal {
                index: r.refusal.index,
                line: r.line,
                offset: r.offset,
                reason: r.refusal.reason.as_str(),
                message: r.refusal.reason.message(),
            })?;
        }
        for b in &batches[..progress.batches] {
            out_batches.append(PyLineBatch {
                start: b.batch.start,
                end: b.batch.end,
                count: b.batch.records,
                bytes: b.batch.bytes,
                offset: b.offset,
                end_offset: b.end_offset,
                first_line: b.first_line,
                last_line: b.last_line,
            })?;
        }
        at += progress.consumed;
        match progress.status {
            LineStatus::Done => break,
            LineStatus::BatchesFull | LineStatus::RefusalsFull => continue,
            LineStatus::NeedMore => {
                return Err(PyRuntimeError::new_err(
                    "the line planner asked for more input at eof",
                ));
            }
        }
    }
    Ok(PyLinePlan {
        batches: out_batches.unbind(),
        refusals: out_refusals.unbind(),
    })
}

/// plan_lines(buffer, limits=Limits.KDS, *, key=None, keep_empty=False)
/// --
///
/// Plans the newline-delimited records of one buffer. See ``kinesis_batcher.plan_lines``.
#[pyfunction]
#[pyo3(signature = (buffer, limits = None, *, key = None, keep_empty = false))]
fn plan_lines<'py>(
    py: Python<'py>,
    buffer: &Bound<'py, PyAny>,
    limits: Option<&Bound<'py, PyLimits>>,
    key: Option<&Bound<'py, PyAny>>,
    keep_empty: bool,
) -> PyResult<PyLinePlan> {
    let limits = limits_or_default(limits);
    let key_obj = match key {
        Some(k) if !k.is_none() => {
            Some(Key::of(k).ok_or_else(|| PyTypeError::new_err("key must be a str or bytes"))?)
        }
        _ => None,
    };
    if key_obj.is_none() && limits.partition_keys() {
        return Err(PyValueError::new_err(
            "key= is required when the limits require partition keys",
        ));
    }
    let key_bytes = key_obj.as_ref().map_or(&b""[..], Key::bytes);
    if let Ok(bytes) = buffer.cast::<PyBytes>() {
        return plan_line_bytes(py, bytes.as_bytes(), limits, key_bytes, keep_empty);
    }
    let view = PyUntypedBuffer::get(buffer)
        .map_err(|_| PyTypeError::new_err("buffer must be bytes or a bytes-like object"))?;
    if !view.is_c_contiguous() {
        return Err(PyValueError::new_err("buffer must be C-contiguous"));
    }
    let len = view.len_bytes();
    let input: &[u8] = if len == 0 {
        &[]
    } else {
        // SAFETY: `view` holds the exporter's buffer (PyObject_GetBuffer) until it is
        // dropped at the end of this function, which outlives `input`; the buffer is
        // C-contiguous, so its `len` bytes start at `buf_ptr`; the GIL is held and no
        // Python code runs while the core reads it, so nothing resizes or frees it.
        unsafe { std::slice::from_raw_parts(view.buf_ptr().cast::<u8>(), len) }
    };
    plan_line_bytes(py, input, limits, key_bytes, keep_empty)
}

/// What `settle` hands back: entries stored, and `(index, error kind, gave up)` of each
/// record that will not be sent again.
type SettledOut = (usize, Vec<(usize, &'static str, bool)>);

/// What `next_request` hands back: status, `(index, attempts)` entries and
/// `(index, reason, message)` refusals.
type NextOut = (
    &'static str,
    Vec<(usize, u32)>,
    Vec<(usize, &'static str, &'static str)>,
);

/// A record's measure and key identity as the core computed them, kept by
/// [`PyDelivery`] so that each step of a delivery reads no Python object again.
#[derive(Clone, Copy)]
struct Measured {
    size: Result<u32, Reason>,
    key_identity: Option<u64>,
}

impl Measure for Measured {
    #[inline]
    fn measure(&self, _limits: &Limits) -> Result<u32, Reason> {
        self.size
    }

    #[inline]
    fn key_identity(&self, _limits: &Limits) -> Option<u64> {
        self.key_identity
    }
}

/// The core's retry planning (``kinesis_batcher::retry::Delivery``) over one list of
/// records: which entries to send next (failed ones first), what to do with a response,
/// how long to wait. It never sends anything; ``kinesis_batcher.aws`` drives it with
/// boto3.
#[pyclass(name = "Delivery", module = "kinesis_batcher._native")]
struct PyDelivery {
    delivery: Delivery,
    measured: Vec<Measured>,
    invalid: Vec<Option<&'static str>>,
    in_flight: Vec<Pending>,
    list: Py<PyList>,
}

fn delivery_error(error: kinesis_batcher::retry::DeliveryError) -> PyErr {
    PyRuntimeError::new_err(error.message())
}

#[pymethods]
impl PyDelivery {
    #[new]
    #[pyo3(signature = (records, limits = None, *, key = None, max_attempts = 0, max_age_ms = 0, base_ms = 0, cap_ms = 0, per_key_order = false))]
    #[allow(clippy::too_many_arguments)]
    fn new<'py>(
        records: &Bound<'py, PyAny>,
        limits: Option<&Bound<'py, PyLimits>>,
        key: Option<&Bound<'py, PyAny>>,
        max_attempts: u32,
        max_age_ms: u64,
        base_ms: u64,
        cap_ms: u64,
        per_key_order: bool,
    ) -> PyResult<Self> {
        let limits = limits_or_default(limits);
        let list = as_list(records)?;
        let mut reader = Reader::new(limits, key, per_key_order)?;
        let mut measured = Vec::with_capacity(list.len());
        let mut invalid = Vec::with_capacity(list.len());
        for record in list.iter() {
            let (m, why) = match reader.read(&record) {
                Ok(read) => (
                    Measured {
                        size: read.size.measure(&limits),
                        key_identity: read.key_identity,
                    },
                    None,
                ),
                // An unreadable record is refused like one that can never fit: the core
                // needs a reason, and the binding reports it as `invalid_record` instead.
                Err(why) => (
                    Measured {
                        size: Err(Reason::RecordTooLarge),
                        key_identity: None,
                    },
                    Some(why),
                ),
            };
            measured.push(m);
            invalid.push(why);
        }
        let policy = RetryPolicy {
            backoff: Backoff { base_ms, cap_ms },
            max_attempts,
            max_age_ms,
            per_key_order,
        };
        Ok(PyDelivery {
            delivery: Delivery::new(limits, policy),
            measured,
            invalid,
            in_flight: Vec::new(),
            list: list.unbind(),
        })
    }

    /// next_request(now_ms) -> (status, entries, refusals)
    /// --
    ///
    /// The next request: ``status`` is ``"ready"`` (send ``entries``, a list of
    /// ``(index, attempts)``), ``"only_refusals"`` (call again) or ``"done"``;
    /// ``refusals`` lists ``(index, reason, message)`` of records that can never be sent.
    fn next_request(&mut self, now_ms: u64) -> PyResult<NextOut> {
        let mut request = [Pending::default(); 500];
        let mut refusals = [Refusal::default(); CHUNK];
        let next = self
            .delivery
            .next_request(&self.measured, &mut request, &mut refusals, now_ms)
            .map_err(delivery_error)?;
        let refused = refusals[..next.refusals]
            .iter()
            .map(|r| match self.invalid[r.index] {
                Some(why) => (r.index, INVALID_RECORD, why),
                None => (r.index, r.reason.as_str(), r.reason.message()),
            })
            .collect();
        self.in_flight = request[..next.entries].to_vec();
        let status = match next.status {
            NextStatus::Ready => "ready",
            NextStatus::OnlyRefusals => "only_refusals",
            NextStatus::Done => "done",
        };
        let entries = self
            .in_flight
            .iter()
            .map(|p| (p.index, p.attempts))
            .collect();
        Ok((status, entries, refused))
    }

    /// settle(error_codes, now_ms) -> (accepted, terminal)
    /// --
    ///
    /// Settles the request in flight with the service's answer: one error code per entry
    /// (``None`` for a stored entry), or, with ``error_codes=None``, a request that got no
    /// answer (every entry failed in transport). ``terminal`` lists
    /// ``(index, error_kind, gave_up)`` of records that will not be sent again.
    #[pyo3(signature = (error_codes, now_ms))]
    fn settle(
        &mut self,
        error_codes: Option<Vec<Option<String>>>,
        now_ms: u64,
    ) -> PyResult<SettledOut> {
        let mut terminal = vec![Terminal::default(); self.in_flight.len().max(1)];
        let settled = match error_codes {
            None => self.delivery.settle_all(
                &self.in_flight,
                ErrorKind::Transport,
                now_ms,
                &mut terminal,
            ),
            Some(codes) => {
                let outcomes: Vec<Outcome> = codes
                    .iter()
                    .map(|c| match c {
                        None => Outcome::Accepted,
                        Some(code) => Outcome::Failed(ErrorKind::from_code(code.as_bytes())),
                    })
                    .collect();
                self.delivery
                    .settle(&self.in_flight, &outcomes, now_ms, &mut terminal)
            }
        }
        .map_err(delivery_error)?;
        self.in_flight.clear();
        let terminal = terminal[..settled.terminal]
            .iter()
            .map(|t| (t.index, t.kind.as_str(), t.gave_up))
            .collect();
        Ok((settled.accepted, terminal))
    }

    /// settle_error(code, http_status, now_ms) -> (accepted, terminal)
    /// --
    ///
    /// Settles the request in flight when the whole call failed with an error code (and
    /// HTTP status, 0 if unknown): every entry fails with that error.
    fn settle_error(&mut self, code: &str, http_status: u16, now_ms: u64) -> PyResult<SettledOut> {
        let mut kind = ErrorKind::from_code(code.as_bytes());
        if kind == ErrorKind::Unknown {
            if let Some(k) = ErrorKind::from_http_status(http_status) {
                kind = k;
            }
        }
        let mut terminal = vec![Terminal::default(); self.in_flight.len().max(1)];
        let settled = self
            .delivery
            .settle_all(&self.in_flight, kind, now_ms, &mut terminal)
            .map_err(delivery_error)?;
        self.in_flight.clear();
        let terminal = terminal[..settled.terminal]
            .iter()
            .map(|t| (t.index, t.kind.as_str(), t.gave_up))
            .collect();
        Ok((settled.accepted, terminal))
    }

    /// How long to wait before the next request, in milliseconds, given a random number.
    fn backoff_ms(&self, random: u64) -> u64 {
        self.delivery.backoff_ms(random)
    }

    /// The records being delivered (the list the indices refer to).
    #[getter]
    fn records(&self, py: Python<'_>) -> Py<PyList> {
        self.list.clone_ref(py)
    }
}

/// A record for aggregation, which needs the data bytes too (encoding copies them once,
/// into the aggregate): `bytes` or `str` data, read in place.
struct AggEntry<'py> {
    data: Option<Bound<'py, PyAny>>,
    key: Option<Key<'py>>,
    hash_key: Option<Key<'py>>,
    invalid: Option<&'static str>,
}

fn data_bytes<'a>(data: &'a Bound<'_, PyAny>) -> Option<&'a [u8]> {
    if let Ok(b) = data.cast::<PyBytes>() {
        Some(b.as_bytes())
    } else if let Ok(s) = data.cast::<PyString>() {
        s.to_str().ok().map(str::as_bytes)
    } else {
        None
    }
}

impl AsRecord for AggEntry<'_> {
    fn as_record(&self) -> Option<kinesis_batcher::Record<'_>> {
        if self.invalid.is_some() {
            // Unreadable: the core refuses it (reported as `invalid_record`).
            return None;
        }
        let data = data_bytes(self.data.as_ref()?)?;
        let key = self.key.as_ref().map_or(&b""[..], Key::bytes);
        let record = kinesis_batcher::Record::new(data, key);
        Some(match &self.hash_key {
            Some(h) => record.with_hash_key(h.bytes()),
            None => record,
        })
    }
}

fn read_agg<'py>(record: &Bound<'py, PyAny>, one_key: Option<&Key<'py>>) -> AggEntry<'py> {
    let py = record.py();
    let invalid = |why| AggEntry {
        data: None,
        key: None,
        hash_key: None,
        invalid: Some(why),
    };
    let (data, key, hash_key) = if let Ok(dict) = record.cast::<PyDict>() {
        (
            dict.get_item(intern!(py, "Data")).ok().flatten(),
            dict.get_item(intern!(py, "PartitionKey")).ok().flatten(),
            dict.get_item(intern!(py, "ExplicitHashKey")).ok().flatten(),
        )
    } else if let Ok(t) = record.cast::<PyTuple>() {
        if !(2..=3).contains(&t.len()) {
            return invalid("a tuple record is (data, key) or (data, key, hash_key)");
        }
        (t.get_item(0).ok(), t.get_item(1).ok(), t.get_item(2).ok())
    } else {
        (Some(record.clone()), None, None)
    };
    let Some(data) = data else {
        return invalid("the entry has no \"Data\"");
    };
    if data_bytes(&data).is_none() {
        return invalid("aggregated data must be bytes or a str encodable as UTF-8");
    }
    let key = match key {
        Some(k) => match Key::of(&k) {
            Some(k) => k,
            None => return invalid("the key is not a str"),
        },
        None => match one_key {
            Some(k) => k.clone(),
            None => return invalid("the record has no partition key"),
        },
    };
    let hash_key = match hash_key {
        Some(h) if !h.is_none() => match Key::of(&h) {
            Some(h) => Some(h),
            None => return invalid("the explicit hash key is not a str"),
        },
        _ => None,
    };
    AggEntry {
        data: Some(data),
        key: Some(key),
        hash_key,
        invalid: None,
    }
}

/// What `aggregate` hands back: PutRecords entries with their user record ranges, and
/// refusals.
type AggregateOut<'py> = (
    Vec<(Bound<'py, PyDict>, usize, usize)>,
    Vec<(usize, &'static str, &'static str)>,
);

/// aggregate(records, limits=Limits.KDS, *, key=None, mode="shared_hash_key", max_bytes=0)
/// --
///
/// Aggregates user records (KPL format) with the core. See ``kinesis_batcher.aggregate``.
#[pyfunction]
#[pyo3(signature = (records, limits = None, *, key = None, mode = "shared_hash_key", max_bytes = 0))]
fn aggregate<'py>(
    py: Python<'py>,
    records: &Bound<'py, PyAny>,
    limits: Option<&Bound<'py, PyLimits>>,
    key: Option<&Bound<'py, PyAny>>,
    mode: &str,
    max_bytes: u32,
) -> PyResult<AggregateOut<'py>> {
    let limits = limits_or_default(limits);
    let mode = match mode {
        "shared_hash_key" => Mode::SharedHashKey,
        "one_key" => Mode::OneKey,
        _ => {
            return Err(PyValueError::new_err(
                "mode must be \"shared_hash_key\" or \"one_key\"",
            ));
        }
    };
    let aggregation = Aggregation::new(limits)
        .map_err(|e| PyValueError::new_err(e.message()))?
        .with_mode(mode)
        .with_max_bytes(max_bytes);
    let one_key = match key {
        Some(k) if !k.is_none() => {
            Some(Key::of(k).ok_or_else(|| PyTypeError::new_err("key must be a str or bytes"))?)
        }
        _ => None,
    };
    let list = as_list(records)?;
    let entries: Vec<AggEntry<'py>> = list
        .iter()
        .map(|r| read_agg(&r, one_key.as_ref()))
        .collect();
    let mut out = Vec::new();
    let mut refused = Vec::new();
    for step in aggregation.plan(&entries) {
        match step {
            Step::Refused(r) => refused.push(match entries[r.index].invalid {
                Some(why) => (r.index, INVALID_RECORD, why),
                None => (r.index, r.reason.as_str(), r.reason.message()),
            }),
            Step::Aggregate(a) => {
                let mut failed = None;
                let data = PyBytes::new_with(py, a.data_len as usize, |buf| {
                    if let Err(e) = encode(&entries, &a, buf) {
                        failed = Some(e);
                    }
                    Ok(())
                })?;
                if let Some(e) = failed {
                    return Err(PyRuntimeError::new_err(e.message()));
                }
                let entry = PyDict::new(py);
                entry.set_item(intern!(py, "Data"), data)?;
                let pk = a.partition_key(&entries);
                entry.set_item(intern!(py, "PartitionKey"), String::from_utf8_lossy(pk))?;
                let mut digits = [0; MAX_HASH_KEY_DIGITS];
                if let Some(h) = a.explicit_hash_key(&entries, &mut digits) {
                    entry.set_item(intern!(py, "ExplicitHashKey"), String::from_utf8_lossy(h))?;
                }
                out.push((entry, a.start, a.end));
            }
        }
    }
    Ok((out, refused))
}

/// What `deaggregate` hands back: each user record's data, partition key and explicit
/// hash key.
type SubRecordOut<'py> = (Bound<'py, PyBytes>, String, Option<String>);

/// deaggregate(data, partition_key, explicit_hash_key=None)
/// --
///
/// The user records of one Kinesis record (itself when it is not an aggregate).
#[pyfunction]
#[pyo3(signature = (data, partition_key, explicit_hash_key = None))]
fn deaggregate<'py>(
    py: Python<'py>,
    data: &[u8],
    partition_key: &str,
    explicit_hash_key: Option<&str>,
) -> PyResult<Vec<SubRecordOut<'py>>> {
    let records = kinesis_batcher::aggregate::deaggregate(
        data,
        partition_key.as_bytes(),
        explicit_hash_key.map(str::as_bytes),
    )
    .map_err(|e| PyValueError::new_err(e.message()))?;
    Ok(records
        .map(|r| {
            (
                PyBytes::new(py, r.data),
                String::from_utf8_lossy(r.partition_key).into_owned(),
                r.explicit_hash_key
                    .map(|h| String::from_utf8_lossy(h).into_owned()),
            )
        })
        .collect())
}

/// The name and retryability of a service error code, as the core classifies it.
#[pyfunction]
fn classify_error(code: &str) -> (&'static str, bool) {
    let kind = ErrorKind::from_code(code.as_bytes());
    (kind.as_str(), kind.is_retryable())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyLimits>()?;
    m.add_class::<PyBatch>()?;
    m.add_class::<PyRefusal>()?;
    m.add_class::<PyPlan>()?;
    m.add_class::<PyLineBatch>()?;
    m.add_class::<PyLineRefusal>()?;
    m.add_class::<PyLinePlan>()?;
    m.add_class::<PyDelivery>()?;
    m.add_function(wrap_pyfunction!(plan, m)?)?;
    m.add_function(wrap_pyfunction!(plan_lines, m)?)?;
    m.add_function(wrap_pyfunction!(classify_error, m)?)?;
    m.add_function(wrap_pyfunction!(aggregate, m)?)?;
    m.add_function(wrap_pyfunction!(deaggregate, m)?)?;
    m.add("REASONS", {
        let mut names: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        names.push(INVALID_RECORD);
        names
    })?;
    Ok(())
}
