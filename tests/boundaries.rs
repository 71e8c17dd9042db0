//! Exact-boundary tests: every limit at its value and one past it, through both input
//! forms and every call style where it matters.

use kinesis_batcher::{
    Accumulator, Batch, Event, KeyUnit, Limits, LimitsError, Measure, Planner, Push, Reason,
    Record, RecordSize, Refusal, Status, plan,
};

const MIB: usize = 1024 * 1024;
const MAX_HASH_KEY: &[u8] = b"340282366920938463463374607431768211455"; // 2^128 - 1
const HASH_KEY_2_128: &[u8] = b"340282366920938463463374607431768211456";

/// The whole plan, by the cursor: (batches, refusals).
fn events<M: Measure>(input: &[M], limits: Limits) -> (Vec<Batch>, Vec<Refusal>) {
    let mut batches = Vec::new();
    let mut refusals = Vec::new();
    for event in plan(input, limits) {
        match event {
            Event::Batch(batch) => batches.push(batch),
            Event::Refused(refusal) => refusals.push(refusal),
        }
    }
    (batches, refusals)
}

/// The whole plan, in bulk with room to finish in one call; must equal the cursor's.
fn bulk<M: Measure>(input: &[M], limits: Limits) -> (Vec<Batch>, Vec<Refusal>) {
    let mut batches = vec![Batch::default(); input.len()];
    let mut refusals = vec![Refusal::default(); input.len()];
    let progress = Planner::new(limits).plan(input, &mut batches, &mut refusals);
    assert_eq!(progress.status, Status::Done);
    batches.truncate(progress.batches);
    refusals.truncate(progress.refusals);
    assert_eq!((batches.clone(), refusals.clone()), events(input, limits));
    (batches, refusals)
}

fn sized(data_len: usize, key_len: usize) -> RecordSize {
    RecordSize {
        data_len: data_len as u64,
        key_len: key_len as u32,
        key_units: key_len as u32,
        ..RecordSize::default()
    }
}

fn batch(start: usize, end: usize, records: u32, bytes: usize) -> Batch {
    Batch {
        start,
        end,
        records,
        bytes: bytes as u32,
    }
}

fn refused(index: usize, reason: Reason) -> Refusal {
    Refusal { index, reason }
}

#[test]
fn empty_input_gives_no_batch() {
    let none: [Record; 0] = [];
    assert_eq!(bulk(&none, Limits::KDS), (vec![], vec![]));
    let mut acc = Accumulator::new(Limits::KDS);
    assert_eq!(acc.flush(), None);
}

#[test]
fn all_refused_gives_no_batch() {
    let records = [Record::new(b"a", b""), Record::new(b"b", b"\xff")];
    let (batches, refusals) = bulk(&records, Limits::KDS);
    assert!(batches.is_empty());
    assert_eq!(
        refusals,
        [refused(0, Reason::KeyEmpty), refused(1, Reason::KeyNotUtf8)]
    );
}

#[test]
fn five_hundred_records_fit_one_request_and_501_take_two() {
    let five_hundred = vec![sized(10, 6); 500];
    assert_eq!(
        bulk(&five_hundred, Limits::KDS).0,
        [batch(0, 500, 500, 8000)]
    );
    let five_hundred_one = vec![sized(10, 6); 501];
    assert_eq!(
        bulk(&five_hundred_one, Limits::KDS).0,
        [batch(0, 500, 500, 8000), batch(500, 501, 1, 16)]
    );
}

#[test]
fn request_of_exactly_the_cap_fits_and_one_byte_more_splits() {
    for limits in [Limits::KDS, Limits::KDS_5MIB] {
        let cap = limits.max_request_bytes() as usize;
        // Twenty records of cap/20 bytes each, keys included.
        let exact = vec![sized(cap / 20 - 3, 3); 20];
        assert_eq!(bulk(&exact, limits).0, [batch(0, 20, 20, cap)]);
        // The same with one more byte in the last record's key.
        let mut over = exact.clone();
        over[19] = sized(cap / 20 - 3, 4);
        assert_eq!(
            bulk(&over, limits).0,
            [
                batch(0, 19, 19, cap / 20 * 19),
                batch(19, 20, 1, cap / 20 + 1)
            ]
        );
    }
}

