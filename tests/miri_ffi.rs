//! The C ABI's unsafe code on tiny inputs, for Miri (`scripts/miri.sh`): every exported
//! entry point that dereferences a caller's pointer, with resume, NULL fields, huge
//! lengths, zero capacities and uninitialised output arrays. It also runs as an ordinary
//! test; the fuzz target `ffi_plan` covers the same calls at volume. The engine's tests also
//! check the storage a `kb_engine` allocates and lends to its core engine.
#![cfg(feature = "ffi")]

use std::mem::MaybeUninit;
use std::ptr::{NonNull, null, null_mut};

use kinesis_batcher::ffi::*;
use kinesis_batcher::lines::{LineBatch, LineRefusal};
use kinesis_batcher::retry::{Pending, Settled, Terminal};
use kinesis_batcher::{Batch, Reason, RecordSize, Refusal, Stats};

fn limits(max_records: u32, request: u32, record: u32) -> kb_limits {
    let mut l = kb_limits::default();
    // SAFETY: a writable kb_limits.
    assert_eq!(unsafe { kb_limits_profile(KB_PROFILE_KDS, &mut l) }, KB_OK);
    l.max_records = max_records;
    l.max_request_bytes = request;
    l.max_record_bytes = record;
    l
}

fn rec(data: &[u8], key: &[u8]) -> kb_record {
    kb_record {
        data: data.as_ptr(),
        data_len: data.len(),
        key: key.as_ptr(),
        key_len: key.len(),
        hash_key: null(),
        hash_key_len: 0,
    }
}

const DATA: [u8; 16] = [0; 16];

fn records() -> Vec<kb_record> {
    let mut hashed = rec(&DATA[..3], b"k1");
    hashed.hash_key = b"12345".as_ptr();
    hashed.hash_key_len = 5;
    vec![
        rec(&DATA[..4], b"a"),
        rec(&DATA[..2], b""), // key empty: refused
        rec(&DATA[..9], b"bb"),
        rec(&[], b"\xff"), // not UTF-8
        hashed,
        rec(&DATA[..16], b"ccc"), // too large for a 12-byte cap
        rec(&DATA[..1], b"d"),
    ]
}

#[test]
fn plan_resumes_through_uninitialised_one_entry_arrays() {
    let l = limits(2, 12, 12);
    let recs = records();
    // SAFETY: every pointer is to live memory of the stated length.
    unsafe {
        let mut planner = null_mut();
        assert_eq!(kb_planner_new(&l, &mut planner), KB_OK);
        let (mut batches, mut refusals) = (Vec::new(), Vec::new());
        for _ in 0..32 {
            let mut b = [MaybeUninit::<Batch>::uninit(); 1];
            let mut r = [MaybeUninit::<Refusal>::uninit(); 1];
            let (mut nb, mut nr) = (0, 0);
            let st = kb_planner_plan(
                planner,
                recs.as_ptr(),
                recs.len(),
                b.as_mut_ptr().cast(),
                1,
                &mut nb,
                r.as_mut_ptr().cast(),
                1,
                &mut nr,
                null_mut(),
            );
            batches.extend(b[..nb].iter().map(|x| x.assume_init()));
            refusals.extend(r[..nr].iter().map(|x| x.assume_init()));
            if st == KB_OK {
                break;
            }
            assert!(
                st == KB_BATCHES_FULL || st == KB_REFUSALS_FULL,
                "status {st}"
            );
        }
        let reasons: Vec<_> = refusals
            .iter()
            .map(|r: &Refusal| (r.index, r.reason))
            .collect();
        assert_eq!(
            reasons,
            [
                (1, Reason::KeyEmpty),
                (3, Reason::KeyNotUtf8),
                (5, Reason::RecordTooLarge)
            ]
        );
        let accepted: u32 = batches.iter().map(|b: &Batch| b.records).sum();
        assert_eq!(accepted, 4);
        let mut stats = Stats::default();
        assert_eq!(kb_planner_stats(planner, &mut stats), KB_OK);
        assert_eq!(stats.records, 4);
        kb_planner_free(planner);
    }
}

#[test]
fn bad_records_stop_every_call_with_their_index() {
    let l = limits(500, 1 << 20, 1 << 20);
    let mut recs = records();
    let good = recs.len();
    recs.push(kb_record {
        data: null(),
        data_len: 3,
        ..rec(&[], b"k")
    });
    recs.push(kb_record {
        key: NonNull::dangling().as_ptr(),
        key_len: usize::MAX,
        ..rec(&[], b"k")
    });
    recs.push(kb_record {
        data: DATA.as_ptr(),
        data_len: usize::MAX,
        ..rec(&[], b"k")
    });
    // SAFETY: live memory, or NULL/dangling with lengths the ABI checks before reading.
    unsafe {
        let mut planner = null_mut();
        assert_eq!(kb_planner_new(&l, &mut planner), KB_OK);
        let mut b = [Batch::default(); 4];
        let mut r = [Refusal::default(); 4];
        let (mut nb, mut nr, mut bad) = (9, 9, 9);
        let st = kb_planner_plan(
            planner,
            recs.as_ptr(),
            recs.len(),
            b.as_mut_ptr(),
            4,
            &mut nb,
            r.as_mut_ptr(),
            4,
            &mut nr,
            &mut bad,
        );
        // Batches 0..1 and 2..3 (each refusal closes one), refusals 1 and 3.
        assert_eq!((st, nb, nr, bad), (KB_BATCHES_FULL, 2, 2, 9));
        let st = kb_planner_plan(
            planner,
            recs.as_ptr(),
            recs.len(),
            b.as_mut_ptr(),
            4,
            &mut nb,
            r.as_mut_ptr(),
            4,
            &mut nr,
            &mut bad,
        );
        assert_eq!((st, bad), (KB_NULL_FIELD, good));
        kb_planner_free(planner);

        let mut planner = null_mut();
        assert_eq!(kb_planner_new(&l, &mut planner), KB_OK);
        let (mut batch, mut refusal) = (Batch::default(), Refusal::default());
        let mut events = 0;
        let st = loop {
            match kb_planner_next(
                planner,
                recs.as_ptr(),
                recs.len(),
                &mut batch,
                &mut refusal,
                &mut bad,
            ) {
                KB_OK | KB_REFUSED => events += 1,
                other => break other,
            }
        };
        assert_eq!((st, bad), (KB_NULL_FIELD, good));
        assert!(events <= 2);
        kb_planner_free(planner);

        let mut acc = null_mut();
        assert_eq!(kb_accumulator_new(&l, &mut acc), KB_OK);
        let mut reason = Reason::KeyEmpty;
        for (i, want) in [
            (good, KB_NULL_FIELD),
            (good + 1, KB_LENGTH_OVERFLOW),
            (good + 2, KB_LENGTH_OVERFLOW),
        ] {
            assert_eq!(
                kb_accumulator_push(acc, &recs[i], &mut batch, &mut reason),
                want
            );
        }
        for r in &recs[..good] {
            let st = kb_accumulator_push(acc, r, &mut batch, &mut reason);
            assert!(st == KB_OK || st == KB_REFUSED || st == KB_SEND_FIRST);
        }
        let mut pushed = 0;
        assert_eq!(kb_accumulator_pushed(acc, &mut pushed), KB_OK);
        assert_eq!(pushed, good);
        assert_eq!(kb_accumulator_pending(acc, &mut batch), KB_OK);
        assert_eq!(kb_accumulator_flush(acc, &mut batch), KB_OK);
        assert_eq!(kb_accumulator_flush(acc, &mut batch), KB_END);
        kb_accumulator_free(acc);

        let mut size = 0u32;
        assert_eq!(
            kb_record_measure(&l, &recs[good + 1], &mut size, &mut reason),
            KB_LENGTH_OVERFLOW
        );
        let mut rs = RecordSize::default();
        assert_eq!(
            kb_record_size_of(&recs[good], KB_KEY_UNIT_CODE_POINTS, &mut rs),
            KB_NULL_FIELD
        );
        assert_eq!(
            kb_record_size_of(&recs[4], KB_KEY_UNIT_CODE_POINTS, &mut rs),
            KB_OK
        );
        assert_eq!((rs.key_len, rs.hash_key_len, rs.flags), (2, 5, 0));
    }
}

