//! A sans-IO producer: records arrive over time, requests leave when full or lingered,
//! many are in flight at once, shards are kept under their rates, and failures are sent
//! again or reported. The caller owns the clock, the sockets and the memory; the engine
//! only decides.
//!
//! ```text
//! engine = Engine::new(limits, policy, config, storage, shard_map)?
//! loop {
//!     on a record:    match engine.push(&record, now) {
//!                         Ok(handle)            => keep its payload at handle.slot()
//!                         Err(Full)             => stop reading until a settle (backpressure)
//!                         Err(Refused(reason))  => report it: it can never be sent
//!                     }
//!     match engine.next_request(now) {
//!         Ready(request)      => send payloads[h.slot()] for h in request.handles, async
//!         Wait { until_ms }   => sleep until then, or until a record or a response comes
//!         Busy                => wait for a response (max_in_flight requests are out)
//!         Paused              => refresh credentials, then engine.resume()
//!         Idle                => wait for records (or for responses, if any are out)
//!     }
//!     on a response:    engine.settle(id, &outcomes, now, random, &mut terminal)?
//!     on no response:   engine.settle_all(id, ErrorKind::Transport, now, random, &mut terminal)?
//!                       report terminal[..settled.terminal]
//! }
//! at the end: engine.flush(), then loop until engine.is_empty()
//! ```
//!
//! Memory: every structure lives in the caller's [`Storage`], sized by
//! [`StorageSizes::new`]; the engine never allocates. Work per record is constant except
//! where noted on [`Engine::next_request`].

mod keys;
mod rates;

use core::fmt;

pub use keys::KeyEntry;
pub use rates::ShardState;

use crate::Record;
use crate::cost::{Measure, Reason, measure_within};
use crate::limits::Limits;
use crate::retry::{ErrorKind, Outcome, RetryPolicy};
use crate::shards::{ShardMap, hash_key_of};

use keys::KeyTable;

/// "No slot" in the links between slots.
const NONE: u32 = u32::MAX;

/// How the engine batches over time. Every zero or `false` field means the safe default
/// ([`EngineConfig::DEFAULT`]): a zeroed config lingers 100 ms, keeps one request in
/// flight and keeps each key's records in order.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EngineConfig {
    /// How long a record may wait for others to share its request, in milliseconds
    /// (the KPL's `RecordMaxBufferedTime`). 0 means 100.
    pub linger_ms: u64,
    /// Requests out at once, at most [`EngineConfig::MAX_IN_FLIGHT`]. 0 means 1.
    pub max_in_flight: u32,
    /// Bytes buffered at most (record sizes as the service counts them, in flight
    /// included); a push beyond answers [`PushError::Full`]. 0 means 64 MiB.
    pub max_buffered_bytes: u64,
    /// Let records of one key overtake each other. By default (`false`) each key's
    /// records are stored in the order they were pushed.
    pub allow_reordering: bool,
    /// With a shard map: records sent to one shard in any one second, at most.
    /// 0 means the service's 1,000.
    pub shard_records_per_sec: u32,
    /// With a shard map: bytes sent to one shard in any one second, at most.
    /// 0 means the service's 1 MiB.
    pub shard_bytes_per_sec: u32,
}

impl EngineConfig {
    /// The most requests in flight a config may ask for.
    /// cbindgen:ignore
    pub const MAX_IN_FLIGHT: u32 = 1024;

    /// The defaults: 100 ms linger, 1 request in flight, 64 MiB buffered, per-key order,
    /// and the service's shard rates (1,000 records and 1 MiB per second).
    pub const DEFAULT: EngineConfig = EngineConfig {
        linger_ms: 100,
        max_in_flight: 1,
        max_buffered_bytes: 64 << 20,
        allow_reordering: false,
        shard_records_per_sec: 1000,
        shard_bytes_per_sec: 1 << 20,
    };

    /// The config in force: every zero field replaced by the default's.
    pub const fn effective(self) -> EngineConfig {
        const fn or(value: u64, default: u64) -> u64 {
            if value == 0 { default } else { value }
        }
        let d = EngineConfig::DEFAULT;
        EngineConfig {
            linger_ms: or(self.linger_ms, d.linger_ms),
            max_in_flight: or(self.max_in_flight as u64, d.max_in_flight as u64) as u32,
            max_buffered_bytes: or(self.max_buffered_bytes, d.max_buffered_bytes),
            allow_reordering: self.allow_reordering,
            shard_records_per_sec: or(
                self.shard_records_per_sec as u64,
                d.shard_records_per_sec as u64,
            ) as u32,
            shard_bytes_per_sec: or(
                self.shard_bytes_per_sec as u64,
                d.shard_bytes_per_sec as u64,
            ) as u32,
        }
    }
}

