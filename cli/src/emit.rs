//! Request files for the AWS CLI: one JSON body per request, built as records are
//! pushed (each record's data base64-encoded straight from the read buffer), written
//! when the core says the request is complete. The directory is created with the first
//! request file: a run that writes none leaves no directory behind.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use kinesis_batcher::cost::base64_len;
use kinesis_batcher::{Batch, Limits};

/// The name of the `n`th request file (1-based): `request-000001.json` to
/// `request-999999.json`, then `request-a1000000.json` to `request-a9999999.json`,
/// `request-b10000000.json`, ... up to `request-n18446744073709551615.json` (`u64::MAX`).
///
/// The number is written in full, at least 6 digits; one of 7 digits or more has a
/// letter before it that says how many (`a` for 7, `b` for 8, ...). Letters sort after
/// digits, and a longer number gets a later letter, so the names sort in request order
/// whatever the count: by bytes (`LC_ALL=C ls`, shell globs in the C locale), and in the
/// usual locales and natural ("version") sorts too.
pub fn file_name(n: u64) -> String {
    let digits = n.checked_ilog10().map_or(1, |log| log + 1);
    match digits.checked_sub(7) {
        None => format!("request-{n:06}.json"),
        // At most 20 digits: the letter is `a` to `n`.
        Some(extra) => format!("request-{}{n}.json", char::from(b'a' + extra as u8)),
    }
}

/// Builds request bodies and writes them to a directory.
pub struct RequestWriter {
    dir: PathBuf,
    /// Whether `dir` exists: it did at the start, or the first request created it.
    dir_exists: bool,
    /// The body's opening: `{"StreamName":"...","Records":[`.
    head: Vec<u8>,
    /// Whether records carry a `PartitionKey`.
    keys: bool,
    /// The open request's body.
    body: Vec<u8>,
    /// Records in the open body.
    records: u32,
    /// Request files written.
    files: u64,
    /// Bytes written in them.
    bytes: u64,
}

/// A failure to write a request file: the path and the error.
#[derive(Debug)]
pub struct WriteError {
    /// What could not be written.
    pub path: PathBuf,
    /// Why.
    pub error: io::Error,
}

impl RequestWriter {
    /// A writer into `dir`, which must not already hold request files
    /// (`request-*.json`): a stale `request-000042.json` from a longer earlier run would
    /// be sent too. `dir` is only checked here (before any input is read, so that a bad
    /// `--out` fails at once); it is created with the first request file.
    pub fn create(dir: &Path, stream: &str, limits: &Limits) -> Result<RequestWriter, WriteError> {
        let fail = |error| WriteError {
            path: dir.to_path_buf(),
            error,
        };
        let entries = match fs::read_dir(dir) {
            Ok(entries) => Some(entries),
            Err(error) if error.kind() == io::ErrorKind::NotFound => None,
            Err(error) => return Err(fail(error)),
        };
        let dir_exists = entries.is_some();
        for entry in entries.into_iter().flatten() {
            let name = entry.map_err(fail)?.file_name();
            let name = name.to_string_lossy();
            if name.starts_with("request-") && name.ends_with(".json") {
                return Err(fail(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!(
                        "already holds request files ({name}, ...): remove them or choose another --out"
                    ),
                )));
            }
        }
        let name_field = if limits.partition_keys() {
            "StreamName"
        } else {
            "DeliveryStreamName"
        };
        let mut head = format!("{{\"{name_field}\":").into_bytes();
        push_json_string(&mut head, stream.as_bytes());
        head.extend_from_slice(b",\"Records\":[");
        // The largest body: every request byte as base64, plus the framing of each record.
        let capacity = base64_len(u64::from(limits.max_request_bytes()))
            + u64::from(limits.max_records()) * 64
            + head.len() as u64;
        Ok(RequestWriter {
            dir: dir.to_path_buf(),
            dir_exists,
            body: Vec::with_capacity(usize::try_from(capacity).unwrap_or(0)),
            head,
            keys: limits.partition_keys(),
            records: 0,
            files: 0,
            bytes: 0,
        })
    }

    /// Appends an accepted record to the open request.
    pub fn push(&mut self, data: &[u8], key: &[u8]) {
        self.push_with_hash_key(data, key, None);
    }

    /// Appends an accepted record with its `ExplicitHashKey`, if it has one (`--aggregate`).
    pub fn push_with_hash_key(&mut self, data: &[u8], key: &[u8], hash_key: Option<&[u8]>) {
        if self.records == 0 {
            self.body.clear();
            self.body.extend_from_slice(&self.head);
        } else {
            self.body.push(b',');
        }
        self.body.extend_from_slice(b"{\"Data\":\"");
        push_base64(&mut self.body, data);
        self.body.push(b'"');
        if self.keys {
            self.body.extend_from_slice(b",\"PartitionKey\":");
            push_json_string(&mut self.body, key);
        }
        if let Some(hash_key) = hash_key {
            self.body.extend_from_slice(b",\"ExplicitHashKey\":");
            push_json_string(&mut self.body, hash_key);
        }
        self.body.push(b'}');
        self.records += 1;
    }

    /// Closes the open request, which the core reported as `batch`, and writes it.
    pub fn finish(&mut self, batch: &Batch) -> Result<(), WriteError> {
        if self.records != batch.records {
            // The body and the core disagree: a bug here, never a user error.
            return Err(WriteError {
                path: self.dir.clone(),
                error: io::Error::other(format!(
                    "internal error: request body holds {} records, the core's batch {}",
                    self.records, batch.records
                )),
            });
        }
        self.body.extend_from_slice(b"]}\n");
        if !self.dir_exists {
            fs::create_dir_all(&self.dir).map_err(|error| WriteError {
                path: self.dir.clone(),
                error,
            })?;
            self.dir_exists = true;
        }
        self.files += 1;
        let path = self.dir.join(file_name(self.files));
        // create_new: a request file that appeared since the check in `create` is never
        // overwritten (it would be sent as well as ours).
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .and_then(|mut file| file.write_all(&self.body))
            .map_err(|error| WriteError { path, error })?;
        self.bytes += self.body.len() as u64;
        self.records = 0;
        Ok(())
    }

    /// The directory written to.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Request files written so far, and their bytes.
    pub fn written(&self) -> (u64, u64) {
        (self.files, self.bytes)
    }

    /// Whether the directory exists (it was there, or a request file created it).
    pub fn dir_exists(&self) -> bool {
        self.dir_exists
    }
}