#[test]
fn sizes_fill_then_plan_sizes() {
    let l = limits(2, 100, 50);
    let data_lens = [4u64, 0, 60, u64::MAX];
    let keys = b"ab\xffcd";
    let key_lens = [1usize, 2, 1, 1];
    let hash_keys = b"7x";
    let hash_key_lens = [KB_NO_HASH_KEY, 1, KB_NO_HASH_KEY, 1];
    // SAFETY: every array holds the stated number of entries.
    unsafe {
        let mut out = [MaybeUninit::<RecordSize>::uninit(); 4];
        let mut bad = 9;
        let st = kb_record_sizes_fill(
            4,
            data_lens.as_ptr(),
            keys.as_ptr(),
            keys.len(),
            key_lens.as_ptr(),
            hash_keys.as_ptr(),
            hash_keys.len(),
            hash_key_lens.as_ptr(),
            KB_KEY_UNIT_UTF16_UNITS,
            out.as_mut_ptr().cast(),
            &mut bad,
        );
        assert_eq!((st, bad), (KB_OK, 9));
        let sizes: Vec<RecordSize> = out.iter().map(|s| s.assume_init()).collect();
        assert_eq!(sizes[1].flags, KB_RECORD_KEY_NOT_UTF8);
        assert_eq!(sizes[3].flags, KB_RECORD_HASH_KEY_INVALID);
        let long = [1usize, 2, 1, 2];
        let st = kb_record_sizes_fill(
            4,
            data_lens.as_ptr(),
            keys.as_ptr(),
            keys.len(),
            long.as_ptr(),
            hash_keys.as_ptr(),
            hash_keys.len(),
            hash_key_lens.as_ptr(),
            0,
            out.as_mut_ptr().cast(),
            &mut bad,
        );
        assert_eq!((st, bad), (KB_LENGTH_OVERFLOW, 3));

        let mut planner = null_mut();
        assert_eq!(kb_planner_new(&l, &mut planner), KB_OK);
        let mut b = [MaybeUninit::<Batch>::uninit(); 1];
        let mut r = [MaybeUninit::<Refusal>::uninit(); 1];
        let (mut nb, mut nr, mut refused) = (0, 0, 0);
        loop {
            let st = kb_planner_plan_sizes(
                planner,
                sizes.as_ptr(),
                sizes.len(),
                b.as_mut_ptr().cast(),
                1,
                &mut nb,
                r.as_mut_ptr().cast(),
                1,
                &mut nr,
            );
            refused += nr;
            if st == KB_OK {
                break;
            }
        }
        assert_eq!(refused, 3);
        let (mut batch, mut refusal) = (Batch::default(), Refusal::default());
        assert_eq!(
            kb_planner_next_sizes(
                planner,
                sizes.as_ptr(),
                sizes.len(),
                &mut batch,
                &mut refusal
            ),
            KB_END
        );
        assert_eq!(
            kb_planner_plan_sizes(
                planner,
                sizes.as_ptr(),
                sizes.len(),
                b.as_mut_ptr().cast(),
                0,
                &mut nb,
                r.as_mut_ptr().cast(),
                1,
                &mut nr
            ),
            KB_ZERO_CAPACITY
        );
        assert_eq!(
            kb_planner_plan_sizes(
                planner,
                null(),
                2,
                b.as_mut_ptr().cast(),
                1,
                &mut nb,
                r.as_mut_ptr().cast(),
                1,
                &mut nr
            ),
            KB_NULL_ARRAY
        );
        kb_planner_free(planner);
        kb_planner_free(null_mut());
    }
}

#[test]
fn lines_and_line_planner_in_chunks() {
    let l = limits(2, 100, 6);
    let stream = b"one\r\ntwo\n\ntoolongline\nsix\nend";
    // SAFETY: every pointer is to live memory of the stated length.
    unsafe {
        let mut lines = null_mut();
        assert_eq!(kb_lines_new(&l, 0, 0, &mut lines), KB_OK);
        let mut line = MaybeUninit::<kb_line>::uninit();
        let (mut start, mut end, mut found) = (0usize, 0usize, Vec::new());
        loop {
            let mut consumed = 0;
            let chunk = &stream[start..end];
            let st = kb_lines_next(
                lines,
                chunk.as_ptr(),
                chunk.len(),
                end == stream.len(),
                line.as_mut_ptr(),
                &mut consumed,
            );
            start += consumed;
            match st {
                KB_OK => {
                    let l = line.assume_init();
                    found.push(std::slice::from_raw_parts(l.bytes, l.bytes_len).to_vec());
                }
                KB_NEED_MORE => end = (end + 4).min(stream.len()),
                KB_END => break,
                other => panic!("status {other}"),
            }
        }
        assert_eq!(found.len(), 5);
        let mut seen = 0;
        assert_eq!(kb_lines_seen(lines, &mut seen), KB_OK);
        kb_lines_free(lines);

        for options in [0, KB_LINES_PACK] {
            let mut lp = null_mut();
            let mut reason = Reason::KeyEmpty;
            assert_eq!(
                kb_line_planner_new(&l, b"".as_ptr(), 0, options, &mut lp, &mut reason),
                KB_KEY_REFUSED
            );
            assert_eq!(reason, Reason::KeyEmpty);
            assert_eq!(
                kb_line_planner_new(&l, b"k".as_ptr(), 1, options, &mut lp, &mut reason),
                KB_OK
            );
            let mut b = [MaybeUninit::<LineBatch>::uninit(); 1];
            let mut r = [MaybeUninit::<LineRefusal>::uninit(); 1];
            let (mut start, mut end, mut batches, mut refusals) = (0usize, 0usize, 0, 0);
            loop {
                let (mut nb, mut nr, mut consumed) = (0, 0, 0);
                let chunk = &stream[start..end];
                let st = kb_line_planner_plan(
                    lp,
                    chunk.as_ptr(),
                    chunk.len(),
                    end == stream.len(),
                    b.as_mut_ptr().cast(),
                    1,
                    &mut nb,
                    r.as_mut_ptr().cast(),
                    1,
                    &mut nr,
                    &mut consumed,
                );
                batches += nb;
                refusals += nr;
                start += consumed;
                match st {
                    KB_OK => break,
                    KB_NEED_MORE => end = (end + 3).min(stream.len()),
                    KB_BATCHES_FULL | KB_REFUSALS_FULL => {}
                    other => panic!("status {other}"),
                }
                let mut keep = 0u64;
                let _ = kb_line_planner_keep_from(lp, &mut keep);
            }
            assert!(batches >= 1 && refusals >= 1);
            let mut stats = Stats::default();
            assert_eq!(kb_line_planner_stats(lp, &mut stats), KB_OK);
            kb_line_planner_free(lp);
        }
    }
}

