//! Newline-delimited input: arbitrary bytes, fed in arbitrary chunks (with the streaming
//! protocol: drop what is consumed, append more) to `LinePlanner` (one record per line,
//! or packing) through 1..=4-entry output arrays, plan exactly as in one call; the plan
//! is the `Planner`'s plan of the same lines as records; `Lines` splits as a naive split
//! at '\n' (a '\r' before it dropped) does, in one call and in chunks; `LinePacker` in
//! chunks packs as in one call.
#![no_main]

use arbitrary::Arbitrary;
use kb_fuzz::*;
use kinesis_batcher::lines::{
    LineBatch, LinePacker, LinePlanner, LineRefusal, LineSource, LineStatus, LineStep, Lines,
};
use kinesis_batcher::{Limits, Record, Refusal};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    limits: LimitsSpec,
    key: KeySpec,
    pack: bool,
    keep_empty: bool,
    /// Bytes mapped onto a newline-rich alphabet, or taken raw.
    alphabet: bool,
    data: Vec<u8>,
    chunks: Vec<u8>,
    caps: Vec<(u8, u8)>,
}

/// A naive line: (bytes, number, offset).
type NLine<'a> = (&'a [u8], u64, u64);

/// Splits at '\n'; a '\r' before a '\n' is dropped; the last piece (no '\n') is kept as it
/// is, and is no line when empty. Empty lines are skipped unless `keep_empty`.
fn naive_lines(stream: &[u8], keep_empty: bool) -> Vec<NLine<'_>> {
    let mut out = Vec::new();
    let mut offset = 0usize;
    let mut number = 0u64;
    let pieces: Vec<&[u8]> = stream.split(|&b| b == b'\n').collect();
    let last = pieces.len() - 1;
    for (i, piece) in pieces.iter().enumerate() {
        let terminated = i < last;
        if !terminated && piece.is_empty() {
            break;
        }
        number += 1;
        let bytes = if terminated {
            piece.strip_suffix(b"\r").unwrap_or(piece)
        } else {
            piece
        };
        if keep_empty || !bytes.is_empty() {
            out.push((bytes, number, offset as u64));
        }
        offset += piece.len() + 1;
    }
    out
}

/// A source driven over `stream` cut at `cuts`, with the protocol: each call gets the
/// unconsumed bytes plus whatever was appended. Returns (bytes, len, number, last, offset).
fn drive<S: LineSource>(
    mut source: S,
    stream: &[u8],
    cuts: &[usize],
) -> Vec<(Vec<u8>, u64, u64, u64, u64)> {
    let mut out = Vec::new();
    let (mut start, mut end, mut cut) = (0usize, 0usize, 0usize);
    for step in 0.. {
        assert!(
            step < 4 * stream.len() + 64,
            "the line source makes no progress"
        );
        let eof = end == stream.len();
        let (found, consumed) = source.next_line(&stream[start..end], eof);
        assert!(consumed <= end - start, "consumed more than given");
        start += consumed;
        match found {
            LineStep::Line(line) => {
                assert!(line.len >= line.bytes.len() as u64);
                out.push((
                    line.bytes.to_vec(),
                    line.len,
                    line.number,
                    line.last_number,
                    line.offset,
                ))
            }
            LineStep::End => {
                assert!(eof && start == end, "End before the end of the stream");
                break;
            }
            LineStep::NeedMore => {
                assert!(!eof, "NeedMore at eof");
                end = (end + cuts[cut % cuts.len()]).min(stream.len());
                cut += 1;
            }
        }
    }
    out
}

/// Everything a line plan reports.
#[derive(Debug, Default, PartialEq, Eq)]
struct LineOut {
    batches: Vec<LineBatch>,
    refusals: Vec<LineRefusal>,
}

