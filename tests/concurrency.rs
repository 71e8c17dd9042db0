//! Many threads planning at once over one shared, read-only input, each with its own
//! planner, must get exactly the plan of a single-threaded run.
//!
//! One large input is built once (200,000 [`Record`]s viewing shared payload, key and
//! hash key buffers, with every refusal reason, multi-byte keys and explicit hash keys),
//! and its plan is computed once on the main thread with [`Planner::plan`]. Then eight
//! threads (`std::thread::scope`, so they borrow the input rather than own a copy) plan
//! the *same* slice at the same time, in every style the crate offers, and each result
//! is compared with the single-threaded one:
//!
//! * bulk with small random capacities, resumed until done;
//! * the cursor ([`Planner::next_event`]) and the iterator ([`kinesis_batcher::plan`]);
//! * the [`Accumulator`], one push per record;
//! * the [`RecordSize`] form, both a size array shared by all threads and one each;
//! * [`LinePlanner`] over one shared NDJSON buffer, fed in random chunks (sub-slices of
//!   the shared buffer, no copy) with small capacities;
//! * [`Delivery`] with deterministic per-entry outcomes (some throttled once, some
//!   terminal), whose whole trace of requests, refusals and terminals is compared.
//!
//! Two limit sets are used (the KDS default, whose batches stop at refused records, and
//! 5 MiB requests counting UTF-8 bytes and hash keys, with batches spanning refused
//! records), so threads planning the same records under different limits run side by
//! side. With the `ffi` feature, the same again through the C ABI: threads sharing one
//! `kb_record` array and one `kb_limits`, each with its own `kb_planner`.

use std::thread;

use kinesis_batcher::lines::{LineBatch, LinePlanner, LineRefusal, LineStatus};
use kinesis_batcher::retry::{
    Delivery, ErrorKind, NextStatus, Outcome, Pending, RetryPolicy, Terminal,
};
use kinesis_batcher::{
    Accumulator, Batch, Event, KeyUnit, Limits, Planner, Push, Reason, Record, RecordSize, Refusal,
    Status,
};

/// Threads planning at once.
const THREADS: usize = 8;
/// Records in the shared input.
const RECORDS: usize = 200_000;
/// Lines in the shared NDJSON buffer.
const LINES: usize = 60_000;

/// A small deterministic generator (xorshift64*).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// The shared buffers every record views: one payload buffer (larger than any record
/// cap), a pool of partition keys and a pool of explicit hash keys.
struct Buffers {
    data: Vec<u8>,
    keys: Vec<Vec<u8>>,
    hash_keys: Vec<Vec<u8>>,
}

fn buffers() -> Buffers {
    let mut keys: Vec<Vec<u8>> = (0..200).map(|i| format!("user-{i}").into_bytes()).collect();
    keys.extend([
        "clé".as_bytes().to_vec(),
        "日本語のキー".as_bytes().to_vec(),
        "🦀-crab".as_bytes().to_vec(),
        "é".repeat(256).into_bytes(), // 256 code points, 512 UTF-8 bytes: too long in bytes
        "🦀".repeat(200).into_bytes(), // 200 code points, 400 UTF-16 units, 800 bytes
        "k".repeat(256).into_bytes(), // exactly the limit
        "k".repeat(257).into_bytes(), // KeyTooLong
        Vec::new(),                   // KeyEmpty
        b"\xff\xfe".to_vec(),         // KeyNotUTF8
        b"ok\xc3".to_vec(),           // KeyNotUTF8 (truncated sequence)
    ]);
    let hash_keys = vec![
        b"0".to_vec(),
        b"340282366920938463463374607431768211455".to_vec(), // 2^128 - 1
        b"340282366920938463463374607431768211456".to_vec(), // 2^128: invalid
        b"0123".to_vec(),                                    // leading zero: invalid
        b"12ab".to_vec(),                                    // invalid
        b"987654321".to_vec(),
        Vec::new(), // present and empty: invalid
    ];
    Buffers {
        data: vec![0x5a; 3 * 1024 * 1024],
        keys,
        hash_keys,
    }
}

