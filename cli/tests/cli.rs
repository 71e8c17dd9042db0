//! End-to-end tests of the `kinesis-batcher` binary: every subcommand, every exit code,
//! the demo, request files checked against the input and the service's limits, the
//! `--batches` log against the summary, packing, JSON keys, stdin and `\r\n` input.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

const MIB: usize = 1024 * 1024;

/// A directory under the system's temporary directory, unique to the test, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let unique = format!(
            "kinesis-batcher-cli-{}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed),
            name
        );
        let path = std::env::temp_dir().join(unique);
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create temporary directory");
        TempDir(path)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `contents` to a file in the directory and returns its path as a string.
    fn file(&self, name: &str, contents: &[u8]) -> String {
        let path = self.path(name);
        fs::write(&path, contents).expect("write test input");
        path.to_str().expect("UTF-8 temp path").to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The result of one run of the binary.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Run {
    run_with_stdin(args, None)
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
        // Written from a thread so that a large input cannot dead-lock with the output.
        std::thread::spawn(move || {
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
        stdout: String::from_utf8(stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(stderr).expect("UTF-8 stderr"),
    }
}

impl Run {
    /// The rest of the summary line that starts with `label`.
    fn line(&self, label: &str) -> &str {
        self.stdout
            .lines()
            .find_map(|line| line.strip_prefix(label))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no '{label}' line in:\n{}", self.stdout))
    }

    /// The first number on the summary line that starts with `label`.
    fn number(&self, label: &str) -> u64 {
        first_number(self.line(label))
    }

    /// Accepted and refused records from the `records` line.
    fn accepted_refused(&self) -> (u64, u64) {
        let line = self.line("records");
        let accepted = line
            .split(": ")
            .nth(1)
            .map(first_number)
            .expect("accepted count");
        let refused = line
            .rsplit(", ")
            .next()
            .map(first_number)
            .expect("refused count");
        (accepted, refused)
    }

    /// Refusals by reason id, from the summary.
    fn refusals(&self) -> BTreeMap<String, u64> {
        self.stdout
            .lines()
            .filter_map(|line| line.strip_prefix("  "))
            .map(|line| {
                let mut words = line.split_whitespace();
                let id = words.next().expect("reason id").to_owned();
                (id, first_number(words.next().expect("count")))
            })
            .collect()
    }
}

fn first_number(text: &str) -> u64 {
    let digits: String = text
        .trim_start()
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .unwrap_or_else(|_| panic!("no number at the start of {text:?}"))
}

fn counts(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|&(id, n)| (id.to_owned(), n)).collect()
}

/// One request file, parsed.
struct Request {
    name: String,
    records: Vec<(Vec<u8>, Option<String>)>,
}

/// Reads every request file in `dir`, in order, checking the file names are contiguous.
fn read_requests(dir: &Path, name_field: &str, stream: &str) -> Vec<Request> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .expect("read --out")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .into_string()
                .expect("UTF-8 name")
        })
        .collect();
    names.sort();
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            assert_eq!(name, &format!("request-{:06}.json", i + 1));
            let body = fs::read(dir.join(name)).expect("read request");
            let json: Value = serde_json::from_slice(&body).expect("request is JSON");
            let object = json.as_object().expect("request is an object");
            assert_eq!(
                object.len(),
                2,
                "{name}: only the stream name and the records"
            );
            assert_eq!(object[name_field], stream);
            let records = object["Records"].as_array().expect("Records array");
            let records = records
                .iter()
                .map(|record| {
                    let record = record.as_object().expect("record object");
                    let data = STANDARD
                        .decode(record["Data"].as_str().expect("Data string"))
                        .expect("Data is base64");
                    let key = record
                        .get("PartitionKey")
                        .map(|key| key.as_str().expect("PartitionKey string").to_owned());
                    assert_eq!(record.len(), 1 + usize::from(key.is_some()));
                    (data, key)
                })
                .collect();
            Request {
                name: name.clone(),
                records,
            }
        })
        .collect()
}

/// Checks every request against the limits: records, request bytes, record bytes.
fn check_limits(requests: &[Request], max_request: usize, max_record: usize) {
    for request in requests {
        assert!(
            !request.records.is_empty(),
            "{}: empty request",
            request.name
        );
        assert!(
            request.records.len() <= 500,
            "{}: over 500 records",
            request.name
        );
        let mut total = 0;
        for (data, key) in &request.records {
            let size = data.len() + key.as_ref().map_or(0, String::len);
            if let Some(key) = key {
                assert!(!key.is_empty() && key.chars().count() <= 256);
            }
            assert!(
                size <= max_record,
                "{}: a record of {size} bytes",
                request.name
            );
            total += size;
        }
        assert!(total <= max_request, "{}: {total} bytes", request.name);
    }
}

/// The `--batches` lines, parsed.
fn batches(text: &str) -> Vec<serde_json::Map<String, Value>> {
    text.lines()
        .map(|line| {
            serde_json::from_str::<Value>(line)
                .expect("batch line is JSON")
                .as_object()
                .expect("batch line is an object")
                .clone()
        })
        .collect()
}

fn int(batch: &serde_json::Map<String, Value>, field: &str) -> u64 {
    batch[field]
        .as_u64()
        .unwrap_or_else(|| panic!("{field} in {batch:?}"))
}

#[test]
fn help_and_version() {
    let help = run(&["--help"]);
    assert_eq!(help.code, 0);
    for needle in [
        "plan [OPTIONS] [FILE...]",
        "emit --out DIR --stream NAME",
        "request-999999.json, request-a1000000.json",
        "demo",
        "--profile kds|kds-5mib|firehose",
        "--max-record-size",
        "--max-records N",
        "--max-request-bytes N[KiB|MiB]",
        "--key-unit code-points|utf16|utf8-bytes",
        "--key-hash",
        "FNV-1a 64",
        "--key-field NAME",
        "--format lines|ndjson",
        "--pack",
        "--stop-on-refusal",
        "--quiet",
        "--batches PATH",
        "--refusals PATH",
        "--summary text|json",
        "AWS CLI v1",
        "EXIT CODES",
        "send --stream NAME [--endpoint-url URL] [--region R] [--in-flight N]",
        "--linger-ms MS",
        "--buffer N[KiB|MiB]",
        "--allow-reordering",
        "tail -F app.log | kinesis-batcher send --stream s",
        "4   send: some records could not be stored",
        "it groups the lines of one read",
    ] {
        assert!(help.stdout.contains(needle), "--help lacks {needle}");
    }
    assert_eq!(run(&["plan", "--help"]).stdout, help.stdout);
    assert_eq!(run(&["-h"]).stdout, help.stdout);
    let version = run(&["--version"]);
    assert_eq!(
        (version.code, version.stdout.trim()),
        (0, "kinesis-batcher 0.1.0")
    );
}