/// `LinePlanner::plan` over `stream` cut at `cuts` (the whole stream at once when `cuts`
/// is `None`), through arrays of the given capacities.
fn plan_lines<S: LineSource>(
    mut planner: LinePlanner<S>,
    stream: &[u8],
    cuts: Option<&[usize]>,
    caps: &[(usize, usize)],
) -> LineOut {
    let mut out = LineOut::default();
    let (mut start, mut end, mut cut) = (0usize, 0usize, 0usize);
    if cuts.is_none() {
        end = stream.len();
    }
    for call in 0.. {
        assert!(
            call < 8 * stream.len() + 64,
            "the line planner makes no progress"
        );
        let eof = end == stream.len();
        let (room_b, room_r) = caps[call % caps.len()];
        let mut batches = vec![LineBatch::default(); room_b];
        let mut refusals = vec![LineRefusal::default(); room_r];
        let p = planner.plan(&stream[start..end], eof, &mut batches, &mut refusals);
        assert!(p.consumed <= end - start);
        assert!(p.batches <= room_b && p.refusals <= room_r);
        out.batches.extend_from_slice(&batches[..p.batches]);
        out.refusals.extend_from_slice(&refusals[..p.refusals]);
        start += p.consumed;
        if let Some(keep) = planner.keep_from() {
            assert!(
                keep <= start as u64,
                "keep_from {keep} past what is consumed {start}"
            );
        }
        match p.status {
            LineStatus::Done => {
                assert!(eof && start == end);
                break;
            }
            LineStatus::BatchesFull => assert_eq!(p.batches, room_b),
            LineStatus::RefusalsFull => assert_eq!(p.refusals, room_r),
            LineStatus::NeedMore => {
                assert!(!eof, "NeedMore at eof");
                let cuts = cuts.expect("one-shot call asked for more");
                end = (end + cuts[cut % cuts.len()]).min(stream.len());
                cut += 1;
            }
        }
    }
    out
}

