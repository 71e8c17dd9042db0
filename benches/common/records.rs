//! Record workloads for the planning benchmarks (`plan`, `ffi`): deterministic specs, the
//! buffers they point into, and `Record` views of them.

use crate::common::Rng;
use kinesis_batcher::Record;

/// What one generated record is, before it becomes a `RecordSize` or a `Record`.
#[derive(Clone, Copy)]
pub enum Kind {
    Ok,
    KeyEmpty,
    KeyNotUtf8,
    KeyTooLong,
    TooLarge,
}

#[derive(Clone, Copy)]
pub struct Spec {
    pub data_len: usize,
    pub key_len: usize,
    pub kind: Kind,
}

/// The mix of a workload: `large_per_mille` records in 1000 of 64 to 300 KiB, the rest of
/// `small` bytes; keys of 16 to 36 ASCII bytes; one record in 1000 refused (one of four
/// reasons).
pub struct Mix {
    pub large_per_mille: u64,
    pub small: (u64, u64),
}

pub fn specs(n: usize, seed: u64, mix: &Mix) -> Vec<Spec> {
    let mut rng = Rng(seed);
    (0..n)
        .map(|_| {
            let roll = rng.range(0, 1000);
            let key_len = rng.range(16, 37) as usize;
            let data_len = if roll < mix.large_per_mille {
                rng.range(64 * 1024, 300 * 1024)
            } else {
                rng.range(mix.small.0, mix.small.1)
            } as usize;
            let kind = match roll {
                0 => match rng.range(0, 4) {
                    0 => Kind::KeyEmpty,
                    1 => Kind::KeyNotUtf8,
                    2 => Kind::KeyTooLong,
                    _ => Kind::TooLarge,
                },
                _ => Kind::Ok,
            };
            let (data_len, key_len) = match kind {
                Kind::KeyEmpty => (data_len, 0),
                Kind::KeyTooLong => (data_len, 300),
                Kind::TooLarge => (1024 * 1024 + data_len, key_len),
                Kind::Ok | Kind::KeyNotUtf8 => (data_len, key_len),
            };
            Spec {
                data_len,
                key_len,
                kind,
            }
        })
        .collect()
}

/// The bytes the records point into: one data buffer (never read, only sliced) and every
/// key back to back.
pub struct Buffers {
    data: Vec<u8>,
    keys: Vec<u8>,
}

pub fn buffers(specs: &[Spec], seed: u64) -> Buffers {
    let largest = specs.iter().map(|s| s.data_len).max().unwrap_or(0);
    let mut rng = Rng(seed ^ 0xABCD);
    let mut keys = Vec::with_capacity(specs.iter().map(|s| s.key_len).sum());
    for spec in specs {
        for _ in 0..spec.key_len {
            // Printable ASCII, as user ids and UUIDs are.
            keys.push(b'!' + (rng.next() % 94) as u8);
        }
        if let (Kind::KeyNotUtf8, Some(last)) = (spec.kind, keys.last_mut()) {
            *last = 0xFF;
        }
    }
    Buffers {
        data: vec![0x5A; 2 * largest],
        keys,
    }
}

pub fn records_of<'a>(specs: &[Spec], buffers: &'a Buffers, seed: u64) -> Vec<Record<'a>> {
    let mut rng = Rng(seed ^ 0x1234);
    let room = buffers.data.len() / 2;
    let mut key_at = 0;
    specs
        .iter()
        .map(|s| {
            let data_at = rng.range(0, room as u64) as usize;
            let record = Record::new(
                &buffers.data[data_at..data_at + s.data_len],
                &buffers.keys[key_at..key_at + s.key_len],
            );
            key_at += s.key_len;
            record
        })
        .collect()
}
