//! Newline-delimited input: `Lines`, `LinePacker` and `LinePlanner` at their boundaries,
//! and against naive models for any chunking of the stream.
//!
//! The models (section "Naive models") use nothing but `split` on `\n`, slices and the
//! record-array [`Planner`]: they share no code with `kinesis_batcher::lines`.
//!
//! Every streaming driver here follows the module's protocol literally: the caller keeps
//! the unconsumed bytes in a `Vec`, drops `consumed` bytes after each call, and appends the
//! next chunk when told `NeedMore` (or, for an eager caller, after every call). Chunks are
//! cut at random sizes (zero included); `eof` comes either with the last chunk or on a call
//! of its own after it, so every line is also seen without `eof`. Every call is checked
//! against the protocol: reported bytes are the caller's own at the stated offset, `End`
//! and `Done` come only at `eof` and stay, a batch lies in the bytes kept from
//! `keep_from()`. The section "Bounded buffers" checks the promise of progress with a
//! fixed-size buffer.
//!
//! Properties run 10,000 cases each (more with `PROPTEST_CASES`); failures are not
//! persisted to a regressions file, proptest prints the minimal input instead.
//!

use kinesis_batcher::lines::{
    Line, LineBatch, LinePacker, LinePlanner, LineRefusal, LineSource, LineStatus, LineStep, Lines,
};
use kinesis_batcher::{
    Batch, Event, KeyUnit, Limits, Planner, Reason, Record, Refusal, Stats, Status, plan,
};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::select;

// ---------------------------------------------------------------------------------------
// Owned results
// ---------------------------------------------------------------------------------------

/// A reported line (or packed run), owned so it outlives the caller's buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Got {
    bytes: Vec<u8>,
    len: u64,
    number: u64,
    last_number: u64,
    offset: u64,
}

impl Got {
    fn of(line: &Line<'_>) -> Got {
        assert_eq!(line.is_whole(), line.len == line.bytes.len() as u64);
        Got {
            bytes: line.bytes.to_vec(),
            len: line.len,
            number: line.number,
            last_number: line.last_number,
            offset: line.offset,
        }
    }

    fn is_whole(&self) -> bool {
        self.len == self.bytes.len() as u64
    }
}

/// A whole line as the tests spell them: (number, offset, bytes).
fn whole(number: u64, offset: u64, bytes: &[u8]) -> Got {
    Got {
        bytes: bytes.to_vec(),
        len: bytes.len() as u64,
        number,
        last_number: number,
        offset,
    }
}

/// A packed run of lines `number..=last_number`.
fn run(number: u64, last_number: u64, offset: u64, bytes: &[u8]) -> Got {
    Got {
        last_number,
        ..whole(number, offset, bytes)
    }
}

fn line_of(step: LineStep<'_>) -> Got {
    match step {
        LineStep::Line(line) => Got::of(&line),
        other => panic!("expected a line, got {other:?}"),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Line,
    NeedMore,
    End,
}

// ---------------------------------------------------------------------------------------
// Streaming drivers
// ---------------------------------------------------------------------------------------

/// How a driver cuts its stream: chunk sizes, cycled; whether `eof` is set on the call
/// that gets the last chunk (`true`) or on a call of its own after it (`false`); whether
/// a chunk is appended after every call (`eager`) or only when more is needed.
#[derive(Clone, Copy, Debug)]
struct Chunking<'a> {
    sizes: &'a [usize],
    eof_with_last: bool,
    eager: bool,
}

impl<'a> From<&'a [usize]> for Chunking<'a> {
    fn from(sizes: &'a [usize]) -> Self {
        Chunking {
            sizes,
            eof_with_last: false,
            eager: false,
        }
    }
}

impl<'a, const N: usize> From<&'a [usize; N]> for Chunking<'a> {
    fn from(sizes: &'a [usize; N]) -> Self {
        Chunking::from(&sizes[..])
    }
}

/// Cuts a stream into chunks as a [`Chunking`] says.
struct Feed<'s> {
    stream: &'s [u8],
    chunks: Vec<usize>,
    eof_with_last: bool,
    eager: bool,
    next: usize,
    fed: usize,
    eof: bool,
}

impl<'s> Feed<'s> {
    fn new(stream: &'s [u8], chunking: Chunking<'_>) -> Feed<'s> {
        let mut chunks = chunking.sizes.to_vec();
        if chunks.iter().all(|&size| size == 0) {
            chunks.push(1);
        }
        Feed {
            stream,
            chunks,
            eof_with_last: chunking.eof_with_last,
            eager: chunking.eager,
            next: 0,
            fed: 0,
            eof: false,
        }
    }

    /// Appends the next chunk to `buf` (possibly nothing), or declares the end.
    fn append(&mut self, buf: &mut Vec<u8>) {
        assert!(!self.eof, "asked for more after eof");
        if self.fed == self.stream.len() {
            self.eof = true;
            return;
        }
        let size = self.chunks[self.next % self.chunks.len()];
        self.next += 1;
        let end = (self.fed + size).min(self.stream.len());
        buf.extend_from_slice(&self.stream[self.fed..end]);
        self.fed = end;
        self.eof = self.eof_with_last && end == self.stream.len();
    }

    /// After a call that did not ask for more: an eager caller appends anyway.
    fn append_eagerly(&mut self, buf: &mut Vec<u8>) {
        if self.eager && !self.eof {
            self.append(buf);
        }
    }

    /// A bound on the calls a driver may make, so a stuck source fails instead of hanging.
    fn call_budget(&self) -> usize {
        8 * (self.stream.len() + 4) * (self.chunks.len() + 1) + 64
    }
}

/// Drives `source` over `stream` cut into `chunks`, checking the protocol on every call,
/// and returns everything it reported. `hook` sees the source, what the call returned,
/// the stream offset of the buffer's first byte and the buffer, after the drop.
fn drive<'c, S: LineSource>(
    mut source: S,
    stream: &[u8],
    chunks: impl Into<Chunking<'c>>,
    mut hook: impl FnMut(&S, Kind, u64, &[u8]),
) -> Vec<Got> {
    let mut feed = Feed::new(stream, chunks.into());
    let mut buf: Vec<u8> = Vec::new();
    let mut base = 0u64;
    let mut out = Vec::new();
    let mut calls = 0;
    loop {
        calls += 1;
        assert!(calls <= feed.call_budget(), "no progress: {calls} calls");
        let eof = feed.eof;
        let (step, consumed) = source.next_line(&buf, eof);
        assert!(
            consumed <= buf.len(),
            "consumed {consumed} of {}",
            buf.len()
        );
        let kind = match step {
            LineStep::Line(line) => {
                let got = Got::of(&line);
                // Whatever is reported is the caller's own bytes, where it says it is.
                let at = got.offset as usize;
                assert_eq!(got.bytes, &stream[at..at + got.bytes.len()], "{got:?}");
                assert!(got.len >= got.bytes.len() as u64);
                assert!(got.number >= 1 && got.last_number >= got.number);
                out.push(got);
                Kind::Line
            }
            LineStep::NeedMore => {
                assert!(!eof, "NeedMore at eof");
                Kind::NeedMore
            }
            LineStep::End => {
                assert!(eof, "End before eof");
                Kind::End
            }
        };
        buf.drain(..consumed);
        base += consumed as u64;
        hook(&source, kind, base, &buf);
        match kind {
            Kind::Line => feed.append_eagerly(&mut buf),
            Kind::NeedMore => feed.append(&mut buf),
            Kind::End => break,
        }
    }
    assert!(buf.is_empty(), "End left {} bytes", buf.len());
    assert_eq!(base, stream.len() as u64);
    // The end is sticky.
    assert_eq!(source.next_line(&[], true), (LineStep::End, 0));
    out
}

/// [`drive`] for a [`Lines`], with its own checks: `offset()` is the consumed position,
/// and a `NeedMore` leaves only the start of an unterminated line in the buffer.
fn drive_lines<'c>(lines: Lines, stream: &[u8], chunks: impl Into<Chunking<'c>>) -> Vec<Got> {
    drive(lines, stream, chunks, |lines, kind, base, buf| {
        assert_eq!(lines.offset(), base);
        if kind == Kind::NeedMore {
            assert!(!buf.contains(&b'\n'), "NeedMore with a whole line left");
        }
    })
}

