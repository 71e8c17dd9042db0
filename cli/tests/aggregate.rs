//! `--aggregate` and `deaggregate`: round trips in every mode, the CLI's aggregates
//! against the core's own plan of the whole input, boundaries at the aggregate cap,
//! refusals, usage errors, plain records and damaged aggregates.

use std::fs;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kinesis_batcher::aggregate::{Aggregation, Mode, Step, deaggregate, encode};
use kinesis_batcher::shards::{
    MAX_HASH_KEY_DIGITS, ShardMap, ShardRange, hash_key_of, partition_key_hash,
};
use kinesis_batcher::{Limits, Record};
use serde_json::Value;

const MAGIC: [u8; 4] = [0xF3, 0x89, 0x9A, 0xC2];

struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let path = std::env::temp_dir().join(format!(
            "kinesis-batcher-agg-{}-{}-{name}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temporary directory");
        TempDir(path)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_str().expect("UTF-8 path").to_owned()
    }

    fn file(&self, name: &str, contents: &[u8]) -> String {
        let path = self.path(name);
        fs::write(&path, contents).expect("write test input");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Run {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

fn run_with_stdin(args: &[&str], stdin: Option<&[u8]>) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kinesis-batcher"));
    command
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        });
    let mut child = command.spawn().expect("start kinesis-batcher");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("stdin pipe");
        let bytes = bytes.to_vec();
        std::thread::spawn(move || {
            use std::io::Write;
            let _ = pipe.write_all(&bytes);
        });
    }
    let Output {
        status,
        stdout,
        stderr,
    } = child.wait_with_output().expect("wait for kinesis-batcher");
    Run {
        code: status.code().expect("exit code"),
        stdout,
        stderr: String::from_utf8(stderr).expect("UTF-8 stderr"),
    }
}

fn run(args: &[&str]) -> Run {
    run_with_stdin(args, None)
}

/// A small seeded generator (xorshift64*), so that the inputs are the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// NDJSON lines keyed by field "k": short and long data, runs of one key (so one-key
/// packs), multi-byte keys, 256-character keys.
fn workload(seed: u64, lines: usize) -> (Vec<u8>, Vec<String>) {
    let mut rng = Rng(seed | 1);
    let keys: Vec<String> = (0..40)
        .map(|i| match i % 5 {
            0 => format!("ключ-{i}-日本語-🔑"),
            1 => "é".repeat(256),
            2 => format!("{i}").repeat(256 / format!("{i}").len()),
            _ => format!("device-{i}"),
        })
        .collect();
    let mut text = Vec::new();
    let mut line_keys = Vec::new();
    let mut key = 0;
    for n in 0..lines {
        if rng.below(4) == 0 {
            key = rng.below(keys.len() as u64) as usize;
        }
        let pad = match rng.below(10) {
            0 => 2000 + rng.below(3000),
            1 => 0,
            _ => rng.below(200),
        } as usize;
        let line = serde_json::json!({"n": n, "k": keys[key], "pad": "x".repeat(pad)});
        text.extend_from_slice(line.to_string().as_bytes());
        text.push(b'\n');
        line_keys.push(keys[key].clone());
    }
    (text, line_keys)
}

/// `n` shards splitting the hash keys evenly, listed in reverse (the tool sorts them).
fn shards_json(n: u32) -> (String, Vec<ShardRange>) {
    let size = u128::MAX / u128::from(n);
    // Shard i starts at i * (size + 1) and ends where the next starts, the last at 2^128-1.
    let ranges: Vec<ShardRange> = (0..n)
        .map(|i| ShardRange {
            start: (size + 1) * u128::from(i),
            end: if i + 1 == n {
                u128::MAX
            } else {
                (size + 1) * u128::from(i + 1) - 1
            },
        })
        .collect();
    let list: Vec<Value> = ranges
        .iter()
        .enumerate()
        .rev()
        .map(|(i, range)| {
            serde_json::json!({
                "ShardId": format!("shardId-{i:012}"),
                "HashKeyRange": {
                    "StartingHashKey": range.start.to_string(),
                    "EndingHashKey": range.end.to_string(),
                },
                "SequenceNumberRange": {"StartingSequenceNumber": "1"},
            })
        })
        .collect();
    (serde_json::json!({ "Shards": list }).to_string(), ranges)
}