/// The shared input: mostly small records, 3% of 64..300 KiB, 1% around and over
/// the record cap, keys from the pool (some refused), a hash key on one record in five.
fn records(b: &Buffers) -> Vec<Record<'_>> {
    let mut rng = Rng(0x00c0_ffee_1234_5678);
    (0..RECORDS)
        .map(|_| {
            let r = rng.next();
            let data_len = match r % 1000 {
                0..=4 => 1024 * 1024 - 300 + (r >> 10) as usize % 600, // around the 1 MiB cap
                5..=9 => 1024 * 1024 + (r >> 10) as usize % (2 * 1024 * 1024), // over it
                10..=39 => 64 * 1024 + (r >> 10) as usize % (236 * 1024),
                _ => (r >> 10) as usize % 2000,
            };
            let k = rng.below(1000) as usize;
            let key = if k < 970 {
                &b.keys[k % 200]
            } else {
                &b.keys[200 + k % (b.keys.len() - 200)]
            };
            let record = Record::new(&b.data[..data_len], key);
            if rng.below(5) == 0 {
                record.with_hash_key(&b.hash_keys[rng.below(b.hash_keys.len() as u64) as usize])
            } else {
                record
            }
        })
        .collect()
}

/// The two limit sets the threads plan under.
fn limit_sets() -> [Limits; 2] {
    [
        Limits::KDS,
        Limits::KDS_5MIB
            .with_key_unit(KeyUnit::Utf8Bytes)
            .counting_hash_key(true)
            .spanning_refusals(true),
    ]
}

/// A whole plan: batches and refusals in input order.
type PlanOut = (Vec<Batch>, Vec<Refusal>);

/// The reference: one bulk call with room for everything.
fn single_threaded<M: kinesis_batcher::Measure>(input: &[M], limits: Limits) -> PlanOut {
    let mut batches = vec![Batch::default(); input.len() + 1];
    let mut refusals = vec![Refusal::default(); input.len() + 1];
    let progress = Planner::new(limits).plan(input, &mut batches, &mut refusals);
    assert_eq!(progress.status, Status::Done);
    batches.truncate(progress.batches);
    refusals.truncate(progress.refusals);
    (batches, refusals)
}

/// Bulk planning with capacities of 1..=max drawn anew for every call, resumed until done.
fn bulk<M: kinesis_batcher::Measure>(input: &[M], limits: Limits, seed: u64, max: u64) -> PlanOut {
    let mut rng = Rng(seed | 1);
    let mut planner = Planner::new(limits);
    let (mut batches, mut refusals) = (Vec::new(), Vec::new());
    let mut b = vec![Batch::default(); max as usize];
    let mut f = vec![Refusal::default(); max as usize];
    loop {
        let bc = 1 + rng.below(max) as usize;
        let fc = 1 + rng.below(max) as usize;
        let progress = planner.plan(input, &mut b[..bc], &mut f[..fc]);
        batches.extend_from_slice(&b[..progress.batches]);
        refusals.extend_from_slice(&f[..progress.refusals]);
        match progress.status {
            Status::Done => return (batches, refusals),
            Status::BatchesFull | Status::RefusalsFull => {}
            Status::Unreadable => panic!("Unreadable on the crate's own records"),
            Status::InputChanged => panic!("InputChanged on the same input"),
        }
    }
}

fn split(events: impl Iterator<Item = Event>) -> PlanOut {
    let (mut batches, mut refusals) = (Vec::new(), Vec::new());
    for event in events {
        match event {
            Event::Batch(b) => batches.push(b),
            Event::Refused(r) => refusals.push(r),
        }
    }
    (batches, refusals)
}

