//! Planning over a whole array the caller owns: in bulk into output arrays, or one event
//! at a time. Both keep O(1) state in a [`Planner`] and resume exactly where they stopped.

use core::mem::MaybeUninit;

use super::{Batch, CHUNK, Event, Packer, Refusal, Stats};
use crate::cost::{Measure, measure_within};
use crate::limits::Limits;
use crate::output::Slots;

/// Plans one input array, across as many calls as its caller likes.
///
/// The state is a few words: the limits, the next input index, the input's length, the
/// open batch and the counters. Pass the same input to every call: the first call fixes
/// its length, and a later call with another length writes nothing and returns
/// [`Status::InputChanged`] (a planner reused on a new array would otherwise skip its
/// first records). [`Planner::reset`] starts over, for another input. Bulk
/// ([`Planner::plan`]) and cursor ([`Planner::next_event`]) calls can be mixed.
#[derive(Clone, Copy, Debug)]
pub struct Planner {
    packer: Packer,
    next: usize,
    /// The input's length, fixed by the first call; `usize::MAX` before it.
    len: usize,
}

/// How a bulk call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Status {
    /// The whole input is planned and every batch written. Further calls write nothing.
    Done,
    /// The batch array is full and another batch is ready: call again to go on.
    BatchesFull,
    /// The refusal array is full and another record is refused: call again to go on.
    RefusalsFull,
    /// The record at [`Planner::position`] cannot be read (a binding's record with a NULL
    /// pointer, say): what came before it is written, and a call that reaches it again
    /// stops there again. Never for this crate's own record types.
    Unreadable,
    /// The input's length differs from the first call's: nothing was written and nothing
    /// changed. Pass the same input to every call, or [`Planner::reset`] the planner to
    /// plan another.
    InputChanged,
}

/// What one bulk call wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Progress {
    /// Why the call returned.
    pub status: Status,
    /// Batches written at the front of the batch array.
    pub batches: usize,
    /// Refusals written at the front of the refusal array.
    pub refusals: usize,
}

impl Planner {
    /// A planner at the start of an input.
    pub const fn new(limits: Limits) -> Planner {
        Planner {
            packer: Packer::new(limits),
            next: 0,
            len: usize::MAX,
        }
    }

    /// Starts over, with the same limits, for a new input: as [`Planner::new`].
    pub const fn reset(&mut self) {
        *self = Planner::new(*self.packer.limits());
    }

    /// Whether `len` is the length of the input this planner plans; the first call fixes
    /// it.
    fn same_input(&mut self, len: usize) -> bool {
        if self.len == usize::MAX {
            self.len = len;
        }
        self.len == len
    }

    /// The length of the input this planner plans, fixed by its first call; `None`
    /// before it (and after [`Planner::reset`]).
    pub const fn input_len(&self) -> Option<usize> {
        if self.len == usize::MAX {
            None
        } else {
            Some(self.len)
        }
    }

    /// The limits in force.
    pub const fn limits(&self) -> &Limits {
        self.packer.limits()
    }

    /// Counters so far.
    pub const fn stats(&self) -> &Stats {
        self.packer.stats()
    }

    /// The index of the next input record to be read: how far planning got.
    pub const fn position(&self) -> usize {
        self.next
    }

    /// The most input records one [`Planner::plan`] call with these capacities reads,
    /// counted from [`Planner::position`]: every batch it writes holds at most
    /// `max_records`, the batch left open as many, each refusal one record, and it looks
    /// ahead by one record and by one chunk of the fast path. A binding that must check
    /// the caller's records before the core reads them (the C ABI) checks this many.
    pub const fn reach(&self, batches: usize, refusals: usize) -> usize {
        let per_batch = self.packer.limits().max_records() as usize;
        batches
            .saturating_add(1)
            .saturating_mul(per_batch)
            .saturating_add(refusals)
            .saturating_add(1 + CHUNK)
    }

    /// The most input records one [`Planner::next_event`] call reads, counted from
    /// [`Planner::position`]: [`Planner::reach`] with no batch and one refusal.
    pub const fn event_reach(&self) -> usize {
        self.reach(0, 1)
    }