#[test]
fn delivery_with_partial_failures() {
    let l = limits(3, 1000, 100);
    let recs = records();
    // SAFETY: every pointer is to live memory of the stated length.
    unsafe {
        let mut policy = MaybeUninit::<kb_retry_policy>::uninit();
        assert_eq!(kb_retry_policy_default(policy.as_mut_ptr()), KB_OK);
        let mut policy = policy.assume_init();
        policy.max_attempts = 2;
        let mut d = null_mut();
        assert_eq!(kb_delivery_new(&l, &policy, &mut d), KB_OK);
        let (mut accepted, mut terminal, mut refused) = (0, 0, 0);
        for round in 0u8..32 {
            let mut request = [MaybeUninit::<Pending>::uninit(); 3];
            let mut refusals = [MaybeUninit::<Refusal>::uninit(); 1];
            let (mut n, mut bytes, mut nr, mut bad) = (0, 0u32, 0, 0);
            let st = kb_delivery_next_request(
                d,
                recs.as_ptr(),
                recs.len(),
                request.as_mut_ptr().cast(),
                3,
                &mut n,
                &mut bytes,
                refusals.as_mut_ptr().cast(),
                1,
                &mut nr,
                u64::from(round),
                &mut bad,
            );
            refused += nr;
            if n == 0 {
                if st == KB_END {
                    break;
                }
                continue;
            }
            let sent: Vec<Pending> = request[..n].iter().map(|p| p.assume_init()).collect();
            let mut waiting = null();
            let mut nw = 0;
            assert_eq!(kb_delivery_waiting(d, &mut waiting, &mut nw), KB_OK);
            // First entry throttled, the rest stored; every third request lost.
            let outcomes: Vec<u8> = (0..n)
                .map(|i| if i == 0 { 2 } else { KB_OUTCOME_ACCEPTED })
                .collect();
            let mut term = [MaybeUninit::<Terminal>::uninit(); 3];
            let mut settled = Settled::default();
            let bad_code = [200u8];
            assert_eq!(
                kb_delivery_settle(
                    d,
                    sent.as_ptr(),
                    n,
                    bad_code.as_ptr(),
                    1,
                    0,
                    term.as_mut_ptr().cast(),
                    3,
                    &mut settled,
                    &mut bad
                ),
                KB_INVALID_ARGUMENT
            );
            let st = if round % 3 == 2 {
                kb_delivery_settle_all(
                    d,
                    sent.as_ptr(),
                    n,
                    4,
                    u64::from(round),
                    term.as_mut_ptr().cast(),
                    3,
                    &mut settled,
                )
            } else {
                kb_delivery_settle(
                    d,
                    sent.as_ptr(),
                    n,
                    outcomes.as_ptr(),
                    n,
                    u64::from(round),
                    term.as_mut_ptr().cast(),
                    3,
                    &mut settled,
                    &mut bad,
                )
            };
            assert_eq!(st, KB_OK);
            accepted += settled.accepted;
            terminal += settled.terminal;
            for t in &term[..settled.terminal] {
                assert!(t.assume_init().gave_up);
            }
            let mut ms = 0;
            assert_eq!(kb_delivery_backoff_ms(d, 7, &mut ms), KB_OK);
            assert_eq!(
                kb_delivery_settle_all(
                    d,
                    sent.as_ptr(),
                    n,
                    4,
                    0,
                    term.as_mut_ptr().cast(),
                    3,
                    &mut settled
                ),
                KB_NOTHING_IN_FLIGHT
            );
        }
        assert_eq!(accepted + terminal + refused, recs.len());
        let mut position = 0;
        assert_eq!(kb_delivery_position(d, &mut position), KB_OK);
        assert_eq!(position, recs.len());
        kb_delivery_free(d);
    }
}