#[test]
fn usage_errors_exit_2() {
    let dir = TempDir::new("usage");
    let file = dir.file("in.txt", b"a\n");
    for (args, message) in [
        (vec!["plan", "--bogus", &file], "--bogus"),
        (vec!["frobnicate"], "unknown command"),
        (vec!["plan", "--profile", "kinesis"], "--profile kinesis"),
        (
            vec!["plan", "--max-record-size", "20MiB", &file],
            "max_record_bytes is above 10 MiB (10485760), the service's maximum per record",
        ),
        (
            vec![
                "plan",
                "--profile",
                "firehose",
                "--max-record-size",
                "5MiB",
                &file,
            ],
            "max_record_bytes is above max_request_bytes",
        ),
        (
            vec!["plan", "--max-record-size", "0", &file],
            "max_record_bytes is 0",
        ),
        (
            vec!["plan", "--max-record-size", "lots", &file],
            "expected a number",
        ),
        (
            vec!["plan", "--key-unit", "bytes", &file],
            "--key-unit bytes",
        ),
        (vec!["plan", "--key", "", &file], "partition key is empty"),
        (
            vec!["plan", "--key", &"k".repeat(257), &file],
            "longer than 256",
        ),
        (
            vec![
                "plan",
                "--key-unit",
                "utf8-bytes",
                "--key",
                &"é".repeat(200),
                &file,
            ],
            "longer than 256",
        ),
        (
            vec!["plan", "--key", "a", "--key-field", "b", &file],
            "cannot be used together",
        ),
        (
            vec!["plan", "--profile", "firehose", "--key", "a", &file],
            "no partition key",
        ),
        (vec!["plan", "--pack", &file], "--pack needs --key TEXT"),
        (
            vec!["plan", "--pack", "--key", "k", "--format", "ndjson", &file],
            "--pack",
        ),
        (
            vec!["plan", "--key-field", "d", "--format", "lines", &file],
            "--format lines",
        ),
        (vec!["emit", "--stream", "s", &file], "emit needs --out"),
        (vec!["emit", "--out", &file, &file], "emit needs --stream"),
        (
            vec!["plan", "--out", "x", &file],
            "--out is an option of emit",
        ),
        (vec!["demo", &file], "demo reads no files"),
        (vec!["plan", "--batches"], "missing argument"),
        (vec!["send", &file], "send needs --stream NAME"),
        (
            vec!["send", "--stream", "", &file],
            "--stream needs a stream name",
        ),
        (
            vec!["send", "--stream", "s", "--profile", "firehose", &file],
            "--profile firehose cannot be used with it",
        ),
        (
            vec!["send", "--stream", "s", "--in-flight", "0", &file],
            "--in-flight 0: expected a number of requests from 1 to 1024",
        ),
        (
            vec!["send", "--stream", "s", "--in-flight", "1025", &file],
            "--in-flight 1025",
        ),
        (
            vec!["send", "--stream", "s", "--linger-ms", "0", &file],
            "--linger-ms 0: expected milliseconds from 1",
        ),
        (
            vec!["send", "--stream", "s", "--buffer", "512KiB", &file],
            "--buffer 512KiB: below the record cap (524288 < 1048576 bytes)",
        ),
        (
            vec!["send", "--stream", "s", "--batches", "b.jsonl", &file],
            "--batches is an option of plan and emit",
        ),
        (
            vec!["send", "--stream", "s", "--out", "d", &file],
            "--out is an option of emit",
        ),
        (
            vec!["send", "--stream", "s", "--endpoint-url", "", &file],
            "--endpoint-url needs a value",
        ),
        (
            vec!["plan", "--in-flight", "2", &file],
            "--in-flight is an option of send",
        ),
        (
            vec![
                "emit",
                "--out",
                "d",
                "--stream",
                "s",
                "--allow-reordering",
                &file,
            ],
            "--allow-reordering is an option of send",
        ),
        (
            vec!["plan", "--stream", "s", &file],
            "--stream is an option of emit and send",
        ),
    ] {
        let result = run(&args);
        assert_eq!(result.code, 2, "{args:?}: {}", result.stderr);
        assert!(
            result.stderr.contains(message),
            "{args:?}: {}",
            result.stderr
        );
        assert!(
            result.stderr.starts_with("kinesis-batcher: "),
            "{args:?}: {}",
            result.stderr
        );
        assert!(result.stdout.is_empty(), "{args:?}");
    }
    // No arguments and no terminal on stdin: nothing to guess.
    let none = run(&[]);
    assert_eq!(none.code, 2);
    assert!(none.stderr.starts_with("kinesis-batcher: no command given"));
}

#[test]
fn every_error_message_starts_with_the_program_name() {
    let dir = TempDir::new("prefix");
    let good = dir.file("good.txt", b"a\n");
    let missing = dir.path("nope.ndjson");
    let missing = missing.to_str().expect("path");
    let directory = dir.0.to_str().expect("path");
    let under_file = format!("{good}/out");

    // Unreadable inputs: the OS's words, without Rust's "(os error N)".
    let result = run(&["plan", missing, directory, &good]);
    assert_eq!(result.code, 3);
    assert_eq!(
        result.stderr,
        format!(
            "kinesis-batcher: {missing}: No such file or directory\n\
             kinesis-batcher: {directory}: Is a directory\n"
        )
    );

    // Unwritable outputs.
    for (args, expected) in [
        (
            vec!["emit", "--out", &under_file, "--stream", "s", &good],
            format!("kinesis-batcher: --out {under_file}: Not a directory\n"),
        ),
        (
            vec!["plan", "--batches", &under_file, &good],
            format!("kinesis-batcher: --batches {under_file}: Not a directory\n"),
        ),
    ] {
        let result = run(&args);
        assert_eq!(
            (result.code, result.stderr.as_str()),
            (3, expected.as_str())
        );
        assert!(result.stdout.is_empty(), "{args:?}: {}", result.stdout);
    }
    let out = dir.path("out");
    let out = out.to_str().expect("path");
    assert_eq!(run(&["emit", "--out", out, "--stream", "s", &good]).code, 0);
    let again = run(&["emit", "--out", out, "--stream", "s", &good]);
    assert_eq!(again.code, 3);
    assert!(
        again.stderr.starts_with(&format!(
            "kinesis-batcher: --out {out}: already holds request files"
        )),
        "{}",
        again.stderr
    );
}