/// The whole stream in one buffer with `eof` set, called until `End`.
fn one_shot<S: LineSource>(mut source: S, stream: &[u8]) -> Vec<Got> {
    let mut pos = 0;
    let mut out = Vec::new();
    for _ in 0..=stream.len() + 1 {
        let (step, consumed) = source.next_line(&stream[pos..], true);
        pos += consumed;
        match step {
            LineStep::Line(line) => out.push(Got::of(&line)),
            LineStep::End => {
                assert_eq!(pos, stream.len());
                // The end is sticky.
                assert_eq!(source.next_line(&[], true), (LineStep::End, 0));
                return out;
            }
            LineStep::NeedMore => panic!("NeedMore at eof"),
        }
    }
    panic!("no End after {} calls", stream.len() + 2);
}

/// What a [`LinePlanner`] wrote over a whole stream.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Planned {
    batches: Vec<LineBatch>,
    refusals: Vec<LineRefusal>,
    stats: Stats,
}

/// Drives `planner` over `stream` cut into `chunks`, with output capacities cycled from
/// `caps` (each at least 1), checking the protocol and `keep_from` on every call.
fn drive_planner<'c, S: LineSource>(
    mut planner: LinePlanner<S>,
    stream: &[u8],
    chunks: impl Into<Chunking<'c>>,
    caps: &[(usize, usize)],
) -> (Planned, Vec<LineStatus>) {
    let mut feed = Feed::new(stream, chunks.into());
    let mut buf: Vec<u8> = Vec::new();
    let mut base = 0u64;
    let mut out = Planned {
        batches: Vec::new(),
        refusals: Vec::new(),
        stats: Stats::default(),
    };
    let mut statuses = Vec::new();
    let mut keep_from: Option<u64> = None;
    let mut calls = 0;
    loop {
        calls += 1;
        assert!(calls <= feed.call_budget(), "no progress: {calls} calls");
        let (batch_cap, refusal_cap) = if caps.is_empty() {
            (stream.len() + 1, stream.len() + 1)
        } else {
            caps[calls % caps.len()]
        };
        let mut batches = vec![LineBatch::default(); batch_cap];
        let mut refusals = vec![LineRefusal::default(); refusal_cap];
        let eof = feed.eof;
        let progress = planner.plan(&buf, eof, &mut batches, &mut refusals);
        assert!(progress.consumed <= buf.len());
        assert!(progress.batches <= batch_cap && progress.refusals <= refusal_cap);
        for (i, batch) in batches[..progress.batches].iter().enumerate() {
            // A batch lies in bytes the caller still holds if it kept from `keep_from`.
            match keep_from {
                Some(from) if i == 0 => assert_eq!(batch.offset, from, "keep_from"),
                _ => assert!(batch.offset >= base, "{batch:?} starts before {base}"),
            }
            assert!(batch.end_offset <= base + buf.len() as u64);
            assert!(batch.offset <= batch.end_offset);
        }
        match progress.status {
            LineStatus::Done => assert!(eof),
            LineStatus::NeedMore => assert!(!eof),
            LineStatus::BatchesFull => assert_eq!(progress.batches, batch_cap),
            LineStatus::RefusalsFull => assert_eq!(progress.refusals, refusal_cap),
        }
        statuses.push(progress.status);
        out.batches.extend_from_slice(&batches[..progress.batches]);
        out.refusals
            .extend_from_slice(&refusals[..progress.refusals]);
        buf.drain(..progress.consumed);
        base += progress.consumed as u64;
        keep_from = planner.keep_from();
        if let Some(from) = keep_from {
            assert!(
                from < base,
                "keep_from {from} is not in consumed bytes (< {base})"
            );
        }
        match progress.status {
            LineStatus::Done => break,
            LineStatus::NeedMore => feed.append(&mut buf),
            LineStatus::BatchesFull | LineStatus::RefusalsFull => feed.append_eagerly(&mut buf),
        }
    }
    assert!(buf.is_empty(), "Done left {} bytes", buf.len());
    assert_eq!(base, stream.len() as u64);
    assert_eq!(keep_from, None, "a batch is still open after Done");
    // Done is sticky.
    let mut batches = [LineBatch::default(); 1];
    let mut refusals = [LineRefusal::default(); 1];
    let again = planner.plan(&[], true, &mut batches, &mut refusals);
    assert_eq!(
        (again.status, again.consumed, again.batches, again.refusals),
        (LineStatus::Done, 0, 0, 0)
    );
    out.stats = *planner.stats();
    (out, statuses)
}

/// One call on the whole stream with `eof` and room for everything.
fn plan_once<S: LineSource>(mut planner: LinePlanner<S>, stream: &[u8]) -> Planned {
    let mut batches = vec![LineBatch::default(); stream.len() + 1];
    let mut refusals = vec![LineRefusal::default(); stream.len() + 1];
    let progress = planner.plan(stream, true, &mut batches, &mut refusals);
    assert_eq!(progress.status, LineStatus::Done);
    assert_eq!(progress.consumed, stream.len());
    batches.truncate(progress.batches);
    refusals.truncate(progress.refusals);
    Planned {
        batches,
        refusals,
        stats: *planner.stats(),
    }
}

// ---------------------------------------------------------------------------------------
// Naive models
// ---------------------------------------------------------------------------------------

/// A line (or packed run) of the model: where it lies, and its bytes.
#[derive(Clone, Debug)]
struct NLine<'s> {
    bytes: &'s [u8],
    number: u64,
    last_number: u64,
    offset: u64,
}

/// Splits at `\n`; a `\r` before a `\n` is dropped, the last piece (no `\n` after it) is
/// kept as it is (a final "abc\r" at eof stays "abc\r", as documented), and is no line at
/// all when empty (after a trailing `\n`). Empty lines are dropped unless `keep_empty`.
fn naive_lines(stream: &[u8], keep_empty: bool) -> Vec<NLine<'_>> {
    let pieces: Vec<&[u8]> = stream.split(|b| *b == b'\n').collect();
    let last = pieces.len() - 1;
    let mut out = Vec::new();
    let mut offset = 0u64;
    for (i, piece) in pieces.iter().enumerate() {
        let bytes = if i < last {
            piece.strip_suffix(b"\r").unwrap_or(piece)
        } else {
            piece
        };
        let is_line = if i < last {
            keep_empty || !bytes.is_empty()
        } else {
            !bytes.is_empty()
        };
        if is_line {
            out.push(NLine {
                bytes,
                number: i as u64 + 1,
                last_number: i as u64 + 1,
                offset,
            });
        }
        offset += piece.len() as u64 + 1;
    }
    out
}

/// Greedy packing of the non-empty lines: a run grows while its contiguous span (first
/// line's start to last line's end) is at most `max_len`; a line over `max_len` is a
/// record of its own.
fn naive_pack(stream: &[u8], max_len: u64) -> Vec<NLine<'_>> {
    let span = |first: &NLine<'_>, last: &NLine<'_>| {
        let (start, end) = (
            first.offset as usize,
            last.offset as usize + last.bytes.len(),
        );
        NLine {
            bytes: &stream[start..end],
            number: first.number,
            last_number: last.number,
            offset: first.offset,
        }
    };
    let lines = naive_lines(stream, false);
    let mut out = Vec::new();
    let mut open: Option<(usize, usize)> = None; // (first, last) line indices
    for (i, line) in lines.iter().enumerate() {
        let end = line.offset + line.bytes.len() as u64;
        if let Some((first, last)) = open {
            if end - lines[first].offset <= max_len {
                open = Some((first, i));
                continue;
            }
            out.push(span(&lines[first], &lines[last]));
            open = None;
        }
        if line.bytes.len() as u64 <= max_len {
            open = Some((i, i));
        } else {
            out.push(span(line, line));
        }
    }
    if let Some((first, last)) = open {
        out.push(span(&lines[first], &lines[last]));
    }
    out
}

