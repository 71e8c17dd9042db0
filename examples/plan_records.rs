//! The record-array API from Rust: plans 20,000 deterministic records (views into one
//! shared payload buffer) and prints what a producer would send.
//!
//! `cargo run --release --example plan_records [profile]`, where profile is `kds` (default),
//! `kds-5mib` or `firehose`. The data: 20,000 records of mixed sizes (mostly small
//! events, some large blobs), a few records over the 1 MiB cap, and a few bad keys.

use kinesis_batcher::{Event, Limits, Planner, Reason, Record, plan};

const RECORDS: usize = 20_000;

/// A small deterministic generator (xorshift64*), so every run shows the same plan.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn main() {
    let profile = std::env::args().nth(1).unwrap_or_else(|| "kds".into());
    let limits = match profile.as_str() {
        "kds" => Limits::KDS,
        "kds-5mib" => Limits::KDS_5MIB,
        "firehose" => Limits::FIREHOSE,
        other => {
            eprintln!("unknown profile {other:?}: use kds, kds-5mib or firehose");
            std::process::exit(2);
        }
    };

    // One shared payload buffer: records are views into it, as in a real producer.
    let payload = vec![b'x'; 1_100_000];
    let too_long_key = "ключ".repeat(70); // 280 characters
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let keys: Vec<String> = (0..64).map(|i| format!("device-{i:04}")).collect();
    let records: Vec<Record> = (0..RECORDS)
        .map(|i| {
            let roll = rng.next() % 1000;
            let key = keys[(rng.next() % 64) as usize].as_bytes();
            let len = match roll {
                0..=899 => 100 + (rng.next() % 1900) as usize, // small events
                900..=989 => 10_000 + (rng.next() % 240_000) as usize, // large blobs
                _ => 1_000_000 + (rng.next() % 100_000) as usize, // near or over the cap
            };
            match i % 2500 {
                7 => Record::new(&payload[..len], b""),
                1234 => Record::new(&payload[..len], too_long_key.as_bytes()),
                2222 => Record::new(&payload[..len], b"bad\xffkey"),
                _ => Record::new(&payload[..len], key),
            }
        })
        .collect();

    let mut events = plan(&records, limits);
    let mut refused: Vec<(usize, Reason)> = Vec::new();
    let mut largest = 0u32;
    for event in &mut events {
        match event {
            Event::Batch(batch) => largest = largest.max(batch.bytes),
            Event::Refused(r) => refused.push((r.index, r.reason)),
        }
    }
    let stats = *events.stats();
    // The bulk style must agree; shown here because every style shares one engine.
    debug_assert_eq!(
        {
            let mut p = Planner::new(limits);
            while p.next_event(&records).is_some() {}
            *p.stats()
        },
        stats
    );

    println!("profile        {profile}");
    println!(
        "limits         {} records, {} bytes per request, {} bytes per record",
        limits.max_records(),
        limits.max_request_bytes(),
        limits.max_record_bytes()
    );
    println!("records        {RECORDS}");
    println!("requests       {}", stats.batches);
    println!(
        "accepted       {} records, {} bytes",
        stats.records, stats.bytes
    );
    println!("largest        {largest} bytes");
    println!(
        "fill           {:.1}% of request bytes, {:.1}% of request records",
        100.0 * stats.byte_fill(&limits),
        100.0 * stats.record_fill(&limits)
    );
    println!("refused        {}", stats.refused_total());
    for reason in Reason::ALL {
        let at: Vec<String> = refused
            .iter()
            .filter(|(_, r)| *r == reason)
            .map(|(i, _)| i.to_string())
            .collect();
        if !at.is_empty() {
            let shown = at.iter().take(8).cloned().collect::<Vec<_>>().join(", ");
            let more = if at.len() > 8 { ", ..." } else { "" };
            println!(
                "  {:<18} {:>4}  at {shown}{more}",
                reason.as_str(),
                at.len()
            );
        }
    }
}
