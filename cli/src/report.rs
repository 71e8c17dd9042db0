//! What the tool tells people: refusal reasons and where they were seen, the per-refusal
//! messages on stderr, and the summary printed at the end.

use std::io::{self, Write};
use std::path::Path;
use std::time::Duration;

use kinesis_batcher::engine::EngineStats;
use kinesis_batcher::retry::ErrorKind;
use kinesis_batcher::{KeyUnit, Limits, Reason, Stats};
use serde_json::{Map, Value, json};

use crate::aggregate::Counts;
use crate::args::{KeySpec, Profile, SendOptions};

/// How many refusals are described on stderr, one line each, before a count of the rest.
pub const MESSAGES_SHOWN: u64 = 50;

/// How many `FILE:LINE` locations the summary lists per reason.
pub const EXAMPLES_PER_REASON: usize = 10;

/// Why a line was refused: by the core, or by the tool's JSON options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// The core refused the record.
    Core(Reason),
    /// `--format ndjson` (or `--key-field`): the line is not valid JSON.
    InvalidJson,
    /// `--key-field`: the field is missing, or neither a string nor a number.
    KeyFieldMissing,
}

impl Why {
    /// How many reasons there are.
    pub const COUNT: usize = Reason::COUNT + 2;

    /// Every reason, in summary order.
    pub fn all() -> impl Iterator<Item = Why> {
        Reason::ALL
            .into_iter()
            .map(Why::Core)
            .chain([Why::InvalidJson, Why::KeyFieldMissing])
    }

    fn index(self) -> usize {
        match self {
            Why::Core(reason) => reason as usize,
            Why::InvalidJson => Reason::COUNT,
            Why::KeyFieldMissing => Reason::COUNT + 1,
        }
    }

    /// The stable identifier, as in the summary (the core's `Reason::as_str`).
    pub fn id(self) -> &'static str {
        match self {
            Why::Core(reason) => reason.as_str(),
            Why::InvalidJson => "invalid_json",
            Why::KeyFieldMissing => "key_field_missing",
        }
    }

    /// Words for the per-refusal message.
    pub fn label(self) -> &'static str {
        match self {
            Why::Core(Reason::RecordTooLarge) => "record too large",
            Why::Core(Reason::KeyEmpty) => "partition key empty",
            Why::Core(Reason::KeyTooLong) => "partition key too long",
            Why::Core(Reason::KeyNotUtf8) => "partition key not UTF-8",
            Why::Core(Reason::HashKeyInvalid) => "explicit hash key invalid",
            Why::InvalidJson => "invalid JSON",
            Why::KeyFieldMissing => "key field missing",
        }
    }
}

/// A place in the input: (input index, 1-based line number).
pub type Location = (usize, u64);

/// Refusals counted by reason, with the first few locations of each.
pub struct Refusals {
    counts: [u64; Why::COUNT],
    examples: [Vec<Location>; Why::COUNT],
    messages: u64,
    quiet: bool,
}

impl Refusals {
    /// No refusal yet; `quiet` turns the per-refusal messages off.
    pub fn new(quiet: bool) -> Refusals {
        Refusals {
            counts: [0; Why::COUNT],
            examples: Default::default(),
            messages: 0,
            quiet,
        }
    }

    /// Counts a refusal at `at`; true when its message should be printed.
    pub fn add(&mut self, why: Why, at: Location) -> bool {
        let i = why.index();
        self.counts[i] += 1;
        if self.examples[i].len() < EXAMPLES_PER_REASON {
            self.examples[i].push(at);
        }
        if self.quiet || self.messages >= MESSAGES_SHOWN {
            return false;
        }
        self.messages += 1;
        true
    }

    /// Refusals counted for `why`.
    pub fn count(&self, why: Why) -> u64 {
        self.counts[why.index()]
    }

    /// All refusals counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Refusals that were counted but got no message (0 with `--quiet`: none are due).
    pub fn not_shown(&self) -> u64 {
        if self.quiet {
            0
        } else {
            self.total() - self.messages
        }
    }
}

