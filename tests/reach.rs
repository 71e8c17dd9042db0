//! The read bounds the C ABI relies on: a call never reads a record past its reach.
//!
//! The C ABI checks a caller's records for NULL pointers and overflowing lengths before
//! the core reads them, but only as far as one call can read ([`Planner::reach`],
//! [`Planner::event_reach`], [`Delivery::reach`] and the waiting entries), so resuming
//! over a large array stays linear. If a call read further, a bad record there would be
//! read unchecked. These properties record every index a call measures and compare.
//!
//! The bulk call instead checks each record as it reads it ([`Measure::readable`]) and
//! stops before one it cannot read; the last property checks that stop.

#[path = "support/records.rs"]
mod records;
use records::{Rec, views};

use std::cell::{Cell, RefCell};

use kinesis_batcher::retry::{Delivery, ErrorKind, Outcome, Pending, RetryPolicy, Terminal};
use kinesis_batcher::{Batch, Limits, Measure, Planner, Reason, Record, Refusal, Status};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::RngAlgorithm;

fn config() -> ProptestConfig {
    ProptestConfig {
        failure_persistence: None,
        rng_algorithm: RngAlgorithm::XorShift,
        ..ProptestConfig::with_cases(ProptestConfig::default().cases.max(10_000))
    }
}

/// A record that notes its index whenever the core measures it or reads its key.
struct Probe<'a> {
    record: Record<'a>,
    index: usize,
    reads: &'a RefCell<Vec<usize>>,
}

impl Measure for Probe<'_> {
    fn measure(&self, limits: &Limits) -> Result<u32, Reason> {
        self.reads.borrow_mut().push(self.index);
        self.record.measure(limits)
    }

    fn key_identity(&self, limits: &Limits) -> Option<u64> {
        self.reads.borrow_mut().push(self.index);
        self.record.key_identity(limits)
    }
}

/// A record that may be unreadable until mended: refused by `measure` (as the C ABI's
/// records are, so the fast path leaves it alone) and reported by `readable`.
struct Fragile<'a> {
    record: Record<'a>,
    broken: Cell<bool>,
}

impl Measure for Fragile<'_> {
    fn readable(&self) -> bool {
        !self.broken.get()
    }

    fn measure(&self, limits: &Limits) -> Result<u32, Reason> {
        if self.broken.get() {
            return Err(Reason::RecordTooLarge);
        }
        self.record.measure(limits)
    }
}

fn probes<'a>(records: &'a [Record<'a>], reads: &'a RefCell<Vec<usize>>) -> Vec<Probe<'a>> {
    records
        .iter()
        .enumerate()
        .map(|(index, &record)| Probe {
            record,
            index,
            reads,
        })
        .collect()
}

/// Small limits so that every bound is crossed often; keys are short ASCII or empty
/// (refused), payloads up to past the record cap (refused).
fn case() -> impl Strategy<Value = (Limits, Vec<Rec>)> {
    // Up to 40 records per request, so that the fast path's look-ahead is taken too.
    (prop_oneof![1u32..6, 8u32..40], 8u32..400).prop_flat_map(|(max_records, request)| {
        let record_cap = request / 2;
        let limits = Limits::new(max_records, request, record_cap).unwrap();
        let data_len = prop_oneof![3 => 0..4usize, 1 => 0..record_cap as usize + 4];
        let rec = (data_len, 0..4usize, 0..3u8).prop_map(|(data_len, key_len, k)| Rec {
            data_len,
            key: vec![b'a' + k; key_len],
            hash_key: None,
        });
        (Just(limits), vec(rec, 0..120))
    })
}