fn cursor(input: &[Record<'_>], limits: Limits) -> PlanOut {
    let mut planner = Planner::new(limits);
    split(std::iter::from_fn(|| planner.next_event(input)))
}

fn iterator(input: &[Record<'_>], limits: Limits) -> PlanOut {
    split(kinesis_batcher::plan(input, limits))
}

fn accumulate(input: &[Record<'_>], limits: Limits) -> PlanOut {
    let mut acc = Accumulator::new(limits);
    let (mut batches, mut refusals) = (Vec::new(), Vec::new());
    for (index, record) in input.iter().enumerate() {
        match acc.push(record) {
            Push::Added => {}
            Push::SendFirst(b) => batches.push(b),
            Push::Refused(reason) => refusals.push(Refusal { index, reason }),
        }
    }
    batches.extend(acc.flush());
    (batches, refusals)
}

fn sizes_of(input: &[Record<'_>], unit: KeyUnit) -> Vec<RecordSize> {
    input.iter().map(|r| RecordSize::of(r, unit)).collect()
}

// ---- Lines ----

/// Limits for the NDJSON buffer: a 4 KiB record cap, so that some lines are over it.
fn line_limits() -> Limits {
    Limits::new(100, 64 * 1024, 4096).expect("valid limits")
}

const LINE_KEY: &[u8] = "clé-logs".as_bytes();

/// The shared NDJSON buffer: mostly short events, some near and over the 4 KiB cap, a
/// few empty lines and CRLF terminators, and a last line without a terminator.
fn ndjson() -> Vec<u8> {
    let mut rng = Rng(0x0bad_cafe_f00d_d00d);
    let mut out = Vec::new();
    for i in 0..LINES {
        let r = rng.next();
        match r % 200 {
            0 => {} // an empty line
            1 => out.extend(std::iter::repeat_n(b'x', 4096 + (r >> 8) as usize % 3000)),
            2..=5 => out.extend(std::iter::repeat_n(b'y', 4000 + (r >> 8) as usize % 100)),
            _ => out.extend_from_slice(
                format!(
                    "{{\"id\":{i},\"v\":\"{}\"}}",
                    "é".repeat((r >> 8) as usize % 60)
                )
                .as_bytes(),
            ),
        }
        if i + 1 < LINES {
            out.extend_from_slice(if r % 7 == 0 { b"\r\n" } else { b"\n" });
        }
    }
    out
}

type LineOut = (Vec<LineBatch>, Vec<LineRefusal>);

/// Line planning fed in chunks: `input` is always a sub-slice of the shared buffer from
/// the first unconsumed byte to the last byte "read" so far (drop what is consumed,
/// append more, without copying). `max_chunk == 0`: the whole buffer in one call.
fn plan_lines(text: &[u8], seed: u64, max_chunk: u64, max_cap: u64) -> LineOut {
    let mut rng = Rng(seed | 1);
    let mut planner = LinePlanner::new(line_limits(), LINE_KEY).expect("valid key");
    let (mut batches, mut refusals) = (Vec::new(), Vec::new());
    let mut b = vec![LineBatch::default(); max_cap as usize];
    let mut f = vec![LineRefusal::default(); max_cap as usize];
    let (mut start, mut fed) = (0usize, if max_chunk == 0 { text.len() } else { 0 });
    let mut calls = 0usize;
    loop {
        let bc = 1 + rng.below(max_cap) as usize;
        let fc = 1 + rng.below(max_cap) as usize;
        let eof = fed == text.len();
        let p = planner.plan(&text[start..fed], eof, &mut b[..bc], &mut f[..fc]);
        batches.extend_from_slice(&b[..p.batches]);
        refusals.extend_from_slice(&f[..p.refusals]);
        start += p.consumed;
        calls += 1;
        assert!(
            calls < 10 * text.len() + 100,
            "line planning makes no progress"
        );
        let more = match p.status {
            LineStatus::Done => return (batches, refusals),
            LineStatus::NeedMore => {
                assert!(!eof, "NeedMore after eof");
                true
            }
            LineStatus::BatchesFull | LineStatus::RefusalsFull => !eof && rng.below(2) == 0,
        };
        if more {
            let chunk = 1 + rng.below(max_chunk.max(1)) as usize;
            fed = (fed + chunk).min(text.len());
        }
    }
}

/// The records the line planner sees: each non-empty line, `\r` before `\n` dropped.
fn line_records(text: &[u8]) -> Vec<Record<'_>> {
    text.split(|&c| c == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .filter(|line| !line.is_empty())
        .map(|line| Record::new(line, LINE_KEY))
        .collect()
}

// ---- Delivery ----

/// One request of a delivery: its entries, the refusals met, and the terminal entries
/// its settlement produced.
type DeliveryStep = (Vec<Pending>, Vec<Refusal>, Vec<Terminal>);

/// The outcome of an entry: a function of the record and its attempt only, so every
/// run gets the same responses. Every 7th record is throttled on its first two sends,
/// every 97th fails once with an internal failure, every 1009th is denied (terminal).
fn outcome(p: &Pending) -> Outcome {
    if p.index % 1009 == 0 {
        Outcome::Failed(ErrorKind::AccessDenied)
    } else if p.index % 7 == 0 && p.attempts < 2 {
        Outcome::Failed(ErrorKind::ThroughputExceeded)
    } else if p.index % 97 == 0 && p.attempts == 0 {
        Outcome::Failed(ErrorKind::InternalFailure)
    } else {
        Outcome::Accepted
    }
}

fn deliver(input: &[Record<'_>], limits: Limits, policy: RetryPolicy) -> Vec<DeliveryStep> {
    let mut delivery = Delivery::new(limits, policy);
    let mut request = vec![Pending::default(); 500];
    let mut refusals = [Refusal::default(); 64];
    let mut terminal = vec![Terminal::default(); 500];
    let mut now_ms = 0u64;
    let mut random = Rng(0x1234_5678_9abc_def1);
    let mut steps = Vec::new();
    for _ in 0..10 * RECORDS {
        let next = delivery
            .next_request(input, &mut request, &mut refusals, now_ms)
            .expect("the same input, one request at a time");
        let sent = &request[..next.entries];
        let refused = refusals[..next.refusals].to_vec();
        if next.status == NextStatus::Done {
            return steps;
        }
        if next.entries == 0 {
            steps.push((Vec::new(), refused, Vec::new())); // OnlyRefusals
            continue;
        }
        let outcomes: Vec<Outcome> = sent.iter().map(outcome).collect();
        let settled = delivery
            .settle(sent, &outcomes, now_ms, &mut terminal)
            .expect("settle the request in flight");
        steps.push((
            sent.to_vec(),
            refused,
            terminal[..settled.terminal].to_vec(),
        ));
        now_ms += 1 + delivery.backoff_ms(random.next());
    }
    panic!("the delivery did not finish");
}

// ---- The test ----

/// What one thread ran, to name it in a failure.
fn check<T: PartialEq + std::fmt::Debug>(what: &str, got: &T, want: &T) -> Result<(), String> {
    if got == want {
        Ok(())
    } else {
        Err(format!("{what}: differs from the single-threaded run"))
    }
}

/// Compares two plans and, on a mismatch, says where they first differ.
fn compare(what: &str, got: &PlanOut, want: &PlanOut) -> Result<(), String> {
    if got == want {
        return Ok(());
    }
    let first = |a: &[Batch], b: &[Batch]| a.iter().zip(b).position(|(x, y)| x != y);
    let first_r = |a: &[Refusal], b: &[Refusal]| a.iter().zip(b).position(|(x, y)| x != y);
    Err(format!(
        "{what}: {} batches and {} refusals, want {} and {}; first differing batch {:?}, refusal {:?}",
        got.0.len(),
        got.1.len(),
        want.0.len(),
        want.1.len(),
        first(&got.0, &want.0).map(|i| (i, got.0[i], want.0[i])),
        first_r(&got.1, &want.1).map(|i| (i, got.1[i], want.1[i])),
    ))
}

#[test]
fn threads_planning_one_shared_input_agree_with_one_thread() {
    let buffers = buffers();
    let input = records(&buffers);
    let limits = limit_sets();
    let text = ndjson();

    // The single-threaded references, and sanity checks that the input exercises what
    // it should.
    let want: Vec<PlanOut> = limits.iter().map(|&l| single_threaded(&input, l)).collect();
    for (l, (batches, refusals)) in limits.iter().zip(&want) {
        assert!(batches.len() > 300, "only {} batches", batches.len());
        assert!(batches.iter().any(|b| b.records < l.max_records() / 2));
        if l.spans_refusals() {
            assert!(batches.iter().any(|b| b.records == l.max_records()));
            assert!(batches.iter().any(|b| b.refused() > 0));
        } else {
            // Refused records close batches: runs between them are far shorter than 500.
            assert!(batches.iter().all(|b| b.refused() == 0));
        }
        for reason in Reason::ALL {
            assert!(
                refusals.iter().any(|r| r.reason == reason),
                "no refusal for {reason:?}"
            );
        }
        let accepted: u64 = batches.iter().map(|b| u64::from(b.records)).sum();
        assert_eq!(accepted as usize + refusals.len(), input.len());
    }
    assert_ne!(
        want[0], want[1],
        "the two limit sets should plan differently"
    );
    let shared_sizes: Vec<Vec<RecordSize>> = limits
        .iter()
        .map(|l| sizes_of(&input, l.key_unit()))
        .collect();

    let want_lines = plan_lines(&text, 1, 0, text.len() as u64 + 1);
    {
        // The line plan is the record plan of the lines.
        let lines = line_records(&text);
        let (batches, refusals) = single_threaded(&lines, line_limits());
        let line_batches: Vec<Batch> = want_lines.0.iter().map(|b| b.batch).collect();
        let line_refusals: Vec<Refusal> = want_lines.1.iter().map(|r| r.refusal).collect();
        assert_eq!(line_batches, batches);
        assert_eq!(line_refusals, refusals);
        assert!(
            refusals.len() > 100 && batches.len() > 500,
            "{} line refusals, {} line batches",
            refusals.len(),
            batches.len()
        );
    }

    let policy = RetryPolicy {
        max_attempts: 3,
        ..RetryPolicy::DEFAULT
    };
    let keyed = RetryPolicy {
        per_key_order: true,
        ..policy
    };
    let want_delivery = deliver(&input, limits[0], policy);
    let want_keyed = deliver(&input, limits[1], keyed);
    assert!(want_delivery.iter().any(|s| !s.2.is_empty()));

    // Every thread runs every style over the same borrowed slices, starting at a
    // different style (so different styles run at the same moment) and alternating the
    // limit sets.
    let failures: Vec<String> = thread::scope(|scope| {
        let workers: Vec<_> = (0..THREADS)
            .map(|t| {
                let (input, text, limits) = (&input[..], &text[..], &limits);
                let (want, shared_sizes) = (&want, &shared_sizes);
                let (want_lines, want_delivery, want_keyed) =
                    (&want_lines, &want_delivery, &want_keyed);
                scope.spawn(move || {
                    let mut failures = Vec::new();
                    let seed = 0x5eed_0000 + t as u64;
                    for step in 0..8 {
                        let style = (t + step) % 8;
                        let i = (t + step / 8) % 2;
                        let (l, want) = (limits[i], &want[i]);
                        let name = |s: &str| format!("thread {t}, limits {i}, {s}");
                        let result =
                            match style {
                                0 => compare(
                                    &name("bulk, capacities 1..=3"),
                                    &bulk(input, l, seed, 3),
                                    want,
                                ),
                                1 => compare(
                                    &name("bulk, capacities 1..=64"),
                                    &bulk(input, l, seed + 1, 64),
                                    want,
                                ),
                                2 => compare(&name("cursor"), &cursor(input, l), want)
                                    .and(compare(&name("iterator"), &iterator(input, l), want)),
                                3 => compare(&name("accumulator"), &accumulate(input, l), want),
                                4 => compare(
                                    &name("shared RecordSize array"),
                                    &bulk(&shared_sizes[i][..], l, seed + 2, 5),
                                    want,
                                ),
                                5 => compare(
                                    &name("own RecordSize array"),
                                    &bulk(&sizes_of(input, l.key_unit())[..], l, seed + 3, 17),
                                    want,
                                ),
                                6 => check(
                                    &name("LinePlanner in chunks"),
                                    &plan_lines(text, seed, 300, 4),
                                    want_lines,
                                ),
                                _ => {
                                    if t % 2 == 0 {
                                        check(
                                            &name("Delivery"),
                                            &deliver(input, limits[0], policy),
                                            want_delivery,
                                        )
                                    } else {
                                        check(
                                            &name("Delivery, per-key order"),
                                            &deliver(input, limits[1], keyed),
                                            want_keyed,
                                        )
                                    }
                                }
                            };
                        failures.extend(result.err());
                    }
                    failures
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("a planning thread panicked"))
            .collect()
    });
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The same through the C ABI: threads share one `kb_record` array and one
/// `kb_limits`, each with its own `kb_planner` (and `kb_accumulator`).
#[cfg(feature = "ffi")]
mod c_abi {
    use super::*;
    use kinesis_batcher::ffi::*;
    use std::ptr::{null, null_mut};

    /// The shared record array. `kb_record` holds raw pointers, so it is not `Sync` by
    /// itself; the pointers are only read, and the buffers outlive the threads.
    #[derive(Clone, Copy)]
    struct Shared<'a>(&'a [kb_record]);
    // SAFETY: the records point into buffers that no thread writes while the threads
    // run (they are borrowed immutably by the scope), and the C ABI only reads them.
    unsafe impl Sync for Shared<'_> {}
    // SAFETY: as above.
    unsafe impl Send for Shared<'_> {}

    fn c_records(input: &[Record<'_>]) -> Vec<kb_record> {
        input
            .iter()
            .map(|r| kb_record {
                data: r.data.as_ptr(),
                data_len: r.data.len(),
                key: if r.key.is_empty() {
                    null()
                } else {
                    r.key.as_ptr()
                },
                key_len: r.key.len(),
                hash_key: r.hash_key.map_or(null(), <[u8]>::as_ptr),
                hash_key_len: r.hash_key.map_or(0, <[u8]>::len),
            })
            .collect()
    }

    fn c_limits(l: &Limits) -> kb_limits {
        let mut out = kb_limits::default();
        let profile = if l.max_request_bytes() == 10 * 1024 * 1024 {
            KB_PROFILE_KDS
        } else {
            KB_PROFILE_KDS_5MIB
        };
        // SAFETY: `out` is writable.
        assert_eq!(unsafe { kb_limits_profile(profile, &mut out) }, KB_OK);
        out.key_unit = match l.key_unit() {
            KeyUnit::CodePoints => KB_KEY_UNIT_CODE_POINTS,
            KeyUnit::Utf16Units => KB_KEY_UNIT_UTF16_UNITS,
            KeyUnit::Utf8Bytes => KB_KEY_UNIT_UTF8_BYTES,
        };
        if l.counts_hash_key() {
            out.options |= KB_LIMITS_COUNT_HASH_KEY;
        }
        if l.spans_refusals() {
            out.options |= KB_LIMITS_SPAN_REFUSALS;
        }
        // SAFETY: a valid pointer.
        assert_eq!(unsafe { kb_limits_check(&out) }, KB_OK);
        out
    }

    /// `kb_planner_plan` with capacities of 1..=max, resumed until done.
    fn c_bulk(
        records: Shared<'_>,
        limits: &kb_limits,
        seed: u64,
        max: u64,
    ) -> Result<PlanOut, String> {
        let mut rng = Rng(seed | 1);
        let (mut batches, mut refusals) = (Vec::new(), Vec::new());
        let mut b = vec![Batch::default(); max as usize];
        let mut f = vec![Refusal::default(); max as usize];
        let mut planner = null_mut();
        // SAFETY: every pointer is valid for its call; the arrays hold their capacities;
        // the planner is this thread's own and freed before returning.
        unsafe {
            let status = kb_planner_new(limits, &mut planner);
            if status != KB_OK {
                return Err(format!("kb_planner_new: {status}"));
            }
            let result = loop {
                let (bc, fc) = (1 + rng.below(max) as usize, 1 + rng.below(max) as usize);
                let (mut nb, mut nf, mut bad) = (0, 0, usize::MAX);
                let status = kb_planner_plan(
                    planner,
                    records.0.as_ptr(),
                    records.0.len(),
                    b.as_mut_ptr(),
                    bc,
                    &mut nb,
                    f.as_mut_ptr(),
                    fc,
                    &mut nf,
                    &mut bad,
                );
                batches.extend_from_slice(&b[..nb]);
                refusals.extend_from_slice(&f[..nf]);
                match status {
                    KB_OK => break Ok((batches, refusals)),
                    KB_BATCHES_FULL | KB_REFUSALS_FULL => {}
                    other => break Err(format!("kb_planner_plan: {other} at {bad}")),
                }
            };
            kb_planner_free(planner);
            result
        }
    }

    /// `kb_planner_next` until `KB_END`.
    fn c_next(records: Shared<'_>, limits: &kb_limits) -> Result<PlanOut, String> {
        let (mut batches, mut refusals) = (Vec::new(), Vec::new());
        let mut planner = null_mut();
        // SAFETY: as in c_bulk.
        unsafe {
            let status = kb_planner_new(limits, &mut planner);
            if status != KB_OK {
                return Err(format!("kb_planner_new: {status}"));
            }
            let result = loop {
                let (mut b, mut f) = (Batch::default(), Refusal::default());
                match kb_planner_next(
                    planner,
                    records.0.as_ptr(),
                    records.0.len(),
                    &mut b,
                    &mut f,
                    null_mut(),
                ) {
                    KB_OK => batches.push(b),
                    KB_REFUSED => refusals.push(f),
                    KB_END => break Ok((batches, refusals)),
                    other => break Err(format!("kb_planner_next: {other}")),
                }
            };
            kb_planner_free(planner);
            result
        }
    }

    /// `kb_accumulator_push` for each record, then `kb_accumulator_flush`.
    fn c_accumulator(records: Shared<'_>, limits: &kb_limits) -> Result<PlanOut, String> {
        let (mut batches, mut refusals) = (Vec::new(), Vec::new());
        let mut acc = null_mut();
        // SAFETY: as in c_bulk.
        unsafe {
            let status = kb_accumulator_new(limits, &mut acc);
            if status != KB_OK {
                return Err(format!("kb_accumulator_new: {status}"));
            }
            let mut result = Ok(());
            for (index, record) in records.0.iter().enumerate() {
                let (mut b, mut reason) = (Batch::default(), Reason::KeyEmpty);
                match kb_accumulator_push(acc, record, &mut b, &mut reason) {
                    KB_OK => {}
                    KB_SEND_FIRST => batches.push(b),
                    KB_REFUSED => refusals.push(Refusal { index, reason }),
                    other => {
                        result = Err(format!("kb_accumulator_push: {other} at {index}"));
                        break;
                    }
                }
            }
            let mut b = Batch::default();
            if result.is_ok() {
                match kb_accumulator_flush(acc, &mut b) {
                    KB_OK => batches.push(b),
                    KB_END => {}
                    other => result = Err(format!("kb_accumulator_flush: {other}")),
                }
            }
            kb_accumulator_free(acc);
            result.map(|()| (batches, refusals))
        }
    }

    /// `kb_record_size_of` into this thread's own array, then `kb_planner_plan_sizes`.
    fn c_sizes(records: Shared<'_>, limits: &kb_limits, seed: u64) -> Result<PlanOut, String> {
        let mut sizes = vec![RecordSize::default(); records.0.len()];
        for (record, size) in records.0.iter().zip(&mut sizes) {
            // SAFETY: valid pointers; the record's fields point to their lengths.
            let status = unsafe { kb_record_size_of(record, limits.key_unit, size) };
            if status != KB_OK {
                return Err(format!("kb_record_size_of: {status}"));
            }
        }
        let mut rng = Rng(seed | 1);
        let (mut batches, mut refusals) = (Vec::new(), Vec::new());
        let (mut b, mut f) = ([Batch::default(); 7], [Refusal::default(); 7]);
        let mut planner = null_mut();
        // SAFETY: as in c_bulk.
        unsafe {
            let status = kb_planner_new(limits, &mut planner);
            if status != KB_OK {
                return Err(format!("kb_planner_new: {status}"));
            }
            let result = loop {
                let (bc, fc) = (1 + rng.below(7) as usize, 1 + rng.below(7) as usize);
                let (mut nb, mut nf) = (0, 0);
                let status = kb_planner_plan_sizes(
                    planner,
                    sizes.as_ptr(),
                    sizes.len(),
                    b.as_mut_ptr(),
                    bc,
                    &mut nb,
                    f.as_mut_ptr(),
                    fc,
                    &mut nf,
                );
                batches.extend_from_slice(&b[..nb]);
                refusals.extend_from_slice(&f[..nf]);
                match status {
                    KB_OK => break Ok((batches, refusals)),
                    KB_BATCHES_FULL | KB_REFUSALS_FULL => {}
                    other => break Err(format!("kb_planner_plan_sizes: {other}")),
                }
            };
            kb_planner_free(planner);
            result
        }
    }

    #[test]
    fn threads_sharing_one_kb_record_array_agree_with_one_thread() {
        let buffers = buffers();
        let input = records(&buffers);
        let limits = limit_sets();
        let want: Vec<PlanOut> = limits.iter().map(|&l| single_threaded(&input, l)).collect();
        let c_records = c_records(&input);
        let c_limit_sets: Vec<kb_limits> = limits.iter().map(c_limits).collect();
        let shared = Shared(&c_records);
        // Single-threaded through the C ABI first: the same plan as the Rust API.
        for (i, l) in c_limit_sets.iter().enumerate() {
            assert_eq!(
                compare(
                    "C ABI, one thread",
                    &c_bulk(shared, l, 9, 1000).unwrap(),
                    &want[i]
                ),
                Ok(())
            );
        }
        let failures: Vec<String> = thread::scope(|scope| {
            let workers: Vec<_> = (0..THREADS)
                .map(|t| {
                    let (c_limit_sets, want) = (&c_limit_sets, &want);
                    scope.spawn(move || {
                        let mut failures = Vec::new();
                        for step in 0..4 {
                            let i = (t + step) % 2;
                            let (l, want) = (&c_limit_sets[i], &want[i]);
                            let seed = 0xc0de + (t * 4 + step) as u64;
                            let (name, got) = match (t + step) % 4 {
                                0 => (
                                    "kb_planner_plan, capacities 1..=4",
                                    c_bulk(shared, l, seed, 4),
                                ),
                                1 => ("kb_planner_next", c_next(shared, l)),
                                2 => ("kb_accumulator_push", c_accumulator(shared, l)),
                                _ => ("kb_planner_plan_sizes", c_sizes(shared, l, seed)),
                            };
                            let name = format!("thread {t}, limits {i}, {name}");
                            match got {
                                Ok(got) => failures.extend(compare(&name, &got, want).err()),
                                Err(e) => failures.push(format!("{name}: {e}")),
                            }
                        }
                        failures
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("a C ABI thread panicked"))
                .collect()
        });
        assert!(failures.is_empty(), "{failures:#?}");
    }
}