/// One request entry.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    data: Vec<u8>,
    key: String,
    hash_key: Option<String>,
}

/// Every entry of every request file in `dir`, in request order.
fn entries(dir: &str) -> (Vec<String>, Vec<Entry>) {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .expect("read --out")
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    let mut all = Vec::new();
    for file in &files {
        let body: Value = serde_json::from_slice(&fs::read(file).expect("read")).expect("JSON");
        assert_eq!(body["StreamName"], "s");
        for record in body["Records"].as_array().expect("Records") {
            let keys: Vec<&String> = record.as_object().expect("object").keys().collect();
            assert!(
                keys.iter()
                    .all(|k| ["Data", "PartitionKey", "ExplicitHashKey"].contains(&k.as_str())),
                "{keys:?}"
            );
            all.push(Entry {
                data: STANDARD
                    .decode(record["Data"].as_str().expect("Data"))
                    .expect("base64"),
                key: record["PartitionKey"].as_str().expect("key").to_owned(),
                hash_key: record
                    .get("ExplicitHashKey")
                    .map(|h| h.as_str().expect("a string").to_owned()),
            });
        }
    }
    let names = files
        .iter()
        .map(|f| f.to_str().expect("UTF-8").to_owned())
        .collect();
    (names, all)
}

/// What the core plans for `lines` keyed by `keys`, in `mode`: the entries to send.
fn core_plan(lines: &[&[u8]], keys: &[String], mode: Mode<'_>, max_bytes: u32) -> Vec<Entry> {
    let records: Vec<Record> = lines
        .iter()
        .zip(keys)
        .map(|(line, key)| Record::new(line, key.as_bytes()))
        .collect();
    let aggregation = Aggregation::new(Limits::KDS)
        .expect("KDS")
        .with_mode(mode)
        .with_max_bytes(max_bytes);
    aggregation
        .plan(&records)
        .map(|step| {
            let Step::Aggregate(aggregate) = step else {
                panic!("refused: {step:?}");
            };
            let mut data = vec![0; aggregate.data_len as usize];
            encode(&records, &aggregate, &mut data).expect("encode");
            let mut digits = [0; MAX_HASH_KEY_DIGITS];
            Entry {
                data,
                key: String::from_utf8(aggregate.partition_key(&records).to_vec()).expect("key"),
                hash_key: aggregate
                    .explicit_hash_key(&records, &mut digits)
                    .map(|h| String::from_utf8(h.to_vec()).expect("digits")),
            }
        })
        .collect()
}

fn summary_number(text: &str, label: &str) -> u64 {
    let line = text
        .lines()
        .find_map(|line| line.strip_prefix(label))
        .unwrap_or_else(|| panic!("no {label} in {text}"));
    line.trim()
        .split(|c: char| !c.is_ascii_digit())
        .find(|w| !w.is_empty())
        .and_then(|w| w.parse().ok())
        .expect("a number")
}