/// What became of one input.
#[derive(Clone, Debug, Default)]
pub struct FileStats {
    /// Whether the run got to it (it was not stopped before).
    pub reached: bool,
    /// Bytes read from it.
    pub bytes: u64,
    /// Lines read from it, as [`Summary::lines`] counts them.
    pub lines: u64,
    /// Why it could not be read, whole or in part: the error message without the name.
    pub error: Option<String>,
}

/// Everything the summary reports.
pub struct Summary<'a> {
    /// `plan`, `emit` or `demo`.
    pub command: &'static str,
    /// The profile named.
    pub profile: Profile,
    /// The limits in force.
    pub limits: Limits,
    /// How keys were made, in words.
    pub keys: String,
    /// Where keys came from.
    pub key: &'a KeySpec,
    /// Display names of the inputs.
    pub names: &'a [String],
    /// What became of each input, in the same order.
    pub files: &'a [FileStats],
    /// Inputs that could not be read (whole or in part).
    pub input_errors: u64,
    /// Bytes read from all inputs.
    pub bytes_read: u64,
    /// Lines read, empty ones included (from the line sources' own counts); not a last
    /// line cut short by a read error, nor lines after a `--stop-on-refusal` stop.
    pub lines: u64,
    /// Records formed: one per non-empty line, or one per packed run.
    pub records: u64,
    /// Whether lines were packed.
    pub packed: bool,
    /// The core's counters, after the last batch was flushed (with `--aggregate`, of
    /// Kinesis records: aggregates and plain records).
    pub stats: Stats,
    /// With `--aggregate`: how, and what it made.
    pub aggregation: Option<AggregationSummary>,
    /// Refusals by reason.
    pub refusals: &'a Refusals,
    /// Where `--stop-on-refusal` stopped.
    pub stopped_at: Option<Location>,
    /// With emit: what was written where.
    pub written: Option<Written<'a>>,
    /// With send: what was sent, stored, not stored.
    pub send: Option<&'a SendSummary>,
    /// The exit code the run ends with.
    pub exit_code: u8,
}

/// What `send` did.
#[derive(Clone, Debug)]
pub struct SendSummary {
    /// `--stream`.
    pub stream: String,
    /// The region in force.
    pub region: String,
    /// `--endpoint-url`, if given.
    pub endpoint: Option<String>,
    /// `--in-flight`.
    pub in_flight: u32,
    /// `--linger-ms`.
    pub linger_ms: u64,
    /// `--buffer`.
    pub buffer_bytes: u64,
    /// `--allow-reordering`.
    pub allow_reordering: bool,
    /// The engine's counters at the end.
    pub engine: EngineStats,
    /// User records stored (with `--aggregate`, those inside the aggregates stored).
    pub stored_users: u64,
    /// Kinesis records not stored, by error kind (`kind as usize`).
    pub not_stored: [u64; ErrorKind::ALL.len()],
    /// User records in them.
    pub not_stored_users: u64,
    /// The first few of each kind.
    pub not_stored_examples: [Vec<Location>; ErrorKind::ALL.len()],
    /// Times the engine paused on credentials and they were loaded again.
    pub credential_pauses: u64,
    /// The most requests that were in flight at once.
    pub peak_in_flight: u64,
    /// From the start of sending to the last answer.
    pub seconds: f64,
    /// Records the engine refused after the reader's measure accepted them (a bug if
    /// ever non-empty): counted with the refusals.
    pub late_refusals: Vec<(Reason, Location)>,
    /// The signal that stopped the reading, and the exit code it calls for.
    pub stopped_by: Option<(&'static str, u8)>,
}

impl SendSummary {
    /// Nothing sent yet, to `send`'s stream in `region`.
    pub fn new(send: &SendOptions, region: &str) -> SendSummary {
        SendSummary {
            stream: send.stream.clone(),
            region: region.to_owned(),
            endpoint: send.endpoint_url.clone(),
            in_flight: send.in_flight,
            linger_ms: send.linger_ms,
            buffer_bytes: send.buffer_bytes,
            allow_reordering: send.allow_reordering,
            engine: EngineStats::default(),
            stored_users: 0,
            not_stored: [0; ErrorKind::ALL.len()],
            not_stored_users: 0,
            not_stored_examples: Default::default(),
            credential_pauses: 0,
            peak_in_flight: 0,
            seconds: 0.0,
            late_refusals: Vec::new(),
            stopped_by: None,
        }
    }