/// A buffered record, by the slot the engine keeps it in: `0..capacity`. The caller keeps
/// the record's payload under the same index until the record is settled for good
/// (stored, or reported terminal); the slot is reused only after that.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct Handle(u32);

impl Handle {
    /// The slot: an index below [`Engine::capacity`].
    pub const fn slot(self) -> usize {
        self.0 as usize
    }
}

/// A request handed out by [`Engine::next_request`], until it is settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(pub u64);

/// What the engine keeps of one buffered record: its size, key and shard, never its
/// bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Slot {
    state: State,
    /// The oldest unsettled record of its key (always, without per-key order).
    oldest_of_key: bool,
    attempts: u32,
    size: u32,
    shard: u32,
    next_of_key: u32,
    /// Neighbours in push order among the buffered records; `next` links the free list.
    prev: u32,
    next: u32,
    key: u64,
    /// Push order, from 0.
    seq: u64,
    pushed_ms: u64,
    first_sent_ms: u64,
    not_before_ms: u64,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    #[default]
    Free,
    Queued,
    InFlight,
}

/// One request's place: its entries are `entries[i * max_records..][..len]`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RequestSlot {
    generation: u32,
    live: bool,
    len: u32,
    bytes: u32,
}

/// How many elements each of [`Storage`]'s slices needs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct StorageSizes {
    /// [`Storage::slots`]: the capacity, records buffered at most.
    pub slots: usize,
    /// [`Storage::keys`]: twice the capacity rounded up to a power of two with per-key
    /// order, else 0.
    pub keys: usize,
    /// [`Storage::requests`]: the most requests in flight.
    pub requests: usize,
    /// [`Storage::entries`]: a request's worth of handles for each of them.
    pub entries: usize,
    /// [`Storage::shards`]: the shard map's length (0 without one).
    pub shards: usize,
}

impl StorageSizes {
    /// The sizes for `capacity` buffered records and a map of `shards` shards (0 for
    /// none).
    ///
    /// ```
    /// use kinesis_batcher::engine::{EngineConfig, StorageSizes};
    /// use kinesis_batcher::Limits;
    ///
    /// let sizes = StorageSizes::new(&Limits::KDS, &EngineConfig::default(), 1000, 0)?;
    /// assert_eq!((sizes.slots, sizes.keys, sizes.requests, sizes.entries), (1000, 2048, 1, 500));
    /// # Ok::<(), kinesis_batcher::engine::EngineError>(())
    /// ```
    pub fn new(
        limits: &Limits,
        config: &EngineConfig,
        capacity: usize,
        shards: usize,
    ) -> Result<StorageSizes, EngineError> {
        let config = config.effective();
        if config.max_in_flight > EngineConfig::MAX_IN_FLIGHT {
            return Err(EngineError::InvalidConfig);
        }
        if capacity == 0 {
            return Err(EngineError::ZeroCapacity);
        }
        // Slots are numbered with u32 handles, NONE excluded.
        if capacity >= NONE as usize {
            return Err(EngineError::SizeOverflow);
        }
        let keys = if config.allow_reordering {
            0
        } else {
            capacity
                .checked_mul(2)
                .and_then(usize::checked_next_power_of_two)
                .ok_or(EngineError::SizeOverflow)?
        };
        let requests = config.max_in_flight as usize;
        let entries = requests
            .checked_mul(limits.max_records() as usize)
            .ok_or(EngineError::SizeOverflow)?;
        Ok(StorageSizes {
            slots: capacity,
            keys,
            requests,
            entries,
            shards,
        })
    }
}

/// The caller's memory for an engine, each slice at least as long as
/// [`StorageSizes::new`] says (`Default` values; their contents are overwritten).
#[derive(Debug)]
pub struct Storage<'a> {
    /// One per record buffered at most.
    pub slots: &'a mut [Slot],
    /// The per-key order table.
    pub keys: &'a mut [KeyEntry],
    /// One per request in flight at most.
    pub requests: &'a mut [RequestSlot],
    /// The handles of the requests in flight.
    pub entries: &'a mut [Handle],
    /// One per shard of the map.
    pub shards: &'a mut [ShardState],
}