#[test]
fn record_of_exactly_the_cap_with_its_key_fits_and_one_byte_more_is_refused() {
    let data = vec![0u8; MIB];
    let key = b"partition";
    let exact = Record::new(&data[..MIB - key.len()], key);
    let over = Record::new(&data[..MIB - key.len() + 1], key);
    assert_eq!(exact.measure(&Limits::KDS), Ok(MIB as u32));
    assert_eq!(over.measure(&Limits::KDS), Err(Reason::RecordTooLarge));
    // By default the refused record closes the batch: each batch is a run to send as is.
    let (batches, refusals) = bulk(&[exact, over, exact], Limits::KDS);
    assert_eq!(batches, [batch(0, 1, 1, MIB), batch(2, 3, 1, MIB)]);
    assert_eq!(refusals, [refused(1, Reason::RecordTooLarge)]);
    // Spanning refusals, it does not split the batch: 2 MiB fits one 10 MiB request.
    let spanning = Limits::KDS.spanning_refusals(true);
    let (batches, refusals) = bulk(&[exact, over, exact], spanning);
    assert_eq!(batches, [batch(0, 3, 2, 2 * MIB)]);
    assert_eq!(refusals, [refused(1, Reason::RecordTooLarge)]);
    // The 5 MiB profile has the same record cap.
    assert_eq!(over.measure(&Limits::KDS_5MIB), Err(Reason::RecordTooLarge));
}

#[test]
fn multi_byte_key_counts_its_utf8_bytes_towards_size() {
    let key = "é".repeat(10); // 10 characters, 20 bytes
    let data = vec![0u8; MIB];
    let exact = Record::new(&data[..MIB - 20], key.as_bytes());
    let over = Record::new(&data[..MIB - 19], key.as_bytes());
    assert_eq!(exact.measure(&Limits::KDS), Ok(MIB as u32));
    assert_eq!(over.measure(&Limits::KDS), Err(Reason::RecordTooLarge));
}

#[test]
fn stream_record_cap_of_10_mib() {
    let limits = Limits::kds_for_stream(10240).unwrap();
    assert_eq!(sized(10 * MIB - 1, 1).measure(&limits), Ok(10 * MIB as u32));
    assert_eq!(
        sized(10 * MIB, 1).measure(&limits),
        Err(Reason::RecordTooLarge)
    );
    // Two 10 MiB records cannot share a request.
    let two = [sized(10 * MIB - 1, 1); 2];
    assert_eq!(bulk(&two, limits).0.len(), 2);
}

#[test]
fn key_of_256_multi_byte_characters_passes_and_257_is_refused() {
    let data = b"x";
    for ch in ['a', 'é', '€', '😀'] {
        let k256: String = std::iter::repeat_n(ch, 256).collect();
        let k257: String = std::iter::repeat_n(ch, 257).collect();
        let limits = Limits::KDS.with_key_unit(KeyUnit::CodePoints);
        assert_eq!(
            Record::new(data, k256.as_bytes()).measure(&limits),
            Ok(1 + k256.len() as u32),
            "{ch}"
        );
        assert_eq!(
            Record::new(data, k257.as_bytes()).measure(&limits),
            Err(Reason::KeyTooLong),
            "{ch}"
        );
    }
}