fuzz_target!(|input: Input| {
    let Some(limits) = input.limits.limits() else {
        return;
    };
    let key = input.key.bytes();
    const ALPHABET: &[u8] = b"ab\n\r\n\n x\xff\xc3\xa9z";
    let stream: Vec<u8> = input
        .data
        .iter()
        .take(4096)
        .map(|&b| {
            if input.alphabet {
                ALPHABET[usize::from(b) % ALPHABET.len()]
            } else {
                b
            }
        })
        .collect();
    let cuts: Vec<usize> = input
        .chunks
        .iter()
        .take(64)
        .map(|&c| usize::from(c % 64) + 1)
        .collect();
    let cuts = if cuts.is_empty() { vec![1] } else { cuts };
    let caps = caps(&input.caps);
    let big = [(stream.len() + 1, stream.len() + 1)];

    // Lines: one call per line over the whole stream is the naive split, exactly.
    let mut splitter = Lines::new(&limits);
    if input.keep_empty {
        splitter = splitter.keep_empty();
    }
    let naive = naive_lines(&stream, input.keep_empty);
    let whole = drive(splitter, &stream, &[stream.len().max(1)]);
    let got: Vec<NLine> = whole
        .iter()
        .map(|(b, _, n, _, o)| (&b[..], *n, *o))
        .collect();
    assert_eq!(got, naive, "Lines in one call vs the naive split");
    for (b, len, n, last, _) in &whole {
        assert_eq!((*len, *last), (b.len() as u64, *n));
    }
    // In chunks: the same lines, but a line over the cap may come cut short (refused).
    let chunked = drive(splitter, &stream, &cuts);
    assert_eq!(chunked.len(), naive.len(), "Lines in chunks: line count");
    let cap = u64::from(limits.max_record_bytes());
    for ((b, len, n, _, o), (nb, nn, no)) in chunked.iter().zip(&naive) {
        assert_eq!((*n, *o), (*nn, *no), "Lines in chunks: number and offset");
        if *len == b.len() as u64 {
            assert_eq!(&b[..], *nb, "Lines in chunks: line {n}");
        } else {
            assert!(
                stream[*o as usize..].starts_with(b)
                    && nb.len() as u64 > cap
                    && b.len() as u64 > cap,
                "cut-short line {n} not over the cap"
            );
        }
    }

    // LinePacker: in chunks as in one call.
    let key_len = u32::try_from(key.len()).unwrap();
    let packer = LinePacker::new(&limits, key_len);
    let packed = drive(packer, &stream, &[stream.len().max(1)]);
    let max_len = if limits.partition_keys() {
        cap.saturating_sub(u64::from(key_len))
    } else {
        cap
    };
    for (b, len, n, last, o) in &packed {
        assert_eq!(*len, b.len() as u64);
        assert!(n <= last);
        assert_eq!(
            &stream[*o as usize..(*o + *len) as usize],
            &b[..],
            "packed bytes are the stream's"
        );
        if n != last {
            assert!(*len <= max_len, "a packed run over the cap");
        }
    }
    let packed_chunked = drive(packer, &stream, &cuts);
    // Lines over the cap come cut short in chunks; the rest are identical.
    assert_eq!(
        packed_chunked.len(),
        packed.len(),
        "LinePacker in chunks: record count"
    );
    for (c, w) in packed_chunked.iter().zip(&packed) {
        if c.1 == c.0.len() as u64 {
            assert_eq!(c, w, "LinePacker in chunks vs one call");
        } else {
            // Cut short: a prefix of the stream at the line's offset (a '\r' that would be
            // dropped included), over the cap, as the whole line is.
            assert!(
                stream[c.4 as usize..].starts_with(&c.0)
                    && c.0.len() as u64 > max_len
                    && w.1 > max_len
                    && (c.2, c.4) == (w.2, w.4),
                "packer chunked {c:?} vs one call {w:?}"
            );
        }
    }

    // LinePlanner: chunked and resumed equals one call; one call equals the Planner's plan
    // of the same lines as records.
    let make = |keep_empty: bool| -> Option<LinePlanner<Lines>> {
        let source = if keep_empty {
            Lines::new(&limits).keep_empty()
        } else {
            Lines::new(&limits)
        };
        LinePlanner::with_source(limits, &key, source).ok()
    };
    let key_refused = Record::new(&[], &key);
    let key_ok = kinesis_batcher::Measure::measure(&key_refused, &limits).is_ok();
    if input.pack {
        let planner = LinePlanner::packing(limits, &key);
        assert_eq!(planner.is_ok(), key_ok);
        let Ok(planner) = planner else { return };
        let expected = plan_lines(planner, &stream, None, &big);
        assert_eq!(
            plan_lines(planner, &stream, Some(&cuts), &caps),
            expected,
            "packing: chunks vs one call"
        );
        check_line_plan(&expected, &limits);
    } else {
        let planner = make(input.keep_empty);
        assert_eq!(planner.is_some(), key_ok);
        let Some(planner) = planner else { return };
        let expected = plan_lines(planner, &stream, None, &big);
        assert_eq!(
            plan_lines(planner, &stream, Some(&cuts), &caps),
            expected,
            "lines: chunks vs one call"
        );
        check_line_plan(&expected, &limits);
        // The same lines as records.
        let records: Vec<Record> = naive.iter().map(|(b, _, _)| Record::new(b, &key)).collect();
        let as_records = bulk(&records, limits);
        let batches: Vec<_> = expected.batches.iter().map(|b| b.batch).collect();
        let refusals: Vec<Refusal> = expected.refusals.iter().map(|r| r.refusal).collect();
        assert_eq!(batches, as_records.batches, "line batches vs Planner");
        assert_eq!(refusals, as_records.refusals, "line refusals vs Planner");
        for (lb, _) in expected.batches.iter().zip(&as_records.batches) {
            let first = &naive[lb.batch.start];
            let last = &naive[lb.batch.end - 1];
            assert_eq!((lb.offset, lb.first_line), (first.2, first.1));
            assert_eq!(
                (lb.end_offset, lb.last_line),
                (last.2 + last.0.len() as u64, last.1)
            );
        }
        for r in &expected.refusals {
            let line = &naive[r.refusal.index];
            assert_eq!((r.line, r.offset), (line.1, line.2));
        }
    }
});

/// Conservation, order and limits for a line plan.
fn check_line_plan(out: &LineOut, limits: &Limits) {
    let refused: std::collections::HashSet<usize> =
        out.refusals.iter().map(|r| r.refusal.index).collect();
    for pair in out.refusals.windows(2) {
        assert!(pair[0].refusal.index < pair[1].refusal.index);
    }
    let mut next = 0;
    for lb in &out.batches {
        let b = lb.batch;
        assert!(b.start >= next && b.start < b.end, "{b:?}");
        next = b.end;
        assert!(
            b.records >= 1
                && b.records <= limits.max_records()
                && b.bytes <= limits.max_request_bytes()
        );
        assert_eq!(
            b.records as usize,
            b.range().filter(|i| !refused.contains(i)).count()
        );
        assert!(lb.offset <= lb.end_offset && lb.first_line <= lb.last_line);
    }
}