/// Why a record was not taken by [`Engine::push`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PushError {
    /// The buffer is at its capacity in records or bytes: push again after a settle.
    /// Nothing was taken.
    Full,
    /// The record can never be sent (too large, or a bad key); it is counted in
    /// [`EngineStats::refused`], not kept.
    Refused(Reason),
}

/// A request to send: the records under `handles`, in this order, as one `PutRecords`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Request<'e> {
    /// Give it back to [`Engine::settle`] with the response.
    pub id: RequestId,
    /// The records, at least one, at most the limits' records per request.
    pub handles: &'e [Handle],
    /// Their size as the service counts it, within the limits' request bytes.
    pub bytes: u32,
}

/// What to do next, from [`Engine::next_request`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Poll<'e> {
    /// Send this request now.
    Ready(Request<'e>),
    /// Records are buffered but none is due: call again at `until_ms`, or sooner after a
    /// push, a settle or a flush.
    Wait {
        /// The caller's clock, in milliseconds.
        until_ms: u64,
    },
    /// The most requests are in flight, or every buffered record waits on one in flight
    /// (its key's older record): settle one first.
    Busy,
    /// A request failed on credentials: refresh them, then [`Engine::resume`].
    Paused,
    /// Nothing is buffered that has not been sent (requests may still be in flight).
    Idle,
}

/// A record that will not be sent again: its handle, the last error, and whether it gave
/// up on a retryable error because of the policy's attempt or age limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Terminal {
    /// The record.
    pub handle: Handle,
    /// Its last error.
    pub kind: ErrorKind,
    /// `true`: retryable, but out of attempts or time.
    pub gave_up: bool,
}

impl Default for Terminal {
    /// A placeholder to fill arrays with.
    fn default() -> Terminal {
        Terminal {
            handle: Handle::default(),
            kind: ErrorKind::Unknown,
            gave_up: false,
        }
    }
}

/// What one settle did with its request's entries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Settled {
    /// Stored: their slots are free.
    pub accepted: usize,
    /// Buffered again, to be sent again.
    pub retrying: usize,
    /// Written to the terminal array: their slots are free.
    pub terminal: usize,
}

/// Counters, as data: read them whenever you like.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct EngineStats {
    /// Records pushed and not yet stored or terminal (in flight included).
    pub buffered_records: u64,
    /// Their size as the service counts it.
    pub buffered_bytes: u64,
    /// Requests handed out and not yet settled.
    pub in_flight_requests: u64,
    /// Records in them.
    pub in_flight_records: u64,
    /// Requests handed out in all.
    pub requests: u64,
    /// Records stored.
    pub accepted_records: u64,
    /// Their size.
    pub accepted_bytes: u64,
    /// Entries that failed and were buffered again.
    pub retried: u64,
    /// Entries that failed on throughput or throttling.
    pub throttled: u64,
    /// Settles that paused the engine on credentials.
    pub credential_failures: u64,
    /// Records refused by [`Engine::push`], by [`Reason`] (`reason as usize`).
    pub refused: [u64; Reason::COUNT],
    /// Records reported terminal.
    pub terminal: u64,
}

/// A call the engine could not take. Nothing was changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EngineError {
    /// `max_in_flight` is above [`EngineConfig::MAX_IN_FLIGHT`].
    InvalidConfig,
    /// A capacity of 0 records.
    ZeroCapacity,
    /// A storage slice is shorter than [`StorageSizes::new`] says.
    StorageTooSmall,
    /// The sizes do not fit in memory addresses (or the capacity in a handle).
    SizeOverflow,
    /// The request is not in flight (settled already, or never handed out).
    NotInFlight,
    /// Not one outcome per entry of the request.
    OutcomeCount,
    /// The terminal array is shorter than the request.
    TerminalArrayTooSmall,
}