    /// Counts a Kinesis record of `users` user records, read at `at`, not stored.
    pub fn add_not_stored(&mut self, kind: ErrorKind, at: Location, users: u64) {
        let i = kind as usize;
        self.not_stored[i] += 1;
        self.not_stored_users += users;
        if self.not_stored_examples[i].len() < EXAMPLES_PER_REASON {
            self.not_stored_examples[i].push(at);
        }
    }

    /// The end: the engine's last counters and the time taken.
    pub fn finish(&mut self, engine: &EngineStats, elapsed: Duration) {
        self.engine = *engine;
        self.seconds = elapsed.as_secs_f64();
    }

    /// Kinesis records not stored.
    pub fn not_stored(&self) -> u64 {
        self.not_stored.iter().sum()
    }

    /// The lowest exit code the sending alone calls for.
    pub fn exit_floor(&self) -> u8 {
        let stored = if self.not_stored() > 0 { 4 } else { 0 };
        self.stopped_by.map_or(stored, |(_, code)| code.max(stored))
    }

    /// The engine's counters as the planner's, for the lines both commands share:
    /// requests (retries included) and records and bytes stored.
    pub fn stats(&self) -> Stats {
        Stats {
            batches: self.engine.requests,
            records: self.engine.accepted_records,
            bytes: self.engine.accepted_bytes,
            refused: [0; Reason::COUNT],
        }
    }

    fn per_second(&self, n: u64) -> f64 {
        if self.seconds > 0.0 {
            n as f64 / self.seconds
        } else {
            0.0
        }
    }

    fn write(&self, out: &mut dyn Write, names: &[String]) -> io::Result<()> {
        let at = |(input, line): Location| format!("{}:{line}", names[input]);
        let e = &self.engine;
        writeln!(
            out,
            "stream       {} (region {}, {})",
            self.stream,
            self.region,
            match &self.endpoint {
                Some(url) => format!("endpoint {url}"),
                None => "the SDK's endpoint".into(),
            }
        )?;
        writeln!(
            out,
            "sent         {} requests, at most {} in flight (--in-flight {}), linger {} ms{}",
            e.requests,
            self.peak_in_flight,
            self.in_flight,
            self.linger_ms,
            if self.allow_reordering {
                ", keys may be reordered"
            } else {
                ", each key in order"
            },
        )?;
        writeln!(
            out,
            "stored       {} Kinesis records, {} bytes ({}) of data + keys, in {:.2} s: \
             {:.0} records/s, {}/s",
            e.accepted_records,
            e.accepted_bytes,
            human(e.accepted_bytes),
            self.seconds,
            self.per_second(e.accepted_records),
            human(self.per_second(e.accepted_bytes) as u64),
        )?;
        writeln!(
            out,
            "retried      {} entries ({} throttled)",
            e.retried, e.throttled
        )?;
        writeln!(
            out,
            "not stored   {} Kinesis records ({} user records)",
            self.not_stored(),
            self.not_stored_users
        )?;
        for kind in ErrorKind::ALL {
            let count = self.not_stored[kind as usize];
            if count == 0 {
                continue;
            }
            let examples = &self.not_stored_examples[kind as usize];
            let mut places: Vec<String> = examples.iter().map(|&place| at(place)).collect();
            let more = count - examples.len() as u64;
            if more > 0 {
                places.push(format!("and {more} more"));
            }
            writeln!(
                out,
                "  {:<18} {count:>8}  {}",
                kind.as_str(),
                places.join(", ")
            )?;
        }
        if self.credential_pauses > 0 {
            writeln!(
                out,
                "credentials  paused {} times, loaded again each time",
                self.credential_pauses
            )?;
        }
        if let Some((signal, _)) = self.stopped_by {
            writeln!(
                out,
                "stopped      by {signal}: the input was not read to its end; every record read was sent or reported"
            )?;
        }
        Ok(())
    }