fn capacities() -> impl Strategy<Value = Vec<(usize, usize)>> {
    vec((1usize..5, 1usize..5), 1..8)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn bulk_calls_read_within_their_reach((limits, records) in case(), caps in capacities()) {
        let views = views(&records);
        let reads = RefCell::new(Vec::new());
        let input = probes(&views, &reads);
        let mut planner = Planner::new(limits);
        let mut batches = [Batch::default(); 8];
        let mut refusals = [Refusal::default(); 8];
        for &(b, r) in caps.iter().cycle().take(4 * records.len() + 8) {
            let from = planner.position();
            let reach = planner.reach(b, r);
            reads.borrow_mut().clear();
            let progress = planner.plan(&input, &mut batches[..b], &mut refusals[..r]);
            for &index in reads.borrow().iter() {
                prop_assert!(index >= from && index < from + reach,
                    "read {index}, reach {from}..{}", from + reach);
            }
            if progress.status == kinesis_batcher::Status::Done {
                break;
            }
        }
    }

    #[test]
    fn cursor_calls_read_within_their_reach((limits, records) in case()) {
        let views = views(&records);
        let reads = RefCell::new(Vec::new());
        let input = probes(&views, &reads);
        let mut planner = Planner::new(limits);
        loop {
            let from = planner.position();
            let reach = planner.event_reach();
            reads.borrow_mut().clear();
            let event = planner.next_event(&input);
            for &index in reads.borrow().iter() {
                prop_assert!(index >= from && index < from + reach,
                    "read {index}, reach {from}..{}", from + reach);
            }
            if event.is_none() {
                break;
            }
        }
    }

    #[test]
    fn delivery_reads_waiting_entries_and_within_its_reach(
        (limits, records) in case(),
        caps in capacities(),
        per_key in any::<bool>(),
        failures in vec(0u8..4, 64),
    ) {
        let views = views(&records);
        let reads = RefCell::new(Vec::new());
        let input = probes(&views, &reads);
        let policy = RetryPolicy { per_key_order: per_key, max_attempts: 3, ..RetryPolicy::DEFAULT };
        let mut delivery = Delivery::new(limits, policy);
        let mut request = [Pending::default(); 8];
        let mut refusals = [Refusal::default(); 8];
        let mut terminal = [Terminal::default(); 8];
        let mut outcomes = [Outcome::Accepted; 8];
        let mut fail = failures.iter().cycle();
        for (round, &(q, r)) in caps.iter().cycle().enumerate().take(8 * records.len() + 8) {
            let from = delivery.position();
            let reach = delivery.reach(q, r);
            let waiting: Vec<usize> = delivery.waiting().iter().map(|p| p.index).collect();
            reads.borrow_mut().clear();
            let next = delivery
                .next_request(&input, &mut request[..q], &mut refusals[..r], round as u64)
                .expect("every request is settled before the next");
            for &index in reads.borrow().iter() {
                prop_assert!(
                    waiting.contains(&index) || (index >= from && index < from + reach),
                    "read {index}, reach {from}..{}, waiting {waiting:?}", from + reach
                );
            }
            if next.entries > 0 {
                for outcome in outcomes[..next.entries].iter_mut() {
                    *outcome = match fail.next() {
                        Some(0) => Outcome::Failed(ErrorKind::ThroughputExceeded),
                        Some(1) => Outcome::Failed(ErrorKind::Validation),
                        _ => Outcome::Accepted,
                    };
                }
                delivery
                    .settle(&request[..next.entries], &outcomes[..next.entries], round as u64, &mut terminal)
                    .unwrap();
            } else if next.status == kinesis_batcher::retry::NextStatus::Done {
                prop_assert!(delivery.waiting().is_empty(), "Done with entries waiting");
                break;
            }
        }
    }

    #[test]
    fn bulk_calls_stop_before_an_unreadable_record_and_resume_once_it_is_mended(
        (limits, records) in case(),
        broken in vec(any::<bool>(), 120),
        caps in capacities(),
    ) {
        let views = views(&records);
        let input: Vec<Fragile> = views
            .iter()
            .zip(&broken)
            .map(|(&record, &b)| Fragile { record, broken: Cell::new(b && record.data.len() % 7 == 0) })
            .collect();
        let mut expected = (vec![Batch::default(); 200], vec![Refusal::default(); 200]);
        let whole = Planner::new(limits).plan(&views, &mut expected.0, &mut expected.1);
        prop_assert_eq!(whole.status, Status::Done);

        let mut planner = Planner::new(limits);
        let (mut got_b, mut got_r) = (Vec::new(), Vec::new());
        let mut batches = [Batch::default(); 8];
        let mut refusals = [Refusal::default(); 8];
        for &(b, r) in caps.iter().cycle().take(8 * records.len() + 8) {
            let progress = planner.plan(&input, &mut batches[..b], &mut refusals[..r]);
            got_b.extend_from_slice(&batches[..progress.batches]);
            got_r.extend_from_slice(&refusals[..progress.refusals]);
            match progress.status {
                Status::Done => break,
                Status::Unreadable => {
                    // Stopped exactly before the first broken record from where it was.
                    let at = planner.position();
                    prop_assert!(input[at].broken.get());
                    prop_assert!(input[..at].iter().all(|f| !f.broken.get()));
                    // Stopped again, writing nothing, until it is mended.
                    let again = planner.plan(&input, &mut batches[..b], &mut refusals[..r]);
                    prop_assert_eq!((again.status, again.batches, again.refusals), (Status::Unreadable, 0, 0));
                    prop_assert_eq!(planner.position(), at);
                    input[at].broken.set(false);
                }
                _ => {}
            }
        }
        // Nothing lost, nothing changed: the plan of the input as if it had never broken.
        prop_assert_eq!(&got_b[..], &expected.0[..whole.batches]);
        prop_assert_eq!(&got_r[..], &expected.1[..whole.refusals]);
    }
}