/// The model's packing cap: the record cap less the key, when the limits have keys.
fn pack_cap(limits: &Limits, key: &[u8]) -> u64 {
    let key_len = if limits.partition_keys() {
        key.len() as u64
    } else {
        0
    };
    u64::from(limits.max_record_bytes()).saturating_sub(key_len)
}

/// Plans the model's records as a record array with the library's [`Planner`], and
/// places the batches and refusals in the stream by the model's offsets.
fn model_plan(records: &[NLine<'_>], limits: Limits, key: &[u8]) -> Planned {
    let views: Vec<Record<'_>> = records.iter().map(|r| Record::new(r.bytes, key)).collect();
    let mut batches = vec![Batch::default(); views.len() + 1];
    let mut refusals = vec![Refusal::default(); views.len() + 1];
    let mut planner = Planner::new(limits);
    let progress = planner.plan(&views, &mut batches, &mut refusals);
    assert_eq!(progress.status, Status::Done);
    // The cursor style agrees (it is the same engine; a cheap guard on the model itself).
    let (mut cursor_batches, mut cursor_refusals) = (Vec::new(), Vec::new());
    for event in plan(&views, limits) {
        match event {
            Event::Batch(batch) => cursor_batches.push(batch),
            Event::Refused(refusal) => cursor_refusals.push(refusal),
        }
    }
    assert_eq!(cursor_batches, batches[..progress.batches]);
    assert_eq!(cursor_refusals, refusals[..progress.refusals]);
    let batches = batches[..progress.batches]
        .iter()
        .map(|&batch| {
            let (first, last) = (&records[batch.start], &records[batch.end - 1]);
            LineBatch {
                batch,
                offset: first.offset,
                end_offset: last.offset + last.bytes.len() as u64,
                first_line: first.number,
                last_line: last.last_number,
            }
        })
        .collect();
    let refusals = refusals[..progress.refusals]
        .iter()
        .map(|&refusal| LineRefusal {
            refusal,
            line: records[refusal.index].number,
            offset: records[refusal.index].offset,
        })
        .collect();
    Planned {
        batches,
        refusals,
        stats: *planner.stats(),
    }
}

/// Splits a packed record back into its lines, by the model's rules.
fn unpack(bytes: &[u8]) -> Vec<Vec<u8>> {
    naive_lines(bytes, false)
        .into_iter()
        .map(|line| line.bytes.to_vec())
        .collect()
}

/// Compares a chunked run of a source with its one-shot run. They report the same lines
/// (numbers and offsets); a whole line is identical; a line reported before its end
/// arrived is one the one-shot run found over `max_len`, seen far enough to be sure.
fn assert_same_lines(chunked: &[Got], once: &[Got], max_len: u64) {
    let places = |lines: &[Got]| -> Vec<(u64, u64, u64)> {
        lines
            .iter()
            .map(|l| (l.number, l.last_number, l.offset))
            .collect()
    };
    assert_eq!(places(chunked), places(once));
    for (got, want) in chunked.iter().zip(once) {
        assert!(want.is_whole());
        if got.is_whole() {
            assert_eq!(got, want);
        } else {
            assert!(
                want.len > max_len,
                "{got:?} reported early but {want:?} fits"
            );
            assert!(
                got.bytes.len() as u64 > max_len + 1,
                "{got:?} reported too early"
            );
            assert_eq!(got.number, got.last_number);
        }
    }
}

// ---------------------------------------------------------------------------------------
// Shorthands for the boundary tests
// ---------------------------------------------------------------------------------------

fn limits(max_records: u32, max_request_bytes: u32, max_record_bytes: u32) -> Limits {
    Limits::new(max_records, max_request_bytes, max_record_bytes).unwrap()
}

/// Limits whose batches span refused lines: the tests that show one request around a
/// refused line.
fn spanning(max_records: u32, max_request_bytes: u32, max_record_bytes: u32) -> Limits {
    limits(max_records, max_request_bytes, max_record_bytes).spanning_refusals(true)
}

fn line_batch(
    (start, end, records, bytes): (usize, usize, u32, u32),
    (offset, end_offset): (u64, u64),
    (first_line, last_line): (u64, u64),
) -> LineBatch {
    LineBatch {
        batch: Batch {
            start,
            end,
            records,
            bytes,
        },
        offset,
        end_offset,
        first_line,
        last_line,
    }
}

fn too_large(index: usize, line: u64, offset: u64) -> LineRefusal {
    LineRefusal {
        refusal: Refusal {
            index,
            reason: Reason::RecordTooLarge,
        },
        line,
        offset,
    }
}

/// Every chunking of a stream in 1-, 2-, 3- and 7-byte chunks and in one piece, with
/// `eof` on a call of its own and with the last chunk, appending lazily and eagerly.
fn chunkings() -> impl Iterator<Item = Chunking<'static>> {
    const SIZES: [&[usize]; 5] = [&[1], &[2], &[3], &[7], &[usize::MAX]];
    SIZES.into_iter().flat_map(|sizes| {
        [(false, false), (true, false), (false, true), (true, true)].map(
            |(eof_with_last, eager)| Chunking {
                sizes,
                eof_with_last,
                eager,
            },
        )
    })
}

/// `LinePlanner` over `stream`, checked the same for every chunking and capacities 1.
fn plan_all_ways<S: LineSource>(planner: LinePlanner<S>, stream: &[u8]) -> Planned {
    let once = plan_once(planner, stream);
    for chunks in chunkings() {
        for caps in [&[][..], &[(1, 1)], &[(1, 4), (4, 1)]] {
            let (chunked, _) = drive_planner(planner, stream, chunks, caps);
            assert_eq!(chunked, once, "chunks {chunks:?}, caps {caps:?}");
        }
    }
    once
}

/// `Lines` (or a packer) over `stream`, checked the same for every chunking: whole lines
/// are identical; an oversize line may come early (checked by [`assert_same_lines`]).
fn lines_all_ways(lines: Lines, stream: &[u8], max_len: u64) -> Vec<Got> {
    let once = one_shot(lines, stream);
    for chunks in chunkings() {
        assert_same_lines(&drive_lines(lines, stream, chunks), &once, max_len);
    }
    once
}

fn packed_all_ways(packer: LinePacker, stream: &[u8], max_len: u64) -> Vec<Got> {
    let once = one_shot(packer, stream);
    for chunks in chunkings() {
        let chunked = drive(packer, stream, chunks, |_, _, _, _| {});
        assert_same_lines(&chunked, &once, max_len);
    }
    once
}

// ---------------------------------------------------------------------------------------
// Boundaries: no trailing newline
// ---------------------------------------------------------------------------------------

#[test]
fn last_line_without_newline_waits_for_eof_then_is_reported() {
    let mut lines = Lines::new(&Limits::KDS);
    let (step, consumed) = lines.next_line(b"one\n\n\ntwo", false);
    assert_eq!((line_of(step), consumed), (whole(1, 0, b"one"), 4));
    // Not before eof: the empty lines are consumed, the unterminated line is not.
    let (step, consumed) = lines.next_line(b"\n\ntwo", false);
    assert_eq!((step, consumed), (LineStep::NeedMore, 2));
    assert_eq!((lines.offset(), lines.lines_seen()), (6, 3));
    // Calling again with nothing new changes nothing.
    assert_eq!(lines.next_line(b"two", false), (LineStep::NeedMore, 0));
    let (step, consumed) = lines.next_line(b"two", true);
    assert_eq!((line_of(step), consumed), (whole(4, 6, b"two"), 3));
    assert_eq!(lines.next_line(b"", true), (LineStep::End, 0));
    assert_eq!((lines.offset(), lines.lines_seen()), (9, 4));

    let stream = b"one\n\n\ntwo";
    let want = [whole(1, 0, b"one"), whole(4, 6, b"two")];
    assert_eq!(
        lines_all_ways(Lines::new(&Limits::KDS), stream, 1 << 20),
        want
    );
}

