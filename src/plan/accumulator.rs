//! Planning one record at a time, for agents that receive records as a stream and keep
//! them in a buffer of their own until a request is full.

use super::{Batch, Packer, Stats};
use crate::cost::{Measure, Reason, measure_within};
use crate::limits::Limits;

/// What became of a pushed record.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Push {
    /// The record joined the open batch.
    Added,
    /// The record did not fit (or a refusal closed the open batch, see
    /// [`Limits::spanning_refusals`]), so the open batch is complete: send the records
    /// pushed before this one (the batch given). This record has been taken as the first
    /// of the next batch.
    SendFirst(Batch),
    /// The record can never be sent. It is counted, not kept: the next push is index+1.
    Refused(Reason),
}

/// Receives records one at a time and says when a request is complete.
///
/// Records are numbered by push order from 0; a [`Batch`] range uses those numbers.
/// Pushing a whole array and then calling [`Accumulator::flush`] gives exactly the plan
/// of [`crate::Planner`] on that array.
///
/// ```
/// use kinesis_batcher::{Accumulator, Limits, Push, Reason, Record};
///
/// let limits = Limits::new(2, 1024, 1024)?; // at most 2 records per request
/// let mut acc = Accumulator::new(limits);
/// assert_eq!(acc.push(&Record::new(b"a", b"k")), Push::Added);
/// assert_eq!(acc.push(&Record::new(b"b", b"")), Push::Refused(Reason::KeyEmpty));
/// // The refusal closed the batch of "a": it is handed out with the next record.
/// let Push::SendFirst(batch) = acc.push(&Record::new(b"c", b"k")) else { panic!() };
/// assert_eq!((batch.range(), batch.records), (0..1, 1));
/// assert_eq!(acc.push(&Record::new(b"d", b"k")), Push::Added);
/// let Push::SendFirst(batch) = acc.push(&Record::new(b"e", b"k")) else { panic!() };
/// assert_eq!(batch.range(), 2..4); // the cap of 2 records
/// let last = acc.flush().unwrap();
/// assert_eq!(last.range(), 4..5);
/// # Ok::<(), kinesis_batcher::LimitsError>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Accumulator {
    packer: Packer,
    next: usize,
}

impl Accumulator {
    /// An empty accumulator.
    pub const fn new(limits: Limits) -> Accumulator {
        Accumulator {
            packer: Packer::new(limits),
            next: 0,
        }
    }

    /// Starts over, with the same limits: as [`Accumulator::new`]. The open batch, if any,
    /// is forgotten (flush it first to keep it).
    pub const fn reset(&mut self) {
        *self = Accumulator::new(*self.packer.limits());
    }

    /// The limits in force.
    pub const fn limits(&self) -> &Limits {
        self.packer.limits()
    }

    /// Counters so far (the open batch is not counted until it closes).
    pub const fn stats(&self) -> &Stats {
        self.packer.stats()
    }

    /// The batch being filled: the records pushed since the last batch was handed out.
    pub const fn pending(&self) -> Option<&Batch> {
        self.packer.open()
    }

    /// How many records have been pushed: the index the next push gets.
    pub const fn pushed(&self) -> usize {
        self.next
    }

    /// Measures `record` and adds it, or says to send the open batch first, or refuses it.
    #[inline]
    pub fn push<M: Measure + ?Sized>(&mut self, record: &M) -> Push {
        let index = self.next;
        self.next += 1;
        // A copy: a reference into `self` handed to a `measure` that is not inlined would
        // keep the accumulator in memory, in the caller's loop too once `push` is inlined.
        let limits = *self.packer.limits();
        match measure_within(record, &limits) {
            Ok(size) => {
                let closed = if self.packer.fits(size) {
                    None
                } else {
                    self.packer.close()
                };
                self.packer.add(index, size);
                closed.map_or(Push::Added, Push::SendFirst)
            }
            Err(reason) => {
                self.packer.refuse(reason);
                Push::Refused(reason)
            }
        }
    }

    /// Takes the next index for a record the caller refused itself (a line that is not
    /// JSON, say) without measuring it: it joins no batch and closes the open one, as a
    /// refused record does (with [`Limits::spanning_refusals`], a batch whose range spans
    /// it counts it in [`Batch::refused`]). [`Stats`] (the core's reasons) does not count
    /// it. Returns the index taken.
    pub fn skip(&mut self) -> usize {
        let index = self.next;
        self.next += 1;
        self.packer.seal();
        index
    }

    /// Closes the open batch and returns it, if it holds a record: at the end of the
    /// input, or early (on a timer, say) at the cost of a fuller plan.
    pub fn flush(&mut self) -> Option<Batch> {
        self.packer.close()
    }
}
