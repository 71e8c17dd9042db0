//! `Delivery`: the core's retry planning over one list of records, for the boto3 helper.

use kinesis_batcher::retry::{
    Backoff, Delivery, ErrorKind, NextStatus, Outcome, Pending, RetryPolicy, Settled, Terminal,
};
use kinesis_batcher::{Limits, Measure, Reason, Refusal};
use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::PyList;

use crate::limits::{PyLimits, limits_or_default};
use crate::records::{Reader, as_list};
use crate::{CHUNK, INVALID_RECORD};

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
pub(crate) struct PyDelivery {
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
        Ok(self.settled(settled, &terminal))
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
        Ok(self.settled(settled, &terminal))
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

impl PyDelivery {
    /// Ends the request in flight: what the core settled, as `settle` hands it back.
    fn settled(&mut self, settled: Settled, terminal: &[Terminal]) -> SettledOut {
        self.in_flight.clear();
        let terminal = terminal[..settled.terminal]
            .iter()
            .map(|t| (t.index, t.kind.as_str(), t.gave_up))
            .collect();
        (settled.accepted, terminal)
    }
}
