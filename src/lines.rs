//! Newline-delimited input: log files, NDJSON dumps, another program's output.
//!
//! Three pieces, each streaming across chunks of the caller's buffer without copying:
//!
//! * [`Lines`] splits at `\n` (a `\r` before it is dropped; empty lines are skipped unless
//!   asked otherwise) and reports each line with its number and byte offset;
//! * [`LinePacker`] joins consecutive lines into records up to the record cap, for
//!   Firehose and for consumers that split lines themselves;
//! * [`LinePlanner`] splits (or packs) and plans in the same pass, with a constant
//!   partition key, into bulk outputs with the resume protocol of [`crate::Planner`].
//!
//! For a key per line, drive [`Lines`] and push each line into an
//! [`Accumulator`](crate::Accumulator) with its key: one pass, same plan.
//!
//! # The streaming protocol
//!
//! Every call takes `input` (the bytes not yet consumed, then whatever the caller read
//! since) and `eof` (no more bytes will come) and says how many bytes of `input` it
//! consumed. The caller drops those, appends what it reads next, and calls again. A line
//! is only reported once its `\n` (or the end of input) is in the buffer, so a buffer of
//! `max_record_bytes + 2` bytes always makes progress, for all three. A line longer
//! than the record cap is reported as soon as that is certain, with the bytes seen so
//! far, and the rest of it is skipped as it arrives: memory stays bounded whatever the
//! input.

use core::mem::MaybeUninit;

use memchr::memchr;

use crate::cost::{Measure, Reason, Record};
use crate::limits::Limits;
use crate::output::Slots;
use crate::plan::{Batch, Packer, Refusal, Stats};

/// One line (or, from a [`LinePacker`], a run of consecutive lines).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Line<'b> {
    /// The line without its terminator, borrowed from the caller's input. For a line over
    /// the length limit, only the part seen so far (see [`Line::is_whole`]).
    pub bytes: &'b [u8],
    /// Its length in bytes: `bytes.len()`, or for a line over the limit, at least that.
    pub len: u64,
    /// Its 1-based line number in the whole stream (empty lines count).
    pub number: u64,
    /// The number of its last line: the same as `number` but for a packed run.
    pub last_number: u64,
    /// Byte offset of its first byte in the whole stream.
    pub offset: u64,
}

impl Line<'_> {
    /// Whether `bytes` holds the whole line. A line over the limit is reported before its
    /// end arrives, and is always refused as too large.
    pub const fn is_whole(&self) -> bool {
        self.len == self.bytes.len() as u64
    }
}

/// What a streaming call found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LineStep<'b> {
    /// A line (or a packed run of lines).
    Line(Line<'b>),
    /// The input ends inside a line: call again with more bytes.
    NeedMore,
    /// `eof` was set and every line has been reported.
    End,
}

/// Anything that yields lines from a stream with the protocol above: [`Lines`] and
/// [`LinePacker`].
pub trait LineSource: Copy {
    /// The next line from `input`, and how many bytes of `input` are consumed.
    fn next_line<'b>(&mut self, input: &'b [u8], eof: bool) -> (LineStep<'b>, usize);

    /// Starts over at the beginning of a new stream, with the same settings.
    fn reset(&mut self);
}

/// Splits a stream at `\n`, one line per call.
///
/// ```
/// use kinesis_batcher::lines::{LineStep, Lines};
/// use kinesis_batcher::Limits;
///
/// let mut lines = Lines::new(&Limits::KDS);
/// let mut input: &[u8] = b"first\r\n\nsecond\nthi";
/// let mut seen = Vec::new();
/// loop {
///     let (step, consumed) = lines.next_line(input, false);
///     input = &input[consumed..];
///     match step {
///         LineStep::Line(line) => seen.push((line.number, line.bytes.to_vec())),
///         LineStep::NeedMore | LineStep::End => break,
///     }
/// }
/// assert_eq!(seen, [(1, b"first".to_vec()), (3, b"second".to_vec())]);
/// assert_eq!(input, b"thi"); // carried into the next chunk
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lines {
    max_len: u64,
    skip_empty: bool,
    number: u64,
    offset: u64,
    skipping: bool,
}

impl Lines {
    /// A splitter for records under `limits`: a line longer than the record cap is
    /// reported (to be refused) without waiting for its end.
    pub const fn new(limits: &Limits) -> Lines {
        Lines {
            max_len: limits.max_record_bytes() as u64,
            skip_empty: true,
            number: 0,
            offset: 0,
            skipping: false,
        }
    }

