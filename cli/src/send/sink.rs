//! The records on their way from the reader thread to the sender: one read's records at
//! a time, their bytes back to back in one buffer, over a channel of two messages. The
//! reader waits while the channel is full, and the sender stops taking messages while
//! the engine's buffer is full: that is the backpressure that keeps memory bounded.

use kinesis_batcher::Record;
use tokio::sync::mpsc;

use crate::report::Location;

/// A message is handed on once it holds this many records...
const MAX_RECORDS: usize = 4096;
/// ... or this many bytes, whichever first (or at the end of a read).
const MAX_BYTES: usize = 1 << 20;

/// One record: where its parts are in [`Outgoing::bytes`], and where it was read.
#[derive(Clone, Copy, Debug)]
pub struct OutRecord {
    start: usize,
    data_len: usize,
    key_len: usize,
    /// The explicit hash key's length; `usize::MAX` for none.
    hash_key_len: usize,
    /// Its (first) line.
    pub first: Location,
    /// Its last line: the same as `first` but for packed records and aggregates.
    pub last: Location,
    /// User records in it: 1, or an aggregate's count.
    pub users: u32,
}

/// Records read and measured by the core as sendable, with the reader's counters.
#[derive(Debug, Default)]
pub struct Outgoing {
    bytes: Vec<u8>,
    records: Vec<OutRecord>,
    /// Bytes read from the inputs so far, for the progress line.
    pub bytes_read: u64,
    /// Records read so far (refused ones included), for the progress line.
    pub records_read: u64,
}

impl Outgoing {
    /// How many records it holds.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Record `i`: its parts, and where it was read.
    pub fn get(&self, i: usize) -> (Record<'_>, &OutRecord) {
        let r = &self.records[i];
        let key = r.start + r.data_len;
        let hash_key = key + r.key_len;
        let mut record = Record::new(&self.bytes[r.start..key], &self.bytes[key..hash_key]);
        if r.hash_key_len != usize::MAX {
            record = record.with_hash_key(&self.bytes[hash_key..hash_key + r.hash_key_len]);
        }
        (record, r)
    }

    /// Appends a record.
    pub fn push(&mut self, record: &Record<'_>, first: Location, last: Location, users: u32) {
        let start = self.bytes.len();
        self.bytes.extend_from_slice(record.data);
        self.push_keys(start, record.key, record.hash_key, first, last, users);
    }

    fn push_keys(
        &mut self,
        start: usize,
        key: &[u8],
        hash_key: Option<&[u8]>,
        first: Location,
        last: Location,
        users: u32,
    ) {
        let data_len = self.bytes.len() - start;
        self.bytes.extend_from_slice(key);
        if let Some(hash_key) = hash_key {
            self.bytes.extend_from_slice(hash_key);
        }
        self.records.push(OutRecord {
            start,
            data_len,
            key_len: key.len(),
            hash_key_len: hash_key.map_or(usize::MAX, <[u8]>::len),
            first,
            last,
            users,
        });
    }

    fn is_full(&self) -> bool {
        self.records.len() >= MAX_RECORDS || self.bytes.len() >= MAX_BYTES
    }
}

/// The reader's end of the channel.
pub struct SendSink {
    tx: mpsc::Sender<Outgoing>,
    out: Outgoing,
}

/// The sender has ended: no more records can be handed on.
#[derive(Debug)]
pub struct Closed;

impl SendSink {
    /// A sink into `tx`.
    pub fn new(tx: mpsc::Sender<Outgoing>) -> SendSink {
        SendSink {
            tx,
            out: Outgoing::default(),
        }
    }

    /// Adds a record measured as sendable.
    pub fn add(&mut self, record: &Record<'_>, first: Location, last: Location, users: u32) {
        self.out.push(record, first, last, users);
    }

    /// Adds a record whose data `encode` writes into a buffer of `data_len` bytes (an
    /// aggregate, encoded by the core).
    #[allow(clippy::too_many_arguments)]
    pub fn add_encoded<E>(
        &mut self,
        data_len: usize,
        encode: impl FnOnce(&mut [u8]) -> Result<(), E>,
        key: &[u8],
        hash_key: Option<&[u8]>,
        first: Location,
        last: Location,
        users: u32,
    ) -> Result<(), E> {
        let start = self.out.bytes.len();
        self.out.bytes.resize(start + data_len, 0);
        if let Err(error) = encode(&mut self.out.bytes[start..]) {
            self.out.bytes.truncate(start);
            return Err(error);
        }
        self.out.push_keys(start, key, hash_key, first, last, users);
        Ok(())
    }

    /// Whether the records gathered should be handed on now.
    pub fn is_full(&self) -> bool {
        self.out.is_full()
    }

    /// Hands the records gathered to the sender (none: nothing is sent), waiting while
    /// the channel is full.
    pub fn flush(&mut self, bytes_read: u64, records_read: u64) -> Result<(), Closed> {
        if self.out.is_empty() {
            return Ok(());
        }
        let mut out = std::mem::take(&mut self.out);
        out.bytes_read = bytes_read;
        out.records_read = records_read;
        self.tx.blocking_send(out).map_err(|_| Closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_come_back_as_they_went_in() {
        let mut out = Outgoing::default();
        out.push(&Record::new(b"data", b"key"), (0, 1), (0, 1), 1);
        out.push(
            &Record::new(b"", b"k").with_hash_key(b"123"),
            (1, 7),
            (1, 9),
            3,
        );
        assert_eq!(out.len(), 2);
        let (record, meta) = out.get(0);
        assert_eq!(
            (record.data, record.key, record.hash_key),
            (&b"data"[..], &b"key"[..], None)
        );
        assert_eq!((meta.first, meta.last, meta.users), ((0, 1), (0, 1), 1));
        let (record, meta) = out.get(1);
        assert_eq!(
            (record.data, record.key, record.hash_key),
            (&b""[..], &b"k"[..], Some(&b"123"[..]))
        );
        assert_eq!((meta.first, meta.last, meta.users), ((1, 7), (1, 9), 3));
    }

    #[test]
    fn encoded_records_and_a_failed_encoding() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut sink = SendSink::new(tx);
        let ok: Result<(), ()> = sink.add_encoded(
            3,
            |buffer| {
                buffer.copy_from_slice(b"abc");
                Ok(())
            },
            b"key",
            Some(b"42"),
            (0, 1),
            (0, 2),
            2,
        );
        assert!(ok.is_ok());
        let failed = sink.add_encoded(5, |_| Err("no"), b"k", None, (0, 3), (0, 3), 1);
        assert_eq!(failed, Err("no"));
        assert!(sink.flush(10, 3).is_ok());
        let out = rx.try_recv().expect("one message");
        assert_eq!((out.len(), out.bytes_read, out.records_read), (1, 10, 3));
        let (record, _) = out.get(0);
        assert_eq!(
            (record.data, record.key, record.hash_key),
            (&b"abc"[..], &b"key"[..], Some(&b"42"[..]))
        );
        // Nothing gathered: nothing sent. The receiver gone: Closed.
        assert!(sink.flush(10, 3).is_ok());
        drop(rx);
        sink.add(&Record::new(b"x", b"k"), (0, 4), (0, 4), 1);
        assert!(sink.flush(11, 4).is_err());
    }
}