#[test]
fn last_line_without_newline_through_the_planners() {
    let limits = limits(500, 1000, 100);
    let mut planner = LinePlanner::new(limits, b"k").unwrap();
    let mut batches = [LineBatch::default(); 2];
    let mut refusals = [LineRefusal::default(); 2];
    let p = planner.plan(b"one\ntwo", false, &mut batches, &mut refusals);
    assert_eq!(
        (p.status, p.consumed, p.batches, p.refusals),
        (LineStatus::NeedMore, 4, 0, 0)
    );
    assert_eq!(planner.keep_from(), Some(0));
    let p = planner.plan(b"two", true, &mut batches, &mut refusals);
    assert_eq!(
        (p.status, p.consumed, p.batches, p.refusals),
        (LineStatus::Done, 3, 1, 0)
    );
    assert_eq!(batches[0], line_batch((0, 2, 2, 8), (0, 7), (1, 2)));
    assert_eq!(planner.keep_from(), None);
    assert_eq!(
        plan_all_ways(LinePlanner::new(limits, b"k").unwrap(), b"one\ntwo").batches,
        [batches[0]]
    );

    // The packer keeps the whole open record until eof closes it.
    let mut packer = LinePacker::new(&limits, 1);
    assert_eq!(packer.next_line(b"aaa\nbb", false), (LineStep::NeedMore, 0));
    let (step, consumed) = packer.next_line(b"aaa\nbb", true);
    assert_eq!((line_of(step), consumed), (run(1, 2, 0, b"aaa\nbb"), 6));
    assert_eq!(packer.next_line(b"", true), (LineStep::End, 0));
    let packed = packed_all_ways(LinePacker::new(&limits, 1), b"aaa\nbb", 99);
    assert_eq!(packed, [run(1, 2, 0, b"aaa\nbb")]);
    let planned = plan_all_ways(LinePlanner::packing(limits, b"k").unwrap(), b"aaa\nbb");
    assert_eq!(planned.batches, [line_batch((0, 1, 1, 7), (0, 6), (1, 2))]);
}

// ---------------------------------------------------------------------------------------
// Boundaries: only newlines, empty input
// ---------------------------------------------------------------------------------------

#[test]
fn only_newlines_and_empty_input() {
    let mut lines = Lines::new(&Limits::KDS);
    assert_eq!(lines.next_line(b"\n\n\n", true), (LineStep::End, 3));
    assert_eq!(lines.lines_seen(), 3);
    assert!(lines_all_ways(Lines::new(&Limits::KDS), b"\n\n\n", 1 << 20).is_empty());

    let kept = lines_all_ways(Lines::new(&Limits::KDS).keep_empty(), b"\n\n\n", 1 << 20);
    assert_eq!(kept, [whole(1, 0, b""), whole(2, 1, b""), whole(3, 2, b"")]);
    let kept = lines_all_ways(Lines::new(&Limits::KDS).keep_empty(), b"\r\n\n", 1 << 20);
    assert_eq!(kept, [whole(1, 0, b""), whole(2, 2, b"")]);

    // Empty input: more is needed until eof, then the end.
    let mut lines = Lines::new(&Limits::KDS);
    assert_eq!(lines.next_line(b"", false), (LineStep::NeedMore, 0));
    assert_eq!(lines.next_line(b"", true), (LineStep::End, 0));
    assert_eq!(lines.lines_seen(), 0);
    assert!(lines_all_ways(Lines::new(&Limits::KDS), b"", 1 << 20).is_empty());

    for stream in [&b""[..], b"\n\n\n", b"\r\n\r\n"] {
        let mut packer = LinePacker::new(&Limits::KDS, 1);
        assert_eq!(
            packer.next_line(stream, true),
            (LineStep::End, stream.len())
        );
        assert!(packed_all_ways(LinePacker::new(&Limits::KDS, 1), stream, 1 << 20).is_empty());

        for planned in [
            plan_all_ways(LinePlanner::new(Limits::KDS, b"k").unwrap(), stream),
            plan_all_ways(LinePlanner::packing(Limits::KDS, b"k").unwrap(), stream),
        ] {
            assert_eq!(
                planned,
                Planned {
                    batches: vec![],
                    refusals: vec![],
                    stats: Stats::default()
                }
            );
        }
    }

    // Empty lines kept: one record each, of the key's size.
    let source = Lines::new(&Limits::KDS).keep_empty();
    let planner = LinePlanner::with_source(Limits::KDS, b"kk", source).unwrap();
    let planned = plan_all_ways(planner, b"\n\n\n");
    assert_eq!(planned.batches, [line_batch((0, 3, 3, 6), (0, 2), (1, 3))]);
}

// ---------------------------------------------------------------------------------------
// Boundaries: carriage returns
// ---------------------------------------------------------------------------------------

#[test]
fn carriage_returns() {
    // "\r\n" is stripped, a lone '\r' inside a line is kept, and a final "abc\r" at eof
    // without '\n' is kept as it is (documented: the last line is taken as it is).
    let stream = b"a\r\nb\rc\r\nabc\r";
    let want = [
        whole(1, 0, b"a"),
        whole(2, 3, b"b\rc"),
        whole(3, 8, b"abc\r"),
    ];
    assert_eq!(
        lines_all_ways(Lines::new(&Limits::KDS), stream, 1 << 20),
        want
    );

    // The kept '\r' counts: "abc\r" is 4 bytes.
    let fits = limits(500, 1000, 4).without_partition_keys();
    let planned = plan_all_ways(LinePlanner::new(fits, b"").unwrap(), stream);
    assert_eq!(planned.batches, [line_batch((0, 3, 3, 8), (0, 12), (1, 3))]);
    let tight = limits(500, 1000, 3).without_partition_keys();
    let planned = plan_all_ways(LinePlanner::new(tight, b"").unwrap(), stream);
    assert_eq!(planned.batches, [line_batch((0, 2, 2, 4), (0, 6), (1, 2))]);
    assert_eq!(planned.refusals, [too_large(2, 3, 8)]);

    // Packed records keep the terminators and empty lines between their lines as they are.
    let stream = b"a\r\nb\rc\r\n\r\nd";
    let packed = packed_all_ways(LinePacker::new(&Limits::KDS, 1), stream, 1 << 20);
    assert_eq!(packed, [run(1, 4, 0, stream)]);
    let planned = plan_all_ways(LinePlanner::packing(Limits::KDS, b"k").unwrap(), stream);
    assert_eq!(
        planned.batches,
        [line_batch((0, 1, 1, 12), (0, 11), (1, 4))]
    );
}

// ---------------------------------------------------------------------------------------
// Boundaries: the record cap
// ---------------------------------------------------------------------------------------

#[test]
fn line_at_the_record_cap_with_the_key() {
    // Cap 10 with a 2-byte key: 8 bytes of line fit, 9 do not.
    let limits = spanning(500, 1000, 10);
    let x8 = [b'x'; 8];
    let y9 = [b'y'; 9];
    let stream = [&b"\n"[..], &x8, b"\n\n", &y9, b"\r\nz\n"].concat();
    // Lines knows nothing of the key: both lines come whole (neither is over 10).
    let want = [whole(2, 1, &x8), whole(4, 11, &y9), whole(5, 22, b"z")];
    assert_eq!(lines_all_ways(Lines::new(&limits), &stream, 10), want);

    let planned = plan_all_ways(LinePlanner::new(limits, b"kk").unwrap(), &stream);
    assert_eq!(planned.refusals, [too_large(1, 4, 11)]);
    assert_eq!(
        planned.batches,
        [line_batch((0, 3, 2, 13), (1, 23), (2, 5))]
    );
    assert_eq!(planned.stats.refused_for(Reason::RecordTooLarge), 1);

    // Without the key (a keyless profile) the same cap takes 10 bytes, not 11.
    let keyless = limits.without_partition_keys();
    let x10 = [b'x'; 10];
    let y11 = [b'y'; 11];
    let stream = [&x10[..], b"\n", &y11, b"\n"].concat();
    let planned = plan_all_ways(LinePlanner::new(keyless, b"kk").unwrap(), &stream);
    assert_eq!(
        planned.batches,
        [line_batch((0, 1, 1, 10), (0, 10), (1, 1))]
    );
    assert_eq!(planned.refusals, [too_large(1, 2, 11)]);
}