    /// Starts over at the beginning of a new stream (line 1, offset 0), with the same
    /// settings.
    pub const fn reset(&mut self) {
        self.number = 0;
        self.offset = 0;
        self.skipping = false;
    }

    /// The same splitter, reporting empty lines too (as records with no data).
    #[must_use]
    pub const fn keep_empty(self) -> Lines {
        Lines {
            skip_empty: false,
            ..self
        }
    }

    /// Bytes consumed so far: the stream offset of the next input's first byte.
    pub const fn offset(&self) -> u64 {
        self.offset
    }

    /// Lines started so far, empty ones included.
    pub const fn lines_seen(&self) -> u64 {
        self.number
    }

    /// The next line of `input`, and how many bytes of `input` are consumed (the line,
    /// its terminator, and any empty lines skipped before it).
    pub fn next_line<'b>(&mut self, input: &'b [u8], eof: bool) -> (LineStep<'b>, usize) {
        let mut pos = 0;
        loop {
            let rest = &input[pos..];
            if self.skipping {
                // The tail of a line already reported as over the limit.
                match memchr(b'\n', rest) {
                    Some(i) => {
                        pos += i + 1;
                        self.skipping = false;
                        continue;
                    }
                    None => return self.finish(input.len(), eof),
                }
            }
            let offset = self.offset + pos as u64;
            match memchr(b'\n', rest) {
                Some(i) => {
                    pos += i + 1;
                    self.number += 1;
                    let bytes = match &rest[..i] {
                        [line @ .., b'\r'] => line,
                        line => line,
                    };
                    if bytes.is_empty() && self.skip_empty {
                        continue;
                    }
                    return self.found(bytes, bytes.len() as u64, offset, pos);
                }
                // The last line, with no terminator: taken as it is.
                None if eof && !rest.is_empty() => {
                    self.number += 1;
                    return self.found(rest, rest.len() as u64, offset, input.len());
                }
                // Over the limit even if a "\r\n" follows: report it now, skip the rest.
                None if rest.len() as u64 > self.max_len + 1 => {
                    self.number += 1;
                    self.skipping = true;
                    return self.found(rest, rest.len() as u64 + 1, offset, input.len());
                }
                None => return self.finish(pos, eof),
            }
        }
    }

    fn found<'b>(
        &mut self,
        bytes: &'b [u8],
        len: u64,
        offset: u64,
        consumed: usize,
    ) -> (LineStep<'b>, usize) {
        self.offset += consumed as u64;
        let line = Line {
            bytes,
            len,
            number: self.number,
            last_number: self.number,
            offset,
        };
        (LineStep::Line(line), consumed)
    }

    fn finish(&mut self, consumed: usize, eof: bool) -> (LineStep<'static>, usize) {
        self.offset += consumed as u64;
        (
            if eof {
                LineStep::End
            } else {
                LineStep::NeedMore
            },
            consumed,
        )
    }
}

impl LineSource for Lines {
    #[inline]
    fn next_line<'b>(&mut self, input: &'b [u8], eof: bool) -> (LineStep<'b>, usize) {
        Lines::next_line(self, input, eof)
    }

    fn reset(&mut self) {
        Lines::reset(self);
    }
}

/// Joins consecutive lines into records of at most `max_len` bytes.
///
/// A packed record is the caller's own bytes from the first line's start to the last
/// line's end: the terminators between lines stay as they are in the input (`\n`, or
/// `\r\n`), and so do empty lines between them. A line that alone is over `max_len` is
/// reported on its own (and is refused downstream). Consumption lags behind reading: the
/// bytes of the record being built are not consumed until it is reported.
///
/// ```
/// use kinesis_batcher::lines::{LinePacker, LineStep};
/// use kinesis_batcher::Limits;
///
/// let limits = Limits::new(500, 100, 10)?.without_partition_keys();
/// let mut packer = LinePacker::new(&limits, 0);
/// let mut input: &[u8] = b"aaa\nbbb\nccc\ndd";
/// let mut records = Vec::new();
/// while let (LineStep::Line(record), consumed) = packer.next_line(input, true) {
///     records.push(record.bytes.to_vec());
///     input = &input[consumed..];
/// }
/// assert_eq!(records, [b"aaa\nbbb".to_vec(), b"ccc\ndd".to_vec()]);
/// # Ok::<(), kinesis_batcher::LimitsError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LinePacker {
    lines: Lines,
    max_len: u64,
    /// Stream offset of the caller's `input[0]`.
    base: u64,
    /// The record being built: (offset, len, first line number, last line number).
    open: Option<(u64, u64, u64, u64)>,
}

