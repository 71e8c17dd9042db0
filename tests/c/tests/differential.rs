//! The C entry points plan exactly as the Rust API does, on the same random inputs.
//!
//! For each case, random limits and a random record array (data lengths around the caps;
//! keys empty, ASCII, multi-byte, invalid UTF-8 or over 256 units; some explicit hash
//! keys, valid and invalid) are planned by `kinesis_batcher::Planner::plan` in Rust, and
//! in C by four drivers: `kb_planner_plan` with small random capacities resumed until
//! done, `kb_planner_next`, `kb_accumulator_push` + `kb_accumulator_flush`, and
//! `kb_record_size_of` + `kb_planner_plan_sizes`. Every driver must give the same
//! batches (start, end, records, bytes) and refusals (index, reason). Line planning is
//! compared the same way: C fed in random chunks, Rust on the whole buffer.

use kinesis_batcher::ffi::{self, kb_limits, kb_record};
use kinesis_batcher::lines::{LineBatch, LinePlanner, LineRefusal, LineSource, LineStatus, Lines};
use kinesis_batcher::{Batch, KeyUnit, Limits, Measure, Planner, Reason, Record, Refusal, Status};
use kinesis_batcher_ctests::{Driver, LANGS};

const MIB: u32 = 1 << 20;

/// xorshift64*: small, deterministic, good enough to spread cases.
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
        self.next() % n.max(1)
    }
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }
}

/// Random valid limits, as C fills them and as Rust builds them.
fn random_limits(rng: &mut Rng, small: bool) -> (kb_limits, Limits) {
    let profile = rng.below(3) as u32;
    let (base, ceiling) = match profile {
        ffi::KB_PROFILE_KDS => (Limits::KDS, 10 * MIB),
        ffi::KB_PROFILE_KDS_5MIB => (Limits::KDS_5MIB, MIB),
        _ => (Limits::FIREHOSE, 1_024_000),
    };
    let max_records = match rng.below(6) {
        0 => 1,
        1 => 2,
        2 => 500,
        3 => rng.range(3, 10),
        _ => rng.range(1, 500),
    } as u32;
    let (request, record) = if small {
        let request = rng.range(1, 5000) as u32;
        (request, rng.range(1, u64::from(request.min(300))) as u32)
    } else {
        match rng.below(3) {
            0 => {
                // Up to the profile's request ceiling (10, 5 or 4 MiB: its default cap).
                let request = rng.range(1, u64::from(base.max_request_bytes())) as u32;
                let record = rng.range(1, u64::from(request.min(ceiling))) as u32;
                (request, record)
            }
            1 => {
                let request = rng.range(10, 20_000) as u32;
                (
                    request,
                    rng.range(1, u64::from(request.min(ceiling))) as u32,
                )
            }
            _ => (base.max_request_bytes(), base.max_record_bytes()),
        }
    };
    let key_unit = rng.below(3) as u32;
    // Every combination of KB_LIMITS_NO_PARTITION_KEYS, _COUNT_HASH_KEY, _SPAN_REFUSALS.
    let options = rng.below(8) as u32;
    let c = kb_limits {
        profile,
        max_records,
        max_request_bytes: request,
        max_record_bytes: record,
        key_unit,
        options,
    };
    let unit = [KeyUnit::CodePoints, KeyUnit::Utf16Units, KeyUnit::Utf8Bytes][key_unit as usize];
    let core = base
        .with_caps(max_records, request, record)
        .expect("generated limits are valid")
        .with_key_unit(unit)
        .counting_hash_key(options & ffi::KB_LIMITS_COUNT_HASH_KEY != 0)
        .spanning_refusals(options & ffi::KB_LIMITS_SPAN_REFUSALS != 0);
    // The profile says whether records have keys (Firehose never); the bit turns them off.
    let core = if options & ffi::KB_LIMITS_NO_PARTITION_KEYS != 0 {
        core.without_partition_keys()
    } else {
        core
    };
    // SAFETY: a valid kb_limits on the stack.
    assert_eq!(unsafe { ffi::kb_limits_check(&c) }, ffi::KB_OK, "{c:?}");
    (c, core)
}