#[test]
fn round_trip_in_every_mode_is_the_cores_plan_and_gives_back_the_input() {
    let dir = TempDir::new("modes");
    let (input, keys) = workload(7, 3000);
    let path = dir.file("in.ndjson", &input);
    let lines: Vec<&[u8]> = input
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    let (shards, ranges) = shards_json(4);
    let shards_path = dir.file("shards.json", shards.as_bytes());
    let map = ShardMap::new(&ranges).expect("a valid map");
    for (mode, core_mode) in [
        ("shared-hash-key", Mode::SharedHashKey),
        ("one-key", Mode::OneKey),
        ("per-shard", Mode::PerShard(map)),
    ] {
        for max_bytes in [4096u32, 1 << 20] {
            let out = dir.path(&format!("out-{mode}-{max_bytes}"));
            let aggregate = format!("--aggregate={mode}");
            let max = max_bytes.to_string();
            let mut args = vec![
                "emit",
                aggregate.as_str(),
                "--aggregate-max-bytes",
                &max,
                "--key-field",
                "k",
                "--out",
                &out,
                "--stream",
                "s",
                &path,
            ];
            if mode == "per-shard" {
                args.extend(["--shards", &shards_path]);
            }
            let emit = run(&args);
            assert_eq!(emit.code, 0, "{mode}: {}", emit.stderr);
            let summary = emit.text();
            let (files, sent) = entries(&out);
            // Exactly what the core plans over the whole input, though the tool planned
            // it window by window.
            let want = core_plan(&lines, &keys, core_mode, max_bytes);
            assert_eq!(sent.len(), want.len(), "{mode} {max_bytes}");
            assert!(
                sent == want,
                "{mode} {max_bytes}: entries differ from the core's plan"
            );
            assert_eq!(summary_number(&summary, "aggregated"), 3000, "{summary}");
            assert_eq!(
                summary_number(&summary, "accepted"),
                sent.len() as u64,
                "{summary}"
            );
            for entry in &sent {
                let aggregated = entry.data.starts_with(&MAGIC);
                assert!(entry.data.len() + entry.key.len() <= 1 << 20);
                if aggregated {
                    assert!(entry.data.len() + entry.key.len() <= max_bytes as usize);
                }
                // The keys each mode sends with an aggregate.
                match (mode, aggregated) {
                    ("one-key", _) | (_, false) => assert_eq!(entry.hash_key, None),
                    _ => {
                        assert_eq!(entry.key, "a");
                        assert!(entry.hash_key.is_some());
                    }
                }
                if mode == "per-shard" && aggregated {
                    // Every user record in the shard of the aggregate's hash key.
                    let outer: u128 = entry.hash_key.as_deref().expect("EHK").parse().expect("n");
                    let users = deaggregate(&entry.data, b"a", None).expect("valid");
                    for user in users {
                        assert_eq!(user.explicit_hash_key, None);
                        let own = hash_key_of(user.partition_key, None).expect("hash");
                        assert_eq!(map.shard_of(own), map.shard_of(outer));
                    }
                }
            }
            let mut args = vec!["deaggregate", "--data-only"];
            args.extend(files.iter().map(String::as_str));
            let back = run(&args);
            assert_eq!(back.code, 0, "{}", back.stderr);
            assert!(
                back.stdout == input,
                "{mode}: --data-only differs from the input"
            );
            // The JSON form: each line's key, and the EHK the mode documents.
            let mut args = vec!["deaggregate"];
            args.extend(files.iter().map(String::as_str));
            let back = run(&args);
            assert_eq!(back.code, 0, "{}", back.stderr);
            let users: Vec<Value> = back
                .text()
                .lines()
                .map(|l| serde_json::from_str(l).expect("JSON line"))
                .collect();
            assert_eq!(users.len(), 3000);
            let mut at = 0;
            for entry in &sent {
                let count = deaggregate(&entry.data, entry.key.as_bytes(), None)
                    .expect("valid")
                    .len();
                for user in &users[at..at + count] {
                    assert_eq!(user["PartitionKey"], keys[at].as_str());
                    assert_eq!(
                        STANDARD.decode(user["Data"].as_str().expect("Data")).ok(),
                        Some(lines[at].to_vec())
                    );
                    let hash_key = user.get("ExplicitHashKey").and_then(Value::as_str);
                    match mode {
                        "shared-hash-key" => assert_eq!(hash_key, entry.hash_key.as_deref()),
                        _ => assert_eq!(hash_key, None),
                    }
                    at += 1;
                }
            }
        }
    }
}