#[test]
fn line_at_the_record_cap_through_the_packer() {
    // Cap 10, key 2: records of at most 8 bytes; a 9-byte line is alone and refused.
    let limits = spanning(500, 1000, 10);
    let stream = b"aaa\nbbbb\nccccccccc\ndddddddd\ne";
    let packed = packed_all_ways(LinePacker::new(&limits, 2), stream, 8);
    assert_eq!(
        packed,
        [
            run(1, 2, 0, b"aaa\nbbbb"),
            whole(3, 9, b"ccccccccc"),
            whole(4, 19, b"dddddddd"),
            whole(5, 28, b"e"),
        ]
    );
    let planned = plan_all_ways(LinePlanner::packing(limits, b"kk").unwrap(), stream);
    assert_eq!(planned.refusals, [too_large(1, 3, 9)]);
    assert_eq!(
        planned.batches,
        [line_batch((0, 4, 3, 10 + 10 + 3), (0, 29), (1, 5))]
    );
}

#[test]
fn oversize_line_in_small_chunks_is_reported_early_and_its_tail_skipped() {
    // Cap 4, keyless. Line 2 ("cdefghij", 8 bytes, then "\r\n") is over the cap; line 3
    // is empty; line 4 is "kl" at offset 14.
    let limits = spanning(500, 1000, 4).without_partition_keys();
    let stream = b"ab\ncdefghij\r\n\nkl\n";

    // How many bytes had arrived when each line was reported.
    let mut arrived = Vec::new();
    let got = drive(Lines::new(&limits), stream, &[2], |_, kind, base, buf| {
        if kind == Kind::Line {
            arrived.push(base as usize + buf.len());
        }
    });
    assert_eq!(got.len(), 3);
    assert_eq!(got[0], whole(1, 0, b"ab"));
    let over = &got[1];
    assert_eq!((over.number, over.offset), (2, 3));
    assert!(!over.is_whole(), "{over:?}");
    // Reported as soon as more than cap + 1 bytes of it were seen (2-byte chunks: "c",
    // "cde", "cdefg", "cdefghi"), before its "\r\n".
    assert_eq!(over.bytes, b"cdefghi");
    assert!(over.len > 4);
    assert!(
        arrived[1] < 13,
        "reported after its end arrived: {arrived:?}"
    );
    assert_eq!(got[2], whole(4, 14, b"kl"));
    lines_all_ways(Lines::new(&limits), stream, 4);

    // The same through the planners.
    let planned = plan_all_ways(LinePlanner::new(limits, b"").unwrap(), stream);
    assert_eq!(planned.refusals, [too_large(1, 2, 3)]);
    assert_eq!(planned.batches, [line_batch((0, 3, 2, 4), (0, 16), (1, 4))]);

    let packed = drive(LinePacker::new(&limits, 0), stream, &[2], |_, _, _, _| {});
    assert_eq!(packed[0], whole(1, 0, b"ab"));
    assert_eq!(
        (packed[1].number, packed[1].offset, packed[1].is_whole()),
        (2, 3, false)
    );
    assert_eq!(packed[2], whole(4, 14, b"kl"));
    packed_all_ways(LinePacker::new(&limits, 0), stream, 4);
    let planned = plan_all_ways(LinePlanner::packing(limits, b"").unwrap(), stream);
    assert_eq!(planned.refusals, [too_large(1, 2, 3)]);
    assert_eq!(planned.batches, [line_batch((0, 3, 2, 4), (0, 16), (1, 4))]);
}

// ---------------------------------------------------------------------------------------
// Boundaries: chunk boundaries, line numbers and offsets
// ---------------------------------------------------------------------------------------

#[test]
fn chunk_boundary_inside_a_line_and_inside_crlf() {
    let mut lines = Lines::new(&Limits::KDS);
    assert_eq!(lines.next_line(b"ab", false), (LineStep::NeedMore, 0));
    assert_eq!(lines.next_line(b"abc\r", false), (LineStep::NeedMore, 0));
    let (step, consumed) = lines.next_line(b"abc\r\nde\n", false);
    assert_eq!((line_of(step), consumed), (whole(1, 0, b"abc"), 5));
    let (step, consumed) = lines.next_line(b"de\n", false);
    assert_eq!((line_of(step), consumed), (whole(2, 5, b"de"), 3));

    // A line exactly at the cap, its '\r' at the end of a chunk: not taken for oversize.
    let cap3 = spanning(500, 1000, 3).without_partition_keys();
    let mut lines = Lines::new(&cap3);
    assert_eq!(lines.next_line(b"abc\r", false), (LineStep::NeedMore, 0));
    let (step, consumed) = lines.next_line(b"abc\r\n", false);
    assert_eq!((line_of(step), consumed), (whole(1, 0, b"abc"), 5));
    // One byte more is certain to be over, '\n' or not: reported at once.
    let mut lines = Lines::new(&cap3);
    let (step, consumed) = lines.next_line(b"abcd\r", false);
    let over = line_of(step);
    assert_eq!(
        (over.number, over.offset, over.bytes.as_slice()),
        (1, 0, &b"abcd\r"[..])
    );
    assert!(!over.is_whole() && consumed == 5);

    let stream = b"abc\r\nabcd\r\nab\r\n";
    for chunks in [&[4usize, 1][..], &[4, 2], &[5], &[1]] {
        let got = drive_lines(Lines::new(&cap3), stream, chunks);
        assert_eq!(got[0], whole(1, 0, b"abc"), "chunks {chunks:?}");
        assert_eq!((got[1].number, got[1].offset), (2, 5));
        assert_eq!(got[2], whole(3, 11, b"ab"));
        let (planned, _) = drive_planner(
            LinePlanner::new(cap3, b"").unwrap(),
            stream,
            chunks,
            &[(1, 1)],
        );
        assert_eq!(planned.refusals, [too_large(1, 2, 5)]);
        // One request spanning the refused line 2.
        let spanning = line_batch((0, 3, 2, 5), (0, 13), (1, 3));
        assert_eq!(planned.batches, [spanning]);
        let packed = drive(LinePacker::new(&cap3, 0), stream, chunks, |_, _, _, _| {});
        assert_eq!(packed[0], whole(1, 0, b"abc"));
        assert_eq!(packed[2], whole(3, 11, b"ab"));
    }
}

#[test]
fn line_numbers_count_skipped_empty_lines_and_offsets_are_absolute() {
    // 0:"\n" 1:"\n" 2:"a\n" 4:"\r\n" 6:"\n" 7:"b\n" 9:"\n" 10:"cc"
    let stream = b"\n\na\n\r\n\nb\n\ncc";
    let want = [whole(3, 2, b"a"), whole(6, 7, b"b"), whole(8, 10, b"cc")];
    for chunks in [&[1usize][..], &[2], &[3, 1], &[usize::MAX]] {
        assert_eq!(drive_lines(Lines::new(&Limits::KDS), stream, chunks), want);
    }
    let limits = limits(1, 1000, 100);
    let planned = plan_all_ways(LinePlanner::new(limits, b"k").unwrap(), stream);
    assert_eq!(
        planned.batches,
        [
            line_batch((0, 1, 1, 2), (2, 3), (3, 3)),
            line_batch((1, 2, 1, 2), (7, 8), (6, 6)),
            line_batch((2, 3, 1, 3), (10, 12), (8, 8)),
        ]
    );
    let packed = packed_all_ways(LinePacker::new(&limits, 1), stream, 99);
    assert_eq!(packed, [run(3, 8, 2, b"a\n\r\n\nb\n\ncc")]);
}

// ---------------------------------------------------------------------------------------
// Boundaries: LinePlanner
// ---------------------------------------------------------------------------------------