/// Keys of every kind the validation distinguishes.
fn key_pool() -> Vec<Vec<u8>> {
    let mut keys: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"k".to_vec(),
        b"user-42".to_vec(),
        b"0123456789abcdef0123".to_vec(),
        vec![b'a'; 256],
        vec![b'a'; 257],
        vec![0xff],
        vec![b'o', b'k', 0xc3],
        "clé".as_bytes().to_vec(),
    ];
    for n in [255, 256, 257] {
        keys.push("é".repeat(n).into_bytes()); // 2 bytes, 1 code point, 1 UTF-16 unit
    }
    for n in [127, 128, 129] {
        keys.push("𝄞".repeat(n).into_bytes()); // 4 bytes, 1 code point, 2 UTF-16 units
    }
    keys
}

fn hash_key_pool() -> Vec<Option<Vec<u8>>> {
    vec![
        None,
        Some(b"0".to_vec()),
        Some(b"123456789".to_vec()),
        Some(b"340282366920938463463374607431768211455".to_vec()),
        Some(b"340282366920938463463374607431768211456".to_vec()),
        Some(b"01".to_vec()),
        Some(Vec::new()),
        Some(b"12a".to_vec()),
    ]
}

/// A record as indices into the pools and a data length.
#[derive(Clone, Copy)]
struct Spec {
    data_len: usize,
    key: usize,
    hash_key: usize,
}

fn random_specs(rng: &mut Rng, limits: &Limits, keys: &[Vec<u8>], n: usize) -> Vec<Spec> {
    let cap = limits.max_record_bytes() as usize;
    (0..n)
        .map(|_| {
            let key = if rng.below(3) == 0 {
                rng.below(keys.len() as u64) as usize
            } else {
                1 + rng.below(3) as usize // mostly valid keys
            };
            let hash_key = if rng.below(5) == 0 {
                rng.range(1, 7) as usize
            } else {
                0
            };
            let klen = keys[key].len();
            let data_len = match rng.below(4) {
                0 => rng.below(50) as usize,
                1 => (cap.saturating_sub(klen) + rng.below(7) as usize).saturating_sub(3),
                2 => rng.below(cap as u64 + cap as u64 / 10 + 2) as usize,
                _ => rng.below((cap / 8).max(1) as u64) as usize,
            };
            Spec {
                data_len,
                key,
                hash_key,
            }
        })
        .collect()
}