/// Runs the binary with stdout on /dev/full, where every write fails with ENOSPC.
#[cfg(target_os = "linux")]
fn run_to_full_stdout(args: &[&str]) -> (i32, String) {
    let full = fs::OpenOptions::new()
        .write(true)
        .open("/dev/full")
        .expect("open /dev/full");
    let output = Command::new(env!("CARGO_BIN_EXE_kinesis-batcher"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(full)
        .stderr(Stdio::piped())
        .output()
        .expect("run kinesis-batcher");
    (
        output.status.code().expect("exit code"),
        String::from_utf8(output.stderr).expect("UTF-8 stderr"),
    )
}

#[cfg(target_os = "linux")]
#[test]
fn an_unwritable_stdout_is_an_error_named_after_the_program() {
    let dir = TempDir::new("full");
    let good = dir.file("good.txt", b"a\n");
    let full = "No space left on device\n";
    assert_eq!(
        run_to_full_stdout(&["plan", &good]),
        (3, format!("kinesis-batcher: stdout: {full}"))
    );
    assert_eq!(
        run_to_full_stdout(&["--help"]),
        (3, format!("kinesis-batcher: stdout: {full}"))
    );
    assert_eq!(
        run_to_full_stdout(&["plan", "--batches", "-", &good]),
        (3, format!("kinesis-batcher: --batches stdout: {full}"))
    );
}

#[test]
fn custom_caps_cut_requests_at_exact_boundaries() {
    let dir = TempDir::new("caps");
    // Each record: 4 bytes of data and the 1-byte key "k", 5 bytes as the service counts.
    let file = dir.file("five.txt", b"aaaa\nbbbb\ncccc\ndddd\neeee\n");
    let per_request = |caps: &[&str]| -> Vec<u64> {
        let args = [
            &["plan", "--key", "k", "--batches", "-"][..],
            caps,
            &[&file],
        ]
        .concat();
        let result = run(&args);
        assert_eq!(result.code, 0, "{caps:?}: {}", result.stderr);
        batches(&result.stdout)
            .iter()
            .map(|batch| int(batch, "records"))
            .collect()
    };
    assert_eq!(per_request(&["--max-records", "2"]), [2, 2, 1]);
    assert_eq!(per_request(&["--max-records", "1"]), [1; 5]);
    assert_eq!(per_request(&["--max-records", "500"]), [5]);
    // A request cap of exactly two records' bytes holds two; one byte less, one.
    let bytes = |request: &str, record: &str| {
        per_request(&["--max-request-bytes", request, "--max-record-size", record])
    };
    assert_eq!(bytes("10", "10"), [2, 2, 1]);
    assert_eq!(bytes("9", "9"), [1; 5]);
    assert_eq!(bytes("15", "5"), [3, 2]);
    assert_eq!(bytes("14", "5"), [2, 2, 1]);
    assert_eq!(bytes("1KiB", "5"), [5]);

    // emit writes those requests, and the summary states the caps in force.
    let out = dir.path("out");
    let result = run(&[
        "emit",
        "--out",
        out.to_str().expect("path"),
        "--stream",
        "s",
        "--key",
        "k",
        "--max-records",
        "2",
        "--max-request-bytes",
        "1KiB",
        "--max-record-size",
        "5",
        &file,
    ]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert_eq!(
        result.line("kinesis-batcher emit:"),
        "profile kds: 2 records, 1024 bytes per request, 5 bytes per record"
    );
    let requests = read_requests(&out, "StreamName", "s");
    check_limits(&requests, 1024, 5);
    let counts: Vec<usize> = requests.iter().map(|r| r.records.len()).collect();
    assert_eq!(counts, [2, 2, 1]);

    // Firehose under custom caps: still no keys, so 4 bytes a record.
    let firehose = run(&[
        "plan",
        "--profile",
        "firehose",
        "--max-request-bytes",
        "8",
        "--max-record-size",
        "4",
        "--batches",
        "-",
        &file,
    ]);
    assert_eq!(firehose.code, 0, "{}", firehose.stderr);
    let sizes: Vec<u64> = batches(&firehose.stdout)
        .iter()
        .map(|batch| int(batch, "bytes"))
        .collect();
    assert_eq!(sizes, [8, 8, 4]);
}

#[test]
fn invalid_caps_are_usage_errors_naming_the_rule() {
    use kinesis_batcher::LimitsError;

    let dir = TempDir::new("bad-caps");
    let file = dir.file("in.txt", b"a\n");
    for (caps, expected) in [
        (
            vec!["--max-records", "0"],
            format!("--max-records 0: {}", LimitsError::ZeroRecords),
        ),
        (
            vec!["--max-records", "501"],
            format!("--max-records 501: {}", LimitsError::RecordsAboveService),
        ),
        (
            vec!["--max-records", "99999999999"],
            format!(
                "--max-records 99999999999: {}",
                LimitsError::RecordsAboveService
            ),
        ),
        (
            vec!["--max-records", "2k"],
            "--max-records 2k: expected a whole number of records".to_owned(),
        ),
        (
            vec!["--max-request-bytes", "0"],
            format!("--max-request-bytes 0: {}", LimitsError::ZeroRequestBytes),
        ),
        (
            vec!["--max-request-bytes", "10MiB"],
            String::new(), // the service's maximum: valid
        ),
        (
            vec!["--max-request-bytes", "10485761"],
            format!(
                "--max-request-bytes 10485761: {}",
                LimitsError::RequestBytesAboveService
            ),
        ),
        (
            // The record cap left at the profile's 1 MiB is above this request cap.
            vec!["--max-request-bytes", "100"],
            format!(
                "--max-request-bytes 100: {} (1048576 > 100 bytes)",
                LimitsError::RecordAboveRequest
            ),
        ),
        (
            vec!["--max-request-bytes", "10", "--max-record-size", "11"],
            format!(
                "--max-request-bytes 10 --max-record-size 11: {} (11 > 10 bytes)",
                LimitsError::RecordAboveRequest
            ),
        ),
        (
            vec!["--profile", "firehose", "--max-record-size", "1MiB"],
            format!(
                "--max-record-size 1MiB: {}",
                LimitsError::RecordBytesAboveProfile
            ),
        ),
        (
            vec!["--profile", "firehose", "--max-request-bytes", "4MiB"],
            String::new(), // Firehose's own maximum: valid
        ),
        (
            vec!["--profile", "firehose", "--max-request-bytes", "4194305"],
            format!(
                "--max-request-bytes 4194305: {}",
                LimitsError::RequestBytesAboveProfile
            ),
        ),
        (
            vec!["--profile", "kds-5mib", "--max-request-bytes", "10MiB"],
            format!(
                "--max-request-bytes 10MiB: {}",
                LimitsError::RequestBytesAboveProfile
            ),
        ),
    ] {
        let args = [&["plan"][..], &caps, &[&file]].concat();
        let result = run(&args);
        if expected.is_empty() {
            assert_eq!(result.code, 0, "{caps:?}: {}", result.stderr);
            continue;
        }
        assert_eq!(result.code, 2, "{caps:?}: {}", result.stderr);
        assert_eq!(
            result.stderr.lines().next(),
            Some(format!("kinesis-batcher: {expected}").as_str()),
            "{caps:?}"
        );
        assert!(result.stdout.is_empty(), "{caps:?}");
    }
}

#[test]
fn plan_counts_requests_and_refusals() {
    let dir = TempDir::new("plan");
    let mut input = Vec::new();
    for i in 0..1200 {
        input.extend_from_slice(format!("event {i}\n").as_bytes());
        if i == 600 {
            // One byte over the cap once its 16-byte hash key is added: line 602.
            input.extend(std::iter::repeat_n(b'x', MIB - 15));
            input.push(b'\n');
        }
    }
    let file = dir.file("events.log", &input);
    let result = run(&["plan", &file]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert_eq!(result.accepted_refused(), (1200, 1));
    assert_eq!(result.number("requests"), 3);
    assert_eq!(result.number("input"), 1);
    assert!(result.line("fill").contains("records 80.00% of 500"));
    assert_eq!(result.refusals(), counts(&[("record_too_large", 1)]));
    let at = format!("{file}:602");
    assert!(result.line("  record_too_large").ends_with(&at));
    assert_eq!(
        result.stderr.trim(),
        format!("{at}: record too large: 1048577 bytes with its key, cap 1048576")
    );

    // The same line fits a stream with a 2 MiB record cap.
    let bigger = run(&["plan", "--max-record-size", "2MiB", &file]);
    assert_eq!(bigger.accepted_refused(), (1201, 0));
    assert!(bigger.stderr.is_empty());
}

#[test]
fn record_cap_is_inclusive_with_the_key() {
    let dir = TempDir::new("inclusive");
    let mut input = vec![b'a'; MIB - 2]; // with the key "k1": exactly the cap
    input.push(b'\n');
    input.extend(std::iter::repeat_n(b'b', MIB - 1)); // one byte over
    input.push(b'\n');
    let file = dir.file("edge.txt", &input);
    let result = run(&["plan", "--key", "k1", &file]);
    assert_eq!(result.accepted_refused(), (1, 1));
    assert!(
        result
            .stderr
            .contains(":2: record too large: 1048577 bytes with its key")
    );
}

#[test]
fn stop_on_refusal_exits_1_and_keeps_what_came_before() {
    let dir = TempDir::new("stop");
    let file = dir.file("in.txt", b"one\ntwo\nthree\nfour\n");
    let out = dir.path("out");
    let args = [
        "emit",
        "--out",
        out.to_str().expect("path"),
        "--stream",
        "s",
        "--max-record-size",
        "5",
        "--key",
        "k",
        "--stop-on-refusal",
        &file,
    ];
    let result = run(&args);
    assert_eq!(result.code, 1, "{}", result.stderr);
    assert!(
        result
            .stderr
            .contains(&format!("stopped at {file}:3: record too large")),
        "{}",
        result.stderr
    );
    assert_eq!(
        result.line("stopped"),
        format!("at {file}:3 (--stop-on-refusal)")
    );
    assert_eq!(result.accepted_refused(), (2, 1));
    let requests = read_requests(&out, "StreamName", "s");
    assert_eq!(requests.len(), 1);
    let data: Vec<&[u8]> = requests[0].records.iter().map(|r| r.0.as_slice()).collect();
    assert_eq!(data, [b"one".as_slice(), b"two"]);

    // Without the flag the same input finishes with exit 0.
    let result = run(&["plan", "--max-record-size", "5", "--key", "k", &file]);
    assert_eq!(result.code, 0);
    assert_eq!(result.accepted_refused(), (3, 1));
}

#[test]
fn unreadable_inputs_exit_3_after_the_others() {
    let dir = TempDir::new("unreadable");
    let good = dir.file("good.txt", b"a\nb\n");
    let missing = dir.path("missing.txt");
    let missing = missing.to_str().expect("path");
    let directory = dir.0.to_str().expect("path");
    let result = run(&["plan", missing, &good, directory]);
    assert_eq!(result.code, 3);
    assert!(
        result.stderr.contains(&format!("{missing}: ")),
        "{}",
        result.stderr
    );
    assert!(
        result.stderr.contains(&format!("{directory}: ")),
        "{}",
        result.stderr
    );
    assert_eq!(result.accepted_refused(), (2, 0));
    assert!(result.line("input").contains("2 unreadable"));

    // With --stop-on-refusal an unreadable input stops the run at once: nothing was
    // read, so there is no summary.
    let result = run(&["plan", "--stop-on-refusal", missing, &good]);
    assert_eq!(result.code, 3);
    assert_eq!(result.stdout, "");
}

#[test]
fn nothing_read_prints_no_summary_and_creates_nothing() {
    let dir = TempDir::new("nothing-read");
    let first = dir.path("a.ndjson");
    let first = first.to_str().expect("path");
    let second = dir.path("b.ndjson");
    let second = second.to_str().expect("path");
    let directory = dir.0.to_str().expect("path");
    let out = dir.path("out");
    let out_arg = out.to_str().expect("path");
    let earlier = b"{\"batch\":1} from an earlier run\n";
    let log = dir.file("batches.jsonl", earlier);
    let emit = |inputs: &[&str]| {
        let mut args = vec!["emit", "--out", out_arg, "--stream", "s", "--batches", &log];
        args.extend_from_slice(inputs);
        run(&args)
    };

    let result = emit(&[first, second]);
    assert_eq!(result.code, 3);
    assert_eq!(result.stdout, "", "no summary of zeros");
    assert_eq!(
        result.stderr,
        format!(
            "kinesis-batcher: {first}: No such file or directory\n\
             kinesis-batcher: {second}: No such file or directory\n"
        )
    );
    assert!(!out.exists(), "--out created though nothing was read");
    assert_eq!(
        fs::read(&log).expect("read log"),
        earlier,
        "--batches truncated"
    );

    // A directory opens but cannot be read: nothing read either.
    let result = run(&["plan", first, directory]);
    assert_eq!((result.code, result.stdout.as_str()), (3, ""));

    // One readable input among them: the summary of what was read, and still 3.
    let good = dir.file("good.txt", b"a\nb\n");
    let result = emit(&[first, &good]);
    assert_eq!(result.code, 3, "{}", result.stderr);
    assert_eq!(result.accepted_refused(), (2, 0));
    assert!(result.line("input").contains("1 unreadable"));
    assert_eq!(read_requests(&out, "StreamName", "s").len(), 1);
    assert_eq!(
        batches(&fs::read_to_string(&log).expect("read log")).len(),
        1
    );

    // Every line refused: no request file, so no directory either, and the summary says so.
    let empty = dir.path("empty");
    let empty_arg = empty.to_str().expect("path");
    let all_refused = ["emit", "--out", empty_arg, "--stream", "s", "--quiet"];
    let args = [&all_refused[..], &["--max-record-size", "1", &good]].concat();
    let result = run(&args);
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert!(!empty.exists());
    assert_eq!(
        result.line("wrote"),
        format!("no request file ({empty_arg} not created)")
    );
    // An existing directory is left as it is.
    fs::create_dir(&empty).expect("mkdir");
    let result = run(&args);
    assert_eq!(
        result.line("wrote"),
        format!("no request file to {empty_arg}")
    );
    assert_eq!(fs::read_dir(&empty).expect("read dir").count(), 0);

    // An empty input is an input read: a summary, and exit 0.
    let nothing = dir.file("nothing.txt", b"");
    let result = run(&["plan", &nothing]);
    assert_eq!(result.code, 0);
    assert_eq!(result.accepted_refused(), (0, 0));
}

#[test]
fn unwritable_outputs_exit_3() {
    let dir = TempDir::new("unwritable");
    let file = dir.file("in.txt", b"a\n");
    let under_file = format!("{file}/out");
    let result = run(&["emit", "--out", &under_file, "--stream", "s", &file]);
    assert_eq!(result.code, 3);
    assert!(result.stderr.contains("--out"), "{}", result.stderr);

    let result = run(&["plan", "--batches", &under_file, &file]);
    assert_eq!(result.code, 3);
    assert!(result.stderr.contains("--batches"), "{}", result.stderr);

    // A directory that already holds request files is not overwritten.
    let out = dir.path("out");
    let out = out.to_str().expect("path");
    assert_eq!(run(&["emit", "--out", out, "--stream", "s", &file]).code, 0);
    let again = run(&["emit", "--out", out, "--stream", "s", &file]);
    assert_eq!(again.code, 3);
    assert!(again.stderr.contains("already holds request files"));
}

#[test]
fn demo_is_deterministic_with_known_refusals() {
    let first = run(&["demo"]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let second = run(&["demo"]);
    assert_eq!(
        (&first.stdout, &first.stderr),
        (&second.stdout, &second.stderr)
    );
    assert_eq!(first.number("input"), 1);
    assert!(first.line("input").contains("20000 lines"));
    assert_eq!(first.number("records"), 20_000);
    assert_eq!(
        first.refusals(),
        counts(&[
            ("record_too_large", 12),
            ("key_empty", 8),
            ("key_too_long", 8),
            ("invalid_json", 2),
            ("key_field_missing", 5),
        ])
    );
    assert_eq!(first.accepted_refused(), (20_000 - 35, 35));
    assert!(
        first
            .line("  key_empty")
            .starts_with("8  <demo>:8, <demo>:2508,")
    );
    assert!(first.line("  record_too_large").ends_with("and 2 more"));
    assert!(
        first
            .stderr
            .contains("<demo>:100: key field missing: no field \"device\"")
    );
    assert!(first.stderr.contains(
        "<demo>:1235: partition key too long: field \"device\": 300 code points, max 256"
    ));
    assert!(first.stderr.contains("<demo>:4322: invalid JSON"));

    // Firehose: no keys, so only sizes and JSON can be refused.
    let firehose = run(&["demo", "--quiet", "--profile", "firehose"]);
    assert_eq!(firehose.code, 0);
    assert!(firehose.stderr.is_empty());
    let reasons = firehose.refusals();
    assert_eq!(
        reasons.keys().collect::<Vec<_>>(),
        ["invalid_json", "record_too_large"]
    );
}

#[test]
fn batches_log_agrees_with_the_summary() {
    let dir = TempDir::new("batches");
    let log = dir.path("batches.jsonl");
    let result = run(&["demo", "--quiet", "--batches", log.to_str().expect("path")]);
    assert_eq!(result.code, 0);
    let text = fs::read_to_string(&log).expect("read --batches");
    let lines = batches(&text);
    assert_eq!(lines.len() as u64, result.number("requests"));
    let (accepted, refused) = result.accepted_refused();
    let records: u64 = lines.iter().map(|b| int(b, "records")).sum();
    let bytes: u64 = lines.iter().map(|b| int(b, "bytes")).sum();
    let inside: u64 = lines.iter().map(|b| int(b, "refused_inside")).sum();
    assert_eq!(records, accepted);
    assert_eq!(bytes, bytes_accepted(&result));
    assert!(inside <= refused);
    let mut previous_last = 0;
    for (i, batch) in lines.iter().enumerate() {
        assert_eq!(int(batch, "batch"), i as u64 + 1);
        assert_eq!(batch["file"], "<demo>");
        assert!(!batch.contains_key("last_file"));
        let (first, last) = (int(batch, "first_line"), int(batch, "last_line"));
        assert!(previous_last < first && first <= last);
        // Every line in the span is an accepted record or a refusal inside it.
        assert_eq!(
            last - first + 1,
            int(batch, "records") + int(batch, "refused_inside")
        );
        assert!(int(batch, "records") <= 500 && int(batch, "bytes") <= 10 * MIB as u64);
        previous_last = last;
    }

    // To stdout with '-': the summary moves to stderr.
    let to_stdout = run(&["demo", "--quiet", "--batches", "-"]);
    assert_eq!(to_stdout.stdout, text);
    assert!(to_stdout.stderr.contains("requests"));
}

fn bytes_accepted(result: &Run) -> u64 {
    let line = result.line("accepted");
    first_number(line.split(", ").nth(1).expect("bytes"))
}

/// Lines of mixed sizes and a few bad ones, for the emit tests.
fn mixed_input() -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut state: u64 = 0x1234_5678_9abc_def1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut lines = Vec::new();
    for i in 0..1500u64 {
        let size = match next() % 100 {
            0..=3 => 100_000 + next() % 400_000,
            _ => 20 + next() % 300,
        } as usize;
        let size = if i == 700 { 1_100_000 } else { size };
        let line: Vec<u8> = (0..size)
            .map(|j| b'a' + ((i as usize + j) % 26) as u8)
            .collect();
        lines.push(line);
    }
    lines.push("ünïcödé ✓".as_bytes().to_vec());
    let mut input = Vec::new();
    for line in &lines {
        input.extend_from_slice(line);
        input.push(b'\n');
    }
    (input, lines)
}

#[test]
fn emit_kds_requests_hold_every_accepted_line_in_order() {
    let dir = TempDir::new("emit-kds");
    let (input, lines) = mixed_input();
    let file = dir.file("mixed.log", &input);
    let out = dir.path("out");
    let log = dir.path("batches.jsonl");
    let result = run(&[
        "emit",
        "--out",
        out.to_str().expect("path"),
        "--stream",
        "my-stream",
        "--profile",
        "kds-5mib",
        "--quiet",
        "--batches",
        log.to_str().expect("path"),
        &file,
    ]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    let (accepted, refused) = result.accepted_refused();
    assert_eq!(accepted + refused, lines.len() as u64);
    assert_eq!(refused, 1); // line 701, over 1 MiB
    let requests = read_requests(&out, "StreamName", "my-stream");
    assert_eq!(requests.len() as u64, result.number("requests"));
    assert!(requests.len() > 3, "byte-bound requests expected");
    check_limits(&requests, 5 * MIB, MIB);
    let sent: Vec<&Vec<u8>> = requests
        .iter()
        .flat_map(|r| r.records.iter().map(|(d, _)| d))
        .collect();
    let expected: Vec<&Vec<u8>> = lines.iter().filter(|line| line.len() < MIB).collect();
    assert_eq!(
        sent, expected,
        "records decoded from the requests are the accepted lines"
    );
    // Default keys: the FNV-1a hash of the line, 16 hex digits.
    for request in &requests {
        for (_, key) in &request.records {
            let key = key.as_deref().expect("a partition key");
            assert!(key.len() == 16 && key.bytes().all(|b| b.is_ascii_hexdigit()));
        }
    }
    // The --batches log describes the same requests.
    let logged = batches(&fs::read_to_string(&log).expect("read log"));
    assert_eq!(logged.len(), requests.len());
    for (batch, request) in logged.iter().zip(&requests) {
        assert_eq!(int(batch, "records"), request.records.len() as u64);
        let size: usize = request
            .records
            .iter()
            .map(|(data, key)| data.len() + key.as_ref().map_or(0, String::len))
            .sum();
        assert_eq!(int(batch, "bytes"), size as u64);
    }
    assert!(
        result
            .line("wrote")
            .starts_with(&format!("{} request files", requests.len()))
    );
}

#[test]
fn emit_firehose_requests_have_no_keys() {
    let dir = TempDir::new("emit-firehose");
    let (input, lines) = mixed_input();
    let file = dir.file("mixed.log", &input);
    let out = dir.path("out");
    let result = run(&[
        "emit",
        "--out",
        out.to_str().expect("path"),
        "--stream",
        "delivery",
        "--profile",
        "firehose",
        &file,
    ]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    let requests = read_requests(&out, "DeliveryStreamName", "delivery");
    check_limits(&requests, 4 * MIB, 1_024_000);
    let sent: Vec<&Vec<u8>> = requests
        .iter()
        .flat_map(|r| r.records.iter().map(|(d, _)| d))
        .collect();
    let expected: Vec<&Vec<u8>> = lines
        .iter()
        .filter(|line| line.len() <= 1_024_000)
        .collect();
    assert_eq!(sent, expected);
    assert!(
        requests
            .iter()
            .flat_map(|r| &r.records)
            .all(|(_, key)| key.is_none())
    );
    assert!(
        result
            .stderr
            .contains(":701: record too large: line of at least ")
    );
}

#[test]
fn pack_joins_lines_up_to_the_record_cap() {
    let dir = TempDir::new("pack");
    let lines: Vec<String> = (0..3000).map(|i| format!("line number {i:05}")).collect();
    let mut input = lines.join("\n");
    input.push('\n');
    let file = dir.file("lines.txt", input.as_bytes());
    let out = dir.path("out");
    let result = run(&[
        "emit",
        "--out",
        out.to_str().expect("path"),
        "--stream",
        "s",
        "--pack",
        "--key",
        "packed",
        "--max-record-size",
        "1000",
        &file,
    ]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    let requests = read_requests(&out, "StreamName", "s");
    check_limits(&requests, 10 * MIB, 1000);
    let records: Vec<&(Vec<u8>, Option<String>)> =
        requests.iter().flat_map(|r| &r.records).collect();
    assert_eq!(records.len() as u64, result.number("records"));
    assert!(records.len() < 3000 / 40, "{} records", records.len());
    // Each record is whole lines joined by their newlines, and they are all there.
    let joined: Vec<String> = records
        .iter()
        .map(|(data, key)| {
            assert_eq!(key.as_deref(), Some("packed"));
            String::from_utf8(data.clone()).expect("UTF-8")
        })
        .collect();
    assert_eq!(joined.join("\n"), lines.join("\n"));
    // Greedy: no record could have taken the next line too.
    for pair in joined.windows(2) {
        let next_line = pair[1].split('\n').next().expect("a line");
        assert!(pair[0].len() + 1 + next_line.len() + "packed".len() > 1000);
    }

    // Firehose packs without a key.
    let firehose = run(&["plan", "--pack", "--profile", "firehose", &file]);
    assert_eq!(firehose.code, 0);
    assert_eq!(firehose.accepted_refused(), (1, 0));
}

#[test]
fn key_field_refuses_invalid_json_and_missing_fields() {
    let dir = TempDir::new("key-field");
    let input = [
        r#"{"device":"sensor-1","t":1}"#,  // 1 accepted
        r#"{"device":"sensor-1","t":1"#,   // 2 invalid_json
        r#"{"t":3}"#,                      // 3 key_field_missing
        r#"{"device":null}"#,              // 4 key_field_missing
        r#"{"device":42,"t":5}"#,          // 5 accepted, key "42"
        r#"{"device":""}"#,                // 6 key_empty (the core)
        r#"[1,2,3]"#,                      // 7 key_field_missing
        "plain text",                      // 8 invalid_json
        r#"{"device":"caf\u00e9","t":9}"#, // 9 accepted, key "café"
        r#"{"device":{"id":1}}"#,          // 10 key_field_missing
    ]
    .join("\n");
    let file = dir.file("events.ndjson", input.as_bytes());
    let out = dir.path("out");
    let result = run(&[
        "emit",
        "--out",
        out.to_str().expect("path"),
        "--stream",
        "s",
        "--key-field",
        "device",
        &file,
    ]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert_eq!(
        result.refusals(),
        counts(&[
            ("key_empty", 1),
            ("invalid_json", 2),
            ("key_field_missing", 4)
        ])
    );
    assert_eq!(result.accepted_refused(), (3, 7));
    assert!(
        result
            .line("  invalid_json")
            .ends_with(&format!("{file}:2, {file}:8"))
    );
    assert!(
        result
            .stderr
            .contains(&format!("{file}:3: key field missing: no field \"device\""))
    );
    assert!(result.stderr.contains(&format!(
        "{file}:4: key field missing: field \"device\" is null"
    )));
    assert!(
        result
            .stderr
            .contains(&format!("{file}:6: partition key empty"))
    );
    let requests = read_requests(&out, "StreamName", "s");
    let keys: Vec<&str> = requests[0]
        .records
        .iter()
        .filter_map(|(_, k)| k.as_deref())
        .collect();
    assert_eq!(keys, ["sensor-1", "42", "café"]);

    // One batch spans lines 1..9, with the 6 refused lines between its records.
    let log = run(&[
        "plan",
        "--quiet",
        "--key-field",
        "device",
        "--batches",
        "-",
        &file,
    ]);
    let logged = batches(&log.stdout);
    assert_eq!(logged.len(), 1);
    assert_eq!(
        (int(&logged[0], "first_line"), int(&logged[0], "last_line")),
        (1, 9)
    );
    assert_eq!(int(&logged[0], "refused_inside"), 6);

    // --format ndjson alone checks JSON but keys by hash.
    let ndjson = run(&["plan", "--quiet", "--format", "ndjson", &file]);
    assert_eq!(ndjson.refusals(), counts(&[("invalid_json", 2)]));
}

#[test]
fn stdin_and_crlf_input() {
    let input = b"first\r\nsecond\r\n\r\nfourth\r\n";
    let dir = TempDir::new("stdin");
    let out = dir.path("out");
    let result = run_with_stdin(
        &[
            "emit",
            "--out",
            out.to_str().expect("path"),
            "--stream",
            "s",
            "--key",
            "k",
        ],
        Some(input),
    );
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert!(result.line("input").contains("4 lines"));
    let requests = read_requests(&out, "StreamName", "s");
    let data: Vec<&[u8]> = requests[0].records.iter().map(|r| r.0.as_slice()).collect();
    assert_eq!(data, [b"first".as_slice(), b"second", b"fourth"]);

    // '-' is stdin too, among files; a batch spanning inputs names its last file.
    let file = dir.file("after.txt", b"after\n");
    let mixed = run_with_stdin(&["plan", "--batches", "-", "-", &file], Some(input));
    assert_eq!(mixed.code, 0);
    let logged = batches(&mixed.stdout);
    assert_eq!(logged.len(), 1);
    assert_eq!(logged[0]["file"], "<stdin>");
    assert_eq!(logged[0]["last_file"], file.as_str());
    assert_eq!(
        (int(&logged[0], "first_line"), int(&logged[0], "last_line")),
        (1, 1)
    );
    assert_eq!(int(&logged[0], "records"), 4);

    // A refusal on stdin is named <stdin>:LINE.
    let refused = run_with_stdin(&["plan", "--max-record-size", "20"], Some(input));
    assert_eq!(refused.code, 0);
    assert!(
        refused
            .stderr
            .contains("<stdin>:1: record too large: 21 bytes with its key, cap 20")
    );
}

#[test]
fn quiet_and_message_cap() {
    let input = "x\n".repeat(120);
    let dir = TempDir::new("quiet");
    let file = dir.file("in.txt", input.as_bytes());
    let loud = run(&["plan", "--max-record-size", "10", &file]);
    assert_eq!(loud.accepted_refused(), (0, 120));
    assert_eq!(loud.stderr.lines().count(), 51);
    assert!(loud.stderr.contains("70 more refusals not shown"));
    assert!(loud.line("  record_too_large").ends_with("and 110 more"));
    assert_eq!(loud.number("requests"), 0);

    let quiet = run(&["plan", "--quiet", "--max-record-size", "10", &file]);
    assert!(quiet.stderr.is_empty());
    assert_eq!(quiet.stdout, loud.stdout);
}

/// The `--refusals` lines, parsed.
fn refusal_lines(text: &str) -> Vec<serde_json::Map<String, Value>> {
    batches(text)
}

/// (line, reason) of each refusal line.
fn lines_and_reasons(refusals: &[serde_json::Map<String, Value>]) -> Vec<(u64, String)> {
    refusals
        .iter()
        .map(|r| {
            (
                int(r, "line"),
                r["reason"].as_str().expect("reason").to_owned(),
            )
        })
        .collect()
}

/// Refusals by reason, counted from the `--refusals` lines.
fn reason_counts(refusals: &[serde_json::Map<String, Value>]) -> BTreeMap<String, u64> {
    let mut counts = BTreeMap::new();
    for refusal in refusals {
        *counts
            .entry(refusal["reason"].as_str().expect("reason").to_owned())
            .or_insert(0) += 1;
    }
    counts
}

#[test]
fn refusals_file_holds_every_refused_line() {
    let dir = TempDir::new("refusals");
    let lines = [
        r#"{"k":"a"}"#.to_owned(),                   // 1 accepted
        r#"{"k":""}"#.to_owned(),                    // 2 key_empty
        "x".repeat(2000),                            // 3 record_too_large, not parsed
        "not json".to_owned(),                       // 4 invalid_json
        r#"{"x":1}"#.to_owned(),                     // 5 key_field_missing
        r#"{"k":"b"}"#.to_owned(),                   // 6 accepted
        String::new(),                               // 7 empty: skipped
        format!(r#"{{"k":"{}"}}"#, "é".repeat(300)), // 8 key_too_long
    ];
    let input = lines.join("\n") + "\n";
    // Where each line starts in the file.
    let offsets: Vec<u64> = lines
        .iter()
        .scan(0, |at, line| {
            let start = *at;
            *at += line.len() as u64 + 1;
            Some(start)
        })
        .collect();
    let file = dir.file("crafted.ndjson", input.as_bytes());
    let log = dir.path("refusals.jsonl");
    let log_arg = log.to_str().expect("path");
    let result = run(&[
        "plan",
        "--key-field",
        "k",
        "--max-record-size",
        "1KiB",
        "--refusals",
        log_arg,
        &file,
    ]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    let refusals = refusal_lines(&fs::read_to_string(&log).expect("read --refusals"));
    assert_eq!(
        lines_and_reasons(&refusals),
        [
            (2, "key_empty".to_owned()),
            (3, "record_too_large".to_owned()),
            (4, "invalid_json".to_owned()),
            (5, "key_field_missing".to_owned()),
            (8, "key_too_long".to_owned()),
        ]
    );
    assert_eq!(refusals.len() as u64, result.accepted_refused().1);
    assert_eq!(reason_counts(&refusals), result.refusals());
    for refusal in &refusals {
        assert_eq!(refusal["file"], file.as_str());
        let line = int(refusal, "line") as usize;
        assert_eq!(int(refusal, "offset"), offsets[line - 1], "{refusal:?}");
        let mut keys: Vec<&String> = refusal.keys().collect();
        keys.sort();
        assert_eq!(keys, ["detail", "file", "line", "offset", "reason"]);
    }
    // The details are the stderr messages' own.
    let detail = |i: usize| refusals[i]["detail"].as_str().expect("detail");
    assert_eq!(detail(0), "field \"k\" is an empty string");
    assert_eq!(detail(1), "2000 bytes of data alone, cap 1024");
    assert_eq!(detail(3), "no field \"k\"");
    assert_eq!(detail(4), "field \"k\": 300 code points, max 256");
    assert!(detail(2).starts_with("expected"), "{}", detail(2));
    assert!(
        result
            .stderr
            .contains(&format!("{file}:4: invalid JSON: {}\n", detail(2)))
    );

    // --format ndjson alone: only lines that are not JSON, keyed by hash.
    let ndjson = run(&[
        "plan",
        "--quiet",
        "--format",
        "ndjson",
        "--refusals",
        "-",
        &file,
    ]);
    assert_eq!(ndjson.code, 0, "{}", ndjson.stderr);
    let refusals = refusal_lines(&ndjson.stdout);
    assert_eq!(
        lines_and_reasons(&refusals),
        [
            (3, "invalid_json".to_owned()),
            (4, "invalid_json".to_owned())
        ]
    );
    // With the refusals on stdout, the summary moves to stderr.
    assert!(
        ndjson.stderr.contains("refused      2\n"),
        "{}",
        ndjson.stderr
    );

    // Every refusal, not only the 50 shown on stderr, with or without --quiet.
    let many = dir.file("many.txt", "x\n".repeat(120).as_bytes());
    for quiet in [false, true] {
        let mut args = vec!["plan", "--max-record-size", "10", "--refusals", log_arg];
        if quiet {
            args.push("--quiet");
        }
        args.push(&many);
        let result = run(&args);
        let refusals = refusal_lines(&fs::read_to_string(&log).expect("read --refusals"));
        assert_eq!(refusals.len(), 120);
        assert_eq!(refusals.len() as u64, result.accepted_refused().1);
        let numbers: Vec<u64> = refusals.iter().map(|r| int(r, "line")).collect();
        assert_eq!(numbers, (1..=120).collect::<Vec<u64>>());
        assert_eq!(result.stderr.lines().count(), if quiet { 0 } else { 51 });
    }

    // --stop-on-refusal: the refusal that stopped the run is there, and no later one.
    let stop = run(&[
        "plan",
        "--key-field",
        "k",
        "--stop-on-refusal",
        "--refusals",
        "-",
        &file,
    ]);
    assert_eq!(stop.code, 1);
    assert_eq!(
        lines_and_reasons(&refusal_lines(&stop.stdout)),
        [(2, "key_empty".to_owned())]
    );

    // Misuse and unwritable paths.
    let both = run(&["plan", "--batches", "-", "--refusals", "-", &file]);
    assert_eq!(both.code, 2);
    assert!(
        both.stderr
            .starts_with("kinesis-batcher: --batches and --refusals cannot both write to stdout")
    );
    assert_eq!(run(&["plan", "--refusals", "", &file]).code, 2);
    let under_file = format!("{file}/refusals.jsonl");
    let bad = run(&["plan", "--refusals", &under_file, &file]);
    assert_eq!(
        (bad.code, bad.stderr.as_str()),
        (
            3,
            format!("kinesis-batcher: --refusals {under_file}: Not a directory\n").as_str()
        )
    );
    // Nothing read: no file.
    let missing = dir.path("missing.ndjson");
    let fresh = dir.path("fresh.jsonl");
    let result = run(&[
        "plan",
        "--refusals",
        fresh.to_str().expect("path"),
        missing.to_str().expect("path"),
    ]);
    assert_eq!(result.code, 3);
    assert!(!fresh.exists());
}

/// The one JSON object `--summary json` prints, checked to be alone on its one line.
fn summary_json(text: &str) -> Value {
    assert_eq!(text.lines().count(), 1, "one line: {text}");
    assert!(text.ends_with('\n'));
    let summary: Value = serde_json::from_str(text).expect("summary is JSON");
    assert!(summary.is_object());
    summary
}

#[test]
fn summary_json_matches_the_text_summary() {
    let dir = TempDir::new("summary-json");
    let mut input = String::new();
    for i in 1..=250 {
        match i {
            // 60 bytes and the 16-byte hash key: over the 64-byte cap.
            100 | 200 => input.push_str(&format!("{{\"pad\":\"{}\"}}", "p".repeat(50))),
            150 => input.push_str("not json"),
            _ => input.push_str(&format!("{{\"i\":{i}}}")),
        }
        input.push('\n');
    }
    let file = dir.file("events.ndjson", input.as_bytes());
    let missing = dir.path("missing.ndjson");
    let missing = missing.to_str().expect("path");
    let args = [
        "plan",
        "--format",
        "ndjson",
        "--max-records",
        "100",
        "--max-record-size",
        "64",
        &file,
        missing,
    ];
    let text = run(&args);
    let json = run(&[&args[..], &["--summary", "json"]].concat());
    assert_eq!((text.code, json.code), (3, 3), "{}", json.stderr);
    assert_eq!(json.stderr, text.stderr);
    let summary = summary_json(&json.stdout);

    let number = |field: &str| summary[field].as_u64().expect(field);
    // Whether a request may span a refused line is the core's planning mode's business:
    // only the two forms' agreement is checked here.
    assert_eq!(number("requests"), text.number("requests"));
    assert_eq!(number("records"), text.number("records"));
    let accepted = (
        summary["accepted"]["records"].as_u64().expect("accepted"),
        number("refused"),
    );
    assert_eq!(accepted, text.accepted_refused());
    assert_eq!(accepted, (247, 3));
    assert_eq!(
        summary["accepted"]["bytes"].as_u64(),
        Some(bytes_accepted(&text))
    );
    assert_eq!(number("bytes_read"), input.len() as u64);
    assert_eq!(number("lines"), 250);
    assert_eq!(number("unreadable"), 1);
    assert_eq!(number("exit_code"), 3);
    // Every reason, zeros included; the non-zero ones as in the text.
    let refusals = summary["refusals"].as_object().expect("refusals");
    assert_eq!(refusals.len(), 7);
    let nonzero: BTreeMap<String, u64> = refusals
        .iter()
        .map(|(id, n)| (id.clone(), n.as_u64().expect("count")))
        .filter(|&(_, n)| n > 0)
        .collect();
    assert_eq!(nonzero, text.refusals());
    assert_eq!(
        nonzero,
        counts(&[("invalid_json", 1), ("record_too_large", 2)])
    );
    // Fill as fractions; the text shows them as percentages.
    let fill = |what: &str| summary["fill"][what].as_f64().expect("fill");
    let fill_line = text.line("fill");
    assert!(
        fill_line.contains(&format!("bytes {:.2}%", 100.0 * fill("bytes"))),
        "{fill_line}"
    );
    assert!(
        fill_line.contains(&format!("records {:.2}%", 100.0 * fill("records"))),
        "{fill_line}"
    );
    let slots = (number("requests") * 100) as f64;
    assert!((fill("records") - 247.0 / slots).abs() < 1e-12);
    assert_eq!(
        summary["limits"],
        serde_json::json!({
            "max_records": 100,
            "max_request_bytes": 10 * MIB,
            "max_record_bytes": 64,
            "partition_keys": true,
            "key_unit": "code-points",
        })
    );
    assert_eq!(summary["keys"], serde_json::json!({"source": "hash"}));
    assert_eq!(
        summary["files"],
        serde_json::json!([
            {"name": file, "status": "read", "bytes": input.len(), "lines": 250, "error": null},
            {"name": missing, "status": "unreadable", "bytes": 0, "lines": 0,
             "error": "No such file or directory"},
        ])
    );
    assert_eq!(
        (&summary["command"], &summary["profile"], &summary["packed"]),
        (
            &Value::from("plan"),
            &Value::from("kds"),
            &Value::from(false)
        )
    );
    assert!(summary["stopped_at"].is_null() && summary["written"].is_null());

    // emit: what was written where.
    let out = dir.path("out");
    let out_arg = out.to_str().expect("path");
    let emit = run(&[
        "emit",
        "--out",
        out_arg,
        "--stream",
        "s",
        "--quiet",
        "--max-records",
        "100",
        "--summary",
        "json",
        &file,
    ]);
    assert_eq!(emit.code, 0, "{}", emit.stderr);
    let summary = summary_json(&emit.stdout);
    let requests = read_requests(&out, "StreamName", "s");
    let bytes: u64 = requests
        .iter()
        .map(|r| fs::metadata(out.join(&r.name)).expect("stat").len())
        .sum();
    assert_eq!(
        summary["written"],
        serde_json::json!({"dir": out_arg, "dir_exists": true, "files": requests.len(), "bytes": bytes})
    );
    assert_eq!(summary["requests"].as_u64(), Some(requests.len() as u64));
    assert_eq!(summary["keys"], serde_json::json!({"source": "hash"}));

    // Stopped: where, the exit code, and the input never reached.
    let stop = run(&[
        "plan",
        "--quiet",
        "--format",
        "ndjson",
        "--key",
        "k",
        "--stop-on-refusal",
        "--summary",
        "json",
        &file,
        missing,
    ]);
    assert_eq!(stop.code, 1);
    let summary = summary_json(&stop.stdout);
    assert_eq!(
        summary["stopped_at"],
        serde_json::json!({"file": file, "line": 150})
    );
    assert_eq!(summary["exit_code"], 1);
    assert_eq!(summary["files"][1]["status"], "not_reached");
    assert_eq!(
        summary["keys"],
        serde_json::json!({"source": "constant", "key": "k"})
    );

    // With --refusals -, the JSON summary is stderr's last line.
    let piped = run(&[
        "plan",
        "--quiet",
        "--format",
        "ndjson",
        "--refusals",
        "-",
        "--summary",
        "json",
        &file,
    ]);
    assert_eq!(piped.code, 0, "{}", piped.stderr);
    assert_eq!(refusal_lines(&piped.stdout).len(), 1);
    assert_eq!(summary_json(&piped.stderr)["refused"], 1);

    // Nothing read: no summary in either form. A form that does not exist: exit 2.
    let nothing = run(&["plan", "--summary", "json", missing]);
    assert_eq!((nothing.code, nothing.stdout.as_str()), (3, ""));
    let bad = run(&["plan", "--summary", "yaml", &file]);
    assert_eq!(bad.code, 2);
    assert!(
        bad.stderr
            .starts_with("kinesis-batcher: --summary yaml: use text or json")
    );
}

#[test]
fn key_units_follow_the_option() {
    let dir = TempDir::new("key-unit");
    // 200 code points, 400 UTF-8 bytes.
    let line = format!("{{\"device\":\"{}\"}}\n", "é".repeat(200));
    let file = dir.file("keys.ndjson", line.as_bytes());
    let points = run(&["plan", "--key-field", "device", &file]);
    assert_eq!(points.accepted_refused(), (1, 0));
    let bytes = run(&[
        "plan",
        "--key-field",
        "device",
        "--key-unit",
        "utf8-bytes",
        &file,
    ]);
    assert_eq!(bytes.accepted_refused(), (0, 1));
    assert!(bytes.stderr.contains("400 UTF-8 bytes, max 256"));
    let utf16 = run(&[
        "plan",
        "--key-field",
        "device",
        "--key-unit",
        "utf16",
        &file,
    ]);
    assert_eq!(utf16.accepted_refused(), (1, 0));
}

#[test]
fn pack_streams_across_chunks_and_refuses_long_lines() {
    let dir = TempDir::new("pack-stream");
    let mut state: u64 = 0x0dd_ba11_cafe_f00d;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for i in 0..400usize {
        let size = match next() % 10 {
            0 => 100_000 + next() % 300_000,
            _ => 1 + next() % 2_000,
        } as usize;
        let size = if i % 97 == 50 { 1_024_001 + i } else { size };
        lines.push((0..size).map(|j| b'A' + ((i + j) % 26) as u8).collect());
    }
    let mut input = Vec::new();
    for line in &lines {
        input.extend_from_slice(line);
        input.extend_from_slice(b"\r\n");
    }
    let file = dir.file("stream.txt", &input);
    let out = dir.path("out");
    let result = run(&[
        "emit",
        "--out",
        out.to_str().expect("path"),
        "--stream",
        "d",
        "--profile",
        "firehose",
        "--pack",
        "--quiet",
        &file,
    ]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    let long = lines.iter().filter(|line| line.len() > 1_024_000).count() as u64;
    assert_eq!(result.refusals(), counts(&[("record_too_large", long)]));
    let requests = read_requests(&out, "DeliveryStreamName", "d");
    check_limits(&requests, 4 * MIB, 1_024_000);
    // Packed records keep the input's own "\r\n" between lines; the last '\r' is dropped.
    let unpacked: Vec<Vec<u8>> = requests
        .iter()
        .flat_map(|request| &request.records)
        .flat_map(|(data, _)| {
            data.split(|&b| b == b'\n')
                .map(|line| line.strip_suffix(b"\r").unwrap_or(line).to_vec())
                .collect::<Vec<_>>()
        })
        .collect();
    let expected: Vec<Vec<u8>> = lines
        .into_iter()
        .filter(|line| line.len() <= 1_024_000)
        .collect();
    assert_eq!(unpacked.len(), expected.len());
    assert!(
        unpacked == expected,
        "packed records do not hold the accepted lines in order"
    );
}

#[test]
fn key_field_with_a_lone_surrogate_is_refused_as_key_not_utf8() {
    let dir = TempDir::new("surrogate");
    let input = [
        r#"{"d":"\ud800","p":""}"#, // 1 key_not_utf8: a lone leading surrogate
        r#"{"d":"x\udc00y"}"#,      // 2 key_not_utf8: a lone trailing surrogate
        r#"{"d":"\ud83d\ude00","p":1}"#, // 3 accepted: a pair, the key "😀"
        r#"{"\ud800":1,"d":"named"}"#, // 4 accepted: a lone surrogate in another name
        r#"{"d":"ok","other":"\udfff"}"#, // 5 accepted: a lone surrogate elsewhere
        r#"{"d":"\ud800"#,          // 6 invalid_json: unterminated
    ]
    .join("\n");
    let file = dir.file("surrogates.ndjson", input.as_bytes());
    let out = dir.path("out");
    let result = run(&[
        "emit",
        "--out",
        out.to_str().expect("path"),
        "--stream",
        "s",
        "--key-field",
        "d",
        &file,
    ]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert_eq!(
        result.refusals(),
        counts(&[("key_not_utf8", 2), ("invalid_json", 1)]),
        "{}",
        result.stderr
    );
    assert_eq!(
        result.line("  key_not_utf8"),
        format!("2  {file}:1, {file}:2")
    );
    for line in [1, 2] {
        assert!(
            result.stderr.contains(&format!(
                "{file}:{line}: partition key not UTF-8: field \"d\" holds an unpaired UTF-16 surrogate\n"
            )),
            "{}",
            result.stderr
        );
    }
    let requests = read_requests(&out, "StreamName", "s");
    let keys: Vec<&str> = requests
        .iter()
        .flat_map(|r| &r.records)
        .filter_map(|(_, k)| k.as_deref())
        .collect();
    assert_eq!(keys, ["😀", "named", "ok"]);
}

#[test]
fn long_lines_are_refused_with_a_lower_bound_of_their_size() {
    let dir = TempDir::new("long-lines");
    // Each is longer than the first read (1 MiB), so it is refused before its end is seen.
    // Exactly 1 MiB, then its newline: at least 1 MiB, not "more than" that.
    let mut exact = vec![b'x'; MIB];
    exact.push(b'\n');
    let exact = dir.file("exact.txt", &exact);
    // 1 MiB - 1 bytes, then "\r\n": the '\r' at the end of the first read is not counted.
    let mut crlf = vec![b'y'; MIB - 1];
    crlf.extend_from_slice(b"\r\n");
    let crlf = dir.file("crlf.txt", &crlf);
    // Longer than a read: at least what was seen.
    let longer = dir.file("longer.txt", &vec![b'z'; 3 * MIB]);
    let result = run(&["plan", "--max-record-size", "10", &exact, &crlf, &longer]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert_eq!(result.refusals(), counts(&[("record_too_large", 3)]));
    let messages: Vec<&str> = result.stderr.lines().collect();
    assert_eq!(
        messages,
        [
            format!("{exact}:1: record too large: line of at least 1048576 bytes, cap 10"),
            format!("{crlf}:1: record too large: line of at least 1048575 bytes, cap 10"),
            format!("{longer}:1: record too large: line of at least 1048576 bytes, cap 10"),
        ]
    );
}

#[test]
fn summary_counts_every_line_read_empty_ones_included() {
    let dir = TempDir::new("line-count");
    let file = dir.file("empties.txt", b"a\n\n\n");
    let result = run(&["plan", &file]);
    assert_eq!(result.code, 0, "{}", result.stderr);
    assert!(
        result.line("input").ends_with(", 3 lines"),
        "{}",
        result.stdout
    );
    assert_eq!(result.accepted_refused(), (1, 0));

    // Packed: the same count, and the empty lines between records are counted too.
    let file = dir.file("packed.txt", b"\na\n\nb\n\n");
    let packed = run(&["plan", "--pack", "--key", "k", &file]);
    assert_eq!(packed.code, 0, "{}", packed.stderr);
    assert!(
        packed.line("input").ends_with(", 5 lines"),
        "{}",
        packed.stdout
    );
    assert_eq!(packed.accepted_refused(), (1, 0));
}

/// Runs `send` with no AWS configuration at all but `env` (no files, no instance
/// metadata), so that the chains find only what the test gives.
fn run_send_with_env(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_kinesis-batcher"));
    command.arg("send").args(args);
    for (name, _) in std::env::vars() {
        if name.starts_with("AWS_") {
            command.env_remove(name);
        }
    }
    command
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().copied())
        .stdin(Stdio::null());
    let Output {
        status,
        stdout,
        stderr,
    } = command.output().expect("run kinesis-batcher");
    Run {
        code: status.code().expect("exit code"),
        stdout: String::from_utf8(stdout).expect("UTF-8 stdout"),
        stderr: String::from_utf8(stderr).expect("UTF-8 stderr"),
    }
}

#[test]
fn send_needs_a_region_and_credentials_before_reading() {
    let dir = TempDir::new("send-config");
    let file = dir.file("in.txt", b"a\n");
    let no_region = run_send_with_env(&["--stream", "s", &file], &[]);
    assert_eq!(no_region.code, 2, "{}", no_region.stderr);
    assert!(
        no_region
            .stderr
            .starts_with("kinesis-batcher: send: no region: give --region R"),
        "{}",
        no_region.stderr
    );
    assert!(no_region.stdout.is_empty());
    let no_credentials = run_send_with_env(&["--stream", "s", "--region", "eu-west-1", &file], &[]);
    assert_eq!(no_credentials.code, 2, "{}", no_credentials.stderr);
    assert!(
        no_credentials
            .stderr
            .starts_with("kinesis-batcher: send: no credentials: "),
        "{}",
        no_credentials.stderr
    );
    // The region from the environment, and credentials: the configuration is complete,
    // and nothing listens on port 9 of this machine's loopback... which is not reached:
    // an unreadable input with nothing else to read ends the run first, with exit 3.
    let missing = dir.path("missing.txt");
    let unreadable = run_send_with_env(
        &[
            "--stream",
            "s",
            "--endpoint-url",
            "http://127.0.0.1:9",
            missing.to_str().expect("UTF-8 temp path"),
        ],
        &[
            ("AWS_REGION", "eu-west-1"),
            ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
            ("AWS_SECRET_ACCESS_KEY", "secret"),
        ],
    );
    assert_eq!(unreadable.code, 3, "{}", unreadable.stderr);
    assert!(
        unreadable
            .stderr
            .contains("missing.txt: No such file or directory"),
        "{}",
        unreadable.stderr
    );
    assert!(unreadable.stdout.is_empty(), "no summary: nothing was read");
}