#[test]
fn another_input_is_refused_and_reset_starts_over() {
    let l = limits(2, 12, 12);
    let recs = records();
    let shorter = &recs[..4];
    // SAFETY: every pointer is to live memory of the stated length.
    unsafe {
        let mut planner = null_mut();
        assert_eq!(kb_planner_new(&l, &mut planner), KB_OK);
        let (mut batch, mut refusal, mut bad) = (Batch::default(), Refusal::default(), 7);
        let first = kb_planner_next(
            planner,
            recs.as_ptr(),
            recs.len(),
            &mut batch,
            &mut refusal,
            &mut bad,
        );
        assert!(first == KB_OK || first == KB_REFUSED, "status {first}");
        // Another length: the error, not KB_END; the counts passed are 0, the rest untouched.
        assert_eq!(
            kb_planner_next(
                planner,
                shorter.as_ptr(),
                4,
                &mut batch,
                &mut refusal,
                &mut bad
            ),
            KB_INPUT_CHANGED
        );
        let mut b = [MaybeUninit::<Batch>::uninit(); 1];
        let mut r = [MaybeUninit::<Refusal>::uninit(); 1];
        let (mut nb, mut nr) = (7, 7);
        let st = kb_planner_plan(
            planner,
            shorter.as_ptr(),
            4,
            b.as_mut_ptr().cast(),
            1,
            &mut nb,
            r.as_mut_ptr().cast(),
            1,
            &mut nr,
            &mut bad,
        );
        assert_eq!((st, nb, nr, bad), (KB_INPUT_CHANGED, 0, 0, 7));
        assert_eq!(kb_planner_reset(planner), KB_OK);
        let mut position = 9;
        assert_eq!(kb_planner_position(planner, &mut position), KB_OK);
        assert_eq!(position, 0);
        let mut events = 0;
        while kb_planner_next(
            planner,
            shorter.as_ptr(),
            4,
            &mut batch,
            &mut refusal,
            null_mut(),
        ) != KB_END
        {
            events += 1;
        }
        assert!(events >= 3, "{events} events"); // batch 0, refusal 1, batch 2, refusal 3
        assert_eq!(kb_planner_reset(null_mut()), KB_NULL_POINTER);
        kb_planner_free(planner);

        let mut acc = null_mut();
        assert_eq!(kb_accumulator_new(&l, &mut acc), KB_OK);
        let mut reason = Reason::KeyEmpty;
        assert_eq!(
            kb_accumulator_push(acc, &recs[0], &mut batch, &mut reason),
            KB_OK
        );
        assert_eq!(kb_accumulator_reset(acc), KB_OK);
        let mut pushed = 9;
        assert_eq!(kb_accumulator_pushed(acc, &mut pushed), KB_OK);
        assert_eq!(pushed, 0);
        assert_eq!(kb_accumulator_flush(acc, &mut batch), KB_END);
        kb_accumulator_free(acc);

        let mut lines = null_mut();
        assert_eq!(kb_lines_new(&l, KB_LINES_PACK, 1, &mut lines), KB_OK);
        let mut line = MaybeUninit::<kb_line>::uninit();
        let mut consumed = 0;
        let stream = b"ab\ncd\n";
        assert_eq!(
            kb_lines_next(
                lines,
                stream.as_ptr(),
                stream.len(),
                true,
                line.as_mut_ptr(),
                &mut consumed
            ),
            KB_OK
        );
        assert_eq!(kb_lines_reset(lines), KB_OK);
        assert_eq!(
            kb_lines_next(
                lines,
                stream.as_ptr(),
                stream.len(),
                true,
                line.as_mut_ptr(),
                &mut consumed
            ),
            KB_OK
        );
        assert_eq!(line.assume_init().number, 1);
        consumed = 7;
        assert_eq!(
            kb_lines_next(
                null_mut(),
                stream.as_ptr(),
                2,
                true,
                line.as_mut_ptr(),
                &mut consumed
            ),
            KB_NULL_POINTER
        );
        assert_eq!(consumed, 0);
        kb_lines_free(lines);

        let mut lp = null_mut();
        assert_eq!(
            kb_line_planner_new(&l, b"k".as_ptr(), 1, 0, &mut lp, null_mut()),
            KB_OK
        );
        let mut lb = [MaybeUninit::<LineBatch>::uninit(); 2];
        let mut lr = [MaybeUninit::<LineRefusal>::uninit(); 2];
        let (mut nb, mut nr, mut consumed) = (0, 0, 0);
        assert_eq!(
            kb_line_planner_plan(
                lp,
                stream.as_ptr(),
                3,
                false,
                lb.as_mut_ptr().cast(),
                2,
                &mut nb,
                lr.as_mut_ptr().cast(),
                2,
                &mut nr,
                &mut consumed
            ),
            KB_NEED_MORE
        );
        assert_eq!(kb_line_planner_reset(lp), KB_OK);
        let mut keep = 0u64;
        assert_eq!(kb_line_planner_keep_from(lp, &mut keep), KB_END);
        let st = kb_line_planner_plan(
            lp,
            null(),
            3,
            true,
            lb.as_mut_ptr().cast(),
            2,
            &mut nb,
            lr.as_mut_ptr().cast(),
            2,
            &mut nr,
            &mut consumed,
        );
        assert_eq!((st, nb, nr, consumed), (KB_NULL_ARRAY, 0, 0, 0));
        kb_line_planner_free(lp);
        assert_eq!(kb_lines_reset(null_mut()), KB_NULL_POINTER);
        assert_eq!(kb_line_planner_reset(null_mut()), KB_NULL_POINTER);
        assert_eq!(kb_accumulator_reset(null_mut()), KB_NULL_POINTER);
    }
}

#[test]
fn delivery_checks_what_it_is_given() {
    let l = limits(3, 1000, 100);
    let recs: Vec<kb_record> = (0..5).map(|_| rec(&DATA[..2], b"k")).collect();
    // SAFETY: every pointer is to live memory of the stated length.
    unsafe {
        // A zeroed policy is the default one.
        let policy = kb_retry_policy {
            backoff_base_ms: 0,
            backoff_cap_ms: 0,
            max_age_ms: 0,
            max_attempts: 0,
            per_key_order: 0,
        };
        let mut d = null_mut();
        assert_eq!(kb_delivery_new(&l, &policy, &mut d), KB_OK);
        let mut request = [MaybeUninit::<Pending>::uninit(); 3];
        let mut refusals = [MaybeUninit::<Refusal>::uninit(); 1];
        let (mut n, mut bytes, mut nr) = (0, 0u32, 0);
        let st = kb_delivery_next_request(
            d,
            recs.as_ptr(),
            recs.len(),
            request.as_mut_ptr().cast(),
            3,
            &mut n,
            &mut bytes,
            refusals.as_mut_ptr().cast(),
            1,
            &mut nr,
            0,
            null_mut(),
        );
        assert_eq!((st, n, bytes, nr), (KB_OK, 3, 9, 0));
        let sent: Vec<Pending> = request.iter().map(|p| p.assume_init()).collect();
        // Asking again before settling: an error, counts 0.
        let st = kb_delivery_next_request(
            d,
            recs.as_ptr(),
            recs.len(),
            request.as_mut_ptr().cast(),
            3,
            &mut n,
            &mut bytes,
            refusals.as_mut_ptr().cast(),
            1,
            &mut nr,
            0,
            null_mut(),
        );
        assert_eq!((st, n, bytes, nr), (KB_REQUEST_IN_FLIGHT, 0, 0, 0));
        // Settling what was not sent: an entry differs.
        let mut wrong = sent.clone();
        wrong[0].index = 9;
        let mut term = [MaybeUninit::<Terminal>::uninit(); 3];
        let mut settled = Settled {
            accepted: 7,
            retrying: 7,
            terminal: 7,
        };
        let st = kb_delivery_settle_all(
            d,
            wrong.as_ptr(),
            3,
            u32::from(KB_ERROR_KIND_THROTTLING),
            0,
            term.as_mut_ptr().cast(),
            3,
            &mut settled,
        );
        assert_eq!(
            (st, settled),
            (KB_NOT_THE_REQUEST_IN_FLIGHT, Settled::default())
        );
        let st = kb_delivery_settle_all(
            d,
            sent.as_ptr(),
            3,
            u32::from(KB_ERROR_KIND_THROTTLING),
            0,
            term.as_mut_ptr().cast(),
            3,
            &mut settled,
        );
        assert_eq!((st, settled.retrying), (KB_OK, 3));
        let mut delay = 0;
        assert_eq!(kb_delivery_backoff_ms(d, u64::MAX, &mut delay), KB_OK);
        assert_eq!(delay, 100); // the default base, from a zeroed policy
        // A shorter input while entries wait: KB_INPUT_CHANGED.
        let st = kb_delivery_next_request(
            d,
            recs.as_ptr(),
            2,
            request.as_mut_ptr().cast(),
            3,
            &mut n,
            &mut bytes,
            refusals.as_mut_ptr().cast(),
            1,
            &mut nr,
            0,
            null_mut(),
        );
        assert_eq!((st, n, nr), (KB_INPUT_CHANGED, 0, 0));
        let (mut waiting, mut n_waiting) = (null(), 9);
        assert_eq!(kb_delivery_waiting(d, &mut waiting, &mut n_waiting), KB_OK);
        assert_eq!(n_waiting, 3);
        assert_eq!(
            kb_delivery_waiting(null(), &mut waiting, &mut n_waiting),
            KB_NULL_POINTER
        );
        assert_eq!(n_waiting, 0);
        assert_eq!(kb_delivery_reset(d), KB_OK);
        assert_eq!(kb_delivery_waiting(d, &mut waiting, &mut n_waiting), KB_OK);
        assert_eq!(n_waiting, 0);
        assert_eq!(kb_delivery_reset(null_mut()), KB_NULL_POINTER);
        kb_delivery_free(d);
    }
}