impl EngineError {
    /// A one-line description.
    pub const fn message(self) -> &'static str {
        match self {
            EngineError::InvalidConfig => "max_in_flight is above 1024",
            EngineError::ZeroCapacity => "the capacity is 0 records",
            EngineError::StorageTooSmall => "a storage slice is shorter than StorageSizes says",
            EngineError::SizeOverflow => "the storage sizes overflow",
            EngineError::NotInFlight => "the request is not in flight",
            EngineError::OutcomeCount => "not one outcome per entry of the request",
            EngineError::TerminalArrayTooSmall => "the terminal array is shorter than the request",
        }
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl core::error::Error for EngineError {}

/// The result of the last look for a due request, kept while nothing can change it.
#[derive(Clone, Copy, Debug)]
struct Cached {
    /// Until this time the answer is "wait" (or "busy" when `u64::MAX`)...
    until_ms: u64,
    /// ...unless the records that could join the request reach a limit.
    records: u32,
    bytes: u64,
}

/// The producer engine. See the [module](self) for the protocol.
///
/// Guarantees:
/// * every pushed record is stored, or reported once as [`Terminal`]; refused records are
///   answered at push; nothing is dropped to make room ([`PushError::Full`] instead);
/// * requests are within the limits and never empty; records go out in push order, those
///   sent again first;
/// * with per-key order (the default), a key's next record is sent only after its older
///   one is stored, so each key's records are stored in push order, across any number of
///   requests in flight (a key has at most one record in flight);
/// * with a shard map, no shard is sent more than its rates in any one-second window of
///   the caller's clock, and a throttled shard backs off alone;
/// * credentials failures pause the engine instead of failing records.
#[derive(Debug)]
pub struct Engine<'a> {
    limits: Limits,
    policy: RetryPolicy,
    config: EngineConfig,
    shard_map: Option<ShardMap<'a>>,
    slots: &'a mut [Slot],
    keys: Option<KeyTable<'a>>,
    requests: &'a mut [RequestSlot],
    entries: &'a mut [Handle],
    shards: &'a mut [ShardState],
    /// The buffered records in push order (a list through `Slot::prev`/`next`), and the
    /// free slots. A slot is reused as soon as its record is settled, however old the
    /// records around it, so a record that keeps failing holds one slot, not the buffer.
    oldest: u32,
    newest: u32,
    free: u32,
    /// No record before this one in push order is queued: looks start here, past the
    /// records in flight.
    first_queued: u32,
    /// Records pushed in all: the next push's `seq`.
    pushed: u64,
    /// Records pushed before this `seq` are due without lingering.
    flush_until: u64,
    queued: u64,
    paused: bool,
    settles: u64,
    cached: Option<Cached>,
    stats: EngineStats,
}

impl fmt::Debug for KeyTable<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("KeyTable")
    }
}