#[test]
fn planner_resumes_after_full_outputs() {
    // Two records per request; lines 3 and 6 are over the cap.
    let limits = limits(2, 1000, 6);
    let stream = b"one\ntwo\nthree!\nfour\nfive\nsix six\nseven";
    let once = plan_once(LinePlanner::new(limits, b"k").unwrap(), stream);
    assert_eq!(once.refusals, [too_large(2, 3, 8), too_large(5, 6, 25)]);
    assert_eq!(
        once.batches,
        [
            line_batch((0, 2, 2, 8), (0, 7), (1, 2)),
            line_batch((3, 5, 2, 10), (15, 24), (4, 5)),
            line_batch((6, 7, 1, 6), (33, 38), (7, 7)),
        ]
    );
    for caps in [[(1, 1)], [(1, 9)], [(9, 1)]] {
        let (resumed, statuses) = drive_planner(
            LinePlanner::new(limits, b"k").unwrap(),
            stream,
            &[usize::MAX],
            &caps,
        );
        assert_eq!(resumed, once, "caps {caps:?}");
        let full = if caps[0].0 == 1 {
            LineStatus::BatchesFull
        } else {
            LineStatus::RefusalsFull
        };
        assert!(statuses.contains(&full), "{statuses:?}");
    }
    // Full in the middle (line "e" waits, unconsumed) and at the very end.
    let mut planner = LinePlanner::new(limits, b"k").unwrap();
    let mut batches = [LineBatch::default(); 1];
    let mut refusals = [LineRefusal::default(); 8];
    let p = planner.plan(b"a\nb\nc\nd\ne", true, &mut batches, &mut refusals);
    assert_eq!(
        (p.status, p.consumed, p.batches),
        (LineStatus::BatchesFull, 8, 1)
    );
    assert_eq!(batches[0], line_batch((0, 2, 2, 4), (0, 3), (1, 2)));
    assert_eq!(planner.keep_from(), Some(4));
    let p = planner.plan(b"e", true, &mut batches, &mut refusals);
    assert_eq!(
        (p.status, p.consumed, p.batches),
        (LineStatus::BatchesFull, 1, 1)
    );
    assert_eq!(batches[0], line_batch((2, 4, 2, 4), (4, 7), (3, 4)));
    assert_eq!(planner.keep_from(), Some(8));
    let p = planner.plan(b"", true, &mut batches, &mut refusals);
    assert_eq!((p.status, p.consumed, p.batches), (LineStatus::Done, 0, 1));
    assert_eq!(batches[0], line_batch((4, 5, 1, 2), (8, 9), (5, 5)));
    assert_eq!(planner.keep_from(), None);
}

#[test]
fn keep_from_is_the_open_batch_start() {
    let limits = limits(2, 1000, 100);
    let mut planner = LinePlanner::new(limits, b"k").unwrap();
    let mut batches = [LineBatch::default(); 4];
    let mut refusals = [LineRefusal::default(); 4];
    assert_eq!(planner.keep_from(), None);
    let p = planner.plan(b"one\ntwo\nth", false, &mut batches, &mut refusals);
    assert_eq!(
        (p.status, p.consumed, p.batches),
        (LineStatus::NeedMore, 8, 0)
    );
    assert_eq!(planner.keep_from(), Some(0));
    let p = planner.plan(b"three\nfour\nfi", false, &mut batches, &mut refusals);
    assert_eq!(
        (p.status, p.consumed, p.batches),
        (LineStatus::NeedMore, 11, 1)
    );
    assert_eq!(batches[0], line_batch((0, 2, 2, 8), (0, 7), (1, 2)));
    assert_eq!(planner.keep_from(), Some(8));
    let p = planner.plan(b"five", true, &mut batches, &mut refusals);
    assert_eq!((p.status, p.consumed, p.batches), (LineStatus::Done, 4, 2));
    assert_eq!(batches[0], line_batch((2, 4, 2, 11), (8, 18), (3, 4)));
    assert_eq!(batches[1], line_batch((4, 5, 1, 5), (19, 23), (5, 5)));
    assert_eq!(planner.keep_from(), None);
}

#[test]
fn invalid_constant_key_is_refused_once() {
    let cases: [(&[u8], Reason); 3] = [
        (b"", Reason::KeyEmpty),
        (b"\xff", Reason::KeyNotUtf8),
        (&[b'k'; 257], Reason::KeyTooLong),
    ];
    for (key, reason) in cases {
        assert_eq!(LinePlanner::new(Limits::KDS, key).err(), Some(reason));
        assert_eq!(LinePlanner::packing(Limits::KDS, key).err(), Some(reason));
        let source = Lines::new(&Limits::KDS);
        assert_eq!(
            LinePlanner::with_source(Limits::KDS, key, source).err(),
            Some(reason)
        );
    }
    // 256 code points is fine, in the default unit; 257 is not; bytes count stricter.
    let e256 = "é".repeat(256);
    assert!(LinePlanner::new(Limits::KDS, e256.as_bytes()).is_ok());
    let utf8 = Limits::KDS.with_key_unit(KeyUnit::Utf8Bytes);
    assert_eq!(
        LinePlanner::new(utf8, e256.as_bytes()).err(),
        Some(Reason::KeyTooLong)
    );
    assert!(LinePlanner::new(Limits::KDS, &[b'k'; 256]).is_ok());
    // A key that alone is over the record cap would refuse every line.
    assert_eq!(
        LinePlanner::new(limits(500, 1000, 4), b"abcde").err(),
        Some(Reason::RecordTooLarge)
    );
    assert!(LinePlanner::new(limits(500, 1000, 4), b"abcd").is_ok());
}

#[test]
fn keyless_limits_ignore_the_key() {
    for key in [&b""[..], b"\xff", &[b'k'; 300]] {
        assert!(LinePlanner::new(Limits::FIREHOSE, key).is_ok());
        assert!(LinePlanner::packing(Limits::FIREHOSE, key).is_ok());
    }
    // Firehose: 1,024,000 bytes per record, key or no key.
    let cap = 1_024_000;
    let stream = [
        vec![b'a'; cap],
        b"\n".to_vec(),
        vec![b'b'; cap + 1],
        b"\nc".to_vec(),
    ]
    .concat();
    let planner = LinePlanner::new(Limits::FIREHOSE.spanning_refusals(true), b"\xff").unwrap();
    let once = plan_once(planner, &stream);
    assert_eq!(once.refusals, [too_large(1, 2, cap as u64 + 1)]);
    let end = 2 * cap as u64 + 4;
    assert_eq!(
        once.batches,
        [line_batch((0, 3, 2, cap as u32 + 1), (0, end), (1, 3))]
    );
    let (chunked, _) = drive_planner(
        LinePlanner::new(Limits::FIREHOSE.spanning_refusals(true), b"").unwrap(),
        &stream,
        &[65536, 1, 100_000],
        &[(1, 1)],
    );
    assert_eq!(chunked, once);
    // A packer for keyless limits ignores the key length too.
    let packed = one_shot(LinePacker::new(&Limits::FIREHOSE, 1000), &stream);
    assert_eq!(packed[0].len, cap as u64);
}

// ---------------------------------------------------------------------------------------
// Boundaries: LinePacker
// ---------------------------------------------------------------------------------------

#[test]
fn packer_records_are_contiguous_caller_bytes() {
    // Cap 10, key "k": records of at most 9 bytes.
    let limits = spanning(500, 1000, 10);
    let stream = b"aaa\r\nbbb\n\nccc\ndddddddddd\ne\r\n";
    let packed = packed_all_ways(LinePacker::new(&limits, 1), stream, 9);
    assert_eq!(
        packed,
        [
            run(1, 2, 0, b"aaa\r\nbbb"),
            whole(4, 10, b"ccc"),
            whole(5, 14, b"dddddddddd"),
            whole(6, 25, b"e"),
        ]
    );
    for record in &packed {
        let at = record.offset as usize;
        assert_eq!(record.bytes, &stream[at..at + record.bytes.len()]);
    }
    let planned = plan_all_ways(LinePlanner::packing(limits, b"k").unwrap(), stream);
    assert_eq!(planned.refusals, [too_large(2, 5, 14)]);
    assert_eq!(
        planned.batches,
        [line_batch((0, 4, 3, 9 + 4 + 2), (0, 26), (1, 6))]
    );

    // A record exactly at the cap (with the key), lines never split.
    let stream = b"aaaa\nbbbb\ncc\nd";
    let packed = packed_all_ways(LinePacker::new(&limits, 1), stream, 9);
    assert_eq!(
        packed,
        [run(1, 2, 0, b"aaaa\nbbbb"), run(3, 4, 10, b"cc\nd")]
    );
}

