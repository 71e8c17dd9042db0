//! The C ABI, called from Rust: `kb_planner_plan` resumed through 1..=4-entry arrays,
//! `kb_planner_next`, `kb_accumulator_push`, `kb_record_sizes_fill` +
//! `kb_planner_plan_sizes`, and `kb_line_planner_plan` in chunks, over records that may
//! have NULL fields with lengths or huge lengths. Bad records get the documented status
//! with their index in `bad_index`, output arrays untouched and the counts passed set to
//! 0; what comes before them is the Rust API's plan of the valid records before them, and
//! a plan without bad records is the Rust API's plan exactly. A planner given another
//! length is `KB_INPUT_CHANGED` (the cursor too), and `kb_planner_reset` plans again.
#![no_main]

use std::ptr::{null, null_mut, NonNull};

use arbitrary::Arbitrary;
use kb_fuzz::*;
use kinesis_batcher::ffi::*;
use kinesis_batcher::lines::{LineBatch, LinePlanner, LineRefusal, LineStatus};
use kinesis_batcher::{
    Accumulator, Batch, Event, KeyUnit, Limits, Push, Reason, Record, RecordSize, Refusal,
};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug, Clone)]
enum FRec {
    Valid(RecSpec),
    /// Valid, with a data length no object could have but under PTRDIFF_MAX (never read).
    HugeData(RecSpec),
    NullData(u16),
    NullKey(u16),
    NullHashKey(u16),
    /// data_len above PTRDIFF_MAX.
    DataOverflow(u8),
    /// key_len above PTRDIFF_MAX with a dangling (never to be read) pointer.
    KeyOverflow(u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    limits: LimitsSpec,
    records: Vec<FRec>,
    caps: Vec<(u8, u8)>,
    lines: Vec<u8>,
    cuts: Vec<u8>,
}

const SENTINEL_B: Batch = Batch {
    start: 0xdead,
    end: 0xbeef,
    records: 77,
    bytes: 99,
};
const SENTINEL_R: Refusal = Refusal {
    index: 0xdead,
    reason: Reason::KeyEmpty,
};
const UNSET: usize = 0x5eed;

fn kb_limits_of(spec: &LimitsSpec, limits: &Limits) -> kb_limits {
    let profile = match spec.kind % 8 {
        1 => KB_PROFILE_KDS_5MIB,
        2 => KB_PROFILE_FIREHOSE,
        _ => KB_PROFILE_KDS,
    };
    let mut options = 0;
    // Firehose never has keys whatever the bits (the caller skips Firehose limits with
    // keys, which C cannot express); on KDS profiles the bit turns them off.
    if !limits.partition_keys() {
        options |= KB_LIMITS_NO_PARTITION_KEYS;
    }
    if limits.counts_hash_key() {
        options |= KB_LIMITS_COUNT_HASH_KEY;
    }
    if limits.spans_refusals() {
        options |= KB_LIMITS_SPAN_REFUSALS;
    }
    kb_limits {
        profile,
        max_records: limits.max_records(),
        max_request_bytes: limits.max_request_bytes(),
        max_record_bytes: limits.max_record_bytes(),
        key_unit: match limits.key_unit() {
            KeyUnit::CodePoints => KB_KEY_UNIT_CODE_POINTS,
            KeyUnit::Utf16Units => KB_KEY_UNIT_UTF16_UNITS,
            KeyUnit::Utf8Bytes => KB_KEY_UNIT_UTF8_BYTES,
        },
        options,
    }
}

/// The records' owned bytes, and per record: the C record, its expected check status, and
/// for a valid one its size form (the Rust-side twin).
struct Built {
    recs: Vec<Rec>,
    c: Vec<kb_record>,
    status: Vec<kb_status>,
    sizes: Vec<Option<RecordSize>>,
}

fn build(frecs: &[FRec], limits: &Limits) -> Built {
    let recs: Vec<Rec> = frecs
        .iter()
        .map(|f| match f {
            FRec::Valid(s) | FRec::HugeData(s) => s.rec(limits),
            _ => Rec {
                data_len: 0,
                key: b"k".to_vec(),
                hash_key: None,
            },
        })
        .collect();
    let mut c = Vec::new();
    let mut status = Vec::new();
    let mut sizes = Vec::new();
    for (f, r) in frecs.iter().zip(&recs) {
        let ptr = |v: &[u8]| if v.is_empty() { null() } else { v.as_ptr() };
        let mut rec = kb_record {
            data: if r.data_len == 0 {
                null()
            } else {
                ZEROS.as_ptr()
            },
            data_len: r.data_len,
            key: ptr(&r.key),
            key_len: r.key.len(),
            hash_key: r.hash_key.as_ref().map_or(null(), |h| {
                if h.is_empty() {
                    NonNull::dangling().as_ptr()
                } else {
                    h.as_ptr()
                }
            }),
            hash_key_len: r.hash_key.as_ref().map_or(0, Vec::len),
        };
        let st = match f {
            FRec::Valid(_) => KB_OK,
            FRec::HugeData(s) => {
                (rec.data, rec.data_len) =
                    (ZEROS.as_ptr(), isize::MAX as usize - usize::from(s.len));
                KB_OK
            }
            FRec::NullData(l) => {
                (rec.data, rec.data_len) = (null(), usize::from(*l) + 1);
                KB_NULL_FIELD
            }
            FRec::NullKey(l) => {
                (rec.key, rec.key_len) = (null(), usize::from(*l) + 1);
                KB_NULL_FIELD
            }
            FRec::NullHashKey(l) => {
                (rec.hash_key, rec.hash_key_len) = (null(), usize::from(*l) + 1);
                KB_NULL_FIELD
            }
            FRec::DataOverflow(k) => {
                (rec.data, rec.data_len) =
                    (NonNull::dangling().as_ptr(), usize::MAX - usize::from(*k));
                KB_LENGTH_OVERFLOW
            }
            FRec::KeyOverflow(k) => {
                (rec.key, rec.key_len) =
                    (NonNull::dangling().as_ptr(), usize::MAX - usize::from(*k));
                KB_LENGTH_OVERFLOW
            }
        };
        let size = (st == KB_OK).then(|| {
            let view = Record {
                data: &[],
                key: &r.key,
                hash_key: r.hash_key.as_deref(),
            };
            let mut size = RecordSize::of(&view, limits.key_unit());
            size.data_len = rec.data_len as u64;
            size
        });
        c.push(rec);
        status.push(st);
        sizes.push(size);
    }
    Built {
        recs,
        c,
        status,
        sizes,
    }
}

fuzz_target!(|input: Input| {
    let Some(limits) = input.limits.limits() else {
        return;
    };
    if input.limits.kind % 8 == 2 && limits.partition_keys() {
        return; // Firehose with partition keys: not a C profile.
    }
    let frecs: Vec<FRec> = input.records.iter().take(40).cloned().collect();
    let built = build(&frecs, &limits);
    let kl = kb_limits_of(&input.limits, &limits);
    // SAFETY (all blocks below): every pointer is to live, correctly sized Rust memory or
    // NULL/dangling with the lengths the C ABI documents it checks before reading.
    assert_eq!(unsafe { kb_limits_check(&kl) }, KB_OK);
    let caps = caps(&input.caps);
    let first_bad = built.status.iter().position(|&s| s != KB_OK);
    let valid_end = first_bad.unwrap_or(built.c.len());
    let prefix: Vec<RecordSize> = built.sizes[..valid_end]
        .iter()
        .map(|s| s.unwrap())
        .collect();
    let expected = bulk(&prefix, limits);
    if first_bad.is_none() {
        // Cross-check the size forms against the byte form where the data can be sliced.
        if built
            .recs
            .iter()
            .zip(&built.c)
            .all(|(r, c)| r.data_len == c.data_len)
        {
            assert_eq!(bulk(&views(&built.recs), limits), expected);
        }
    }
    // What must come before the first bad record: the prefix plan less its open batch.
    let mut before_bad = expected.clone();
    if first_bad.is_some() {
        before_bad.batches.pop();
    }

    // kb_planner_plan, resumed.
    unsafe {
        let mut planner = null_mut();
        assert_eq!(kb_planner_new(&kl, &mut planner), KB_OK);
        let mut out = Outcome::default();
        let mut errored = false;
        for call in 0.. {
            assert!(
                call < 4 * built.c.len() + 8,
                "kb_planner_plan makes no progress"
            );
            let (room_b, room_r) = caps[call % caps.len()];
            let mut batches = vec![SENTINEL_B; room_b];
            let mut refusals = vec![SENTINEL_R; room_r];
            let (mut nb, mut nr, mut bad) = (UNSET, UNSET, UNSET);
            let st = kb_planner_plan(
                planner,
                built.c.as_ptr(),
                built.c.len(),
                batches.as_mut_ptr(),
                room_b,
                &mut nb,
                refusals.as_mut_ptr(),
                room_r,
                &mut nr,
                &mut bad,
            );
            if st >= 100 {
                let b = first_bad.unwrap_or_else(|| {
                    panic!(
                        "kb_planner_plan: error {st} (bad_index {bad}) without a bad record: {:?}",
                        built.c
                    )
                });
                assert_eq!((st, bad), (built.status[b], b), "kb_planner_plan error");
                assert_eq!((nb, nr), (0, 0), "counts not 0 after an error");
                assert!(
                    batches.iter().all(|x| *x == SENTINEL_B)
                        && refusals.iter().all(|x| *x == SENTINEL_R),
                    "outputs written on an error"
                );
                // No progress, no change: the same error again.
                let st2 = kb_planner_plan(
                    planner,
                    built.c.as_ptr(),
                    built.c.len(),
                    batches.as_mut_ptr(),
                    room_b,
                    &mut nb,
                    refusals.as_mut_ptr(),
                    room_r,
                    &mut nr,
                    &mut bad,
                );
                assert_eq!((st2, bad), (st, b));
                errored = true;
                break;
            }
            assert_eq!(bad, UNSET, "bad_index written without an error");
            assert!(nb <= room_b && nr <= room_r);
            assert!(
                batches[nb..].iter().all(|x| *x == SENTINEL_B)
                    && refusals[nr..].iter().all(|x| *x == SENTINEL_R)
            );
            out.batches.extend_from_slice(&batches[..nb]);
            out.refusals.extend_from_slice(&refusals[..nr]);
            match st {
                KB_OK => break,
                KB_BATCHES_FULL | KB_REFUSALS_FULL => {}
                other => panic!("kb_planner_plan status {other}"),
            }
        }
        assert_eq!(errored, first_bad.is_some());
        let want = if errored { &before_bad } else { &expected };
        assert_eq!(&out, want, "kb_planner_plan vs the Rust plan");
        kb_planner_free(planner);
    }

    // kb_planner_next.
    unsafe {
        let mut planner = null_mut();
        assert_eq!(kb_planner_new(&kl, &mut planner), KB_OK);
        let mut out = Outcome::default();
        let mut errored = false;
        for step in 0.. {
            assert!(
                step <= 2 * built.c.len() + 2,
                "kb_planner_next makes no progress"
            );
            let (mut batch, mut refusal, mut bad) = (SENTINEL_B, SENTINEL_R, UNSET);
            let mut position = UNSET;
            assert_eq!(kb_planner_position(planner, &mut position), KB_OK);
            match kb_planner_next(
                planner,
                built.c.as_ptr(),
                built.c.len(),
                &mut batch,
                &mut refusal,
                &mut bad,
            ) {
                KB_OK => out.batches.push(batch),
                KB_REFUSED => out.refusals.push(refusal),
                KB_END => break,
                st => {
                    let b = first_bad.unwrap_or_else(|| panic!("kb_planner_next: error {st} (bad_index {bad}) without a bad record: {:?}", built.c));
                    assert_eq!((st, bad), (built.status[b], b), "kb_planner_next error");
                    assert!(batch == SENTINEL_B && refusal == SENTINEL_R);
                    // "A bad record far ahead never fails an early call": within one
                    // event's reach (a batch, a record more, a fast-path chunk).
                    assert!(
                        b < position + limits.max_records() as usize + 2 + 64,
                        "error for {b} from position {position}"
                    );
                    errored = true;
                    break;
                }
            }
            assert_eq!(bad, UNSET);
        }
        assert_eq!(errored, first_bad.is_some());
        if errored {
            // A prefix of what must come before the bad record.
            assert_eq!(out.batches[..], before_bad.batches[..out.batches.len()]);
            assert!(out.refusals.len() <= before_bad.refusals.len());
            assert_eq!(out.refusals[..], before_bad.refusals[..out.refusals.len()]);
        } else {
            assert_eq!(out, expected, "kb_planner_next vs the Rust plan");
            // Another (shorter) array: KB_INPUT_CHANGED from both calls, never KB_END.
            if let Some(shorter) = built.c.len().checked_sub(1) {
                let (mut batch, mut refusal, mut bad) = (SENTINEL_B, SENTINEL_R, UNSET);
                let st = kb_planner_next(
                    planner,
                    built.c.as_ptr(),
                    shorter,
                    &mut batch,
                    &mut refusal,
                    &mut bad,
                );
                assert_eq!(
                    (st, batch, refusal, bad),
                    (KB_INPUT_CHANGED, SENTINEL_B, SENTINEL_R, UNSET)
                );
                let (mut b, mut r) = ([SENTINEL_B], [SENTINEL_R]);
                let (mut nb, mut nr) = (UNSET, UNSET);
                let st = kb_planner_plan(
                    planner,
                    built.c.as_ptr(),
                    shorter,
                    b.as_mut_ptr(),
                    1,
                    &mut nb,
                    r.as_mut_ptr(),
                    1,
                    &mut nr,
                    &mut bad,
                );
                assert_eq!(
                    (st, nb, nr, b[0], r[0]),
                    (KB_INPUT_CHANGED, 0, 0, SENTINEL_B, SENTINEL_R)
                );
            }
            // Reset: the whole plan again, from the cursor.
            assert_eq!(kb_planner_reset(planner), KB_OK);
            let mut again = Outcome::default();
            loop {
                let (mut batch, mut refusal) = (SENTINEL_B, SENTINEL_R);
                match kb_planner_next(
                    planner,
                    built.c.as_ptr(),
                    built.c.len(),
                    &mut batch,
                    &mut refusal,
                    null_mut(),
                ) {
                    KB_OK => again.batches.push(batch),
                    KB_REFUSED => again.refusals.push(refusal),
                    KB_END => break,
                    other => panic!("kb_planner_next after reset: {other}"),
                }
            }
            assert_eq!(again, expected, "kb_planner_next after kb_planner_reset");
        }
        kb_planner_free(planner);
    }

    // kb_accumulator_push: bad records take no index.
    unsafe {
        let mut acc = null_mut();
        assert_eq!(kb_accumulator_new(&kl, &mut acc), KB_OK);
        let mut twin = Accumulator::new(limits);
        for (i, rec) in built.c.iter().enumerate() {
            let (mut batch, mut reason) = (SENTINEL_B, Reason::KeyEmpty);
            let st = kb_accumulator_push(acc, rec, &mut batch, &mut reason);
            match built.sizes[i] {
                None => {
                    assert_eq!(st, built.status[i], "kb_accumulator_push of bad record {i}");
                    assert!(batch == SENTINEL_B && reason == Reason::KeyEmpty);
                }
                Some(size) => match twin.push(&size) {
                    Push::Added => assert_eq!(st, KB_OK),
                    Push::SendFirst(b) => assert_eq!((st, batch), (KB_SEND_FIRST, b)),
                    Push::Refused(r) => assert_eq!((st, reason), (KB_REFUSED, r)),
                },
            }
            let mut pushed = UNSET;
            assert_eq!(kb_accumulator_pushed(acc, &mut pushed), KB_OK);
            assert_eq!(pushed, twin.pushed());
        }
        let mut batch = SENTINEL_B;
        match twin.flush() {
            Some(b) => assert_eq!((kb_accumulator_flush(acc, &mut batch), batch), (KB_OK, b)),
            None => assert_eq!(kb_accumulator_flush(acc, &mut batch), KB_END),
        }
        kb_accumulator_free(acc);
    }

    // kb_record_sizes_fill over the valid records, then kb_planner_plan_sizes.
    unsafe {
        let valid: Vec<(&Rec, RecordSize)> = built
            .recs
            .iter()
            .zip(&built.sizes)
            .filter_map(|(r, s)| s.map(|s| (r, s)))
            .collect();
        let data_lens: Vec<u64> = valid.iter().map(|(_, s)| s.data_len).collect();
        let keys: Vec<u8> = valid
            .iter()
            .flat_map(|(r, _)| r.key.iter().copied())
            .collect();
        let key_lens: Vec<usize> = valid.iter().map(|(r, _)| r.key.len()).collect();
        let hash_keys: Vec<u8> = valid
            .iter()
            .flat_map(|(r, _)| r.hash_key.iter().flatten().copied())
            .collect();
        let hash_key_lens: Vec<usize> = valid
            .iter()
            .map(|(r, _)| r.hash_key.as_ref().map_or(KB_NO_HASH_KEY, Vec::len))
            .collect();
        let unit = kl.key_unit;
        let sentinel = RecordSize {
            data_len: 7,
            key_len: 7,
            key_units: 7,
            hash_key_len: 7,
            flags: 7,
        };
        let mut out = vec![sentinel; valid.len()];
        let mut bad = UNSET;
        let st = kb_record_sizes_fill(
            valid.len(),
            data_lens.as_ptr(),
            keys.as_ptr(),
            keys.len(),
            key_lens.as_ptr(),
            hash_keys.as_ptr(),
            hash_keys.len(),
            hash_key_lens.as_ptr(),
            unit,
            out.as_mut_ptr(),
            &mut bad,
        );
        assert_eq!((st, bad), (KB_OK, UNSET));
        let twins: Vec<RecordSize> = valid.iter().map(|(_, s)| *s).collect();
        assert_eq!(out, twins, "kb_record_sizes_fill vs RecordSize::of");
        // Key lengths past the buffer: an error naming the record, nothing written.
        if let Some(last) = valid.len().checked_sub(1) {
            let mut long = key_lens.clone();
            long[last] += 1;
            let mut out2 = vec![sentinel; valid.len()];
            let st = kb_record_sizes_fill(
                valid.len(),
                data_lens.as_ptr(),
                keys.as_ptr(),
                keys.len(),
                long.as_ptr(),
                hash_keys.as_ptr(),
                hash_keys.len(),
                hash_key_lens.as_ptr(),
                unit,
                out2.as_mut_ptr(),
                &mut bad,
            );
            assert_eq!((st, bad), (KB_LENGTH_OVERFLOW, last));
            assert!(out2.iter().all(|s| *s == sentinel));
        }
        let want = bulk(&twins, limits);
        let mut planner = null_mut();
        assert_eq!(kb_planner_new(&kl, &mut planner), KB_OK);
        let mut got = Outcome::default();
        for call in 0.. {
            assert!(call < 4 * twins.len() + 8);
            let (room_b, room_r) = caps[call % caps.len()];
            let mut batches = vec![SENTINEL_B; room_b];
            let mut refusals = vec![SENTINEL_R; room_r];
            let (mut nb, mut nr) = (UNSET, UNSET);
            let st = kb_planner_plan_sizes(
                planner,
                out.as_ptr(),
                out.len(),
                batches.as_mut_ptr(),
                room_b,
                &mut nb,
                refusals.as_mut_ptr(),
                room_r,
                &mut nr,
            );
            got.batches.extend_from_slice(&batches[..nb]);
            got.refusals.extend_from_slice(&refusals[..nr]);
            match st {
                KB_OK => break,
                KB_BATCHES_FULL | KB_REFUSALS_FULL => {}
                other => panic!("kb_planner_plan_sizes status {other}"),
            }
        }
        assert_eq!(got, want, "kb_planner_plan_sizes vs the Rust plan");
        kb_planner_free(planner);
        // Bad arguments.
        let (mut nb, mut nr) = (UNSET, UNSET);
        let mut batch = [SENTINEL_B];
        let mut refusal = [SENTINEL_R];
        assert_eq!(
            kb_planner_plan_sizes(
                null_mut(),
                out.as_ptr(),
                out.len(),
                batch.as_mut_ptr(),
                1,
                &mut nb,
                refusal.as_mut_ptr(),
                1,
                &mut nr
            ),
            KB_NULL_POINTER
        );
        let mut p2 = null_mut();
        assert_eq!(kb_planner_new(&kl, &mut p2), KB_OK);
        assert_eq!(
            kb_planner_plan_sizes(
                p2,
                null(),
                3,
                batch.as_mut_ptr(),
                1,
                &mut nb,
                refusal.as_mut_ptr(),
                1,
                &mut nr
            ),
            KB_NULL_ARRAY
        );
        assert_eq!(
            kb_planner_plan_sizes(
                p2,
                out.as_ptr(),
                out.len(),
                batch.as_mut_ptr(),
                0,
                &mut nb,
                refusal.as_mut_ptr(),
                1,
                &mut nr
            ),
            KB_ZERO_CAPACITY
        );
        assert_eq!(
            (nb, nr, batch[0], refusal[0]),
            (0, 0, SENTINEL_B, SENTINEL_R)
        );
        kb_planner_free(p2);
    }

    // kb_line_planner_plan in chunks vs the Rust LinePlanner in one call.
    unsafe {
        let key = built.recs.first().map_or(b"k".to_vec(), |r| r.key.clone());
        let stream: Vec<u8> = input
            .lines
            .iter()
            .take(2048)
            .map(|&b| b"ab\n\r\nxy\xff"[usize::from(b) % 8])
            .collect();
        let cuts: Vec<usize> = input
            .cuts
            .iter()
            .take(32)
            .map(|&c| usize::from(c % 32) + 1)
            .collect();
        let cuts = if cuts.is_empty() { vec![7] } else { cuts };
        let rust = LinePlanner::new(limits, &key);
        let mut lp = null_mut();
        let mut key_reason = Reason::RecordTooLarge;
        let st = kb_line_planner_new(&kl, key.as_ptr(), key.len(), 0, &mut lp, &mut key_reason);
        let Ok(mut rust) = rust else {
            assert_eq!(st, KB_KEY_REFUSED);
            return;
        };
        assert_eq!(st, KB_OK);
        let big = stream.len() + 1;
        let mut wb = vec![LineBatch::default(); big];
        let mut wr = vec![LineRefusal::default(); big];
        let p = rust.plan(&stream, true, &mut wb, &mut wr);
        assert_eq!((p.status, p.consumed), (LineStatus::Done, stream.len()));
        wb.truncate(p.batches);
        wr.truncate(p.refusals);
        let (mut gb, mut gr) = (Vec::new(), Vec::new());
        let (mut start, mut end, mut cut) = (0usize, 0usize, 0usize);
        for call in 0.. {
            assert!(
                call < 8 * stream.len() + 16,
                "kb_line_planner_plan makes no progress"
            );
            let (room_b, room_r) = caps[call % caps.len()];
            let mut batches = vec![LineBatch::default(); room_b];
            let mut refusals = vec![LineRefusal::default(); room_r];
            let (mut nb, mut nr, mut consumed) = (UNSET, UNSET, UNSET);
            let eof = end == stream.len();
            let chunk = &stream[start..end];
            let st = kb_line_planner_plan(
                lp,
                chunk.as_ptr(),
                chunk.len(),
                eof,
                batches.as_mut_ptr(),
                room_b,
                &mut nb,
                refusals.as_mut_ptr(),
                room_r,
                &mut nr,
                &mut consumed,
            );
            assert!(consumed <= chunk.len() && nb <= room_b && nr <= room_r);
            gb.extend_from_slice(&batches[..nb]);
            gr.extend_from_slice(&refusals[..nr]);
            start += consumed;
            match st {
                KB_OK => break,
                KB_BATCHES_FULL | KB_REFUSALS_FULL => {}
                KB_NEED_MORE => {
                    assert!(!eof);
                    end = (end + cuts[cut % cuts.len()]).min(stream.len());
                    cut += 1;
                }
                other => panic!("kb_line_planner_plan status {other}"),
            }
        }
        assert_eq!(
            (gb, gr),
            (wb, wr),
            "kb_line_planner_plan in chunks vs LinePlanner in one call"
        );
        kb_line_planner_free(lp);
    }
    let _ = Event::Refused(SENTINEL_R);
});
