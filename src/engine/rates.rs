//! Per-shard rate limits over the caller's clock.
//!
//! The service allows each shard 1,000 records and 1 MiB per second. A token bucket (the
//! KPL's) lets a full bucket and a second's refill through in one second, up to twice
//! the rate; this counts what was sent in the current 100 ms bucket and the ten before
//! it instead, so no one-second window, wherever it starts, holds more than the rate.
//! The price is a sustained rate of about 10/11 of the limit.

/// Buckets counted: any one-second window touches at most 11 buckets of 100 ms.
const BUCKETS: usize = 11;
const BUCKET_MS: u64 = 100;

/// One shard's recent sends and throttling.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ShardState {
    /// Records and bytes sent in bucket `b`, at `b % BUCKETS`.
    records: [u64; BUCKETS],
    bytes: [u64; BUCKETS],
    /// The newest bucket counted.
    bucket: u64,
    /// Sums over the window.
    window_records: u64,
    window_bytes: u64,
    /// Taken by the request being built, not yet sent.
    pending_records: u64,
    pending_bytes: u64,
    /// Throttled: nothing is sent to this shard before this time.
    pub(super) paused_until_ms: u64,
    /// Throttles in a row (for the backoff), and in all.
    pub(super) throttles_in_row: u32,
    pub(super) throttled: u64,
    /// The settle that last throttled it, so one response counts once.
    pub(super) last_settle: u64,
}

impl ShardState {
    fn advance(&mut self, now_ms: u64) {
        let bucket = now_ms / BUCKET_MS;
        if bucket <= self.bucket {
            return; // same bucket, or a clock that went back: keep counting
        }
        let steps = (bucket - self.bucket).min(BUCKETS as u64);
        for b in 1..=steps {
            let i = ((self.bucket + b) % BUCKETS as u64) as usize;
            self.window_records -= self.records[i];
            self.window_bytes -= self.bytes[i];
            self.records[i] = 0;
            self.bytes[i] = 0;
        }
        self.bucket = bucket;
    }

    /// Whether one more record of `size` bytes may go in the request being built. A shard
    /// that has sent nothing in the window takes any one record, so a record above the
    /// byte rate is slow, never stuck.
    pub(super) fn admits(&mut self, now_ms: u64, size: u32, rates: (u32, u32)) -> bool {
        self.advance(now_ms);
        let records = self.window_records + self.pending_records;
        let bytes = self.window_bytes + self.pending_bytes;
        records == 0
            || (records < u64::from(rates.0) && bytes + u64::from(size) <= u64::from(rates.1))
    }

    /// When the oldest bucket that counts leaves the window: the earliest time `admits`
    /// can change its answer.
    pub(super) fn next_change_ms(&self) -> u64 {
        for age in (0..BUCKETS as u64).rev() {
            if let Some(b) = self.bucket.checked_sub(age)
                && self.records[(b % BUCKETS as u64) as usize] > 0
            {
                return (b + BUCKETS as u64) * BUCKET_MS;
            }
        }
        (self.bucket + 1) * BUCKET_MS
    }

    pub(super) fn take(&mut self, size: u32) {
        self.pending_records += 1;
        self.pending_bytes += u64::from(size);
    }

    /// The request being built was not sent after all.
    pub(super) fn untake(&mut self) {
        self.pending_records = 0;
        self.pending_bytes = 0;
    }

    /// The request being built was sent: what it took counts in the current bucket.
    pub(super) fn commit(&mut self) {
        let i = (self.bucket % BUCKETS as u64) as usize;
        self.records[i] += self.pending_records;
        self.bytes[i] += self.pending_bytes;
        self.window_records += self.pending_records;
        self.window_bytes += self.pending_bytes;
        self.untake();
    }
}