impl LinePacker {
    /// A packer for records under `limits` that will carry a partition key of
    /// `key_len` bytes (0 when the limits have no keys), so that every packed record plus
    /// its key fits the record cap.
    pub const fn new(limits: &Limits, key_len: u32) -> LinePacker {
        let cap = limits.max_record_bytes() as u64;
        let key = if limits.partition_keys() {
            key_len as u64
        } else {
            0
        };
        let max_len = cap.saturating_sub(key);
        LinePacker {
            lines: Lines {
                max_len,
                ..Lines::new(limits)
            },
            max_len,
            base: 0,
            open: None,
        }
    }

    /// Starts over at the beginning of a new stream, with the same settings.
    pub const fn reset(&mut self) {
        self.lines.reset();
        self.base = 0;
        self.open = None;
    }

    /// Lines started so far, empty ones included.
    pub const fn lines_seen(&self) -> u64 {
        self.lines.lines_seen()
    }

    /// The next packed record of `input`, and how many bytes of `input` are consumed.
    pub fn next_line<'b>(&mut self, input: &'b [u8], eof: bool) -> (LineStep<'b>, usize) {
        loop {
            let read = (self.lines.offset() - self.base) as usize;
            // Bytes already read must be passed again (the protocol); an input shorter
            // than that breaks it, and gets no line rather than a panic.
            let Some(unread) = input.get(read..) else {
                return (LineStep::NeedMore, 0);
            };
            let before = self.lines;
            let (step, _) = self.lines.next_line(unread, eof);
            match step {
                LineStep::Line(line) => {
                    let end = line.offset + line.len;
                    match self.open {
                        Some((offset, _, first, _))
                            if line.is_whole() && end - offset <= self.max_len =>
                        {
                            self.open = Some((offset, end - offset, first, line.number));
                        }
                        Some(_) => {
                            // Does not fit: report the open record, read this line again.
                            self.lines = before;
                            return self.emit(input);
                        }
                        None if line.is_whole() && line.len <= self.max_len => {
                            self.open = Some((line.offset, line.len, line.number, line.number));
                        }
                        None => {
                            // Over the limit on its own: report it as it is.
                            let consumed = (self.lines.offset() - self.base) as usize;
                            self.base += consumed as u64;
                            return (LineStep::Line(line), consumed);
                        }
                    }
                }
                LineStep::NeedMore => {
                    // Every line still to come ends at the input's last byte but one or
                    // later (a '\r' there may be its terminator), so once that is past the
                    // cap from the open record's start, no line can join it: report it
                    // now rather than keep its bytes waiting for the next line.
                    if let Some((offset, ..)) = self.open {
                        if self.base + input.len() as u64 - offset > self.max_len + 1 {
                            return self.emit(input);
                        }
                    }
                    let keep_from = self.open.map_or(self.lines.offset(), |open| open.0);
                    let consumed = (keep_from - self.base) as usize;
                    self.base = keep_from;
                    return (LineStep::NeedMore, consumed);
                }
                LineStep::End => {
                    if self.open.is_some() {
                        return self.emit(input);
                    }
                    let consumed = (self.lines.offset() - self.base) as usize;
                    self.base += consumed as u64;
                    return (LineStep::End, consumed);
                }
            }
        }
    }

    fn emit<'b>(&mut self, input: &'b [u8]) -> (LineStep<'b>, usize) {
        let Some((offset, len, number, last_number)) = self.open else {
            return (LineStep::NeedMore, 0);
        };
        let start = (offset - self.base) as usize;
        let Some(bytes) = input.get(start..start + len as usize) else {
            return (LineStep::NeedMore, 0); // The protocol was broken, as above.
        };
        self.open = None;
        let line = Line {
            bytes,
            len,
            number,
            last_number,
            offset,
        };
        let consumed = (self.lines.offset() - self.base) as usize;
        self.base += consumed as u64;
        (LineStep::Line(line), consumed)
    }
}

impl LineSource for LinePacker {
    #[inline]
    fn next_line<'b>(&mut self, input: &'b [u8], eof: bool) -> (LineStep<'b>, usize) {
        LinePacker::next_line(self, input, eof)
    }

    fn reset(&mut self) {
        LinePacker::reset(self);
    }
}