fn rust_plan(limits: Limits, records: &[Record<'_>]) -> (Vec<Batch>, Vec<Refusal>) {
    let n = records.len();
    let mut batches = vec![Batch::default(); n + 1];
    let mut refusals = vec![Refusal::default(); n + 1];
    let progress = Planner::new(limits).plan(records, &mut batches, &mut refusals);
    assert_eq!(progress.status, Status::Done);
    batches.truncate(progress.batches);
    refusals.truncate(progress.refusals);
    (batches, refusals)
}

fn c_plan(
    driver: Driver,
    limits: &kb_limits,
    records: &[kb_record],
    seed: u64,
) -> (ffi::kb_status, Vec<Batch>, Vec<Refusal>) {
    let n = records.len();
    let mut batches = vec![Batch::default(); n + 1];
    let mut refusals = vec![Refusal::default(); n + 1];
    let (mut nb, mut nf) = (0usize, 0usize);
    // SAFETY: the records point into live buffers; the output arrays hold n + 1 entries
    // each, as the drivers require.
    let status = unsafe {
        driver(
            limits,
            records.as_ptr(),
            n,
            seed,
            batches.as_mut_ptr(),
            &mut nb,
            refusals.as_mut_ptr(),
            &mut nf,
        )
    };
    batches.truncate(nb);
    refusals.truncate(nf);
    (status, batches, refusals)
}

#[test]
fn c_drivers_plan_as_rust_does() {
    let keys = key_pool();
    let hash_keys = hash_key_pool();
    let data = vec![0u8; 11 * MIB as usize];
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut refused_seen = [0usize; 5];
    let mut batches_seen = 0usize;
    let mut spans_seen = 0usize;
    for case in 0..1500u64 {
        let (c_limits, limits) = random_limits(&mut rng, false);
        let n = match rng.below(5) {
            0 => rng.below(5) as usize,
            1 => rng.range(495, 1100) as usize,
            _ => rng.below(400) as usize,
        };
        let specs = random_specs(&mut rng, &limits, &keys, n);
        let records: Vec<Record<'_>> = specs
            .iter()
            .map(|s| {
                let record = Record::new(&data[..s.data_len], &keys[s.key]);
                match &hash_keys[s.hash_key] {
                    Some(h) => record.with_hash_key(h),
                    None => record,
                }
            })
            .collect();
        let c_records: Vec<kb_record> = records
            .iter()
            .map(|r| kb_record {
                data: r.data.as_ptr(),
                data_len: r.data.len(),
                key: r.key.as_ptr(),
                key_len: r.key.len(),
                hash_key: r.hash_key.map_or(core::ptr::null(), <[u8]>::as_ptr),
                hash_key_len: r.hash_key.map_or(0, <[u8]>::len),
            })
            .collect();
        let (batches, refusals) = rust_plan(limits, &records);
        batches_seen += batches.len();
        // Without KB_LIMITS_SPAN_REFUSALS every batch is records[start..end) as it is;
        // with it, some batches do span refused records (checked after the loop).
        let spanning = batches
            .iter()
            .filter(|b| b.end - b.start != b.records as usize);
        if c_limits.options & ffi::KB_LIMITS_SPAN_REFUSALS == 0 {
            assert_eq!(
                spanning.count(),
                0,
                "case {case}: a batch holds a refused record"
            );
        } else {
            spans_seen += spanning.count();
        }
        for r in &refusals {
            refused_seen[r.reason as usize] += 1;
        }
        // Each record measures the same through the ABI as in Rust.
        for (r, c) in records.iter().zip(&c_records).take(50) {
            let (mut size, mut reason) = (0u32, Reason::KeyEmpty);
            // SAFETY: valid pointers on the stack and into live buffers.
            let status = unsafe { ffi::kb_record_measure(&c_limits, c, &mut size, &mut reason) };
            match r.measure(&limits) {
                Ok(bytes) => assert_eq!((status, size), (ffi::KB_OK, bytes), "case {case}"),
                Err(why) => assert_eq!((status, reason), (ffi::KB_REFUSED, why), "case {case}"),
            }
        }
        let lang = LANGS[(case % 2) as usize];
        for (name, driver) in [
            ("kb_planner_plan", lang.drive_plan),
            ("kb_planner_next", lang.drive_next),
            ("kb_accumulator_push", lang.drive_accumulator),
            ("kb_planner_plan_sizes", lang.drive_sizes),
        ] {
            let (status, c_batches, c_refusals) = c_plan(driver, &c_limits, &c_records, case);
            let what = format!(
                "case {case}, {} driver {name}, {c_limits:?}, n = {n}",
                lang.name
            );
            assert_eq!(status, ffi::KB_OK, "{what}");
            assert_eq!(c_batches, batches, "{what}: batches differ");
            assert_eq!(c_refusals, refusals, "{what}: refusals differ");
        }
    }
    // The generator reaches every reason, and plans with many batches.
    assert!(
        refused_seen.iter().all(|&n| n > 0),
        "reasons seen: {refused_seen:?}"
    );
    assert!(batches_seen > 1000, "only {batches_seen} batches");
    assert!(
        spans_seen > 50,
        "only {spans_seen} batches spanned a refusal"
    );
}

fn random_lines(rng: &mut Rng, cap: usize) -> Vec<u8> {
    let mut input = Vec::new();
    let lines = rng.below(300);
    for _ in 0..lines {
        let len = match rng.below(5) {
            0 => 0,
            1 => (cap + rng.below(5) as usize).saturating_sub(2),
            2 => rng.below(3 * cap as u64 + 1) as usize,
            _ => rng.below((cap / 3 + 1) as u64) as usize,
        };
        input.extend((0..len).map(|i| b'a' + (i % 26) as u8));
        if rng.below(6) == 0 {
            input.push(b'\r');
        }
        input.push(b'\n');
    }
    if rng.below(2) == 0 {
        input.extend_from_slice(b"no newline at the end");
    }
    input
}

fn rust_lines<S: LineSource>(
    planner: Result<LinePlanner<S>, Reason>,
    input: &[u8],
) -> Result<(Vec<LineBatch>, Vec<LineRefusal>), Reason> {
    let mut planner = planner?;
    let mut batches = vec![LineBatch::default(); input.len() + 2];
    let mut refusals = vec![LineRefusal::default(); input.len() + 2];
    let progress = planner.plan(input, true, &mut batches, &mut refusals);
    assert_eq!(progress.status, LineStatus::Done);
    assert_eq!(progress.consumed, input.len());
    batches.truncate(progress.batches);
    refusals.truncate(progress.refusals);
    Ok((batches, refusals))
}

#[test]
fn c_line_planner_in_chunks_plans_as_rust_does_on_the_whole_buffer() {
    let keys = key_pool();
    let mut rng = Rng(0xfeed_f00d_dead_beef);
    let (mut refused, mut batches_seen, mut key_refused) = (0usize, 0usize, 0usize);
    for case in 0..800u64 {
        let (c_limits, limits) = random_limits(&mut rng, true);
        let key = if rng.below(4) == 0 {
            &keys[rng.below(keys.len() as u64) as usize]
        } else {
            &keys[1]
        };
        let options = rng.below(3) as u32;
        let input = random_lines(&mut rng, limits.max_record_bytes() as usize);
        let expected = match options {
            0 => rust_lines(LinePlanner::new(limits, key), &input),
            ffi::KB_LINES_PACK => rust_lines(LinePlanner::packing(limits, key), &input),
            _ => rust_lines(
                LinePlanner::with_source(limits, key, Lines::new(&limits).keep_empty()),
                &input,
            ),
        };
        let lang = LANGS[(case % 2) as usize];
        let cap = input.len() + 2;
        let mut batches = vec![LineBatch::default(); cap];
        let mut refusals = vec![LineRefusal::default(); cap];
        let (mut nb, mut nf) = (0usize, 0usize);
        let mut why = Reason::KeyEmpty;
        // SAFETY: every pointer is to a live buffer of the length passed with it.
        let status = unsafe {
            (lang.drive_lines)(
                &c_limits,
                key.as_ptr(),
                key.len(),
                options,
                input.as_ptr(),
                input.len(),
                case,
                batches.as_mut_ptr(),
                cap,
                &mut nb,
                refusals.as_mut_ptr(),
                cap,
                &mut nf,
                &mut why,
            )
        };
        let what = format!(
            "case {case}, {}, {c_limits:?}, options {options}",
            lang.name
        );
        match expected {
            Err(reason) => {
                key_refused += 1;
                assert_eq!((status, why), (ffi::KB_KEY_REFUSED, reason), "{what}");
            }
            Ok((want_batches, want_refusals)) => {
                assert_eq!(status, ffi::KB_OK, "{what}");
                batches.truncate(nb);
                refusals.truncate(nf);
                assert_eq!(batches, want_batches, "{what}: batches differ");
                assert_eq!(refusals, want_refusals, "{what}: refusals differ");
                refused += want_refusals.len();
                batches_seen += want_batches.len();
            }
        }
    }
    assert!(
        refused > 100 && batches_seen > 1000 && key_refused > 5,
        "refused {refused}, batches {batches_seen}, key refused {key_refused}"
    );
}