#[test]
fn key_length_rules_differ_on_multi_byte_keys() {
    let data = b"x";
    let accents = "é".repeat(256); // 256 code points, 256 UTF-16 units, 512 bytes
    let emoji = "😀".repeat(256); // 256 code points, 512 UTF-16 units, 1024 bytes
    let verdict = |key: &str, unit| {
        let limits = Limits::KDS.with_key_unit(unit);
        let view = Record::new(data, key.as_bytes()).measure(&limits);
        let size = RecordSize::of(&Record::new(data, key.as_bytes()), unit).measure(&limits);
        assert_eq!(view, size, "both input forms agree");
        view.is_ok()
    };
    assert!(verdict(&accents, KeyUnit::CodePoints));
    assert!(verdict(&accents, KeyUnit::Utf16Units));
    assert!(!verdict(&accents, KeyUnit::Utf8Bytes));
    assert!(verdict(&emoji, KeyUnit::CodePoints));
    assert!(!verdict(&emoji, KeyUnit::Utf16Units));
    assert!(!verdict(&emoji, KeyUnit::Utf8Bytes));
    // 256 ASCII bytes pass every rule, 257 none.
    for unit in [KeyUnit::CodePoints, KeyUnit::Utf16Units, KeyUnit::Utf8Bytes] {
        assert!(verdict(&"k".repeat(256), unit));
        assert!(!verdict(&"k".repeat(257), unit));
    }
}

#[test]
fn empty_and_invalid_keys_are_refused_never_truncated() {
    let limits = Limits::KDS;
    assert_eq!(
        Record::new(b"x", b"").measure(&limits),
        Err(Reason::KeyEmpty)
    );
    for bad in [&b"\xff"[..], b"ab\xc3", b"\xed\xa0\x80", b"\xc0\x80"] {
        assert_eq!(
            Record::new(b"x", bad).measure(&limits),
            Err(Reason::KeyNotUtf8),
            "{bad:?}"
        );
    }
    // A long invalid key is reported as invalid, not as too long.
    let mut long_bad = vec![b'k'; 400];
    long_bad[399] = 0xff;
    assert_eq!(
        Record::new(b"x", &long_bad).measure(&limits),
        Err(Reason::KeyNotUtf8)
    );
}

#[test]
fn hash_keys_at_the_edge_of_128_bits() {
    let limits = Limits::KDS;
    let with = |h: &'static [u8]| Record::new(b"x", b"k").with_hash_key(h).measure(&limits);
    assert_eq!(with(MAX_HASH_KEY), Ok(2));
    assert_eq!(with(b"0"), Ok(2));
    assert_eq!(with(HASH_KEY_2_128), Err(Reason::HashKeyInvalid));
    assert_eq!(
        with(b"1000000000000000000000000000000000000000"),
        Err(Reason::HashKeyInvalid)
    );
    for bad in [&b""[..], b"00", b"01", b"-1", b"+1", b"1 ", b"0x10", b"1e3"] {
        assert_eq!(with(bad), Err(Reason::HashKeyInvalid), "{bad:?}");
    }
    // Counted only on request, and then the record cap includes it.
    let counting = Limits::KDS.counting_hash_key(true);
    let data = vec![0u8; MIB];
    let at_cap = Record::new(&data[..MIB - 1 - 39], b"k").with_hash_key(MAX_HASH_KEY);
    assert_eq!(at_cap.measure(&counting), Ok(MIB as u32));
    let over = Record::new(&data[..MIB - 39], b"k").with_hash_key(MAX_HASH_KEY);
    assert_eq!(over.measure(&counting), Err(Reason::RecordTooLarge));
    assert_eq!(over.measure(&Limits::KDS), Ok((MIB - 38) as u32));
}

#[test]
fn firehose_has_no_key_and_a_1000_kib_record_cap() {
    let limits = Limits::FIREHOSE;
    assert_eq!(limits.max_request_bytes(), 4 * MIB as u32);
    let data = vec![0u8; 1_024_001];
    // Keys are neither validated nor counted.
    let exact = Record::new(&data[..1_024_000], b"\xff");
    let over = Record::new(&data, b"");
    assert_eq!(exact.measure(&limits), Ok(1_024_000));
    assert_eq!(over.measure(&limits), Err(Reason::RecordTooLarge));
    // Four records of exactly 1,024,000 bytes fit 4 MiB (4,194,304); a fifth does not.
    let five = [exact; 5];
    assert_eq!(
        bulk(&five, limits).0,
        [batch(0, 4, 4, 4_096_000), batch(4, 5, 1, 1_024_000)]
    );
}

