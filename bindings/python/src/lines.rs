//! `plan_lines`: the newline-delimited records of one buffer, through the core's line
//! planner, read in place.

use kinesis_batcher::lines::{LineBatch, LinePlanner, LineRefusal, LineStatus, Lines};
use kinesis_batcher::{Limits, Reason};
use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList};

use crate::CHUNK;
use crate::limits::{PyLimits, limits_or_default};
use crate::records::Key;

/// One request of newline-delimited records: records ``start`` to ``end`` (counted
/// from 0 in the buffer), ``count`` and ``bytes`` as for any batch, the buffer's bytes
/// ``offset`` to ``end_offset`` (the last terminator excluded) and the 1-based line
/// numbers ``first_line`` to ``last_line``.
#[pyclass(name = "LineBatch", module = "kinesis_batcher._native", frozen)]
pub(crate) struct PyLineBatch {
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
pub(crate) struct PyLineRefusal {
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
pub(crate) struct PyLinePlan {
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

/// Why the line planner could not plan a buffer.
enum LinePlanError {
    /// The call's key can never be sent.
    KeyRefused(Reason),
    /// The planner asked for more input at the end of the buffer (never, for a whole
    /// buffer: a bug if it did).
    NeedMore,
}

impl From<LinePlanError> for PyErr {
    fn from(error: LinePlanError) -> PyErr {
        match error {
            LinePlanError::KeyRefused(reason) => {
                PyValueError::new_err(format!("key refused: {}", reason.message()))
            }
            LinePlanError::NeedMore => {
                PyRuntimeError::new_err("the line planner asked for more input at eof")
            }
        }
    }
}

/// The lines of `input` (one key for all) planned by the core's line planner, as Rust
/// values: nothing here touches a Python object, so it can run without the GIL.
fn plan_line_ranges(
    input: &[u8],
    limits: Limits,
    key: &[u8],
    keep_empty: bool,
) -> Result<(Vec<LineBatch>, Vec<LineRefusal>), LinePlanError> {
    let source = if keep_empty {
        Lines::new(&limits).keep_empty()
    } else {
        Lines::new(&limits)
    };
    let mut planner =
        LinePlanner::with_source(limits, key, source).map_err(LinePlanError::KeyRefused)?;
    let mut batches = [LineBatch::default(); CHUNK];
    let mut refusals = [LineRefusal::default(); CHUNK];
    let (mut all_batches, mut all_refusals) = (Vec::new(), Vec::new());
    let mut at = 0;
    loop {
        let progress = planner.plan(&input[at..], true, &mut batches, &mut refusals);
        all_refusals.extend_from_slice(&refusals[..progress.refusals]);
        all_batches.extend_from_slice(&batches[..progress.batches]);
        at += progress.consumed;
        match progress.status {
            LineStatus::Done => return Ok((all_batches, all_refusals)),
            LineStatus::BatchesFull | LineStatus::RefusalsFull => continue,
            LineStatus::NeedMore => return Err(LinePlanError::NeedMore),
        }
    }
}

/// A line plan as Python objects.
fn line_plan_objects(
    py: Python<'_>,
    (batches, refusals): (Vec<LineBatch>, Vec<LineRefusal>),
) -> PyResult<PyLinePlan> {
    let out_refusals = PyList::empty(py);
    for r in &refusals {
        out_refusals.append(PyLineRefusal {
            index: r.refusal.index,
            line: r.line,
            offset: r.offset,
            reason: r.refusal.reason.as_str(),
            message: r.refusal.reason.message(),
        })?;
    }
    let out_batches = PyList::empty(py);
    for b in &batches {
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
pub(crate) fn plan_lines<'py>(
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
        // `bytes` and the key's `str`/`bytes` are immutable and held by this call, so the
        // core can read them while other threads run Python: the GIL is released for the
        // planning, the longest part of a large buffer.
        let input = bytes.as_bytes();
        let plan = py.detach(|| plan_line_ranges(input, limits, key_bytes, keep_empty))?;
        return line_plan_objects(py, plan);
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
        // C-contiguous, so its `len` bytes start at `buf_ptr`; the GIL is held (another
        // thread could write to a mutable buffer otherwise) and no Python code runs while
        // the core reads it, so nothing resizes, frees or changes it.
        unsafe { std::slice::from_raw_parts(view.buf_ptr().cast::<u8>(), len) }
    };
    line_plan_objects(py, plan_line_ranges(input, limits, key_bytes, keep_empty)?)
}
