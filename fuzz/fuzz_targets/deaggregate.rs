//! Arbitrary bytes as a received record, through the core's `deaggregate` and through
//! `kb_deaggregate` / `kb_deaggregate_next`: both agree (status, count, offset, every
//! view), every view of an aggregate lies within the data, the count is exact, and a
//! tampered `kb_deaggregator` gives `KB_END` or views within the data, never a read
//! outside it. Half the inputs are framed (magic + bytes + their MD5), so most reach the
//! protobuf parser rather than stop at the digest.
#![no_main]

use std::ptr::null;

use arbitrary::Arbitrary;
use kinesis_batcher::aggregate::{deaggregate, DecodeError};
use kinesis_batcher::ffi::*;
use kinesis_batcher::shards::partition_key_hash;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Input {
    frame: bool,
    bytes: Vec<u8>,
    key: Vec<u8>,
    hash_key: Option<Vec<u8>>,
    /// A word of the iterator to overwrite after kb_deaggregate, and its value.
    tamper: Option<(u8, u64)>,
}

const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

fn within(view: &[u8], data: &[u8]) -> bool {
    let (start, end) = (data.as_ptr() as usize, data.as_ptr() as usize + data.len());
    view.is_empty()
        || (view.as_ptr() as usize >= start && view.as_ptr() as usize + view.len() <= end)
}

/// The views of a record written by kb_deaggregate_next.
///
/// # Safety
/// The record was written by kb_deaggregate_next over live data.
unsafe fn slices(r: &kb_record) -> (&[u8], &[u8], Option<&[u8]>) {
    let part = |p: *const u8, n: usize| {
        if n == 0 {
            &[][..]
        } else {
            // SAFETY: the caller's promise: views into live data.
            unsafe { std::slice::from_raw_parts(p, n) }
        }
    };
    let hash_key = if r.hash_key.is_null() {
        None
    } else {
        Some(part(r.hash_key, r.hash_key_len))
    };
    (part(r.data, r.data_len), part(r.key, r.key_len), hash_key)
}

fuzz_target!(|input: Input| {
    let data: Vec<u8> = if input.frame {
        let mut framed = MAGIC.to_vec();
        framed.extend_from_slice(&input.bytes);
        framed.extend_from_slice(&partition_key_hash(&input.bytes).to_be_bytes());
        framed
    } else {
        input.bytes.clone()
    };
    let key = &input.key[..];
    let hash_key = input.hash_key.as_deref();

    let core = deaggregate(&data, key, hash_key);
    let mut it = kb_deaggregator::default();
    let (mut count, mut offset) = (usize::MAX, usize::MAX);
    // SAFETY: live slices and writable outputs.
    let st = unsafe {
        kb_deaggregate(
            &mut it,
            data.as_ptr(),
            data.len(),
            key.as_ptr(),
            key.len(),
            hash_key.map_or(null(), <[u8]>::as_ptr),
            hash_key.map_or(0, <[u8]>::len),
            &mut count,
            &mut offset,
        )
    };
    let mut user = kb_record {
        data: null(),
        data_len: 0,
        key: null(),
        key_len: 0,
        hash_key: null(),
        hash_key_len: 0,
    };
    match core {
        Err(DecodeError::DigestMismatch) => {
            assert_eq!((st, count), (KB_AGGREGATE_DIGEST_MISMATCH, 0));
        }
        Err(DecodeError::Malformed { offset: at }) => {
            assert_eq!((st, count, offset), (KB_AGGREGATE_MALFORMED, 0, at));
            assert!(at < data.len(), "offset {at} past {}", data.len());
        }
        Ok(sub_records) => {
            assert_eq!(st, KB_OK);
            let aggregated = sub_records.is_aggregated();
            assert_eq!(count, sub_records.len());
            let mut given = 0;
            for sub in sub_records {
                given += 1;
                if aggregated {
                    assert!(within(sub.data, &data) && within(sub.partition_key, &data));
                    assert!(sub.explicit_hash_key.is_none_or(|h| within(h, &data)));
                } else {
                    assert_eq!(
                        (sub.data, sub.partition_key, sub.explicit_hash_key),
                        (&data[..], key, hash_key)
                    );
                }
                // SAFETY: a live iterator and a writable record.
                assert_eq!(unsafe { kb_deaggregate_next(&mut it, &mut user) }, KB_OK);
                // SAFETY: written by the call, views into live data.
                let (d, k, h) = unsafe { slices(&user) };
                assert_eq!((d.as_ptr(), d.len()), (sub.data.as_ptr(), sub.data.len()));
                assert_eq!(k, sub.partition_key);
                assert_eq!(h, sub.explicit_hash_key);
            }
            assert_eq!(given, count, "the count is what iteration gives");
            // SAFETY: as above.
            unsafe {
                assert_eq!(kb_deaggregate_next(&mut it, &mut user), KB_END);
                assert_eq!(kb_deaggregate_next(&mut it, &mut user), KB_END);
            }
        }
    }

    // A tampered iterator over an aggregate: KB_END or views within the data.
    if let (KB_OK, Some((word, value))) = (st, input.tamper) {
        let mut it = kb_deaggregator::default();
        // SAFETY: as above.
        unsafe {
            kb_deaggregate(
                &mut it,
                data.as_ptr(),
                data.len(),
                key.as_ptr(),
                key.len(),
                hash_key.map_or(null(), <[u8]>::as_ptr),
                hash_key.map_or(0, <[u8]>::len),
                &mut count,
                &mut offset,
            );
        }
        // The offsets and counters (words 1 and 8..=12 on 64-bit targets): never the
        // pointers and lengths, which the caller must keep as they were.
        const WORDS: [usize; 6] = [1, 8, 9, 10, 11, 12];
        if size_of::<kb_deaggregator>() == 13 * 8 {
            let index = WORDS[usize::from(word) % WORDS.len()];
            // SAFETY: a repr(C) struct of 13 eight-byte words (checked just above), any
            // bits of which are valid for its integer fields.
            unsafe {
                (&mut it as *mut kb_deaggregator)
                    .cast::<u64>()
                    .add(index)
                    .write(value)
            };
        }
        for _ in 0..10_000 {
            // SAFETY: as above.
            if unsafe { kb_deaggregate_next(&mut it, &mut user) } != KB_OK {
                break;
            }
            // SAFETY: as above.
            let (d, k, h) = unsafe { slices(&user) };
            let inside = |s: &[u8]| within(s, &data) || s == key || Some(s) == hash_key;
            assert!(
                inside(d) && inside(k) && h.is_none_or(inside),
                "a view outside the data"
            );
        }
    }
});