#[test]
fn an_aggregate_exactly_at_the_cap_with_its_outer_key_and_one_byte_over() {
    // Two records of 10 bytes under key "k", one-key: 4 magic + table entry (1+1+1) +
    // 2 sub-records (1+1 + 1+1 + 1+1+10 = 16 each) + 16 digest = 55 bytes of data, and
    // the outer key "k": 56 as the service counts it.
    let dir = TempDir::new("cap");
    let path = dir.file("in.txt", b"0123456789\nabcdefghij\n");
    for (option, value) in [("--aggregate-max-bytes", "56"), ("--max-record-size", "56")] {
        let out = dir.path(&format!("at{option}"));
        let at = run(&[
            "emit",
            "--aggregate=one-key",
            "--key",
            "k",
            option,
            value,
            "--out",
            &out,
            "--stream",
            "s",
            &path,
        ]);
        assert_eq!(at.code, 0, "{}", at.stderr);
        let (_, sent) = entries(&out);
        assert_eq!(sent.len(), 1, "{option} 56: one aggregate");
        assert_eq!(sent[0].data.len() + sent[0].key.len(), 56);
        assert!(sent[0].data.starts_with(&MAGIC));
        assert!(
            at.text()
                .contains("2 user records in 1 Kinesis records (1 aggregates, 0 plain)")
        );

        let out = dir.path(&format!("over{option}"));
        let over = run(&[
            "emit",
            "--aggregate=one-key",
            "--key",
            "k",
            option,
            "55",
            "--out",
            &out,
            "--stream",
            "s",
            &path,
        ]);
        assert_eq!(over.code, 0, "{}", over.stderr);
        let (_, sent) = entries(&out);
        assert_eq!(sent.len(), 2, "{option} 55: two plain records");
        assert_eq!(sent[0].data, b"0123456789");
        assert_eq!(sent[1].data, b"abcdefghij");
        assert!(
            over.text()
                .contains("2 user records in 2 Kinesis records (0 aggregates, 2 plain)")
        );
    }
    // A record too large to share an aggregate is sent plain, under its own key (shared
    // hash key: 62 bytes of framing, outer keys and hash-key table before any record).
    let big = dir.file(
        "big.txt",
        &[b"x".repeat(100), b"\ny\nz\n".to_vec()].concat(),
    );
    let out = dir.path("big");
    let runs = run(&[
        "emit",
        "--aggregate",
        "--key",
        "k",
        "--aggregate-max-bytes",
        "128",
        "--out",
        &out,
        "--stream",
        "s",
        &big,
    ]);
    assert_eq!(runs.code, 0, "{}", runs.stderr);
    let (_, sent) = entries(&out);
    assert_eq!(sent.len(), 2);
    assert_eq!((sent[0].data.len(), sent[0].key.as_str()), (100, "k"));
    assert!(sent[1].data.starts_with(&MAGIC));
}

#[test]
fn refusals_are_still_reported_in_input_order() {
    let dir = TempDir::new("refusals");
    let long = "x".repeat(300);
    let input = format!(
        "{{\"k\":\"a\",\"n\":1}}\nnot json\n{{\"k\":\"a\",\"pad\":\"{long}\"}}\n{{\"n\":4}}\n{{\"k\":\"\"}}\n{{\"k\":\"b\",\"n\":6}}\n"
    );
    let path = dir.file("in.ndjson", input.as_bytes());
    let out = dir.path("out");
    let log = dir.path("refusals.jsonl");
    let batches = dir.path("batches.jsonl");
    let emit = run(&[
        "emit",
        "--aggregate",
        "--key-field",
        "k",
        "--max-record-size",
        "256",
        "--out",
        &out,
        "--stream",
        "s",
        "--refusals",
        &log,
        "--batches",
        &batches,
        &path,
    ]);
    assert_eq!(emit.code, 0, "{}", emit.stderr);
    let text = emit.text();
    assert!(
        text.contains("records      6: 2 accepted, 4 refused"),
        "{text}"
    );
    assert!(
        text.contains("2 user records in 1 Kinesis records"),
        "{text}"
    );
    for (reason, count) in [
        ("invalid_json", 1),
        ("record_too_large", 1),
        ("key_field_missing", 1),
        ("key_empty", 1),
    ] {
        assert_eq!(
            summary_number(&text, &format!("  {reason}")),
            count,
            "{text}"
        );
    }
    let logged: Vec<(u64, String)> = fs::read_to_string(&log)
        .expect("--refusals")
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("JSON");
            (
                v["line"].as_u64().expect("line"),
                v["reason"].as_str().expect("r").to_owned(),
            )
        })
        .collect();
    let want: Vec<(u64, String)> = [
        (2, "invalid_json"),
        (3, "record_too_large"),
        (4, "key_field_missing"),
        (5, "key_empty"),
    ]
    .iter()
    .map(|(n, r)| (*n, (*r).to_owned()))
    .collect();
    assert_eq!(logged, want);
    assert!(
        emit.stderr.contains(":3: record too large"),
        "{}",
        emit.stderr
    );
    // The --batches line: one request of 1 Kinesis record holding lines 1 and 6, with
    // the 4 refused lines between them.
    let batch: Value =
        serde_json::from_str(fs::read_to_string(&batches).expect("batches").trim()).expect("JSON");
    assert_eq!(
        (&batch["first_line"], &batch["last_line"], &batch["records"]),
        (&Value::from(1), &Value::from(6), &Value::from(1))
    );
    assert_eq!(
        (&batch["user_records"], &batch["refused_inside"]),
        (&Value::from(2), &Value::from(4))
    );
    let (files, _) = entries(&out);
    let back = run(&["deaggregate", "--data-only", &files[0]]);
    assert_eq!(
        back.text(),
        "{\"k\":\"a\",\"n\":1}\n{\"k\":\"b\",\"n\":6}\n"
    );

    // --stop-on-refusal: what came before is still aggregated and written.
    let out = dir.path("stop");
    let stop = run(&[
        "emit",
        "--aggregate",
        "--key-field",
        "k",
        "--stop-on-refusal",
        "--out",
        &out,
        "--stream",
        "s",
        &path,
    ]);
    assert_eq!(stop.code, 1, "{}", stop.stderr);
    assert!(stop.stderr.contains("stopped at"), "{}", stop.stderr);
    let (_, sent) = entries(&out);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].data, b"{\"k\":\"a\",\"n\":1}");

    // --summary json.
    let json = run(&[
        "plan",
        "--aggregate",
        "--key-field",
        "k",
        "--summary",
        "json",
        &path,
    ]);
    let summary: Value = serde_json::from_slice(&json.stdout).expect("JSON summary");
    let agg = &summary["aggregation"];
    assert_eq!(agg["mode"], "shared-hash-key");
    assert_eq!(agg["user_records"], 3);
    assert_eq!(agg["kinesis_records"], 1);
    assert_eq!(agg["ratio"], 3.0);
    assert_eq!(summary["refused"], 3);
    let plain = run(&["plan", "--key-field", "k", "--summary", "json", &path]);
    let summary: Value = serde_json::from_slice(&plain.stdout).expect("JSON summary");
    assert_eq!(summary["aggregation"], Value::Null);
}