#[test]
fn custom_limits_are_validated_at_every_edge() {
    const TEN_MIB: u32 = 10 * MIB as u32;
    assert!(Limits::new(500, TEN_MIB, TEN_MIB).is_ok());
    assert!(Limits::new(1, 1, 1).is_ok());
    assert_eq!(
        Limits::new(501, 100, 10),
        Err(LimitsError::RecordsAboveService)
    );
    assert_eq!(
        Limits::new(5, TEN_MIB + 1, 10),
        Err(LimitsError::RequestBytesAboveService)
    );
    assert_eq!(
        Limits::new(5, TEN_MIB, TEN_MIB + 1),
        Err(LimitsError::RecordBytesAboveService)
    );
    assert_eq!(Limits::new(0, 1, 1), Err(LimitsError::ZeroRecords));
    assert_eq!(Limits::new(1, 0, 1), Err(LimitsError::ZeroRequestBytes));
    assert_eq!(Limits::new(1, 1, 0), Err(LimitsError::ZeroRecordBytes));
    assert_eq!(Limits::new(1, 10, 11), Err(LimitsError::RecordAboveRequest));
    assert_eq!(
        Limits::FIREHOSE.with_max_record_bytes(4 * MIB as u32 + 1),
        Err(LimitsError::RecordAboveRequest)
    );
    for (kib, ok) in [(1023, false), (1024, true), (10240, true), (10241, false)] {
        assert_eq!(Limits::kds_for_stream(kib).is_ok(), ok, "{kib}");
    }
    assert_eq!(Limits::default(), Limits::KDS);
    // Each error says which limit and why.
    assert!(
        LimitsError::RecordAboveRequest
            .to_string()
            .contains("max_record_bytes")
    );
}

#[test]
fn by_default_a_refused_record_closes_the_batch() {
    let limits = Limits::new(3, 100, 50).unwrap();
    let records = [
        sized(10, 1),
        sized(60, 1), // too large
        sized(10, 1),
        sized(10, 0), // empty key
        sized(10, 1),
        sized(10, 1),
        sized(60, 1), // too large, with no batch open after it
    ];
    let events: Vec<Event> = plan(&records, limits).collect();
    assert_eq!(
        events,
        [
            Event::Refused(refused(1, Reason::RecordTooLarge)),
            Event::Batch(batch(0, 1, 1, 11)),
            Event::Refused(refused(3, Reason::KeyEmpty)),
            Event::Batch(batch(2, 3, 1, 11)),
            Event::Refused(refused(6, Reason::RecordTooLarge)),
            Event::Batch(batch(4, 6, 2, 22)),
        ]
    );
    // What a user's loop would send: `records[batch.range()]`, never a refused index.
    for event in events {
        if let Event::Batch(b) = event {
            assert_eq!(b.refused(), 0);
            assert!(
                records[b.range()]
                    .iter()
                    .all(|r| r.key_len > 0 && r.data_len < 60)
            );
        }
    }
    // A refusal with no batch open seals nothing: the next records still share one.
    let records = [sized(60, 1), sized(10, 1), sized(10, 1)];
    let events: Vec<Event> = plan(&records, limits).collect();
    assert_eq!(events[1], Event::Batch(batch(1, 3, 2, 22)));
}

#[test]
fn refused_records_do_not_split_a_spanning_batch_and_are_reported_before_it() {
    let limits = Limits::new(3, 100, 50).unwrap().spanning_refusals(true);
    let records = [
        sized(10, 1),
        sized(60, 1), // too large
        sized(10, 1),
        sized(10, 0), // empty key
        sized(10, 1),
        sized(10, 1),
    ];
    let events: Vec<Event> = plan(&records, limits).collect();
    assert_eq!(
        events,
        [
            Event::Refused(refused(1, Reason::RecordTooLarge)),
            Event::Refused(refused(3, Reason::KeyEmpty)),
            Event::Batch(batch(0, 5, 3, 33)),
            Event::Batch(batch(5, 6, 1, 11)),
        ]
    );
    let Event::Batch(first) = events[2] else {
        unreachable!()
    };
    assert_eq!(first.refused(), 2);
}

