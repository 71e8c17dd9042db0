//! The planner over arbitrary records and small limits: every call style (one bulk
//! call, bulk resumed through 1..=4-entry arrays, the cursor, cursor and bulk mixed, the
//! accumulator) and every input form (`Record`, `&Record`, `RecordSize::of`) give the
//! same plan, and that plan keeps every invariant of `tests/properties.rs`.
#![no_main]

use arbitrary::Arbitrary;
use kb_fuzz::*;
use kinesis_batcher::{Measure, Record, RecordSize};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    limits: LimitsSpec,
    records: Vec<RecSpec>,
    caps: Vec<(u8, u8)>,
    schedule: Vec<Option<(u8, u8)>>,
}

fuzz_target!(|input: Input| {
    let Some(limits) = input.limits.limits() else {
        return;
    };
    let records: Vec<Rec> = input
        .records
        .iter()
        .take(80)
        .map(|r| r.rec(&limits))
        .collect();
    let views = views(&records);
    let caps = caps(&input.caps);
    let mut schedule: Vec<Option<(usize, usize)>> = input
        .schedule
        .iter()
        .take(16)
        .map(|s| s.map(|(b, r)| (usize::from(b % 4) + 1, usize::from(r % 4) + 1)))
        .collect();
    if schedule.is_empty() {
        schedule.push(None);
    }

    let measures: Vec<_> = views.iter().map(|r| r.measure(&limits)).collect();
    let model: Vec<_> = records.iter().map(|r| model::measure(r, &limits)).collect();

    let expected = bulk(&views, limits);
    check_plan(&expected, &measures, &model, &limits);
    assert_eq!(resumed(&views, limits, &caps), expected, "resumed bulk");
    assert_eq!(cursor(&views, limits), expected, "cursor");
    assert_eq!(
        mixed(&views, limits, &schedule),
        expected,
        "mixed cursor and bulk"
    );
    assert_eq!(accumulate(&views, limits), expected, "accumulator");

    // The other input forms.
    let refs: Vec<&Record> = views.iter().collect();
    assert_eq!(bulk(&refs, limits), expected, "&Record");
    let sizes: Vec<RecordSize> = views
        .iter()
        .map(|r| RecordSize::of(r, limits.key_unit()))
        .collect();
    for (i, (size, record)) in sizes.iter().zip(&views).enumerate() {
        assert_eq!(
            size.measure(&limits),
            record.measure(&limits),
            "RecordSize::of record {i}"
        );
        assert_eq!(size.data_len, record.data.len() as u64);
        assert_eq!(size.key_len as usize, record.key.len());
    }
    assert_eq!(bulk(&sizes, limits), expected, "RecordSize bulk");
    assert_eq!(
        resumed(&sizes, limits, &caps),
        expected,
        "RecordSize resumed"
    );
    assert_eq!(cursor(&sizes, limits), expected, "RecordSize cursor");
    assert_eq!(
        accumulate(&sizes, limits),
        expected,
        "RecordSize accumulator"
    );
});