#[test]
fn usage_errors_name_the_problem() {
    let dir = TempDir::new("usage");
    let input = dir.file("in.txt", b"a\n");
    let gap = dir.file(
        "gap.json",
        br#"{"Shards":[{"ShardId":"s0","HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"9"}},{"ShardId":"s1","HashKeyRange":{"StartingHashKey":"11","EndingHashKey":"340282366920938463463374607431768211455"}}]}"#,
    );
    let not_json = dir.file("bad.json", b"Shards");
    let closed = dir.file(
        "closed.json",
        br#"{"Shards":[{"ShardId":"s0","HashKeyRange":{"StartingHashKey":"0","EndingHashKey":"340282366920938463463374607431768211455"},"SequenceNumberRange":{"StartingSequenceNumber":"1","EndingSequenceNumber":"2"}}]}"#,
    );
    let missing = dir.path("missing.json");
    for (args, code, needle) in [
        (
            vec!["plan", "--aggregate=all", &input],
            2,
            "--aggregate=all: use shared-hash-key, one-key or per-shard",
        ),
        (
            vec!["plan", "--aggregate", "--profile", "firehose", &input],
            2,
            "--aggregate with --profile firehose",
        ),
        (
            vec!["plan", "--aggregate=per-shard", &input],
            2,
            "--aggregate=per-shard needs --shards FILE",
        ),
        (
            vec!["plan", "--aggregate", "--shards", &gap, &input],
            2,
            "--shards is for --aggregate=per-shard",
        ),
        (
            vec!["plan", "--aggregate-max-bytes", "10", &input],
            2,
            "--aggregate-max-bytes needs --aggregate",
        ),
        (
            vec!["plan", "--aggregate", "--aggregate-max-bytes", "0", &input],
            2,
            "must be at least 1",
        ),
        (
            vec![
                "plan",
                "--aggregate",
                "--aggregate-max-bytes",
                "2MiB",
                &input,
            ],
            2,
            "above the record cap (2097152 > 1048576 bytes)",
        ),
        (
            vec!["plan", "--aggregate=per-shard", "--shards", &gap, &input],
            2,
            "s1 starts at 11, s0 ends at 9",
        ),
        (
            vec![
                "plan",
                "--aggregate=per-shard",
                "--shards",
                &not_json,
                &input,
            ],
            2,
            "not JSON",
        ),
        (
            vec!["plan", "--aggregate=per-shard", "--shards", &closed, &input],
            2,
            "s0 is closed",
        ),
        (
            vec![
                "plan",
                "--aggregate=per-shard",
                "--shards",
                &missing,
                &input,
            ],
            3,
            "No such file",
        ),
        (
            vec!["plan", "--data-only", &input],
            2,
            "--data-only is an option of deaggregate",
        ),
        (
            vec!["deaggregate", "--key", "k", &input],
            2,
            "--key is not an option of deaggregate",
        ),
        (
            vec!["deaggregate", "--partition-key", "k", &input],
            2,
            "--partition-key is for --raw",
        ),
        (
            vec!["deaggregate", "--corrupt=skip", &input],
            2,
            "--corrupt=skip: use error or plain",
        ),
    ] {
        let r = run(&args);
        assert_eq!(r.code, code, "{args:?}: {}", r.stderr);
        assert!(
            r.stderr.starts_with("kinesis-batcher: "),
            "{args:?}: {}",
            r.stderr
        );
        assert!(r.stderr.contains(needle), "{args:?}: {}", r.stderr);
        assert!(r.stdout.is_empty(), "{args:?}");
    }
    let help = run(&["--help"]);
    for needle in [
        "--aggregate[=MODE]",
        "shared-hash-key",
        "--shards FILE",
        "--aggregate-max-bytes",
        "deaggregate [--data-only]",
        "--corrupt=plain",
        "--partition-key KEY",
    ] {
        assert!(help.text().contains(needle), "--help lacks {needle}");
    }
}