#[test]
fn hash_keys_and_shard_maps_through_their_pointers() {
    let mut key = MaybeUninit::<kb_hash_key128>::uninit();
    // SAFETY: valid bytes and a writable (uninitialised) output.
    let st =
        unsafe { kb_hash_key_of(b"pk1".as_ptr(), 3, null(), KB_NO_HASH_KEY, key.as_mut_ptr()) };
    assert_eq!(st, KB_OK);
    // SAFETY: written by the OK call.
    let key = unsafe { key.assume_init() };
    assert_eq!(
        (key.high, key.low),
        (0xf7cf_d01c_e490_fdd4, 0x21bb_dc8d_3a35_cfd0)
    );

    let mut parsed = kb_hash_key128::default();
    let max = b"340282366920938463463374607431768211455";
    // SAFETY: valid bytes and a writable output; then a dangling pointer with length 0.
    unsafe {
        assert_eq!(
            kb_hash_key_parse(max.as_ptr(), max.len(), &mut parsed),
            KB_OK
        );
        assert_eq!(
            kb_hash_key_parse(NonNull::dangling().as_ptr(), 0, &mut parsed),
            KB_NOT_A_HASH_KEY
        );
        assert_eq!(
            kb_hash_key_parse(max.as_ptr(), usize::MAX, &mut parsed),
            KB_LENGTH_OVERFLOW
        );
    }
    assert_eq!((parsed.high, parsed.low), (u64::MAX, u64::MAX));

    let half = kb_hash_key128 {
        high: 1 << 63,
        low: 0,
    };
    let ranges = [
        kb_shard_range {
            start: kb_hash_key128::default(),
            end: kb_hash_key128 {
                high: (1 << 63) - 1,
                low: u64::MAX,
            },
        },
        kb_shard_range {
            start: half,
            end: parsed,
        },
    ];
    let (mut index, mut bad) = (usize::MAX, usize::MAX);
    // SAFETY: two readable ranges, writable outputs; then NULL with a length.
    unsafe {
        assert_eq!(kb_shard_map_check(ranges.as_ptr(), 2, &mut bad), KB_OK);
        assert_eq!(
            kb_shard_index(ranges.as_ptr(), 2, key, &mut index, &mut bad),
            KB_OK
        );
        assert_eq!(index, 1);
        assert_eq!(
            kb_shard_index(ranges.as_ptr(), 1, key, &mut index, &mut bad),
            KB_SHARD_MAP_NOT_CONTIGUOUS
        );
        assert_eq!(bad, 0);
        assert_eq!(kb_shard_map_check(null(), 2, &mut bad), KB_NULL_ARRAY);
        assert_eq!(
            kb_shard_index(ranges.as_ptr(), 2, key, null_mut(), &mut bad),
            KB_NULL_POINTER
        );
    }
}