impl<'a> Engine<'a> {
    /// An engine over the caller's `storage`, its capacity the length of
    /// `storage.slots`. Zero fields of `policy` and `config` mean their defaults
    /// (`policy.per_key_order` is not used: see [`EngineConfig::allow_reordering`]).
    pub fn new(
        limits: Limits,
        policy: RetryPolicy,
        config: EngineConfig,
        storage: Storage<'a>,
        shard_map: Option<ShardMap<'a>>,
    ) -> Result<Engine<'a>, EngineError> {
        let config = config.effective();
        let n_shards = shard_map.map_or(0, |map| map.ranges().len());
        let sizes = StorageSizes::new(&limits, &config, storage.slots.len(), n_shards)?;
        let Storage {
            slots,
            keys,
            requests,
            entries,
            shards,
        } = storage;
        if keys.len() < sizes.keys
            || requests.len() < sizes.requests
            || entries.len() < sizes.entries
            || shards.len() < sizes.shards
        {
            return Err(EngineError::StorageTooSmall);
        }
        let keys = (sizes.keys > 0).then(|| KeyTable::new(&mut keys[..sizes.keys]));
        let mut engine = Engine {
            limits,
            policy: policy.effective(),
            config,
            shard_map,
            slots,
            keys,
            requests: &mut requests[..sizes.requests],
            entries: &mut entries[..sizes.entries],
            shards: &mut shards[..sizes.shards],
            oldest: NONE,
            newest: NONE,
            free: NONE,
            first_queued: NONE,
            pushed: 0,
            flush_until: 0,
            queued: 0,
            paused: false,
            settles: 0,
            cached: None,
            stats: EngineStats::default(),
        };
        engine.reset();
        Ok(engine)
    }

    /// Starts over with the same limits, policy, config and storage: every buffered
    /// record and request in flight is forgotten, the counters are zeroed.
    pub fn reset(&mut self) {
        self.slots.fill(Slot::default());
        let n = self.slots.len();
        for (i, slot) in self.slots.iter_mut().enumerate() {
            slot.next = if i + 1 < n { i as u32 + 1 } else { NONE };
        }
        self.free = 0;
        self.oldest = NONE;
        self.newest = NONE;
        self.first_queued = NONE;
        self.pushed = 0;
        if let Some(keys) = &mut self.keys {
            keys.clear();
        }
        self.requests.fill(RequestSlot::default());
        self.shards.fill(ShardState::default());
        self.flush_until = 0;
        self.queued = 0;
        self.paused = false;
        self.settles = 0;
        self.cached = None;
        self.stats = EngineStats::default();
    }

    /// Records buffered at most.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// The limits every request keeps.
    pub const fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The config in force (zero fields replaced by the defaults).
    pub const fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The counters.
    pub const fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Times shard `shard` was throttled (once per response at most); 0 without a shard
    /// map or for an index out of range.
    pub fn shard_throttled(&self, shard: usize) -> u64 {
        self.shards.get(shard).map_or(0, |s| s.throttled)
    }

    /// Nothing buffered and nothing in flight: every record pushed has been stored or
    /// reported.
    pub fn is_empty(&self) -> bool {
        self.oldest == NONE
    }

    /// Whether a credentials failure paused the engine.
    pub const fn is_paused(&self) -> bool {
        self.paused
    }

    /// Buffers one record. Its size, key identity and shard are taken now; the engine
    /// keeps no reference to it, so keep its payload under the handle's slot until it is
    /// settled for good. Constant time (an MD5 of the key with a shard map).
    pub fn push(&mut self, record: &Record<'_>, now_ms: u64) -> Result<Handle, PushError> {
        let size = match measure_within(record, &self.limits) {
            Ok(size) => size,
            Err(reason) => {
                self.stats.refused[reason as usize] += 1;
                return Err(PushError::Refused(reason));
            }
        };
        let buffered = self.stats.buffered_records;
        if self.free == NONE
            || (buffered > 0
                && self.stats.buffered_bytes + u64::from(size) > self.config.max_buffered_bytes)
        {
            return Err(PushError::Full);
        }
        let shard = match self.shard_map {
            // Measured, so the hash key (if any) is valid and there is a key.
            Some(map) => hash_key_of(record.key, record.hash_key).map_or(0, |h| map.shard_of(h)),
            None => 0,
        } as u32;
        let seq = self.pushed;
        let slot = self.free;
        self.free = self.slots[slot as usize].next;
        // 0 means "no key" in a slot: a key whose identity is 0 is kept as 1, as the
        // table does.
        let key = record
            .key_identity(&self.limits)
            .map(|identity| identity.max(1));
        let oldest_of_key = match (&mut self.keys, key) {
            (Some(keys), Some(identity)) => keys.append(self.slots, identity, slot),
            _ => true,
        };
        self.slots[slot as usize] = Slot {
            state: State::Queued,
            oldest_of_key,
            attempts: 0,
            size,
            shard,
            next_of_key: NONE,
            prev: self.newest,
            next: NONE,
            key: key.unwrap_or(0),
            seq,
            pushed_ms: now_ms,
            first_sent_ms: 0,
            not_before_ms: 0,
        };
        match self.newest {
            NONE => self.oldest = slot,
            newest => self.slots[newest as usize].next = slot,
        }
        self.newest = slot;
        if self.first_queued == NONE {
            self.first_queued = slot;
        }
        self.pushed += 1;
        self.queued += 1;
        self.stats.buffered_records += 1;
        self.stats.buffered_bytes += u64::from(size);
        // The record can only add to the request being looked for: a cached "wait"
        // holds until this record's linger, unless the request may now be full.
        if let Some(cached) = &mut self.cached {
            cached.records += 1;
            cached.bytes += u64::from(size);
            cached.until_ms = cached
                .until_ms
                .min(now_ms.saturating_add(self.config.linger_ms));
            if cached.records >= self.limits.max_records()
                || cached.bytes > u64::from(self.limits.max_request_bytes())
            {
                self.cached = None;
            }
        }
        Ok(Handle(slot))
    }

    /// Everything buffered now is due at once, without lingering; records pushed later
    /// linger as usual.
    pub fn flush(&mut self) {
        self.flush_until = self.pushed;
        self.cached = None;
    }

    /// Ends a pause after a credentials failure: call it once the credentials are
    /// refreshed. The records that failed are sent again first.
    pub fn resume(&mut self) {
        self.paused = false;
        self.cached = None;
    }

    /// The handles of request `id` while it is in flight.
    pub fn request(&self, id: RequestId) -> Option<&[Handle]> {
        let r = self.live_request(id).ok()?;
        let start = r * self.limits.max_records() as usize;
        Some(&self.entries[start..start + self.requests[r].len as usize])
    }

    fn live_request(&self, id: RequestId) -> Result<usize, EngineError> {
        let r = (id.0 & 0xFFFF_FFFF) as usize;
        match self.requests.get(r) {
            Some(request) if request.live && u64::from(request.generation) == id.0 >> 32 => Ok(r),
            _ => Err(EngineError::NotInFlight),
        }
    }

    /// The next request, when one is due: full (the limits' records, or the next record
    /// would not fit), holding a record that has lingered `linger_ms`, holding a record
    /// sent before, or flushed.
    ///
    /// Cost: constant while the answer stays "wait"; a look through the buffered records
    /// that are not in flight when something changed. With per-key order, the records of
    /// a key wait behind its oldest, and are looked through again on each look: a buffer
    /// full of one key costs its length per request.
    pub fn next_request(&mut self, now_ms: u64) -> Poll<'_> {
        if self.paused {
            return Poll::Paused;
        }
        if self.queued == 0 {
            return Poll::Idle;
        }
        if self.stats.in_flight_requests == self.requests.len() as u64 {
            return Poll::Busy;
        }
        if let Some(cached) = self.cached
            && now_ms < cached.until_ms
        {
            return if cached.until_ms == u64::MAX {
                Poll::Busy
            } else {
                Poll::Wait {
                    until_ms: cached.until_ms,
                }
            };
        }
        let r = self
            .requests
            .iter()
            .position(|request| !request.live)
            .expect("fewer requests in flight than places");
        let look = self.gather(r, now_ms);
        if look.records > 0 && (look.full || look.due) {
            return Poll::Ready(self.commit(r, look, now_ms));
        }
        // Not sent: give the shards back what the look took.
        let start = r * self.limits.max_records() as usize;
        if !self.shards.is_empty() {
            for i in 0..look.records as usize {
                let shard = self.slots[self.entries[start + i].slot()].shard as usize;
                self.shards[shard].untake();
            }
        }
        self.cached = Some(Cached {
            until_ms: look.wake_ms,
            records: look.records,
            bytes: look.bytes,
        });
        if look.wake_ms == u64::MAX {
            Poll::Busy
        } else {
            Poll::Wait {
                until_ms: look.wake_ms,
            }
        }
    }

    /// Looks through the queued records in push order for those that may go now, writing
    /// their handles into request place `r`.
    fn gather(&mut self, r: usize, now_ms: u64) -> Look {
        let max_records = self.limits.max_records();
        let max_bytes = u64::from(self.limits.max_request_bytes());
        let rates = (
            self.config.shard_records_per_sec,
            self.config.shard_bytes_per_sec,
        );
        let start = r * max_records as usize;
        let mut look = Look {
            records: 0,
            bytes: 0,
            full: false,
            due: false,
            wake_ms: u64::MAX,
        };
        while self.first_queued != NONE
            && self.slots[self.first_queued as usize].state != State::Queued
        {
            self.first_queued = self.slots[self.first_queued as usize].next;
        }
        let mut next = self.first_queued;
        while next != NONE {
            let i = next as usize;
            let slot = self.slots[i];
            next = slot.next;
            if slot.state != State::Queued || !slot.oldest_of_key {
                continue; // in flight, or behind its key's oldest
            }
            if slot.not_before_ms > now_ms {
                look.wake_ms = look.wake_ms.min(slot.not_before_ms);
                continue;
            }
            if look.records == max_records || look.bytes + u64::from(slot.size) > max_bytes {
                look.full = true;
                break;
            }
            if let Some(shard) = self.shards.get_mut(slot.shard as usize) {
                if shard.paused_until_ms > now_ms {
                    look.wake_ms = look.wake_ms.min(shard.paused_until_ms);
                    continue;
                }
                if !shard.admits(now_ms, slot.size, rates) {
                    look.wake_ms = look.wake_ms.min(shard.next_change_ms());
                    continue;
                }
                shard.take(slot.size);
            }
            self.entries[start + look.records as usize] = Handle(i as u32);
            look.records += 1;
            look.bytes += u64::from(slot.size);
            let lingered = now_ms.saturating_sub(slot.pushed_ms) >= self.config.linger_ms;
            if slot.attempts > 0 || slot.seq < self.flush_until || lingered {
                look.due = true;
            } else {
                let due_ms = slot.pushed_ms.saturating_add(self.config.linger_ms);
                look.wake_ms = look.wake_ms.min(due_ms);
            }
        }
        if look.records == max_records {
            look.full = true;
        }
        look
    }

    fn commit(&mut self, r: usize, look: Look, now_ms: u64) -> Request<'_> {
        let start = r * self.limits.max_records() as usize;
        for i in start..start + look.records as usize {
            let slot = &mut self.slots[self.entries[i].slot()];
            slot.state = State::InFlight;
            if slot.attempts == 0 {
                slot.first_sent_ms = now_ms;
            }
            slot.attempts += 1;
            if let Some(shard) = self.shards.get_mut(slot.shard as usize) {
                shard.commit();
            }
        }
        self.queued -= u64::from(look.records);
        self.cached = None;
        let request = &mut self.requests[r];
        request.generation = request.generation.wrapping_add(1);
        request.live = true;
        request.len = look.records;
        request.bytes = look.bytes as u32;
        self.stats.requests += 1;
        self.stats.in_flight_requests += 1;
        self.stats.in_flight_records += u64::from(look.records);
        Request {
            id: RequestId(u64::from(request.generation) << 32 | r as u64),
            handles: &self.entries[start..start + look.records as usize],
            bytes: look.bytes as u32,
        }
    }

    /// Settles request `id` with the response's outcomes, one per entry in request
    /// order. Stored records are freed; retryable failures are buffered again, to go
    /// first after their backoff (`random`: any uniformly random `u64`, for the jitter);
    /// the others, and those out of attempts or time, are written to `terminal` (which
    /// must be as long as the request) and freed. A credentials failure buffers its
    /// records again and pauses the engine until [`Engine::resume`].
    pub fn settle(
        &mut self,
        id: RequestId,
        outcomes: &[Outcome],
        now_ms: u64,
        random: u64,
        terminal: &mut [Terminal],
    ) -> Result<Settled, EngineError> {
        let r = self.live_request(id)?;
        if outcomes.len() != self.requests[r].len as usize {
            return Err(EngineError::OutcomeCount);
        }
        self.settle_with(r, |i| outcomes[i], now_ms, random, terminal)
    }

    /// Settles request `id` that got no response (a lost connection, a whole-request
    /// error): every entry failed with `kind`. As [`Engine::settle`] otherwise.
    pub fn settle_all(
        &mut self,
        id: RequestId,
        kind: ErrorKind,
        now_ms: u64,
        random: u64,
        terminal: &mut [Terminal],
    ) -> Result<Settled, EngineError> {
        let r = self.live_request(id)?;
        self.settle_with(r, |_| Outcome::Failed(kind), now_ms, random, terminal)
    }

    fn settle_with(
        &mut self,
        r: usize,
        outcome: impl Fn(usize) -> Outcome,
        now_ms: u64,
        random: u64,
        terminal: &mut [Terminal],
    ) -> Result<Settled, EngineError> {
        let len = self.requests[r].len as usize;
        if terminal.len() < len {
            return Err(EngineError::TerminalArrayTooSmall);
        }
        self.settles += 1;
        let start = r * self.limits.max_records() as usize;
        let mut settled = Settled::default();
        let mut paused = false;
        for i in 0..len {
            let handle = self.entries[start + i];
            let index = handle.slot();
            let slot = self.slots[index];
            match outcome(i) {
                Outcome::Accepted => {
                    settled.accepted += 1;
                    self.stats.accepted_records += 1;
                    self.stats.accepted_bytes += u64::from(slot.size);
                    if let Some(shard) = self.shards.get_mut(slot.shard as usize) {
                        shard.throttles_in_row = 0;
                    }
                    self.release(index);
                }
                Outcome::Failed(ErrorKind::Credentials) => {
                    // Not the record's fault: not an attempt, no backoff of its own.
                    paused = true;
                    self.slots[index].attempts -= 1;
                    self.requeue(index);
                    settled.retrying += 1;
                    self.stats.retried += 1;
                }
                Outcome::Failed(kind) => {
                    let throttled =
                        matches!(kind, ErrorKind::ThroughputExceeded | ErrorKind::Throttling);
                    if throttled {
                        self.stats.throttled += 1;
                    }
                    let too_old =
                        now_ms.saturating_sub(slot.first_sent_ms) >= self.policy.max_age_ms;
                    let gave_up = slot.attempts >= self.policy.max_attempts || too_old;
                    if !kind.is_retryable() || gave_up {
                        terminal[settled.terminal] = Terminal {
                            handle,
                            kind,
                            gave_up: kind.is_retryable(),
                        };
                        settled.terminal += 1;
                        self.stats.terminal += 1;
                        self.release(index);
                        continue;
                    }
                    settled.retrying += 1;
                    self.stats.retried += 1;
                    let delay = self.policy.backoff.delay_ms(slot.attempts, random);
                    let settles = self.settles;
                    let shard = self.shards.get_mut(slot.shard as usize);
                    match shard {
                        // A shard over its throughput backs off as a whole, once per response.
                        Some(shard) if kind == ErrorKind::ThroughputExceeded => {
                            if shard.last_settle != settles {
                                shard.last_settle = settles;
                                shard.throttles_in_row = shard.throttles_in_row.saturating_add(1);
                                shard.throttled += 1;
                                let delay = self
                                    .policy
                                    .backoff
                                    .delay_ms(shard.throttles_in_row, random)
                                    .max(1);
                                shard.paused_until_ms = now_ms.saturating_add(delay);
                            }
                            self.slots[index].not_before_ms = 0;
                        }
                        _ => self.slots[index].not_before_ms = now_ms.saturating_add(delay),
                    }
                    self.requeue(index);
                }
            }
        }
        let request = &mut self.requests[r];
        request.live = false;
        self.stats.in_flight_requests -= 1;
        self.stats.in_flight_records -= len as u64;
        if paused {
            self.paused = true;
            self.stats.credential_failures += 1;
        }
        self.cached = None;
        Ok(settled)
    }

    /// Back in the queue, ahead of every later record.
    fn requeue(&mut self, index: usize) {
        self.slots[index].state = State::Queued;
        self.queued += 1;
        let first = self.first_queued;
        if first == NONE || self.slots[index].seq < self.slots[first as usize].seq {
            self.first_queued = index as u32;
        }
    }

    /// Stored or terminal: the record leaves its key's list and the buffer; its slot is
    /// free.
    fn release(&mut self, index: usize) {
        let slot = self.slots[index];
        self.stats.buffered_records -= 1;
        self.stats.buffered_bytes -= u64::from(slot.size);
        if let Some(keys) = &mut self.keys
            && slot.key != 0
        {
            let next = keys.remove_head(self.slots, slot.key, index as u32);
            if next != NONE {
                self.slots[next as usize].oldest_of_key = true;
            }
        }
        if self.first_queued == index as u32 {
            self.first_queued = slot.next;
        }
        match slot.prev {
            NONE => self.oldest = slot.next,
            prev => self.slots[prev as usize].next = slot.next,
        }
        match slot.next {
            NONE => self.newest = slot.prev,
            next => self.slots[next as usize].prev = slot.prev,
        }
        self.slots[index].state = State::Free;
        self.slots[index].next = self.free;
        self.free = index as u32;
    }

    /// The slot of the record a handle names, if the handle is one of this engine's.
    pub fn slot_of(&self, handle: Handle) -> Option<usize> {
        (handle.slot() < self.slots.len()).then_some(handle.slot())
    }
}

/// What one look through the queue found.
#[derive(Clone, Copy, Debug)]
struct Look {
    records: u32,
    bytes: u64,
    /// The next record does not fit, or the request holds the most records.
    full: bool,
    /// A record in it has lingered, is sent again, or was flushed.
    due: bool,
    /// When a record not taken (or not due) can be: `u64::MAX` for "after a settle".
    wake_ms: u64,
}