#[test]
fn deaggregate_reads_plain_records_raw_files_and_stdin() {
    let dir = TempDir::new("plain");
    let path = dir.file("in.txt", "one\ntwo ✓\n\u{1}three\n".as_bytes());
    let out = dir.path("out");
    // Not aggregated: each entry is one user record with its own key.
    let emit = run(&[
        "emit", "--key", "ключ", "--out", &out, "--stream", "s", &path,
    ]);
    assert_eq!(emit.code, 0, "{}", emit.stderr);
    let (files, _) = entries(&out);
    let back = run(&["deaggregate", &files[0]]);
    assert_eq!(back.code, 0, "{}", back.stderr);
    let lines: Vec<Value> = back
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(lines.len(), 3);
    assert_eq!(lines[1]["Data"], STANDARD.encode("two ✓"));
    assert_eq!(lines[1]["PartitionKey"], "ключ");
    assert!(lines[1].get("ExplicitHashKey").is_none());
    let data = run(&["deaggregate", "--data-only", &files[0]]);
    assert_eq!(data.stdout, fs::read(&path).expect("input"));

    // get-records output, from stdin, with an ExplicitHashKey passed through.
    let got = serde_json::json!({"Records": [
        {"SequenceNumber": "1", "Data": STANDARD.encode("plain"), "PartitionKey": "p",
         "ExplicitHashKey": "42", "ApproximateArrivalTimestamp": "2024-01-01T00:00:00Z"}],
        "NextShardIterator": "x", "MillisBehindLatest": 0});
    let back = run_with_stdin(&["deaggregate"], Some(got.to_string().as_bytes()));
    assert_eq!(
        back.text(),
        "{\"Data\":\"cGxhaW4=\",\"PartitionKey\":\"p\",\"ExplicitHashKey\":\"42\"}\n"
    );

    // --raw: a file of one record's data, an aggregate or not.
    let out = dir.path("agg");
    let emit = run(&["emit", "--aggregate", "--out", &out, "--stream", "s", &path]);
    assert_eq!(emit.code, 0, "{}", emit.stderr);
    let (_, sent) = entries(&out);
    let raw = dir.file("raw.bin", &sent[0].data);
    let back = run(&["deaggregate", "--raw", "--data-only", &raw]);
    assert_eq!(back.stdout, fs::read(&path).expect("input"));
    let plain = dir.file("plain.bin", b"hello");
    let back = run(&["deaggregate", "--raw", "--partition-key", "pk", &plain]);
    assert_eq!(
        back.text(),
        "{\"Data\":\"aGVsbG8=\",\"PartitionKey\":\"pk\"}\n"
    );
    let back = run(&["deaggregate", "--raw", &plain]);
    assert_eq!(
        back.text(),
        "{\"Data\":\"aGVsbG8=\",\"PartitionKey\":\"\"}\n"
    );

    // Not a records file, and an unreadable one: exit 3, the others still read.
    let not_records = dir.file("x.json", b"{\"Shards\":[]}");
    let back = run(&[
        "deaggregate",
        "--data-only",
        &not_records,
        &dir.path("none"),
        &files[0],
    ]);
    assert_eq!(back.code, 3);
    assert!(
        back.stderr.contains("no top-level \"Records\" array"),
        "{}",
        back.stderr
    );
    assert_eq!(back.stdout, fs::read(&path).expect("input"));
}