#[test]
fn aggregation_through_its_pointers() {
    let kl = limits(500, 1 << 20, 1 << 20);
    let mut recs = [
        rec(b"hi", b"pk1"),
        rec(b"yo", b"pk2"),
        rec(b"", b"pk1"),
        rec(b"x", b""), // key empty: refused
        rec(b"last", b"pk3"),
    ];
    let ranges = [
        kb_shard_range {
            start: kb_hash_key128::default(),
            end: kb_hash_key128 {
                high: (1 << 63) - 1,
                low: u64::MAX,
            },
        },
        kb_shard_range {
            start: kb_hash_key128 {
                high: 1 << 63,
                low: 0,
            },
            end: kb_hash_key128 {
                high: u64::MAX,
                low: u64::MAX,
            },
        },
    ];
    for mode in [
        KB_AGGREGATE_SHARED_HASH_KEY,
        KB_AGGREGATE_ONE_KEY,
        KB_AGGREGATE_PER_SHARD,
    ] {
        let how = kb_aggregation {
            mode,
            max_bytes: 0,
            shards: ranges.as_ptr(),
            n_shards: ranges.len(),
        };
        // One-entry, uninitialised arrays, resumed from *next.
        let (mut from, mut planned, mut refused) = (0, Vec::new(), Vec::new());
        for call in 0.. {
            assert!(call < 20, "no progress");
            let mut aggregate = MaybeUninit::<kb_aggregate>::uninit();
            let mut refusal = MaybeUninit::<Refusal>::uninit();
            let (mut na, mut nr, mut next, mut bad) = (9, 9, 9, 9);
            // SAFETY: readable limits, settings and records; one writable entry each.
            let st = unsafe {
                kb_aggregate_plan(
                    &kl,
                    &how,
                    recs.as_ptr(),
                    recs.len(),
                    from,
                    aggregate.as_mut_ptr(),
                    1,
                    &mut na,
                    refusal.as_mut_ptr(),
                    1,
                    &mut nr,
                    &mut next,
                    &mut bad,
                )
            };
            if na == 1 {
                // SAFETY: written by the call.
                planned.push(unsafe { aggregate.assume_init() });
            }
            if nr == 1 {
                // SAFETY: written by the call.
                refused.push(unsafe { refusal.assume_init() }.index);
            }
            from = next;
            match st {
                KB_OK => break,
                KB_AGGREGATES_FULL | KB_REFUSALS_FULL => {}
                other => panic!("kb_aggregate_plan: {other}"),
            }
        }
        assert_eq!(refused, [3]);
        let mut users = Vec::new();
        for aggregate in &planned {
            let mut out = vec![0u8; aggregate.data_len as usize];
            let (mut written, mut key, mut key_len, mut hk_len) = (0, null(), 0, 0);
            let mut digits = [0u8; KB_HASH_KEY_DIGITS_MAX];
            // SAFETY: readable records and aggregate, a buffer of data_len bytes, writable
            // outputs.
            unsafe {
                assert_eq!(
                    kb_aggregate_encode(
                        recs.as_ptr(),
                        recs.len(),
                        aggregate,
                        out.as_mut_ptr(),
                        out.len(),
                        &mut written
                    ),
                    KB_OK
                );
                assert_eq!(
                    kb_aggregate_keys(
                        recs.as_ptr(),
                        recs.len(),
                        aggregate,
                        &mut key,
                        &mut key_len,
                        digits.as_mut_ptr(),
                        &mut hk_len
                    ),
                    KB_OK
                );
            }
            assert_eq!(written, out.len());
            let hash_key = if hk_len == 0 { null() } else { digits.as_ptr() };
            let mut it = kb_deaggregator::default();
            let (mut count, mut offset) = (0, 0);
            // SAFETY: the encoded bytes and keys, alive while `it` is used.
            unsafe {
                assert_eq!(
                    kb_deaggregate(
                        &mut it,
                        out.as_ptr(),
                        out.len(),
                        key,
                        key_len,
                        hash_key,
                        hk_len,
                        &mut count,
                        &mut offset
                    ),
                    KB_OK
                );
                assert_eq!(count, aggregate.end - aggregate.start);
                let mut user = MaybeUninit::<kb_record>::uninit();
                while kb_deaggregate_next(&mut it, user.as_mut_ptr()) == KB_OK {
                    let user = user.assume_init();
                    let data = std::slice::from_raw_parts(user.data, user.data_len).to_vec();
                    let key = std::slice::from_raw_parts(user.key, user.key_len).to_vec();
                    users.push((data, key));
                }
            }
        }
        let want: Vec<(Vec<u8>, Vec<u8>)> = [0, 1, 2, 4]
            .iter()
            .map(|&i| {
                let r = &recs[i];
                // SAFETY: the records point to their bytes.
                unsafe {
                    (
                        std::slice::from_raw_parts(r.data, r.data_len).to_vec(),
                        std::slice::from_raw_parts(r.key, r.key_len).to_vec(),
                    )
                }
            })
            .collect();
        assert_eq!(users, want, "mode {mode}");
    }

    // Bad records, pointers and lengths.
    let how = kb_aggregation::default();
    let mut aggregates = [kb_aggregate::default(); 2];
    let mut refusals = [Refusal::default(); 2];
    let (mut na, mut nr, mut next, mut bad) = (9, 9, 9, 9);
    recs[1].data = null();
    // SAFETY: readable inputs, writable outputs; record 1 NULL with a length.
    unsafe {
        let mut plan = |from| {
            kb_aggregate_plan(
                &kl,
                &how,
                recs.as_ptr(),
                recs.len(),
                from,
                aggregates.as_mut_ptr(),
                2,
                &mut na,
                refusals.as_mut_ptr(),
                2,
                &mut nr,
                &mut next,
                &mut bad,
            )
        };
        assert_eq!(plan(0), KB_AGGREGATES_FULL);
        assert_eq!(plan(1), KB_NULL_FIELD);
        assert_eq!(plan(6), KB_INVALID_ARGUMENT);
    }
    assert_eq!((na, nr, next, bad), (0, 0, 0, 1));
    let aggregate = kb_aggregate {
        start: 0,
        end: 2,
        data_len: 40,
        layout: KB_LAYOUT_OWN_KEYS,
        ..kb_aggregate::default()
    };
    let mut out = [0u8; 64];
    let mut written = 9;
    // SAFETY: as above; the buffer holds 64 bytes.
    unsafe {
        assert_eq!(
            kb_aggregate_encode(
                recs.as_ptr(),
                recs.len(),
                &aggregate,
                out.as_mut_ptr(),
                out.len(),
                &mut written
            ),
            KB_NULL_FIELD
        );
        assert_eq!(
            kb_aggregate_encode(
                recs.as_ptr(),
                usize::MAX,
                &aggregate,
                out.as_mut_ptr(),
                out.len(),
                &mut written
            ),
            KB_LENGTH_OVERFLOW
        );
    }
    assert_eq!(written, 0);
    // A zeroed or tampered iterator: KB_END, never a read outside the data.
    let mut it = kb_deaggregator::default();
    let mut user = MaybeUninit::<kb_record>::uninit();
    // SAFETY: a zeroed iterator and a writable record; then a damaged aggregate.
    unsafe {
        assert_eq!(kb_deaggregate_next(&mut it, user.as_mut_ptr()), KB_END);
        let mut damaged = [0u8; 40];
        damaged[..4].copy_from_slice(&[0xF3, 0x89, 0x9A, 0xC2]);
        let mut count = 9;
        assert_eq!(
            kb_deaggregate(
                &mut it,
                damaged.as_ptr(),
                damaged.len(),
                b"a".as_ptr(),
                1,
                null(),
                0,
                &mut count,
                null_mut()
            ),
            KB_AGGREGATE_DIGEST_MISMATCH
        );
        assert_eq!(count, 0);
        assert_eq!(kb_deaggregate_next(&mut it, user.as_mut_ptr()), KB_END);
        assert_eq!(
            kb_deaggregate(
                &mut it,
                NonNull::dangling().as_ptr(),
                0,
                NonNull::dangling().as_ptr(),
                0,
                null(),
                0,
                &mut count,
                null_mut()
            ),
            KB_OK
        );
        assert_eq!(count, 1);
        assert_eq!(kb_deaggregate_next(&mut it, user.as_mut_ptr()), KB_OK);
        assert_eq!(user.assume_init().data_len, 0);
    }
}

fn two_shards() -> [kb_shard_range; 2] {
    [
        kb_shard_range {
            start: kb_hash_key128::default(),
            end: kb_hash_key128 {
                high: (1 << 63) - 1,
                low: u64::MAX,
            },
        },
        kb_shard_range {
            start: kb_hash_key128 {
                high: 1 << 63,
                low: 0,
            },
            end: kb_hash_key128 {
                high: u64::MAX,
                low: u64::MAX,
            },
        },
    ]
}

fn engine_stats(e: *const kb_engine) -> kb_engine_counters {
    let mut s = MaybeUninit::<kb_engine_counters>::uninit();
    // SAFETY: a live engine and a writable (uninitialised) output.
    assert_eq!(unsafe { kb_engine_stats(e, s.as_mut_ptr()) }, KB_OK);
    // SAFETY: written by the OK call.
    unsafe { s.assume_init() }
}