    fn json(&self, names: &[String]) -> Value {
        let place = |(input, line): Location| json!({"file": names[input], "line": line});
        let e = &self.engine;
        let by_kind: Map<String, Value> = ErrorKind::ALL
            .into_iter()
            .map(|kind| {
                (
                    kind.as_str().to_owned(),
                    self.not_stored[kind as usize].into(),
                )
            })
            .collect();
        let examples: Map<String, Value> = ErrorKind::ALL
            .into_iter()
            .filter(|kind| self.not_stored[*kind as usize] > 0)
            .map(|kind| {
                let list: Vec<Value> = self.not_stored_examples[kind as usize]
                    .iter()
                    .map(|&at| place(at))
                    .collect();
                (kind.as_str().to_owned(), list.into())
            })
            .collect();
        json!({
            "stream": self.stream,
            "region": self.region,
            "endpoint": self.endpoint,
            "in_flight": self.in_flight,
            "linger_ms": self.linger_ms,
            "buffer_bytes": self.buffer_bytes,
            "allow_reordering": self.allow_reordering,
            "requests": e.requests,
            "peak_in_flight": self.peak_in_flight,
            "stored": {"records": e.accepted_records, "bytes": e.accepted_bytes,
                       "user_records": self.stored_users},
            "retried": e.retried,
            "throttled": e.throttled,
            "not_stored": self.not_stored(),
            "not_stored_user_records": self.not_stored_users,
            "not_stored_by_kind": by_kind,
            "not_stored_examples": examples,
            "credential_pauses": self.credential_pauses,
            "stopped_by": self.stopped_by.map(|(signal, _)| signal),
            "seconds": self.seconds,
            "records_per_second": self.per_second(e.accepted_records),
        })
    }
}

/// What `--aggregate` made.
pub struct AggregationSummary {
    /// The mode's name.
    pub mode: &'static str,
    /// The largest aggregate, as the service counts it.
    pub max_bytes: u32,
    /// With `per-shard`: the shards, and the file they came from.
    pub shards: Option<(usize, String)>,
    /// User records, Kinesis records, aggregates.
    pub counts: Counts,
}

impl AggregationSummary {
    /// User records per Kinesis record (0 when there is none).
    pub fn ratio(&self) -> f64 {
        if self.counts.kinesis_records == 0 {
            0.0
        } else {
            self.counts.user_records as f64 / self.counts.kinesis_records as f64
        }
    }
}

/// The request files `emit` wrote.
pub struct Written<'a> {
    /// `--out`.
    pub dir: &'a Path,
    /// Whether it exists: it did before the run, or the first request file created it.
    pub dir_exists: bool,
    /// Request files written.
    pub files: u64,
    /// Their bytes.
    pub bytes: u64,
}