/// A batch of line records: the batch (record indices, counting records from 0 in
/// stream order) and where its lines lie in the stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct LineBatch {
    /// Record indices, count and bytes, as for any input.
    pub batch: Batch,
    /// Stream offset of the first record's first byte.
    pub offset: u64,
    /// Stream offset one past the last record's last byte (its terminator excluded).
    pub end_offset: u64,
    /// 1-based line number of the first record.
    pub first_line: u64,
    /// 1-based line number of the last record's last line.
    pub last_line: u64,
}

/// A refused line record: its record index and reason, and where it is in the stream.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[repr(C)]
pub struct LineRefusal {
    /// Record index and reason, as for any input.
    pub refusal: Refusal,
    /// 1-based line number (of the first line, for a packed record).
    pub line: u64,
    /// Stream offset of its first byte.
    pub offset: u64,
}

/// How a [`LinePlanner::plan`] call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LineStatus {
    /// `eof` was set and everything is planned and written.
    Done,
    /// The input ends inside a line: drop `consumed` bytes, append more, call again.
    NeedMore,
    /// The batch array is full: call again (with `input[consumed..]`) to go on.
    BatchesFull,
    /// The refusal array is full: call again (with `input[consumed..]`) to go on.
    RefusalsFull,
}

/// What one [`LinePlanner::plan`] call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LineProgress {
    /// Why the call returned.
    pub status: LineStatus,
    /// Bytes of `input` consumed: the next call's input starts after them.
    pub consumed: usize,
    /// Batches written at the front of the batch array.
    pub batches: usize,
    /// Refusals written at the front of the refusal array.
    pub refusals: usize,
}

/// Splits (or packs) lines and plans them in the same pass, every line with one
/// partition key.
///
/// Batches are written once they close, which can be after the bytes of their first
/// lines were consumed: a caller that needs a batch's bytes (to build the request) keeps
/// its buffer from [`LinePlanner::keep_from`] on. One that does not (counting, planning
/// ahead) just drops what is consumed.
///
/// ```
/// use kinesis_batcher::lines::{LineBatch, LinePlanner, LineRefusal, LineStatus};
/// use kinesis_batcher::Limits;
///
/// let limits = Limits::new(2, 1000, 100)?; // two records per request
/// let mut planner = LinePlanner::new(limits, b"logs").unwrap();
/// let mut batches = [LineBatch::default(); 4];
/// let mut refusals = [LineRefusal::default(); 4];
/// let input = b"one\ntwo\nthree\n";
/// let p = planner.plan(input, true, &mut batches, &mut refusals);
/// assert_eq!((p.status, p.consumed, p.batches), (LineStatus::Done, input.len(), 2));
/// assert_eq!((batches[0].first_line, batches[0].last_line), (1, 2));
/// assert_eq!(&input[batches[1].offset as usize..batches[1].end_offset as usize], b"three");
/// # Ok::<(), kinesis_batcher::LimitsError>(())
/// ```
#[derive(Clone, Copy, Debug)]
pub struct LinePlanner<S = Lines> {
    source: S,
    packer: Packer,
    key_len: u32,
    records: usize,
    /// Where the open batch starts and ends: (offset, end offset, first line, last line).
    open: (u64, u64, u64, u64),
}

impl LinePlanner<Lines> {
    /// A planner for one record per line, each with the partition key `key` (ignored
    /// when `limits` have no keys). An invalid key is refused here, once, rather than
    /// on every line.
    pub fn new(limits: Limits, key: &[u8]) -> Result<Self, Reason> {
        LinePlanner::with_source(limits, key, Lines::new(&limits))
    }
}

impl LinePlanner<LinePacker> {
    /// A planner for records that each pack as many consecutive lines as fit the record
    /// cap together with `key`.
    pub fn packing(limits: Limits, key: &[u8]) -> Result<Self, Reason> {
        let key_len = u32::try_from(key.len()).unwrap_or(u32::MAX);
        LinePlanner::with_source(limits, key, LinePacker::new(&limits, key_len))
    }
}

impl<S: LineSource> LinePlanner<S> {
    /// A planner over any [`LineSource`], each record with the partition key `key`. Build
    /// the source for the same limits and key, or lines it cuts short for a lower limit
    /// are refused as too large.
    pub fn with_source(limits: Limits, key: &[u8], source: S) -> Result<Self, Reason> {
        // The key is checked as a record with no data would be: whatever fails here
        // would fail on every line.
        let key_len = Record::new(&[], key).measure(&limits)?;
        Ok(LinePlanner {
            source,
            packer: Packer::new(limits),
            key_len,
            records: 0,
            open: (0, 0, 0, 0),
        })
    }

    /// The limits in force.
    pub const fn limits(&self) -> &Limits {
        self.packer.limits()
    }