#[test]
fn a_damaged_aggregate_is_an_error_naming_file_record_and_offset() {
    let dir = TempDir::new("corrupt");
    let path = dir.file("in.txt", b"first\nsecond\nthird\n");
    let out = dir.path("out");
    let emit = run(&[
        "emit",
        "--aggregate",
        "--key",
        "k",
        "--out",
        &out,
        "--stream",
        "s",
        &path,
    ]);
    assert_eq!(emit.code, 0, "{}", emit.stderr);
    let (_, sent) = entries(&out);
    let good = &sent[0];
    assert!(good.data.starts_with(&MAGIC));
    let mut flipped = good.data.clone();
    flipped[10] ^= 1;
    // A malformed one whose digest matches: a sub-record pointing to key 3 of none.
    let message = [0x1A, 0x04, 0x08, 0x03, 0x1A, 0x00];
    let digest = partition_key_hash(&message).to_be_bytes();
    let malformed = [&MAGIC[..], &message, &digest].concat();
    let entry = |data: &[u8]| serde_json::json!({"Data": STANDARD.encode(data), "PartitionKey": "a", "ExplicitHashKey": "7"});
    let file = dir.file(
        "records.json",
        serde_json::json!({"Records": [entry(&good.data), entry(&flipped), entry(&malformed), entry(b"after")]})
            .to_string()
            .as_bytes(),
    );
    let back = run(&["deaggregate", "--data-only", &file]);
    assert_eq!(back.code, 1, "{}", back.stderr);
    // Nothing of the damaged records, everything of the others.
    assert_eq!(back.text(), "first\nsecond\nthird\nafter\n");
    let digest_at = flipped.len() - 16;
    assert!(
        back.stderr.contains(&format!(
            "kinesis-batcher: {file}: Records[1]: damaged aggregate at offset {digest_at}: the record starts with the aggregation magic but its MD5 digest does not match"
        )),
        "{}",
        back.stderr
    );
    assert!(
        back.stderr.contains(&format!(
            "{file}: Records[2]: damaged aggregate at offset 4: "
        )),
        "{}",
        back.stderr
    );
    // --corrupt=plain: each passed through as one plain record with its own keys.
    let back = run(&["deaggregate", "--corrupt=plain", &file]);
    assert_eq!(back.code, 0, "{}", back.stderr);
    let lines: Vec<Value> = back
        .text()
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    assert_eq!(lines.len(), 6);
    assert_eq!(lines[3]["Data"], STANDARD.encode(&flipped));
    assert_eq!(lines[4]["Data"], STANDARD.encode(&malformed));
    assert_eq!(
        (&lines[4]["PartitionKey"], &lines[4]["ExplicitHashKey"]),
        (&"a".into(), &"7".into())
    );
    // The same with --raw: the file is named, no record index.
    let raw = dir.file("flipped.bin", &flipped);
    let back = run(&["deaggregate", "--raw", &raw]);
    assert_eq!(back.code, 1);
    assert!(
        back.stderr
            .contains(&format!("{raw}: damaged aggregate at offset {digest_at}"))
    );
    assert!(back.stdout.is_empty());
    // Bad entries.
    let bad = dir.file(
        "bad.json",
        br#"{"Records":[{"Data":"!!","PartitionKey":"a"},{"Data":"YQ=="}]}"#,
    );
    let back = run(&["deaggregate", &bad]);
    assert_eq!(back.code, 1);
    assert!(
        back.stderr.contains("Records[0]: \"Data\" is not base64"),
        "{}",
        back.stderr
    );
    assert!(
        back.stderr
            .contains("Records[1]: no \"PartitionKey\" string"),
        "{}",
        back.stderr
    );
}