#[test]
fn bulk_resumes_when_an_output_array_is_full() {
    let limits = Limits::new(1, 100, 100).unwrap();
    let records = [sized(1, 1), sized(1, 0), sized(1, 1)];
    let mut planner = Planner::new(limits);
    let mut batches = [Batch::default(); 1];
    let mut refusals = [Refusal::default(); 1];

    // With no room for batches, planning goes on until a batch must be written.
    let p = planner.plan(&records, &mut [], &mut refusals);
    assert_eq!(
        (p.status, p.batches, p.refusals),
        (Status::BatchesFull, 0, 1)
    );
    assert_eq!(
        (planner.position(), refusals[0]),
        (2, refused(1, Reason::KeyEmpty))
    );

    let p = planner.plan(&records, &mut batches, &mut refusals);
    assert_eq!(
        (p.status, p.batches, p.refusals),
        (Status::BatchesFull, 1, 0)
    );
    assert_eq!(batches[0], batch(0, 1, 1, 2));

    let p = planner.plan(&records, &mut batches, &mut refusals);
    assert_eq!((p.status, p.batches, p.refusals), (Status::Done, 1, 0));
    assert_eq!(batches[0], batch(2, 3, 1, 2));

    let p = planner.plan(&records, &mut batches, &mut refusals);
    assert_eq!((p.status, p.batches, p.refusals), (Status::Done, 0, 0));
    assert_eq!(planner.stats().batches, 2);
}

#[test]
fn bulk_with_a_full_refusal_array_stops_before_the_refused_record() {
    let records = [sized(1, 0), sized(1, 0), sized(1, 1)];
    let mut planner = Planner::new(Limits::KDS);
    let mut batches = [Batch::default(); 2];
    let mut refusals = [Refusal::default(); 1];
    let p = planner.plan(&records, &mut batches, &mut refusals);
    assert_eq!(
        (p.status, p.batches, p.refusals),
        (Status::RefusalsFull, 0, 1)
    );
    assert_eq!(planner.position(), 1);
    let p = planner.plan(&records, &mut batches, &mut refusals);
    assert_eq!((p.status, p.batches, p.refusals), (Status::Done, 1, 1));
    assert_eq!(refusals[0], refused(1, Reason::KeyEmpty));
}

#[test]
fn accumulator_says_send_first_at_the_record_that_does_not_fit() {
    let mut acc = Accumulator::new(Limits::KDS);
    for i in 0..500 {
        assert_eq!(acc.push(&sized(10, 6)), Push::Added, "{i}");
    }
    assert_eq!(
        acc.push(&sized(10, 6)),
        Push::SendFirst(batch(0, 500, 500, 8000))
    );
    assert_eq!(acc.pending(), Some(&batch(500, 501, 1, 16)));
    assert_eq!(
        acc.push(&sized(2 * MIB, 6)),
        Push::Refused(Reason::RecordTooLarge)
    );
    assert_eq!(acc.pushed(), 502);
    assert_eq!(acc.flush(), Some(batch(500, 501, 1, 16)));
    assert_eq!(acc.flush(), None);
    let stats = acc.stats();
    assert_eq!((stats.batches, stats.records, stats.bytes), (2, 501, 8016));
    assert_eq!(stats.refused_for(Reason::RecordTooLarge), 1);
}

#[test]
fn sizes_that_would_overflow_are_refused_not_wrapped() {
    let huge = RecordSize {
        data_len: u64::MAX,
        key_len: u32::MAX,
        key_units: 1,
        hash_key_len: u32::MAX,
        flags: 0,
    };
    let limits = Limits::KDS.counting_hash_key(true);
    assert_eq!(huge.measure(&limits), Err(Reason::RecordTooLarge));
    assert_eq!(
        kinesis_batcher::cost::record_size(&limits, u64::MAX, 5, 5),
        u64::MAX
    );
}

