//! Owned test records and their views, shared by the property and retry tests.

use std::fmt;

use kinesis_batcher::Record;

const MIB: usize = 1024 * 1024;

/// Payload bytes for every record view: large enough for the largest record cap plus the
/// margin the generators go past it. Zeroed, so it lives in `.bss` and costs nothing.
pub static ZEROS: [u8; 10 * MIB + 64 * 1024] = [0; 10 * MIB + 64 * 1024];

/// An owned record: the payload is only a length, sliced from [`ZEROS`] when viewed.
#[derive(Clone, PartialEq, Eq)]
pub struct Rec {
    pub data_len: usize,
    pub key: Vec<u8>,
    pub hash_key: Option<Vec<u8>>,
}

impl fmt::Debug for Rec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Rec({}, \"{}\"", self.data_len, self.key.escape_ascii())?;
        if let Some(hash_key) = &self.hash_key {
            write!(f, ", hash \"{}\"", hash_key.escape_ascii())?;
        }
        f.write_str(")")
    }
}

/// The records as the library's borrowed form.
pub fn views(records: &[Rec]) -> Vec<Record<'_>> {
    records
        .iter()
        .map(|r| Record {
            data: &ZEROS[..r.data_len],
            key: &r.key,
            hash_key: r.hash_key.as_deref(),
        })
        .collect()
}