    /// Starts over at the beginning of a new stream, with the same limits, key and
    /// source settings. The open batch, if any, is forgotten.
    pub fn reset(&mut self) {
        self.source.reset();
        self.packer = Packer::new(*self.packer.limits());
        self.records = 0;
        self.open = (0, 0, 0, 0);
    }

    /// Counters so far.
    pub const fn stats(&self) -> &Stats {
        self.packer.stats()
    }

    /// Stream offset of the open batch's first byte, if a batch is open: the bytes a
    /// caller must keep to build that batch's request once it is written.
    pub fn keep_from(&self) -> Option<u64> {
        self.packer.open().map(|_| self.open.0)
    }

    /// Plans as many lines of `input` as the output arrays hold. See [`LineStatus`] for
    /// what to do next; the plan is the same whatever the chunking and the capacities.
    pub fn plan(
        &mut self,
        input: &[u8],
        eof: bool,
        batches: &mut [LineBatch],
        refusals: &mut [LineRefusal],
    ) -> LineProgress {
        self.plan_into(input, eof, batches, refusals)
    }

    /// [`LinePlanner::plan`] into arrays whose memory need not be initialised (the C
    /// ABI's): the entries counted in the [`LineProgress`] are written, the others are
    /// left as they were.
    pub fn plan_uninit(
        &mut self,
        input: &[u8],
        eof: bool,
        batches: &mut [MaybeUninit<LineBatch>],
        refusals: &mut [MaybeUninit<LineRefusal>],
    ) -> LineProgress {
        self.plan_into(input, eof, batches, refusals)
    }

    fn plan_into<B: Slots<LineBatch> + ?Sized, R: Slots<LineRefusal> + ?Sized>(
        &mut self,
        input: &[u8],
        eof: bool,
        batches: &mut B,
        refusals: &mut R,
    ) -> LineProgress {
        let limits = *self.packer.limits();
        let cap = u64::from(limits.max_record_bytes());
        let mut done = LineProgress {
            status: LineStatus::Done,
            consumed: 0,
            batches: 0,
            refusals: 0,
        };
        loop {
            let before = self.source;
            // A source never reports consuming more than it was given; one that did
            // would get an empty input here, not a panic.
            let rest = input.get(done.consumed..).unwrap_or_default();
            let (step, consumed) = self.source.next_line(rest, eof);
            let line = match step {
                LineStep::Line(line) => line,
                LineStep::NeedMore => {
                    done.consumed = (done.consumed + consumed).min(input.len());
                    done.status = LineStatus::NeedMore;
                    return done;
                }
                LineStep::End => {
                    done.consumed = (done.consumed + consumed).min(input.len());
                    if self.packer.open().is_some() {
                        if done.batches == batches.capacity() {
                            done.status = LineStatus::BatchesFull;
                        } else {
                            batches.put(done.batches, self.close());
                            done.batches += 1;
                        }
                    }
                    return done;
                }
            };
            let index = self.records;
            let size = line.len.saturating_add(u64::from(self.key_len));
            // A line reported before its end is over the source's limit: always refused,
            // whatever its `len` (a lower bound) says.
            if line.is_whole() && size <= cap {
                let size = size as u32; // Lossless: at most the record cap, a u32.
                if !self.packer.fits(size) {
                    if done.batches == batches.capacity() {
                        self.source = before;
                        done.status = LineStatus::BatchesFull;
                        return done;
                    }
                    batches.put(done.batches, self.close());
                    done.batches += 1;
                }
                if self.packer.open().is_none() {
                    self.open.0 = line.offset;
                    self.open.2 = line.number;
                }
                self.open.1 = line.offset + line.len;
                self.open.3 = line.last_number;
                self.packer.add(index, size);
            } else {
                let refusal = LineRefusal {
                    refusal: Refusal {
                        index,
                        reason: Reason::RecordTooLarge,
                    },
                    line: line.number,
                    offset: line.offset,
                };
                if !refusals.try_put(done.refusals, refusal) {
                    self.source = before;
                    done.status = LineStatus::RefusalsFull;
                    return done;
                }
                done.refusals += 1;
                self.packer.refuse(Reason::RecordTooLarge);
            }
            self.records += 1;
            done.consumed = (done.consumed + consumed).min(input.len());
        }
    }

    fn close(&mut self) -> LineBatch {
        let (offset, end_offset, first_line, last_line) = self.open;
        LineBatch {
            batch: self.packer.close().unwrap_or_default(),
            offset,
            end_offset,
            first_line,
            last_line,
        }
    }
}
