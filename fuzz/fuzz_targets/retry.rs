//! `Delivery` against simulated responses with arbitrary per-entry outcomes, wrong entry
//! counts, whole-request failures, clock steps and protocol misuse: every record ends
//! accepted exactly once, terminal exactly once (with the right `gave_up`), or refused
//! (with `Measure::measure`'s reason); requests keep the limits, input order, attempt
//! counts and (when asked) one record per key; `Done` comes alone, and only at the end;
//! every misuse is an `Err` that changes nothing.
#![no_main]

use std::collections::HashSet;

use arbitrary::Arbitrary;
use kb_fuzz::*;
use kinesis_batcher::retry::{
    Delivery, DeliveryError, ErrorKind, NextStatus, Outcome, Pending, RetryPolicy, Terminal,
};
use kinesis_batcher::{Measure, Refusal};
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Response {
    /// Per-entry outcomes: 0xC0.. accepted, else `ErrorKind::ALL[b % ErrorKind::ALL.len()]`.
    Entries(Vec<u8>),
    /// A response whose entry count is off.
    WrongCount(u8),
    /// The request failed as a whole.
    All(u8),
}

#[derive(Arbitrary, Debug)]
struct Input {
    limits: LimitsSpec,
    records: Vec<RecSpec>,
    max_attempts: u8,
    max_age: u16,
    per_key: bool,
    request_cap: u16,
    refusal_cap: u8,
    responses: Vec<(Response, u16)>,
}