impl Summary<'_> {
    /// Writes the summary, one fact per line.
    pub fn write(&self, out: &mut dyn Write) -> io::Result<()> {
        let limits = &self.limits;
        let at = |(input, line): Location| format!("{}:{line}", self.names[input]);
        writeln!(
            out,
            "kinesis-batcher {}: profile {}: {} records, {} bytes per request, {} bytes per record",
            self.command,
            self.profile.name(),
            limits.max_records(),
            limits.max_request_bytes(),
            limits.max_record_bytes(),
        )?;
        writeln!(out, "keys         {}", self.keys)?;
        let files = self.names.len();
        write!(
            out,
            "input        {files} {}, {} bytes ({}), {} {}",
            if files == 1 { "input" } else { "inputs" },
            self.bytes_read,
            human(self.bytes_read),
            self.lines,
            if self.lines == 1 { "line" } else { "lines" },
        )?;
        if self.input_errors > 0 {
            write!(
                out,
                ", {} unreadable (see the messages above)",
                self.input_errors
            )?;
        }
        writeln!(out)?;
        let refused = self.refusals.total();
        if let Some(send) = self.send {
            writeln!(
                out,
                "records      {}{}: {} stored, {} not stored, {refused} refused",
                self.records,
                if self.packed {
                    " (lines packed up to the record cap)"
                } else {
                    ""
                },
                send.stored_users,
                send.not_stored_users,
            )?;
        } else {
            writeln!(
                out,
                "records      {}{}: {} accepted, {refused} refused",
                self.records,
                if self.packed {
                    " (lines packed up to the record cap)"
                } else {
                    ""
                },
                self.aggregation
                    .as_ref()
                    .map_or(self.stats.records, |agg| agg.counts.user_records),
            )?;
        }
        if let Some(agg) = &self.aggregation {
            let shards = match &agg.shards {
                Some((count, file)) => format!(" over {count} shards ({file})"),
                None => String::new(),
            };
            writeln!(
                out,
                "aggregation  {}{shards}, aggregates up to {} bytes with their keys",
                agg.mode, agg.max_bytes,
            )?;
            writeln!(
                out,
                "aggregated   {} user records in {} Kinesis records ({} aggregates, {} plain): \
                 {:.2} user records per Kinesis record",
                agg.counts.user_records,
                agg.counts.kinesis_records,
                agg.counts.aggregates,
                agg.counts.kinesis_records - agg.counts.aggregates,
                agg.ratio(),
            )?;
        }
        if let Some(send) = self.send {
            send.write(out, self.names)?;
        } else {
            self.write_plan(out)?;
        }
        self.write_refusals(out)?;
        if let Some(place) = self.stopped_at {
            writeln!(out, "stopped      at {} (--stop-on-refusal)", at(place))?;
        }
        out.flush()
    }

    /// The lines of plan and emit: requests, accepted records, fill, files written.
    fn write_plan(&self, out: &mut dyn Write) -> io::Result<()> {
        let limits = &self.limits;
        writeln!(out, "requests     {}", self.stats.batches)?;
        writeln!(
            out,
            "accepted     {} {}{}, {} bytes ({}) of data{}",
            self.stats.records,
            if self.aggregation.is_some() {
                "Kinesis "
            } else {
                ""
            },
            if self.stats.records == 1 {
                "record"
            } else {
                "records"
            },
            self.stats.bytes,
            human(self.stats.bytes),
            if limits.partition_keys() {
                " + keys"
            } else {
                ""
            },
        )?;
        writeln!(
            out,
            "fill         bytes {:.2}% of {} per request, records {:.2}% of {} per request",
            100.0 * self.stats.byte_fill(limits),
            human(u64::from(limits.max_request_bytes())),
            100.0 * self.stats.record_fill(limits),
            limits.max_records(),
        )?;
        if let Some(Written {
            dir,
            dir_exists,
            files,
            bytes,
        }) = self.written
        {
            if files == 0 && !dir_exists {
                writeln!(
                    out,
                    "wrote        no request file ({} not created)",
                    dir.display()
                )?;
            } else if files == 0 {
                writeln!(out, "wrote        no request file to {}", dir.display())?;
            } else if files == 1 {
                writeln!(
                    out,
                    "wrote        1 request file to {} (request-000001.json), {bytes} bytes ({})",
                    dir.display(),
                    human(bytes),
                )?;
            } else {
                writeln!(
                    out,
                    "wrote        {files} request files to {} (request-000001.json .. {}), {bytes} bytes ({})",
                    dir.display(),
                    crate::emit::file_name(files),
                    human(bytes),
                )?;
            }
        }
        Ok(())
    }

    /// The refusals by reason, with their first places.
    fn write_refusals(&self, out: &mut dyn Write) -> io::Result<()> {
        let at = |(input, line): Location| format!("{}:{line}", self.names[input]);
        let refused = self.refusals.total();
        writeln!(out, "refused      {refused}")?;
        for why in Why::all() {
            let count = self.refusals.count(why);
            if count == 0 {
                continue;
            }
            let examples = &self.refusals.examples[why.index()];
            let mut places: Vec<String> = examples.iter().map(|&place| at(place)).collect();
            let more = count - examples.len() as u64;
            if more > 0 {
                places.push(format!("and {more} more"));
            }
            writeln!(out, "  {:<18} {count:>8}  {}", why.id(), places.join(", "))?;
        }
        Ok(())
    }
}