/// An engine over heap storage it owns (with a shard map it copied), driven through
/// every entry point with uninitialised output arrays until every record is stored or
/// terminal; then reset, reused and freed. Miri checks the self-borrowing storage, the
/// copies into C's arrays and that everything is freed.
#[test]
fn engine_runs_over_the_storage_it_owns() {
    let l = limits(3, 100, 50);
    let mut policy = MaybeUninit::<kb_retry_policy>::uninit();
    // SAFETY: a writable (uninitialised) policy, filled by the call.
    let mut policy = unsafe {
        assert_eq!(kb_retry_policy_default(policy.as_mut_ptr()), KB_OK);
        policy.assume_init()
    };
    policy.max_attempts = 2;
    let config = kb_engine_config {
        linger_ms: 5,
        max_in_flight: 2,
        ..kb_engine_config::default()
    };
    // On the heap, and freed after kb_engine_new: the engine must have copied it.
    let ranges = two_shards().to_vec();
    let keys: [&[u8]; 3] = [b"a", b"b", b"c"];
    let mut e = null_mut();
    // SAFETY: every pointer is to live memory of the stated length; the ranges are
    // copied, so they may go away after the call.
    unsafe {
        assert_eq!(
            kb_engine_new(
                &l,
                &policy,
                &config,
                4,
                ranges.as_ptr(),
                2,
                &mut e,
                null_mut()
            ),
            KB_OK
        );
        assert_eq!(kb_engine_capacity(e), 4);
    }
    drop(ranges);

    let (mut pushed, mut accepted, mut terminal, mut refused) = (0usize, 0usize, 0usize, 0usize);
    let mut in_flight: Vec<(u64, usize)> = Vec::new();
    let mut now = 0u64;
    let mut credentials_done = false;
    for round in 0u32..400 {
        // SAFETY: a live engine, records over live bytes, writable outputs.
        unsafe {
            while pushed < 12 {
                let data = &DATA[..1 + pushed % 9];
                let record = if pushed == 5 {
                    rec(data, b"") // refused: key empty
                } else {
                    rec(data, keys[pushed % 3])
                };
                let (mut h, mut why) = (MaybeUninit::uninit(), MaybeUninit::uninit());
                match kb_engine_push(e, &record, now, h.as_mut_ptr(), why.as_mut_ptr()) {
                    KB_OK => assert!(h.assume_init() < 4),
                    KB_REFUSED => {
                        assert_eq!(why.assume_init(), KB_REASON_KEY_EMPTY);
                        refused += 1;
                    }
                    KB_FULL => break,
                    other => panic!("push: {other}"),
                }
                pushed += 1;
            }
            if pushed == 12 {
                assert_eq!(kb_engine_flush(e), KB_OK);
            }
            let mut handles = [MaybeUninit::<kb_handle>::uninit(); 3];
            let (mut id, mut n, mut bytes, mut until) = (0u64, 0usize, 0u32, 0u64);
            let st = kb_engine_next_request(
                e,
                now,
                &mut id,
                handles.as_mut_ptr().cast(),
                3,
                &mut n,
                &mut bytes,
                &mut until,
            );
            match st {
                KB_OK => {
                    assert!((1..=3).contains(&n));
                    for h in &handles[..n] {
                        assert!(h.assume_init() < 4);
                    }
                    in_flight.push((id, n));
                    continue;
                }
                KB_WAIT => assert!(until > now),
                KB_PAUSED => {
                    let mut p = MaybeUninit::<core::ffi::c_int>::uninit();
                    assert_eq!(kb_engine_is_paused(e, p.as_mut_ptr()), KB_OK);
                    assert_eq!(p.assume_init(), 1);
                    if in_flight.is_empty() {
                        assert_eq!(kb_engine_resume(e), KB_OK);
                        continue;
                    }
                }
                KB_BUSY => assert!(!in_flight.is_empty()),
                KB_END => {
                    if in_flight.is_empty() && pushed == 12 {
                        break;
                    }
                }
                other => panic!("next_request: {other}"),
            }
            let Some((id, n)) = in_flight.pop() else {
                now = now.max(until);
                continue;
            };
            now += 1;
            let mut term = [MaybeUninit::<kb_terminal_entry>::uninit(); 3];
            let mut nt = usize::MAX;
            if !credentials_done {
                credentials_done = true;
                let st = kb_engine_settle_all(
                    e,
                    id,
                    KB_ERROR_KIND_CREDENTIALS,
                    now,
                    u64::from(round),
                    term.as_mut_ptr().cast(),
                    3,
                    &mut nt,
                );
                assert_eq!((st, nt), (KB_OK, 0));
                continue;
            }
            // The first entry fails (throttled, then validation), the rest are stored.
            let first = if round % 2 == 0 {
                KB_ERROR_KIND_THROUGHPUT_EXCEEDED
            } else {
                KB_ERROR_KIND_VALIDATION
            };
            let outcomes: Vec<u8> = (0..n)
                .map(|i| if i == 0 { first } else { KB_OUTCOME_ACCEPTED })
                .collect();
            let st = kb_engine_settle(
                e,
                id,
                outcomes.as_ptr(),
                n,
                now,
                u64::from(round) * 0x9E37_79B9,
                term.as_mut_ptr().cast(),
                3,
                &mut nt,
            );
            assert_eq!(st, KB_OK);
            assert!(nt <= 1);
            for t in &term[..nt] {
                let t = t.assume_init();
                assert!(t.handle < 4);
                assert_eq!(
                    u32::from(t.gave_up),
                    u32::from(t.kind == KB_ERROR_KIND_THROUGHPUT_EXCEEDED)
                );
            }
            terminal += nt;
            accepted += n - 1;
        }
    }
    let s = engine_stats(e);
    assert_eq!(pushed, 12);
    assert_eq!(refused, 1);
    assert_eq!(s.accepted_records as usize, accepted);
    assert_eq!(s.terminal as usize, terminal);
    assert_eq!(accepted + terminal, 11);
    assert_eq!((s.buffered_records, s.in_flight_requests), (0, 0));
    assert_eq!(s.credential_failures, 1);
    let mut throttled = [0u64; 3];
    // SAFETY: a live engine and writable outputs; index 2 is past the map.
    unsafe {
        for (i, out) in throttled.iter_mut().enumerate() {
            assert_eq!(kb_engine_shard_throttled(e, i, out), KB_OK);
        }
    }
    assert_eq!(throttled[2], 0);
    // A shard counts a throttling response once, whatever its entries.
    assert!(throttled[0] + throttled[1] <= s.throttled);

    // Reset and go again over the same storage, then free with a request in flight.
    // SAFETY: a live engine, a record over live bytes, writable outputs.
    unsafe {
        assert_eq!(kb_engine_reset(e), KB_OK);
        assert_eq!(engine_stats(e), kb_engine_counters::default());
        let (mut h, mut why) = (0, 0);
        assert_eq!(
            kb_engine_push(e, &rec(&DATA[..3], b"z"), 0, &mut h, &mut why),
            KB_OK
        );
        assert_eq!(h, 0);
        assert_eq!(kb_engine_flush(e), KB_OK);
        let mut handles = [MaybeUninit::<kb_handle>::uninit(); 3];
        let (mut id, mut n) = (0, 0);
        assert_eq!(
            kb_engine_next_request(
                e,
                0,
                &mut id,
                handles.as_mut_ptr().cast(),
                3,
                &mut n,
                null_mut(),
                null_mut()
            ),
            KB_OK
        );
        assert_eq!(n, 1);
        kb_engine_free(e);
    }
}