    /// Plans as much of `input` as the output arrays hold.
    ///
    /// Writes batches and refusals in input order at the front of `batches` and
    /// `refusals` and says how many. When an array fills, the status says which, and the
    /// next call (with the same input and fresh or drained arrays) resumes exactly there:
    /// the plan is the same whatever the capacities, as long as each is at least 1.
    ///
    /// Worst case for one call to finish: `input.len()` refusals, and one batch per
    /// accepted record (so `input.len()` batches; with only small records,
    /// `input.len().div_ceil(max_records)` suffices).
    ///
    /// ```
    /// use kinesis_batcher::{Batch, Limits, Planner, Record, Refusal, Status};
    ///
    /// let big = [0u8; 2 * 1024 * 1024];
    /// let records = [
    ///     Record::new(b"one", b"k1"),
    ///     Record::new(&big, b"k2"), // above the 1 MiB record cap
    ///     Record::new(b"three", b"k3"),
    /// ];
    /// let mut batches = [Batch::default(); 4];
    /// let mut refusals = [Refusal::default(); 4];
    /// let mut planner = Planner::new(Limits::KDS);
    /// let progress = planner.plan(&records, &mut batches, &mut refusals);
    /// assert_eq!(progress.status, Status::Done);
    /// assert_eq!(refusals[0].index, 1);
    /// // The refused record closes the batch: each range is a request to send as it is.
    /// assert_eq!((progress.batches, batches[0].range(), batches[1].range()), (2, 0..1, 2..3));
    ///
    /// // The range form: one request, spanning the refused record, which is skipped.
    /// let mut planner = Planner::new(Limits::KDS.spanning_refusals(true));
    /// let progress = planner.plan(&records, &mut batches, &mut refusals);
    /// assert_eq!((progress.batches, batches[0].range(), batches[0].refused()), (1, 0..3, 1));
    /// ```
    pub fn plan<M: Measure>(
        &mut self,
        input: &[M],
        batches: &mut [Batch],
        refusals: &mut [Refusal],
    ) -> Progress {
        self.plan_into(input, batches, refusals)
    }

    /// [`Planner::plan`] into arrays whose memory need not be initialised (the C ABI's,
    /// which may hold any bytes): the entries counted in the [`Progress`] are written,
    /// the others are left as they were.
    pub fn plan_uninit<M: Measure>(
        &mut self,
        input: &[M],
        batches: &mut [MaybeUninit<Batch>],
        refusals: &mut [MaybeUninit<Refusal>],
    ) -> Progress {
        self.plan_into(input, batches, refusals)
    }

    fn plan_into<M: Measure, B: Slots<Batch> + ?Sized, R: Slots<Refusal> + ?Sized>(
        &mut self,
        input: &[M],
        batches: &mut B,
        refusals: &mut R,
    ) -> Progress {
        if !self.same_input(input.len()) {
            return Progress {
                status: Status::InputChanged,
                batches: 0,
                refusals: 0,
            };
        }
        // Work on a copy held in registers: through `self`, every record would store the
        // open batch to memory and load it back, a loop-carried store-to-load round trip.
        let mut packer = self.packer;
        let limits = *packer.limits();
        let mut written = Progress {
            status: Status::Done,
            batches: 0,
            refusals: 0,
        };
        let mut index = self.next;
        let mut single_until = index;
        while let Some(record) = input.get(index) {
            if fast_forward(&mut packer, input, &mut index, &mut single_until) {
                continue;
            }
            if !record.readable() {
                written.status = Status::Unreadable;
                break;
            }
            match measure_within(record, &limits) {
                Ok(size) => {
                    if !packer.fits(size) {
                        if written.batches == batches.capacity() {
                            written.status = Status::BatchesFull;
                            break;
                        }
                        if let Some(batch) = packer.close() {
                            batches.put(written.batches, batch);
                            written.batches += 1;
                        }
                    }
                    packer.add(index, size);
                }
                Err(reason) => {
                    if !refusals.try_put(written.refusals, Refusal { index, reason }) {
                        written.status = Status::RefusalsFull;
                        break;
                    }
                    written.refusals += 1;
                    packer.refuse(reason);
                }
            }
            index += 1;
        }
        self.next = index;
        if written.status == Status::Done && packer.open().is_some() {
            if written.batches == batches.capacity() {
                written.status = Status::BatchesFull;
            } else if let Some(batch) = packer.close() {
                batches.put(written.batches, batch);
                written.batches += 1;
            }
        }
        self.packer = packer;
        written
    }

