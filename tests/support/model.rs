//! The deliberately naive reference model of the service's rules, shared by the property
//! tests (tests/properties.rs) and the fuzz targets (fuzz/, which includes this file by
//! path). It re-derives every rule with the plainest tools there are: `from_utf8`,
//! `chars().count()`, `encode_utf16().count()`, a checked u128 parse of hash keys, u128
//! sums, a greedy packer over `Vec<Vec<usize>>`, and a dynamic program for the fewest
//! batches. It shares no code with the library beyond reading the limits' getters.

use kinesis_batcher::{KeyUnit, Limits, Reason};

/// `0|([1-9]\d{0,38})` with a value of at most 2^128-1, by parsing.
pub fn hash_key_is_valid(hash_key: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(hash_key) else {
        return false;
    };
    if text == "0" {
        return true;
    }
    let mut chars = text.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    if !('1'..='9').contains(&first) || !chars.all(|c| c.is_ascii_digit()) {
        return false;
    }
    if text.chars().count() > 39 {
        return false;
    }
    let mut value: u128 = 0;
    for c in text.chars() {
        let digit = u128::from(c.to_digit(10).unwrap());
        match value.checked_mul(10).and_then(|v| v.checked_add(digit)) {
            Some(next) => value = next,
            None => return false,
        }
    }
    true
}

/// Key length in the chosen unit.
pub fn key_units(key: &str, unit: KeyUnit) -> usize {
    match unit {
        KeyUnit::CodePoints => key.chars().count(),
        KeyUnit::Utf16Units => key.encode_utf16().count(),
        KeyUnit::Utf8Bytes => key.len(),
    }
}

/// A record's size from its parts, or the first reason in the documented precedence.
pub fn measure_parts(
    data_len: u128,
    key: &[u8],
    hash_key: Option<&[u8]>,
    limits: &Limits,
) -> Result<u128, Reason> {
    let mut size = data_len;
    if limits.partition_keys() {
        let key = std::str::from_utf8(key).map_err(|_| Reason::KeyNotUtf8)?;
        if key.is_empty() {
            return Err(Reason::KeyEmpty);
        }
        if key_units(key, limits.key_unit()) > 256 {
            return Err(Reason::KeyTooLong);
        }
        size += key.len() as u128;
        if let Some(hash_key) = hash_key {
            if !hash_key_is_valid(hash_key) {
                return Err(Reason::HashKeyInvalid);
            }
            if limits.counts_hash_key() {
                size += hash_key.len() as u128;
            }
        }
    }
    if size > u128::from(limits.max_record_bytes()) {
        return Err(Reason::RecordTooLarge);
    }
    Ok(size)
}

/// Greedy in order over the records' measures: start a new group when the next accepted
/// record would not fit, or (unless the limits let batches span refusals) when a record
/// was refused since the group started. The groups of accepted indices.
pub fn greedy(measures: &[Result<u128, Reason>], limits: &Limits) -> Vec<Vec<usize>> {
    let max_records = limits.max_records() as usize;
    let max_bytes = u128::from(limits.max_request_bytes());
    let mut batches: Vec<Vec<usize>> = Vec::new();
    let mut open: Vec<usize> = Vec::new();
    let mut open_bytes = 0u128;
    for (index, measure) in measures.iter().enumerate() {
        let Ok(size) = *measure else {
            if !limits.spans_refusals() && !open.is_empty() {
                batches.push(std::mem::take(&mut open));
                open_bytes = 0;
            }
            continue;
        };
        if !open.is_empty() && (open.len() + 1 > max_records || open_bytes + size > max_bytes) {
            batches.push(std::mem::take(&mut open));
            open_bytes = 0;
        }
        open.push(index);
        open_bytes += size;
    }
    if !open.is_empty() {
        batches.push(open);
    }
    batches
}

/// The accepted records' sizes in the runs a batch may cover: one run, or (unless the
/// limits let batches span refusals) the runs between refused records.
pub fn runs(measures: &[Result<u128, Reason>], limits: &Limits) -> Vec<Vec<u128>> {
    let mut runs = vec![Vec::new()];
    for measure in measures {
        match measure {
            Ok(size) => runs.last_mut().unwrap().push(*size),
            Err(_) if !limits.spans_refusals() => runs.push(Vec::new()),
            Err(_) => {}
        }
    }
    runs
}

/// The fewest contiguous groups within the limits that cover `sizes`, in order:
/// `best[i]` is the fewest groups covering the first `i` sizes.
pub fn fewest_batches(sizes: &[u128], limits: &Limits) -> usize {
    let max_records = limits.max_records() as usize;
    let max_bytes = u128::from(limits.max_request_bytes());
    let mut best = vec![usize::MAX; sizes.len() + 1];
    best[0] = 0;
    for i in 1..=sizes.len() {
        let mut bytes = 0u128;
        // The last group is sizes[j..i].
        for j in (0..i).rev() {
            bytes += sizes[j];
            if i - j > max_records || bytes > max_bytes {
                break;
            }
            best[i] = best[i].min(best[j] + 1);
        }
    }
    best[sizes.len()]
}