#[test]
fn each_profile_keeps_its_service_record_ceiling() {
    // Firehose takes records of at most 1,000 KiB and the pre-2025 API of at most 1 MiB,
    // whatever the request cap would allow.
    assert_eq!(
        Limits::FIREHOSE.with_max_record_bytes(1_024_001),
        Err(LimitsError::RecordBytesAboveProfile)
    );
    assert_eq!(
        Limits::KDS_5MIB.with_max_record_bytes(MIB as u32 + 1),
        Err(LimitsError::RecordBytesAboveProfile)
    );
    assert_eq!(
        Limits::FIREHOSE
            .with_max_record_bytes(500_000)
            .map(|l| l.max_record_bytes()),
        Ok(500_000)
    );
    assert!(Limits::KDS.with_max_record_bytes(10 * MIB as u32).is_ok());
    assert!(
        LimitsError::RecordBytesAboveProfile
            .message()
            .contains("1024000")
    );
}

/// A `Measure` that breaks its contract: it says a record is larger than the cap.
struct Liar(u32);

impl Measure for Liar {
    fn measure(&self, _: &Limits) -> Result<u32, Reason> {
        Ok(self.0)
    }
}

#[test]
fn a_measure_that_breaks_its_contract_cannot_put_a_batch_over_the_limits() {
    for lie in [u32::MAX, 20 * MIB as u32, MIB as u32 + 1] {
        let input = [Liar(10), Liar(lie), Liar(10)];
        let (batches, refusals) = bulk(&input, Limits::KDS.spanning_refusals(true));
        assert_eq!(batches, [batch(0, 3, 2, 20)], "{lie}");
        assert_eq!(refusals, [refused(1, Reason::RecordTooLarge)]);
        let mut acc = Accumulator::new(Limits::KDS);
        assert_eq!(acc.push(&Liar(lie)), Push::Refused(Reason::RecordTooLarge));
    }
}

#[test]
fn stats_with_extreme_counters_do_not_overflow() {
    let stats = kinesis_batcher::Stats {
        batches: u64::MAX,
        records: u64::MAX,
        bytes: u64::MAX,
        refused: [u64::MAX; Reason::COUNT],
    };
    assert_eq!(stats.refused_total(), u64::MAX);
    assert!(stats.byte_fill(&Limits::KDS) <= 1.0);
    assert!(stats.record_fill(&Limits::KDS) <= 1.0);
}

#[test]
fn a_line_source_that_overreports_what_it_consumed_cannot_make_the_planner_panic() {
    use kinesis_batcher::lines::{LineBatch, LinePlanner, LineRefusal, LineSource, LineStep};

    #[derive(Clone, Copy)]
    struct Greedy;
    impl LineSource for Greedy {
        fn next_line<'b>(&mut self, input: &'b [u8], _: bool) -> (LineStep<'b>, usize) {
            match input {
                [] => (LineStep::End, 0),
                _ => (
                    LineStep::Line(kinesis_batcher::lines::Line {
                        bytes: &input[..1],
                        len: 1,
                        number: 1,
                        last_number: 1,
                        offset: 0,
                    }),
                    input.len() + 100,
                ),
            }
        }
        fn reset(&mut self) {}
    }
    let mut planner = LinePlanner::with_source(Limits::KDS, b"k", Greedy).unwrap();
    let mut batches = [LineBatch::default(); 4];
    let mut refusals = [LineRefusal::default(); 4];
    let p = planner.plan(b"abc", true, &mut batches, &mut refusals);
    assert!(p.consumed <= 3);
    assert_eq!(p.batches, 1);
}

