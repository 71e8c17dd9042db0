//! `plan`: a list of records into requests, through the core's accumulator.

use kinesis_batcher::{Accumulator, Batch, Push};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::INVALID_RECORD;
use crate::limits::{PyLimits, limits_or_default};
use crate::records::{Reader, as_list};

/// One request: input indices ``start`` to ``end`` (excluded), ``count`` accepted records
/// of ``bytes`` bytes as the service counts them, and ``records``, the accepted input
/// records themselves, ready to send (sliced from the input list when first read).
/// ``refused`` counts the refused records inside the range (always 0 unless the limits
/// span refusals).
#[pyclass(name = "Batch", module = "kinesis_batcher._native", frozen)]
pub(crate) struct PyBatch {
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
pub(crate) struct PyRefusal {
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
pub(crate) struct PyPlan {
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
pub(crate) fn plan<'py>(
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