/// `Line::is_whole` documents that a line reported before its end arrived "is always
/// refused as too large", but `LinePlanner` only compares its `len` (a lower bound) with the
/// cap. A source whose own limit is below the planner's (any `LineSource` may be passed to
/// `with_source`) reports such a line with a `len` that fits: the planner accepts the part
/// seen so far as a record, the source skips the rest, and the line is silently cut.
#[test]

fn planner_never_accepts_a_partial_line() {
    let source = Lines::new(&limits(500, 1000, 3).without_partition_keys());
    let planner = LinePlanner::with_source(limits(500, 1000, 100), b"k", source).unwrap();
    // "abcdefgh" is over the source's limit (3) and arrives a byte at a time: it is
    // reported as "abcde" (len 6) before its end, then accepted as a 7-byte record.
    let (planned, _) = drive_planner(planner, b"abcdefgh\n", &[1], &[]);
    assert_eq!(planned.batches, []);
    assert_eq!(planned.refusals, [too_large(0, 1, 0)]);
}

// ---------------------------------------------------------------------------------------
// Bounded buffers: the module's promise of progress
// ---------------------------------------------------------------------------------------

/// A caller with a fixed buffer of `capacity` bytes that reads as much as fits whenever it
/// is told `NeedMore`. `Err` when a call asks for more while the buffer is full: stuck.
fn drive_bounded<S: LineSource>(
    mut source: S,
    stream: &[u8],
    capacity: usize,
) -> Result<Vec<Got>, String> {
    let mut buf: Vec<u8> = Vec::with_capacity(capacity);
    let (mut fed, mut eof) = (0, false);
    let mut out = Vec::new();
    for _ in 0..4 * stream.len() + 8 {
        let (step, consumed) = source.next_line(&buf, eof);
        let kind = match step {
            LineStep::Line(line) => {
                out.push(Got::of(&line));
                Kind::Line
            }
            LineStep::NeedMore => Kind::NeedMore,
            LineStep::End => Kind::End,
        };
        buf.drain(..consumed);
        match kind {
            Kind::Line => {}
            Kind::End => return Ok(out),
            Kind::NeedMore if buf.len() >= capacity => {
                return Err(format!(
                    "stuck: buffer of {capacity} full with \"{}\" at stream offset {}",
                    buf.escape_ascii(),
                    fed - buf.len()
                ));
            }
            Kind::NeedMore => {
                eof = fed == stream.len();
                let end = (fed + capacity - buf.len()).min(stream.len());
                buf.extend_from_slice(&stream[fed..end]);
                fed = end;
            }
        }
    }
    Err("no End".into())
}

/// [`drive_bounded`] for a planner, with one-slot outputs.
fn plan_bounded<S: LineSource>(
    mut planner: LinePlanner<S>,
    stream: &[u8],
    capacity: usize,
) -> Result<Planned, String> {
    let mut buf: Vec<u8> = Vec::with_capacity(capacity);
    let (mut fed, mut eof) = (0, false);
    let mut out = Planned {
        batches: Vec::new(),
        refusals: Vec::new(),
        stats: Stats::default(),
    };
    for _ in 0..8 * stream.len() + 8 {
        let mut batches = [LineBatch::default(); 1];
        let mut refusals = [LineRefusal::default(); 1];
        let p = planner.plan(&buf, eof, &mut batches, &mut refusals);
        out.batches.extend_from_slice(&batches[..p.batches]);
        out.refusals.extend_from_slice(&refusals[..p.refusals]);
        buf.drain(..p.consumed);
        match p.status {
            LineStatus::Done => {
                out.stats = *planner.stats();
                return Ok(out);
            }
            LineStatus::BatchesFull | LineStatus::RefusalsFull => {}
            LineStatus::NeedMore if buf.len() >= capacity => {
                return Err(format!(
                    "stuck: buffer of {capacity} full with \"{}\" at stream offset {}",
                    buf.escape_ascii(),
                    fed - buf.len()
                ));
            }
            LineStatus::NeedMore => {
                eof = fed == stream.len();
                let end = (fed + capacity - buf.len()).min(stream.len());
                buf.extend_from_slice(&stream[fed..end]);
                fed = end;
            }
        }
    }
    Err("no Done".into())
}

#[test]
fn lines_progress_with_a_buffer_of_the_cap_plus_2() {
    // Cap 3: a buffer of 5 bytes. The hardest cases: a line at the cap with "\r\n", one
    // byte over, runs of empty lines.
    let limits = limits(500, 1000, 3).without_partition_keys();
    for stream in [
        &b"abc\r\nxyz\r\n"[..],
        b"abcd\r\nab",
        b"ab\n\n\n\n\n\n\ncd\n",
        b"\r\n\r\n\r\nabc",
        b"abcdefghij\r\nabc\r",
    ] {
        let once = one_shot(Lines::new(&limits), stream);
        let got = drive_bounded(Lines::new(&limits), stream, 5).unwrap();
        assert_same_lines(&got, &once, 3);
        let planner = LinePlanner::new(limits, b"").unwrap();
        assert_eq!(
            plan_bounded(planner, stream, 5),
            Ok(plan_once(planner, stream))
        );
    }
}

/// A `LinePacker` makes progress with a buffer of `max_record_bytes + 2` bytes: an open
/// record is reported as soon as the buffered bytes show that no further line can join it
/// (a next line, or a run of empty lines, reaching past the cap), instead of keeping its
/// bytes while waiting for that line to be whole.
#[test]
fn packer_progresses_with_the_documented_buffer() {
    let limits = limits(500, 1000, 3).without_partition_keys();
    for stream in [&b"abc\r\nxyz\r\n"[..], b"ab\n\n\n\n\n\n\ncd\n"] {
        let once = one_shot(LinePacker::new(&limits, 0), stream);
        let got = drive_bounded(LinePacker::new(&limits, 0), stream, 3 + 2);
        assert_eq!(got, Ok(once));
        let planner = LinePlanner::packing(limits, b"").unwrap();
        let planned = plan_bounded(planner, stream, 3 + 2);
        assert_eq!(planned, Ok(plan_once(planner, stream)));
    }
}

// ---------------------------------------------------------------------------------------
// Properties
// ---------------------------------------------------------------------------------------

fn config() -> ProptestConfig {
    ProptestConfig {
        // Not written next to this file: other people share the tree.
        failure_persistence: None,
        ..ProptestConfig::with_cases(ProptestConfig::default().cases.max(10_000))
    }
}

#[derive(Clone, Debug)]
struct Case {
    limits: Limits,
    key: Vec<u8>,
    keep_empty: bool,
    stream: Vec<u8>,
    chunks: Vec<usize>,
    eof_with_last: bool,
    eager: bool,
    caps: Vec<(usize, usize)>,
}

impl Case {
    /// The packing cap, as the model computes it.
    fn pack_cap(&self) -> u64 {
        pack_cap(&self.limits, &self.key)
    }

    fn chunking(&self) -> Chunking<'_> {
        Chunking {
            sizes: &self.chunks,
            eof_with_last: self.eof_with_last,
            eager: self.eager,
        }
    }

    fn lines(&self) -> Lines {
        let lines = Lines::new(&self.limits);
        if self.keep_empty {
            lines.keep_empty()
        } else {
            lines
        }
    }

    fn packer(&self) -> LinePacker {
        LinePacker::new(&self.limits, self.key.len() as u32)
    }

    fn planner(&self) -> Option<LinePlanner<Lines>> {
        self.checked(LinePlanner::with_source(
            self.limits,
            &self.key,
            self.lines(),
        ))
    }

    fn packing(&self) -> Option<LinePlanner<LinePacker>> {
        self.checked(LinePlanner::packing(self.limits, &self.key))
    }

    /// Keys are valid here, so a planner is refused only for a key over the record cap.
    fn checked<S>(&self, planner: Result<LinePlanner<S>, Reason>) -> Option<LinePlanner<S>> {
        let key_over = self.limits.partition_keys()
            && self.key.len() as u64 > u64::from(self.limits.max_record_bytes());
        match planner {
            Ok(planner) => {
                assert!(!key_over);
                Some(planner)
            }
            Err(reason) => {
                assert!(key_over && reason == Reason::RecordTooLarge, "{reason:?}");
                None
            }
        }
    }
}