fuzz_target!(|input: Input| {
    let Some(limits) = input.limits.limits() else {
        return;
    };
    let records: Vec<Rec> = input
        .records
        .iter()
        .take(60)
        .map(|r| r.rec(&limits))
        .collect();
    let views = views(&records);
    let n = views.len();
    // Zero fields (an attempt count of 0, an age of 0) mean the defaults.
    let asked = RetryPolicy {
        max_attempts: u32::from(input.max_attempts % 5),
        max_age_ms: u64::from(input.max_age),
        per_key_order: input.per_key,
        ..RetryPolicy::DEFAULT
    };
    let mut delivery = Delivery::new(limits, asked);
    let policy = *delivery.policy();
    assert_eq!(policy, asked.effective());
    assert!(policy.max_attempts > 0 && policy.max_age_ms > 0);
    let request_cap = usize::from(input.request_cap % 520) + 1;
    let refusal_cap = usize::from(input.refusal_cap % 4) + 1;
    let measures: Vec<_> = views.iter().map(|r| r.measure(&limits)).collect();

    let mut accepted = vec![0u32; n];
    let mut terminal = vec![0u32; n];
    let mut refused = vec![0u32; n];
    let mut sends = vec![0u32; n];
    let mut now = 0u64;
    let mut responses = input.responses.iter();
    for round in 0.. {
        assert!(round < 20 * n + 50, "the delivery makes no progress");
        let mut request = vec![Pending::default(); request_cap];
        let mut refusals = vec![Refusal::default(); refusal_cap];
        let next = delivery
            .next_request(&views, &mut request, &mut refusals, now)
            .expect("the same input, settled, with room");
        assert!(next.entries <= request_cap && next.refusals <= refusal_cap);
        for r in &refusals[..next.refusals] {
            assert_eq!(Err(r.reason), measures[r.index], "refusal {r:?}");
            refused[r.index] += 1;
        }
        let sent = &request[..next.entries];
        match next.status {
            NextStatus::Done => {
                assert_eq!((next.entries, next.refusals, next.bytes), (0, 0, 0));
                assert!(delivery.waiting().is_empty(), "Done with failures waiting");
                assert_eq!(delivery.position(), n, "Done with records left");
                break;
            }
            NextStatus::OnlyRefusals => {
                assert!(sent.is_empty() && next.refusals > 0, "{next:?}");
                continue;
            }
            NextStatus::Ready => assert!(!sent.is_empty(), "Ready without a request"),
        }
        // The request: increasing indices, within the limits, the sizes the records have.
        assert!(
            sent.windows(2).all(|w| w[0].index < w[1].index),
            "request out of order: {sent:?}"
        );
        assert!(next.entries <= limits.max_records() as usize);
        let bytes: u64 = sent
            .iter()
            .map(|p| u64::from(measures[p.index].expect("refused record sent")))
            .sum();
        assert_eq!(bytes, u64::from(next.bytes));
        assert!(next.bytes <= limits.max_request_bytes());
        if policy.per_key_order {
            let keys: HashSet<u64> = sent
                .iter()
                .map(|p| views[p.index].key_identity(&limits).unwrap_or(0))
                .collect();
            assert_eq!(
                keys.len(),
                sent.len(),
                "two records with one key in a request"
            );
        }
        for p in sent {
            assert_eq!(
                accepted[p.index] + terminal[p.index],
                0,
                "record {} sent again after it settled",
                p.index
            );
            assert_eq!(p.attempts, sends[p.index], "attempts of {}", p.index);
            sends[p.index] += 1;
        }
        // Misuse changes nothing.
        let stats = *delivery.stats();
        let mut more = [Pending::default(); 4];
        let again = delivery.next_request(&views, &mut more, &mut [Refusal::default()], now);
        assert_eq!(again, Err(DeliveryError::RequestInFlight));
        assert!(more.iter().all(|p| *p == Pending::default()));
        let mut term = vec![Terminal::default(); sent.len()];
        let short = delivery.settle_all(&sent[1..], ErrorKind::Transport, now, &mut term);
        assert_eq!(short, Err(DeliveryError::NotTheRequestInFlight));
        let small = delivery.settle_all(sent, ErrorKind::Transport, now, &mut term[1..]);
        assert_eq!(small, Err(DeliveryError::TerminalArrayTooSmall));
        let at = round % sent.len();
        for change in 0..3 {
            let mut altered = sent.to_vec();
            match change {
                0 => altered[at].index ^= 1,
                1 => altered[at].attempts ^= 1,
                _ => altered[at].first_sent_ms ^= 1,
            }
            let wrong = delivery.settle(&altered, &[], now, &mut term);
            assert_eq!(wrong, Err(DeliveryError::NotTheRequestInFlight), "{change}");
        }
        if sent.len() > 1 {
            let mut swapped = sent.to_vec();
            swapped.swap(0, sent.len() - 1);
            let wrong = delivery.settle_all(&swapped, ErrorKind::Transport, now, &mut term);
            assert_eq!(wrong, Err(DeliveryError::NotTheRequestInFlight));
        }
        assert_eq!(*delivery.stats(), stats);
        // The response.
        let (response, step) = match responses.next() {
            Some((r, step)) => (r, u64::from(*step)),
            None => (&Response::Entries(Vec::new()), 0),
        };
        now += step;
        let outcomes: Vec<Outcome> = match response {
            Response::Entries(codes) => (0..sent.len())
                .map(|i| match codes.get(i) {
                    None => Outcome::Accepted,
                    Some(&c) if c >= 0xC0 => Outcome::Accepted,
                    Some(&c) => {
                        Outcome::Failed(ErrorKind::ALL[usize::from(c) % ErrorKind::ALL.len()])
                    }
                })
                .collect(),
            Response::WrongCount(k) => {
                let len = (sent.len() + 1 + usize::from(*k % 3)) % (sent.len() + 3);
                let len = if len == sent.len() { len + 1 } else { len };
                vec![Outcome::Accepted; len]
            }
            Response::All(_) => Vec::new(),
        };
        let settled = match response {
            Response::All(k) => {
                let kind = ErrorKind::ALL[usize::from(*k) % ErrorKind::ALL.len()];
                delivery.settle_all(sent, kind, now, &mut term).unwrap()
            }
            _ => delivery.settle(sent, &outcomes, now, &mut term).unwrap(),
        };
        let per_entry: Vec<Outcome> = match response {
            Response::Entries(_) => outcomes,
            Response::WrongCount(_) => vec![Outcome::Failed(ErrorKind::BadResponse); sent.len()],
            Response::All(k) => {
                vec![
                    Outcome::Failed(ErrorKind::ALL[usize::from(*k) % ErrorKind::ALL.len()]);
                    sent.len()
                ]
            }
        };
        assert_eq!(
            settled.accepted + settled.retrying + settled.terminal,
            sent.len()
        );
        let mut terminal_seen = 0;
        for (p, outcome) in sent.iter().zip(&per_entry) {
            match outcome {
                Outcome::Accepted => accepted[p.index] += 1,
                Outcome::Failed(kind) => {
                    let exhausted = p.attempts + 1 >= policy.max_attempts
                        || now.saturating_sub(p.first_sent_ms) >= policy.max_age_ms;
                    if !kind.is_retryable() || exhausted {
                        let t = term[terminal_seen];
                        assert_eq!(
                            (t.index, t.kind, t.gave_up),
                            (p.index, *kind, kind.is_retryable()),
                            "terminal of {p:?}"
                        );
                        terminal_seen += 1;
                        terminal[p.index] += 1;
                    }
                }
            }
        }
        assert_eq!(terminal_seen, settled.terminal);
        assert!(
            delivery
                .waiting()
                .windows(2)
                .all(|w| w[0].index < w[1].index),
            "waiting out of order"
        );
        let backoff = delivery.backoff_ms(u64::MAX);
        assert!(backoff <= policy.backoff.cap_ms);
        assert_eq!(
            delivery.settle_all(sent, ErrorKind::Transport, now, &mut term),
            Err(DeliveryError::NothingInFlight)
        );
        // A changed input or no room: refused, nothing changed.
        let (position, waiting) = (delivery.position(), delivery.waiting().to_vec());
        if position > 0 {
            let cut = &views[..position - 1 - round % position];
            let e = delivery.next_request(cut, &mut request, &mut refusals, now);
            assert_eq!(e, Err(DeliveryError::InputChanged));
        }
        if let Some(w) = waiting.first() {
            // A record waiting to be sent again, now too large.
            let mut changed = views.clone();
            changed[w.index].data = &ZEROS[..limits.max_record_bytes() as usize + 1];
            let e = delivery.next_request(&changed, &mut request, &mut refusals, now);
            assert_eq!(e, Err(DeliveryError::InputChanged));
        }
        let e = delivery.next_request(&views, &mut request[..0], &mut refusals, now);
        assert_eq!(e, Err(DeliveryError::ZeroCapacity));
        let e = delivery.next_request(&views, &mut request, &mut [], now);
        assert_eq!(e, Err(DeliveryError::ZeroCapacity));
        assert_eq!(delivery.position(), position);
        assert_eq!(delivery.waiting(), &waiting[..]);
    }
    // Done stays done; `reset` starts over at 0.
    let mut request = [Pending::default(); 1];
    let mut refusals = [Refusal::default(); 1];
    let again = delivery.next_request(&views, &mut request, &mut refusals, now);
    assert_eq!(again.map(|next| next.status), Ok(NextStatus::Done));
    let stats = *delivery.stats();
    let mut restarted = delivery.clone();
    restarted.reset();
    assert_eq!(restarted.position(), 0);
    assert_eq!(*restarted.policy(), policy);
    let first = restarted.next_request(&views, &mut request, &mut refusals, now);
    let first = first.expect("a reset delivery takes any input");
    let sendable = measures.iter().position(|m| m.is_ok());
    match first.status {
        NextStatus::Done => assert_eq!(n, 0, "a reset delivery Done at once"),
        NextStatus::Ready => {
            assert_eq!(Some(request[0].index), sendable);
            assert_eq!(request[0].attempts, 0);
        }
        NextStatus::OnlyRefusals => assert_eq!(refusals[0].index, 0),
    }
    for i in 0..n {
        let ends = accepted[i] + terminal[i] + refused[i];
        assert_eq!(
            ends, 1,
            "record {i}: accepted {}, terminal {}, refused {}",
            accepted[i], terminal[i], refused[i]
        );
        assert_eq!(refused[i] == 1, measures[i].is_err());
    }
    assert_eq!(
        stats.accepted,
        accepted.iter().map(|&a| u64::from(a)).sum::<u64>()
    );
    assert_eq!(
        stats.terminal,
        terminal.iter().map(|&a| u64::from(a)).sum::<u64>()
    );
    assert_eq!(
        stats.refused.iter().sum::<u64>(),
        refused.iter().map(|&a| u64::from(a)).sum::<u64>()
    );
});