    /// The next event of the plan: a closed batch or a refused record, in the order the
    /// plan decides them; `None` once the whole input is planned, and (changing nothing)
    /// when `input`'s length differs from the first call's (see [`Status::InputChanged`]).
    pub fn next_event<M: Measure>(&mut self, input: &[M]) -> Option<Event> {
        if !self.same_input(input.len()) {
            return None;
        }
        // Local copies, for the reason given in `plan`.
        let mut packer = self.packer;
        let limits = *packer.limits();
        let mut index = self.next;
        let mut single_until = index;
        let event = loop {
            let Some(record) = input.get(index) else {
                break packer.close().map(Event::Batch);
            };
            if fast_forward(&mut packer, input, &mut index, &mut single_until) {
                continue;
            }
            let this = index;
            index += 1;
            match measure_within(record, &limits) {
                Ok(size) => {
                    let closed = if packer.fits(size) {
                        None
                    } else {
                        packer.close()
                    };
                    packer.add(this, size);
                    if let Some(batch) = closed {
                        break Some(Event::Batch(batch));
                    }
                }
                Err(reason) => {
                    packer.refuse(reason);
                    break Some(Event::Refused(Refusal {
                        index: this,
                        reason,
                    }));
                }
            }
        };
        self.packer = packer;
        self.next = index;
        event
    }
}

/// The plan of an input as an iterator of [`Event`]s: the cursor style, for Rust.
///
/// ```
/// use kinesis_batcher::{plan, Event, Limits, Reason, Record};
///
/// let records = [
///     Record::new(b"a", b"key"),
///     Record::new(b"b", b""), // empty key
///     Record::new(b"c", b"key"),
/// ];
/// let events: Vec<Event> = plan(&records, Limits::KDS).collect();
/// assert!(matches!(events[0], Event::Refused(r) if r.index == 1 && r.reason == Reason::KeyEmpty));
/// assert!(matches!(events[1], Event::Batch(b) if b.range() == (0..1)));
/// assert!(matches!(events[2], Event::Batch(b) if b.range() == (2..3)));
/// assert_eq!(events.len(), 3);
/// ```
#[derive(Clone, Debug)]
pub struct Plan<'a, M> {
    planner: Planner,
    input: &'a [M],
}

impl<'a, M: Measure> Plan<'a, M> {
    /// The plan of `input` under `limits`, computed lazily as it is iterated.
    pub const fn new(input: &'a [M], limits: Limits) -> Plan<'a, M> {
        Plan {
            planner: Planner::new(limits),
            input,
        }
    }

    /// Counters so far.
    pub const fn stats(&self) -> &Stats {
        self.planner.stats()
    }
}

impl<M: Measure> Iterator for Plan<'_, M> {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        self.planner.next_event(self.input)
    }
}

impl<M: Measure> core::iter::FusedIterator for Plan<'_, M> {}

/// The plan of `input` under `limits`, as an iterator of [`Event`]s.
pub const fn plan<M: Measure>(input: &[M], limits: Limits) -> Plan<'_, M> {
    Plan::new(input, limits)
}

/// The fast path of both styles: adds the next [`CHUNK`] records whole when they are all
/// accepted and all fit the open batch, and says so. When they do not, the records up to
/// `single_until` (which hold a refusal or the end of the open batch) are left to the
/// one-at-a-time path, which decides exactly.
#[inline(always)]
fn fast_forward<M: Measure>(
    packer: &mut Packer,
    input: &[M],
    index: &mut usize,
    single_until: &mut usize,
) -> bool {
    if *index < *single_until {
        return false;
    }
    if let Some(chunk) = input.get(*index..*index + CHUNK) {
        if packer.add_chunk(chunk, *index) {
            *index += CHUNK;
            return true;
        }
    }
    *single_until = *index + CHUNK;
    false
}