/// Appends `data` in standard base64 with padding: `base64_len(data.len())` bytes.
pub fn push_base64(out: &mut Vec<u8>, data: &[u8]) {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let start = out.len();
    let len = usize::try_from(base64_len(data.len() as u64)).unwrap_or(usize::MAX);
    out.resize(start + len, b'=');
    let target = &mut out[start..];
    let chunks = data.chunks_exact(3);
    let rest = chunks.remainder();
    let mut quads = target.chunks_exact_mut(4);
    for (three, four) in chunks.zip(&mut quads) {
        let n = u32::from(three[0]) << 16 | u32::from(three[1]) << 8 | u32::from(three[2]);
        four[0] = ALPHABET[(n >> 18) as usize & 63];
        four[1] = ALPHABET[(n >> 12) as usize & 63];
        four[2] = ALPHABET[(n >> 6) as usize & 63];
        four[3] = ALPHABET[n as usize & 63];
    }
    if let Some(four) = quads.next() {
        // One or two bytes left: two or three digits, then the padding already there.
        let second = rest.get(1).copied().unwrap_or(0);
        let n = u32::from(rest[0]) << 16 | u32::from(second) << 8;
        four[0] = ALPHABET[(n >> 18) as usize & 63];
        four[1] = ALPHABET[(n >> 12) as usize & 63];
        if rest.len() == 2 {
            four[2] = ALPHABET[(n >> 6) as usize & 63];
        }
    }
}

/// Appends `text` as a JSON string literal. Invalid UTF-8 (never in a key the core
/// accepted) is written lossily.
pub fn push_json_string(out: &mut Vec<u8>, text: &[u8]) {
    let text = String::from_utf8_lossy(text);
    out.push(b'"');
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if u32::from(c) < 0x20 => {
                out.extend_from_slice(format!("\\u{:04x}", u32::from(c)).as_bytes());
            }
            c => {
                let mut utf8 = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut utf8).as_bytes());
            }
        }
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_vectors() {
        // RFC 4648, section 10.
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            let mut out = b"x".to_vec();
            push_base64(&mut out, plain.as_bytes());
            assert_eq!(out, format!("x{encoded}").as_bytes());
        }
    }

    #[test]
    fn file_names_sort_in_request_order_for_any_count() {
        assert_eq!(file_name(1), "request-000001.json");
        assert_eq!(file_name(999_999), "request-999999.json");
        assert_eq!(file_name(1_000_000), "request-a1000000.json");
        assert_eq!(file_name(9_999_999), "request-a9999999.json");
        assert_eq!(file_name(10_000_000), "request-b10000000.json");
        assert_eq!(file_name(u64::MAX), "request-n18446744073709551615.json");
        // Around every power of ten, and the ends: byte order is request order.
        let mut numbers = vec![1, 2, u64::MAX - 1, u64::MAX];
        for power in 1..=19 {
            let p = 10u64.pow(power);
            numbers.extend([p - 1, p, p + 1, p.saturating_mul(2) - 1]);
        }
        numbers.sort_unstable();
        numbers.dedup();
        let names: Vec<String> = numbers.iter().map(|&n| file_name(n)).collect();
        let mut sorted = names.clone();
        sorted.sort();
        assert_eq!(sorted, names);
        for name in &names {
            assert!(name.starts_with("request-") && name.ends_with(".json"));
        }
    }

    #[test]
    fn json_strings() {
        let mut out = Vec::new();
        push_json_string(&mut out, "a\"b\\c\n\u{1}é".as_bytes());
        assert_eq!(out, "\"a\\\"b\\\\c\\n\\u0001é\"".as_bytes());
        let back: String = serde_json::from_slice(&out).unwrap_or_default();
        assert_eq!(back, "a\"b\\c\n\u{1}é");
    }
}
