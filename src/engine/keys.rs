//! Per-key order: each key's unsettled records as a list, oldest first, so that only the
//! oldest one may be sent. Open addressing with linear probing over caller storage;
//! deletion shifts entries back, so no tombstones build up on an endless stream.

use super::{NONE, Slot};

/// One key's unsettled records: the identity and the first and last slot of its list
/// (slots link to the next through `Slot::next_of_key`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KeyEntry {
    /// 0 marks a free entry; identity 0 is stored as 1 (a collision only delays a record,
    /// which is safe).
    identity: u64,
    head: u32,
    tail: u32,
}

/// The table over `entries`, whose length is a power of two at least twice the slots.
pub(super) struct KeyTable<'a> {
    entries: &'a mut [KeyEntry],
}

impl<'a> KeyTable<'a> {
    pub(super) fn new(entries: &'a mut [KeyEntry]) -> KeyTable<'a> {
        entries.fill(KeyEntry::default());
        KeyTable { entries }
    }

    pub(super) fn clear(&mut self) {
        self.entries.fill(KeyEntry::default());
    }

    fn home(&self, identity: u64) -> usize {
        // Fibonacci hashing onto the table's bits.
        let bits = self.entries.len().trailing_zeros();
        if bits == 0 {
            return 0;
        }
        (identity.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - bits)) as usize
    }

    fn find(&self, identity: u64) -> Result<usize, usize> {
        let mask = self.entries.len() - 1;
        let mut i = self.home(identity);
        loop {
            match self.entries[i].identity {
                0 => return Err(i),
                k if k == identity => return Ok(i),
                _ => i = (i + 1) & mask,
            }
        }
    }

    /// Appends `slot` to its key's list; answers whether it is the oldest of its key.
    /// The table never fills: it has twice as many entries as there are slots.
    pub(super) fn append(&mut self, slots: &mut [Slot], identity: u64, slot: u32) -> bool {
        let identity = identity.max(1);
        match self.find(identity) {
            Ok(i) => {
                let tail = self.entries[i].tail;
                slots[tail as usize].next_of_key = slot;
                self.entries[i].tail = slot;
                false
            }
            Err(i) => {
                self.entries[i] = KeyEntry {
                    identity,
                    head: slot,
                    tail: slot,
                };
                true
            }
        }
    }

    /// Removes `slot`, the oldest of its key, from the list; answers the next one, which
    /// becomes the oldest, or `NONE`.
    pub(super) fn remove_head(&mut self, slots: &[Slot], identity: u64, slot: u32) -> u32 {
        let identity = identity.max(1);
        let Ok(i) = self.find(identity) else {
            debug_assert!(false, "a key in flight is in the table");
            return NONE;
        };
        debug_assert_eq!(self.entries[i].head, slot);
        let next = slots[slot as usize].next_of_key;
        if next != NONE {
            self.entries[i].head = next;
            return next;
        }
        self.delete(i);
        NONE
    }

    /// Backward-shift deletion: later entries of the same probe run move up.
    fn delete(&mut self, mut hole: usize) {
        let mask = self.entries.len() - 1;
        let mut i = hole;
        loop {
            i = (i + 1) & mask;
            let entry = self.entries[i];
            if entry.identity == 0 {
                break;
            }
            let home = self.home(entry.identity);
            // The entry may fill the hole when its home is not in (hole, i], cyclically.
            let stays = if hole <= i {
                hole < home && home <= i
            } else {
                hole < home || home <= i
            };
            if !stays {
                self.entries[hole] = entry;
                hole = i;
            }
        }
        self.entries[hole] = KeyEntry::default();
    }
}