/// The naive reuse: one planner for two arrays. Without a check it would skip the new
/// array's first records (its position is past them).
#[test]
fn a_planner_given_another_array_says_so_and_reset_starts_over() {
    let first = [sized(10, 1); 3];
    let second = [sized(10, 1); 5];
    let mut planner = Planner::new(Limits::KDS);
    let (mut batches, mut refusals) = ([Batch::default(); 4], [Refusal::default(); 4]);
    let done = planner.plan(&first, &mut batches, &mut refusals);
    assert_eq!((done.status, done.batches), (Status::Done, 1));
    // Another length: nothing written, nothing changed.
    let sentinel = batch(7, 7, 7, 7);
    batches[0] = sentinel;
    let changed = planner.plan(&second, &mut batches, &mut refusals);
    assert_eq!(
        (changed.status, changed.batches, changed.refusals),
        (Status::InputChanged, 0, 0)
    );
    assert_eq!(batches[0], sentinel);
    assert_eq!(planner.position(), 3);
    assert_eq!(planner.next_event(&second), None);
    // A shorter array on resume is another input too.
    let mut resumed = Planner::new(Limits::new(1, 100, 100).unwrap());
    let p = resumed.plan(&second, &mut batches[..1], &mut refusals);
    assert_eq!(p.status, Status::BatchesFull);
    let p = resumed.plan(&second[..2], &mut batches, &mut refusals);
    assert_eq!(p.status, Status::InputChanged);
    // reset: the new array from index 0, all of it.
    planner.reset();
    let again = planner.plan(&second, &mut batches, &mut refusals);
    assert_eq!(again.status, Status::Done);
    assert_eq!(batches[0], batch(0, 5, 5, 55));
    assert_eq!(planner.stats().records, 5);
}

#[test]
fn reset_accumulator_and_line_planner_start_over() {
    use kinesis_batcher::lines::{LineBatch, LinePlanner, LineRefusal, LineStatus};

    let mut acc = Accumulator::new(Limits::KDS);
    assert_eq!(acc.push(&sized(10, 1)), Push::Added);
    acc.reset();
    assert_eq!((acc.pushed(), acc.pending()), (0, None));
    assert_eq!(acc.push(&sized(10, 1)), Push::Added);
    assert_eq!(acc.flush(), Some(batch(0, 1, 1, 11)));
    assert_eq!(acc.stats().records, 1);

    let mut planner = LinePlanner::new(Limits::KDS, b"k").unwrap();
    let (mut batches, mut refusals) = ([LineBatch::default(); 4], [LineRefusal::default(); 4]);
    let p = planner.plan(b"one\ntwo\n", true, &mut batches, &mut refusals);
    assert_eq!((p.status, p.batches), (LineStatus::Done, 1));
    planner.reset();
    let p = planner.plan(b"three\n", true, &mut batches, &mut refusals);
    assert_eq!((p.status, p.batches), (LineStatus::Done, 1));
    let b = batches[0];
    assert_eq!((b.batch.range(), b.first_line, b.offset), (0..1, 1, 0));
}

/// A line refused in the middle closes the request, as any refused record does.
#[test]
fn a_refused_line_closes_the_line_batch_by_default() {
    use kinesis_batcher::lines::{LineBatch, LinePlanner, LineRefusal};

    let limits = Limits::new(500, 1000, 6).unwrap();
    let stream = b"ab\ntoo long\ncd\n";
    let mut planner = LinePlanner::new(limits, b"k").unwrap();
    let (mut batches, mut refusals) = ([LineBatch::default(); 4], [LineRefusal::default(); 4]);
    let p = planner.plan(stream, true, &mut batches, &mut refusals);
    assert_eq!((p.batches, p.refusals), (2, 1));
    let bytes = |b: &LineBatch| &stream[b.offset as usize..b.end_offset as usize];
    assert_eq!(bytes(&batches[0]), b"ab");
    assert_eq!(bytes(&batches[1]), b"cd");
    assert_eq!(refusals[0].line, 2);
}

/// A profile's request cap is its service's: a custom cap above it would be a request the
/// service rejects whole.
#[test]
fn custom_request_caps_stop_at_the_profiles_ceiling() {
    let mib = MIB as u32;
    for (profile, ceiling) in [
        (Limits::KDS, 10 * mib),
        (Limits::KDS_5MIB, 5 * mib),
        (Limits::FIREHOSE, 4 * mib),
    ] {
        let record = profile.max_record_bytes();
        let at = profile.with_caps(500, ceiling, record).unwrap();
        assert_eq!(at.max_request_bytes(), ceiling);
        let over = profile.with_caps(500, ceiling + 1, record);
        let expected = if ceiling == 10 * mib {
            LimitsError::RequestBytesAboveService
        } else {
            LimitsError::RequestBytesAboveProfile
        };
        assert_eq!(over, Err(expected), "{profile:?}");
    }
}