/// Streams over "ab\r\n" with occasional long runs of one byte.
fn stream() -> impl Strategy<Value = Vec<u8>> {
    let piece = prop_oneof![
        8 => select(b"ab\r\n".to_vec()).prop_map(|b| vec![b]),
        1 => Just(b"\r\n".to_vec()),
        1 => (select(b"a\n".to_vec()), 0usize..40).prop_map(|(b, n)| vec![b; n]),
    ];
    vec(piece, 0..48).prop_map(|pieces| pieces.concat())
}

fn case() -> impl Strategy<Value = Case> {
    let limits = (1u32..5, 1u32..24, any::<bool>()).prop_flat_map(|(records, cap, keyed)| {
        (cap..=(cap * 6).min(200)).prop_map(move |request| {
            let limits = Limits::new(records, request, cap).unwrap();
            if keyed {
                limits
            } else {
                limits.without_partition_keys()
            }
        })
    });
    let key = prop_oneof![
        4 => select(vec![&b"k"[..], b"kk", b"key", "é".as_bytes()]).prop_map(<[u8]>::to_vec),
        // Only used as keys when the limits have none: ignored.
        1 => select(vec![&b""[..], b"\xff"]).prop_map(<[u8]>::to_vec),
    ];
    let chunks = vec(
        prop_oneof![4 => 1usize..8, 1 => Just(0usize), 1 => 8usize..64],
        1..6,
    );
    let caps = vec((1usize..4, 1usize..3), 0..4);
    let chunks = (chunks, any::<bool>(), any::<bool>());
    (limits, key, any::<bool>(), stream(), chunks, caps).prop_map(
        |(limits, key, keep_empty, stream, (chunks, eof_with_last, eager), caps)| {
            // An invalid key with keyed limits would be refused up front: tested above.
            let key = if limits.partition_keys()
                && std::str::from_utf8(&key).map_or(true, str::is_empty)
            {
                b"k".to_vec()
            } else {
                key
            };
            Case {
                limits,
                key,
                keep_empty,
                stream,
                chunks,
                eof_with_last,
                eager,
                caps,
            }
        },
    )
}

proptest! {
    #![proptest_config(config())]

    /// Property 1: any chunking, any output capacities, give what one call on the whole
    /// buffer gives: the same lines, packed records, batches and refusals.
    #[test]
    fn chunked_streaming_equals_one_shot(case in case()) {
        let cap = u64::from(case.limits.max_record_bytes());
        let once = one_shot(case.lines(), &case.stream);
        assert_same_lines(&drive_lines(case.lines(), &case.stream, case.chunking()), &once, cap);

        let packed_once = one_shot(case.packer(), &case.stream);
        let packed = drive(case.packer(), &case.stream, case.chunking(), |_, _, _, _| {});
        assert_same_lines(&packed, &packed_once, case.pack_cap());

        if let Some(planner) = case.planner() {
            let (chunked, _) = drive_planner(planner, &case.stream, case.chunking(), &case.caps);
            prop_assert_eq!(chunked, plan_once(planner, &case.stream));
        }
        if let Some(planner) = case.packing() {
            let (chunked, _) = drive_planner(planner, &case.stream, case.chunking(), &case.caps);
            prop_assert_eq!(chunked, plan_once(planner, &case.stream));
        }
    }

    /// Property 2: planning the lines equals planning the naively split lines as a record
    /// array, batch for batch and refusal for refusal, placed at the same lines and offsets.
    #[test]
    fn planning_lines_equals_planning_records(case in case()) {
        let lines = naive_lines(&case.stream, case.keep_empty);
        let got = one_shot(case.lines(), &case.stream);
        let want: Vec<Got> = lines.iter().map(|l| whole(l.number, l.offset, l.bytes)).collect();
        prop_assert_eq!(got, want);

        if let Some(planner) = case.planner() {
            let model = model_plan(&lines, case.limits, &case.key);
            prop_assert_eq!(&plan_once(planner, &case.stream), &model);
            let (chunked, _) = drive_planner(planner, &case.stream, case.chunking(), &case.caps);
            prop_assert_eq!(&chunked, &model);
        }
        if let Some(planner) = case.packing() {
            let records = naive_pack(&case.stream, case.pack_cap());
            let model = model_plan(&records, case.limits, &case.key);
            prop_assert_eq!(&plan_once(planner, &case.stream), &model);
            let (chunked, _) = drive_planner(planner, &case.stream, case.chunking(), &case.caps);
            prop_assert_eq!(&chunked, &model);
        }
    }

    /// Property 3: the packer is the naive greedy packer, for any chunking, and its records
    /// hold every line once, in order, each record within the cap unless it is one line.
    #[test]
    fn packing_equals_the_naive_packer(case in case()) {
        let max_len = case.pack_cap();
        let model: Vec<Got> = naive_pack(&case.stream, max_len)
            .iter()
            .map(|r| run(r.number, r.last_number, r.offset, r.bytes))
            .collect();
        let once = one_shot(case.packer(), &case.stream);
        prop_assert_eq!(&once, &model);
        let chunked = drive(case.packer(), &case.stream, case.chunking(), |_, _, _, _| {});
        assert_same_lines(&chunked, &model, max_len);

        let mut unpacked = Vec::new();
        for record in &once {
            let at = record.offset as usize;
            prop_assert_eq!(&record.bytes[..], &case.stream[at..at + record.bytes.len()]);
            prop_assert!(record.len <= max_len || record.number == record.last_number);
            let lines = unpack(&record.bytes);
            prop_assert!(!lines.is_empty());
            unpacked.extend(lines);
        }
        let original: Vec<Vec<u8>> = naive_lines(&case.stream, false)
            .iter()
            .map(|l| l.bytes.to_vec())
            .collect();
        prop_assert_eq!(unpacked, original);
    }

    /// Property 4: a caller with a fixed buffer of `max_record_bytes + 2` bytes always
    /// makes progress with `Lines` and `LinePlanner`, and gets the one-shot results.
    #[test]
    fn lines_progress_with_a_bounded_buffer(case in case()) {
        let cap = case.limits.max_record_bytes() as usize;
        let once = one_shot(case.lines(), &case.stream);
        let got = drive_bounded(case.lines(), &case.stream, cap + 2);
        prop_assert!(got.is_ok(), "{:?}", got);
        assert_same_lines(&got.unwrap(), &once, cap as u64);
        if let Some(planner) = case.planner() {
            let planned = plan_bounded(planner, &case.stream, cap + 2);
            prop_assert_eq!(planned, Ok(plan_once(planner, &case.stream)));
        }
    }

    /// Property 5: the same for `LinePacker`, with the same `max_record_bytes + 2`.
    #[test]
    fn packer_progresses_with_a_bounded_buffer(case in case()) {
        let capacity = case.limits.max_record_bytes() as usize + 2;
        let once = one_shot(case.packer(), &case.stream);
        let got = drive_bounded(case.packer(), &case.stream, capacity);
        prop_assert!(got.is_ok(), "{:?}", got);
        assert_same_lines(&got.unwrap(), &once, case.pack_cap());
        if let Some(planner) = case.packing() {
            let planned = plan_bounded(planner, &case.stream, capacity);
            prop_assert_eq!(planned, Ok(plan_once(planner, &case.stream)));
        }
    }
}

/// A caller that breaks the streaming protocol (passes fewer bytes than the packer has
/// already read) gets no line, never a panic.
#[test]
fn packer_given_a_shorter_input_than_it_read_does_not_panic() {
    let limits = limits(500, 1000, 100).without_partition_keys();
    let mut packer = LinePacker::new(&limits, 0);
    let (step, consumed) = packer.next_line(b"abc\ndef\ngh", false);
    assert_eq!((step, consumed), (LineStep::NeedMore, 0));
    assert_eq!(packer.next_line(b"ab", false), (LineStep::NeedMore, 0));
    assert_eq!(packer.next_line(b"", true), (LineStep::NeedMore, 0));
    // Given the bytes again, it goes on as if nothing happened.
    let (step, _) = packer.next_line(b"abc\ndef\ngh", true);
    assert!(matches!(step, LineStep::Line(line) if line.bytes == b"abc\ndef\ngh"));
}