impl Summary<'_> {
    /// Writes the summary as one JSON object on one line (`--summary json`).
    pub fn write_json(&self, out: &mut dyn Write) -> io::Result<()> {
        let limits = &self.limits;
        let place = |(input, line): Location| json!({"file": self.names[input], "line": line});
        let keys = match self.key {
            KeySpec::Hash => json!({"source": "hash"}),
            KeySpec::Constant(key) => json!({"source": "constant", "key": key}),
            KeySpec::Field(name) => json!({"source": "field", "field": name}),
            KeySpec::None => json!({"source": "none"}),
        };
        let files: Vec<Value> = self
            .names
            .iter()
            .zip(self.files)
            .map(|(name, file)| {
                let status = match (file.reached, &file.error) {
                    (false, _) => "not_reached",
                    (true, Some(_)) => "unreadable",
                    (true, None) => "read",
                };
                json!({
                    "name": name,
                    "status": status,
                    "bytes": file.bytes,
                    "lines": file.lines,
                    "error": file.error,
                })
            })
            .collect();
        // Every reason, zeros included, so that a reader needs no list of its own.
        let refusals: Map<String, Value> = Why::all()
            .map(|why| (why.id().to_owned(), self.refusals.count(why).into()))
            .collect();
        let written = self.written.as_ref().map(|written| {
            json!({
                "dir": written.dir.display().to_string(),
                "dir_exists": written.dir_exists,
                "files": written.files,
                "bytes": written.bytes,
            })
        });
        let summary = json!({
            "command": self.command,
            "profile": self.profile.name(),
            "limits": {
                "max_records": limits.max_records(),
                "max_request_bytes": limits.max_request_bytes(),
                "max_record_bytes": limits.max_record_bytes(),
                "partition_keys": limits.partition_keys(),
                "key_unit": match limits.key_unit() {
                    KeyUnit::CodePoints => "code-points",
                    KeyUnit::Utf16Units => "utf16",
                    KeyUnit::Utf8Bytes => "utf8-bytes",
                },
            },
            "keys": keys,
            "files": files,
            "unreadable": self.input_errors,
            "bytes_read": self.bytes_read,
            "lines": self.lines,
            "records": self.records,
            "packed": self.packed,
            "accepted": {"records": self.stats.records, "bytes": self.stats.bytes},
            "requests": self.stats.batches,
            "fill": {
                "bytes": self.stats.byte_fill(limits),
                "records": self.stats.record_fill(limits),
            },
            "aggregation": self.aggregation.as_ref().map(|agg| json!({
                "mode": agg.mode,
                "max_bytes": agg.max_bytes,
                "shards": agg.shards.as_ref().map(|(count, _)| count),
                "shards_file": agg.shards.as_ref().map(|(_, file)| file),
                "user_records": agg.counts.user_records,
                "kinesis_records": agg.counts.kinesis_records,
                "aggregates": agg.counts.aggregates,
                "plain": agg.counts.kinesis_records - agg.counts.aggregates,
                "ratio": agg.ratio(),
            })),
            "refused": self.refusals.total(),
            "refusals": refusals,
            "written": written,
            "send": self.send.map(|send| send.json(self.names)),
            "stopped_at": self.stopped_at.map(place),
            "exit_code": self.exit_code,
        });
        serde_json::to_writer(&mut *out, &summary)?;
        out.write_all(b"\n")?;
        out.flush()
    }
}

/// A byte count in binary units, for people: "146.9 MiB".
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}