/// The engine's checks of what C passes: nothing is read or written through a bad
/// pointer or past a length, and failed creations leak nothing.
#[test]
fn engine_checks_what_it_is_given() {
    let l = limits(2, 100, 50);
    let ranges = two_shards();
    let dangling = NonNull::<u8>::dangling().as_ptr();
    // SAFETY: NULLs, dangling pointers with lengths 0, and lengths that are refused
    // before any read; otherwise live memory.
    unsafe {
        let mut e = null_mut();
        let mut bad = usize::MAX;
        for capacity in [0, usize::MAX, u32::MAX as usize] {
            let st = kb_engine_new(&l, null(), null(), capacity, null(), 0, &mut e, &mut bad);
            assert_ne!(st, KB_OK);
            assert!(e.is_null());
        }
        assert_eq!(
            kb_engine_new(&l, null(), null(), 4, null(), 2, &mut e, &mut bad),
            KB_NULL_ARRAY
        );
        assert_eq!(
            kb_engine_new(
                &l,
                null(),
                null(),
                4,
                ranges.as_ptr(),
                usize::MAX,
                &mut e,
                &mut bad
            ),
            KB_LENGTH_OVERFLOW
        );
        assert_eq!(
            kb_engine_new(&l, null(), null(), 4, ranges.as_ptr(), 1, &mut e, &mut bad),
            KB_SHARD_MAP_INCOMPLETE
        );
        assert_eq!(bad, 0);
        assert!(e.is_null());
        // A dangling range pointer with length 0 is no map.
        assert_eq!(
            kb_engine_new(
                &l,
                null(),
                null(),
                4,
                NonNull::dangling().as_ptr(),
                0,
                &mut e,
                null_mut()
            ),
            KB_OK
        );
        let e2 = e;
        // NULL limits: the KDS profile (500 records a request).
        let mut e = null_mut();
        assert_eq!(
            kb_engine_new(null(), null(), null(), 2, null(), 0, &mut e, null_mut()),
            KB_OK
        );
        assert_eq!(kb_engine_capacity(e), 2);

        let (mut h, mut why) = (u32::MAX, u8::MAX);
        let mut r = rec(&[], b"k");
        r.data = dangling; // length 0: never read
        assert_eq!(kb_engine_push(e, &r, 0, &mut h, &mut why), KB_OK);
        r.data_len = usize::MAX;
        assert_eq!(
            kb_engine_push(e, &r, 0, &mut h, &mut why),
            KB_LENGTH_OVERFLOW
        );
        r.data = null();
        r.data_len = 1;
        assert_eq!(kb_engine_push(e, &r, 0, &mut h, &mut why), KB_NULL_FIELD);

        let mut handles = [MaybeUninit::<kb_handle>::uninit(); 500];
        let (mut id, mut n, mut bytes) = (0u64, 7usize, 7u32);
        // Too small for 500: nothing taken, counts zeroed.
        assert_eq!(
            kb_engine_next_request(
                e,
                0,
                &mut id,
                handles.as_mut_ptr().cast(),
                499,
                &mut n,
                &mut bytes,
                null_mut()
            ),
            KB_HANDLE_ARRAY_TOO_SMALL
        );
        assert_eq!((n, bytes), (0, 0));
        assert_eq!(
            kb_engine_next_request(
                e,
                0,
                &mut id,
                dangling.cast(),
                usize::MAX,
                &mut n,
                &mut bytes,
                null_mut()
            ),
            KB_LENGTH_OVERFLOW
        );
        assert_eq!(kb_engine_flush(e), KB_OK);
        assert_eq!(
            kb_engine_next_request(
                e,
                0,
                &mut id,
                handles.as_mut_ptr().cast(),
                500,
                &mut n,
                &mut bytes,
                null_mut()
            ),
            KB_OK
        );
        assert_eq!((n, handles[0].assume_init()), (1, 0));

        let mut term = [MaybeUninit::<kb_terminal_entry>::uninit(); 1];
        let mut nt = 9usize;
        let accepted = [KB_OUTCOME_ACCEPTED];
        assert_eq!(
            kb_engine_settle(
                e,
                id,
                dangling,
                usize::MAX,
                1,
                0,
                term.as_mut_ptr().cast(),
                1,
                &mut nt
            ),
            KB_LENGTH_OVERFLOW
        );
        assert_eq!(nt, 0);
        assert_eq!(
            kb_engine_settle(
                e,
                id,
                accepted.as_ptr(),
                1,
                1,
                0,
                dangling.cast(),
                usize::MAX,
                &mut nt
            ),
            KB_LENGTH_OVERFLOW
        );
        assert_eq!(
            kb_engine_settle(e, id, accepted.as_ptr(), 1, 1, 0, null_mut(), 0, &mut nt),
            KB_TERMINAL_ARRAY_TOO_SMALL
        );
        assert_eq!(
            kb_engine_settle(
                e,
                id + 1,
                accepted.as_ptr(),
                1,
                1,
                0,
                term.as_mut_ptr().cast(),
                1,
                &mut nt
            ),
            KB_NOT_THE_REQUEST_IN_FLIGHT
        );
        assert_eq!(
            kb_engine_settle_all(e, id, 200, 1, 0, term.as_mut_ptr().cast(), 1, &mut nt),
            KB_INVALID_ARGUMENT
        );
        assert_eq!(
            kb_engine_settle(
                e,
                id,
                accepted.as_ptr(),
                1,
                1,
                0,
                term.as_mut_ptr().cast(),
                1,
                &mut nt
            ),
            KB_OK
        );
        assert_eq!(nt, 0);
        assert_eq!(
            kb_engine_settle(
                e,
                id,
                accepted.as_ptr(),
                1,
                1,
                0,
                term.as_mut_ptr().cast(),
                1,
                &mut nt
            ),
            KB_NOTHING_IN_FLIGHT
        );

        // NULL objects.
        assert_eq!(kb_engine_capacity(null()), 0);
        assert_eq!(kb_engine_reset(null_mut()), KB_NULL_POINTER);
        assert_eq!(kb_engine_stats(null(), null_mut()), KB_NULL_POINTER);
        kb_engine_free(null_mut());
        // Freed in the other order than made.
        kb_engine_free(e);
        kb_engine_free(e2);
    }
}
