//! The built-in demo data: 20,000 deterministic NDJSON lines, generated in memory one
//! line at a time as they are read (no file, no network, a few MiB of memory at most).
//!
//! Each line is an object with a `"device"` field (the demo's partition key). Mostly
//! small events, some large snapshots (tens to hundreds of KiB), and, at fixed line
//! numbers, lines that must be refused:
//!
//! | lines (1-based)               | what                               | refused as        |
//! |-------------------------------|------------------------------------|-------------------|
//! | 801, 2401, ... (every 1600th) | over 1 MiB                         | record_too_large  |
//! | 8, 2508, ... (every 2500th)   | `"device": ""`                     | key_empty         |
//! | 1235, 3735, ... (every 2500th)| 300-character multi-byte device    | key_too_long      |
//! | 100, 4100, ... (every 4000th) | no `"device"` field                | key_field_missing |
//! | 4322 and 14322                | not JSON                           | invalid_json      |
//!
//! Lines 1201, 2801, ... (every 1600th) are large but just under the cap, and every
//! 1000th line from 501 has a numeric device (a number's JSON text is the key).

use std::io::{self, Read};

/// Lines in the demo data.
pub const LINES: u64 = 20_000;

/// A small deterministic generator (xorshift64*), so every run is the same.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value in `low..high`.
    fn range(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low)
    }
}

/// The demo data as a reader.
pub struct DemoData {
    rng: Rng,
    index: u64,
    line: Vec<u8>,
    pos: usize,
}

impl DemoData {
    /// The data from its first line.
    pub fn new() -> DemoData {
        DemoData {
            rng: Rng(0x9E37_79B9_7F4A_7C15),
            index: 0,
            line: Vec::new(),
            pos: 0,
        }
    }

    /// Writes line `self.index` (0-based) into `self.line`, with its newline.
    fn generate(&mut self) {
        let i = self.index;
        let rng = &mut self.rng;
        let line = &mut self.line;
        line.clear();
        let device = format!("device-{:04}", rng.next() % 64);
        let roll = rng.next() % 1000;
        if i == 4321 {
            line.extend_from_slice(
                b"{\"device\":\"device-0001\",\"seq\":4321,\"kind\":\"reading\"",
            );
        } else if i == 14321 {
            line.extend_from_slice(b"device-0001 4321 reading 21.5 (not JSON)");
        } else if i % 4000 == 99 {
            line.extend_from_slice(format!("{{\"seq\":{i},\"kind\":\"heartbeat\"}}").as_bytes());
        } else {
            let device = if i % 2500 == 7 {
                String::new()
            } else if i % 2500 == 1234 {
                "é".repeat(300)
            } else {
                device
            };
            let device_json = if i % 1000 == 500 {
                format!("{}", 4000 + i / 1000)
            } else {
                format!("\"{device}\"")
            };
            let (kind, size) = if i % 1600 == 800 {
                ("firmware", rng.range(1_048_600, 1_150_000))
            } else if i % 1600 == 1200 {
                ("snapshot", rng.range(900_000, 1_048_000))
            } else if roll < 15 {
                ("snapshot", rng.range(10 * 1024, 200 * 1024))
            } else {
                ("reading", rng.range(40, 1200))
            };
            line.extend_from_slice(
                format!(
                    "{{\"device\":{device_json},\"seq\":{i},\"kind\":\"{kind}\",\"temp\":{}.{},\"blob\":\"",
                    rng.range(10, 40),
                    rng.next() % 10
                )
                .as_bytes(),
            );
            let target = line.len() + size as usize;
            fill(rng, line, target);
            line.extend_from_slice(b"\"}");
        }
        line.push(b'\n');
        self.pos = 0;
        self.index += 1;
    }
}

impl Default for DemoData {
    fn default() -> Self {
        DemoData::new()
    }
}

/// Appends letters, digits, `-` and `_` from `rng` until `line` is `target` bytes long.
fn fill(rng: &mut Rng, line: &mut Vec<u8>, target: usize) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    while line.len() < target {
        let mut bits = rng.next();
        for _ in 0..10 {
            if line.len() == target {
                break;
            }
            line.push(ALPHABET[(bits & 63) as usize]);
            bits >>= 6;
        }
    }
}

impl Read for DemoData {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let mut written = 0;
        while written < out.len() {
            if self.pos == self.line.len() {
                if self.index == LINES {
                    break;
                }
                self.generate();
            }
            let n = (self.line.len() - self.pos).min(out.len() - written);
            out[written..written + n].copy_from_slice(&self.line[self.pos..self.pos + n]);
            self.pos += n;
            written += n;
        }
        Ok(written)
    }
}
