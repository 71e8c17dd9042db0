//! `kinesis_batcher._native`: the core's planner, limits, line splitter and retry planning
//! for Python, through PyO3.
//!
//! This crate only translates. Python records are read one at a time into the core's size
//! form (`records::Reader`: the data's length, never its bytes; the keys' lengths and
//! validity, read in place) and handed to the core (its accumulator, line planner, retry
//! planning and aggregation); its answers become Python objects. No size is added up
//! and no batch boundary is decided here.

use kinesis_batcher::Reason;
use kinesis_batcher::retry::ErrorKind;
use pyo3::prelude::*;

mod aggregate;
mod delivery;
mod limits;
mod lines;
mod plan;
mod records;

/// The reason name of a record the binding could not read (not a record shape, data that
/// is not bytes-like, a key that is not a `str`): refused like any record, never raised.
const INVALID_RECORD: &str = "invalid_record";

/// How many batches and refusals one bulk call of the core writes before handing back.
const CHUNK: usize = 256;

/// The name and retryability of a service error code, as the core classifies it.
#[pyfunction]
fn classify_error(code: &str) -> (&'static str, bool) {
    let kind = ErrorKind::from_code(code.as_bytes());
    (kind.as_str(), kind.is_retryable())
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<limits::PyLimits>()?;
    m.add_class::<plan::PyBatch>()?;
    m.add_class::<plan::PyRefusal>()?;
    m.add_class::<plan::PyPlan>()?;
    m.add_class::<lines::PyLineBatch>()?;
    m.add_class::<lines::PyLineRefusal>()?;
    m.add_class::<lines::PyLinePlan>()?;
    m.add_class::<delivery::PyDelivery>()?;
    m.add_function(wrap_pyfunction!(plan::plan, m)?)?;
    m.add_function(wrap_pyfunction!(lines::plan_lines, m)?)?;
    m.add_function(wrap_pyfunction!(classify_error, m)?)?;
    m.add_function(wrap_pyfunction!(aggregate::aggregate, m)?)?;
    m.add_function(wrap_pyfunction!(aggregate::deaggregate, m)?)?;
    m.add("REASONS", {
        let mut names: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
        names.push(INVALID_RECORD);
        names
    })?;
    Ok(())
}
