//! Command-line parsing: subcommands, options, their checks, and the help text.
//!
//! Every limit comes from the core: a profile is a [`Limits`] constant, `--max-records`,
//! `--max-request-bytes` and `--max-record-size` go through [`Limits::with_caps`] (its
//! [`LimitsError`] message is the usage error), and a constant `--key` is measured by the
//! core before any input is read.

use std::ffi::OsString;
use std::path::PathBuf;

use kinesis_batcher::aggregate::Aggregation;
use kinesis_batcher::{KeyUnit, Limits, LimitsError, Measure, Record};
use lexopt::prelude::*;

/// The help text, printed by `--help` and `-h` anywhere on the command line.
pub const HELP: &str = "\
kinesis-batcher: cut newline-delimited records into Kinesis PutRecords (or Firehose
PutRecordBatch) requests, exactly as the service counts them, and say which records
can never be sent and why.

USAGE:
    kinesis-batcher plan [OPTIONS] [FILE...]
    kinesis-batcher emit --out DIR --stream NAME [OPTIONS] [FILE...]
    kinesis-batcher send --stream NAME [--endpoint-url URL] [--region R] [--in-flight N]
                         [--linger-ms MS] [OPTIONS] [FILE...]
    kinesis-batcher demo [OPTIONS]
    kinesis-batcher deaggregate [--data-only] [--corrupt=error|plain] [FILE...]
    kinesis-batcher deaggregate --raw [--partition-key KEY] [--data-only] [FILE...]
    kinesis-batcher --help | --version

    With no arguments at all and a terminal on stdin, runs the demo.

COMMANDS:
    plan    Read FILEs (stdin when there is none, or for '-'), one record per line
            (a '\\r' before the '\\n' is dropped, empty lines are skipped), and print a
            summary: records, requests, accepted records and bytes, fill, and refusals
            by reason with their FILE:LINE (the first 10 of each, then a count).
    emit    As plan, and write one request file per request: DIR/request-000001.json,
            ..., request-999999.json, request-a1000000.json, ... (from 7 digits on, a
            letter before the number says how many: a for 7, b for 8, ...), so that
            the names always sort in request order. Each is accepted as is by AWS CLI
            v2 (blobs in base64, its default):
              aws kinesis put-records --cli-input-json file://DIR/request-000001.json
            {\"StreamName\": NAME, \"Records\": [{\"Data\": BASE64, \"PartitionKey\": KEY}, ...]}
            With --profile firehose, for `aws firehose put-record-batch`:
            {\"DeliveryStreamName\": NAME, \"Records\": [{\"Data\": BASE64}, ...]}
            AWS CLI v1 (what pip install awscli installs) base64-encodes Data a second
            time: it stores the wrong bytes and still exits 0. Use v2, or boto3 (see the
            README: decode Data, then put_records / put_record_batch).
            Refused records are not written. DIR must not already hold request-*.json
            files; it is created with the first request file, so a run that writes
            none (nothing read, or every line refused) creates nothing.
    send    Read FILEs (stdin when there is none, or for '-') as they arrive, and send
            the records to a Kinesis data stream with PutRecords (the AWS SDK for
            Rust), so that `tail -F app.log | kinesis-batcher send --stream s` works.
            The library's producer engine decides every request: a request leaves
            when it is full or its oldest record has waited --linger-ms, up to
            --in-flight requests are out at once, failed entries are sent again after
            a backoff (at most 10 attempts over 5 minutes), and each key's records
            are stored in input order. Reading stops while the buffer is full
            (--buffer), so memory stays bounded on an endless input. Refusals are
            reported as by emit; a record that could not be stored (a non-retryable
            error such as ResourceNotFoundException, or retries exhausted) is
            reported as FILE:LINE: not stored: KIND, and the run exits with 4.
            Credentials come from the usual chain (see OPTIONS (send)); expired or
            invalid ones pause sending (records wait, none is dropped) while they
            are loaded again. The summary goes to stderr (not with --quiet), or
            with --summary json to stdout; a progress line is drawn on a terminal.
    demo    Plan a built-in deterministic data set (about 20,000 NDJSON lines of mixed
            sizes, some bad ones) generated in memory, keyed by --key-field device.
    deaggregate
            Read received Kinesis records back into user records (the KPL format, as
            the KCL reads it). FILEs (stdin when there is none, or for '-') are JSON
            with a top-level \"Records\" array of {\"Data\": BASE64, \"PartitionKey\": KEY,
            \"ExplicitHashKey\": HASH (optional)}: emit's request files, a PutRecords
            request, `aws kinesis get-records` output. With --raw, each FILE is one
            record's data bytes, with --partition-key KEY [default: empty]. Prints one
            JSON line per user record, with the field names of a PutRecords entry:
              {\"Data\":BASE64,\"PartitionKey\":KEY,\"ExplicitHashKey\":HASH}
            (ExplicitHashKey only when it has one); a record that is not an aggregate
            is printed as it is. --data-only: each user record's data bytes and a
            newline instead, so that emit --aggregate, then deaggregate --data-only of
            the request files, gives back the input lines.
            A damaged aggregate (its MD5 digest does not match, or its protobuf is
            malformed) is an error naming FILE, the record (Records[N]) and the
            offset, and none of its user records is printed; --corrupt=plain prints
            it as one plain record instead, as the KCL does. Exit codes: 0; 1 when a
            record could not be read back (the others are printed); 2 usage; 3 an
            unreadable FILE, one that is not a records file, or an unwritable stdout.

OPTIONS (plan, emit, demo):
    --profile kds|kds-5mib|firehose
                        Service limits [default: kds]
                          kds       500 records, 10 MiB per request, 1 MiB per record
                          kds-5mib  500 records, 5 MiB per request, 1 MiB per record
                          firehose  500 records, 4 MiB per request, 1,000 KiB per record,
                                    no partition key
    --max-record-size N[KiB|MiB]
                        Record cap (data + key), e.g. 4MiB for a stream whose
                        MaxRecordSizeInKiB is 4096 [default: the profile's]
    --max-records N     Records per request, 1 to 500 [default: the profile's]
    --max-request-bytes N[KiB|MiB]
                        Request cap (the records' data + keys), at most the profile's
                        (10MiB for kds, 5MiB for kds-5mib, 4MiB for firehose), not below
                        the record cap (lower --max-record-size with it)
                        [default: the profile's].
                        The library checks the three caps together: an invalid set is a
                        usage error that names the rule broken
    --key-unit code-points|utf16|utf8-bytes
                        How partition-key length is counted against 256
                        [default: code-points]
    --key-hash          Partition key = FNV-1a 64 hash of the line's bytes as 16 lowercase
                        hex digits, so records spread over shards [the default]
    --key TEXT          The same partition key for every record
    --key-field NAME    Partition key = the line's JSON field NAME: a string's value, or a
                        number's JSON text. Implies --format ndjson. A line that is not
                        JSON is refused as invalid_json; one without the field, or whose
                        field is not a string or number, as key_field_missing
    --format lines|ndjson
                        lines: any bytes; ndjson: lines that are not valid JSON are also
                        refused, as invalid_json [default: lines]
    --pack              Pack consecutive lines of a FILE into records up to the record
                        cap: each record is the input's bytes from its first line to its
                        last, newlines (and empty lines) included. Needs --key TEXT or
                        --profile firehose, and --format lines
    --stop-on-refusal   Stop at the first refused record, naming its FILE:LINE (exit 1),
                        or at the first unreadable FILE (exit 3); the requests before it
                        are still planned (and written by emit, sent by send)
    -q, --quiet         No per-refusal messages on stderr (the summary still counts them)
    --batches PATH      Write every request as a JSON line to PATH ('-': stdout, and the
                        summary goes to stderr), created when the first input is read:
                          {\"batch\":1,\"file\":\"a.ndjson\",\"first_line\":1,\"last_line\":480,
                           \"records\":479,\"bytes\":10480000,\"refused_inside\":1}
                        file and first_line locate its first record, last_line its last
                        line; a request that ends in another file than it starts in also
                        has \"last_file\". bytes count data + keys as the service does;
                        refused_inside counts the refused lines between its first and
                        its last record (they are not in the request)
    --summary text|json The summary's form [default: text]. json: one JSON object on one
                        line, for programs, with command, profile, limits, keys, files
                        (each: name, status read|unreadable|not_reached, bytes, lines,
                        error), unreadable, bytes_read, lines, records, packed, accepted
                        (records, bytes), requests, fill (bytes, records: fractions of
                        the caps), refused, refusals (every reason, zeros included),
                        written (emit: dir, dir_exists, files, bytes; else null),
                        stopped_at (file, line; or null) and exit_code
    --refusals PATH     Write every refused line as a JSON line to PATH, all of them
                        (not only the 50 shown on stderr, and with --quiet too); '-':
                        stdout, and the summary goes to stderr. Created when the first
                        input is read:
                          {\"file\":\"a.ndjson\",\"line\":7,\"offset\":1234,
                           \"reason\":\"key_field_missing\",\"detail\":\"no field \\\"device\\\"\"}
                        offset: the line's first byte in its file (from 0); reason: one
                        of the refusal reasons below; detail: the stderr message's text
                        after the reason (\"\" when it has none). --batches and --refusals
                        cannot both be '-'
    -h, --help          Print this help
    -V, --version       Print the version

    --aggregate[=MODE]  Aggregate the records (the KPL format, which the KCL, Lambda
                        with aws-kinesis-agg, and Firehose read back) before planning
                        the requests: many user records in one Kinesis record, so that
                        a shard's 1,000 records a second carry many more. MODE:
                          shared-hash-key  [the default] each record keeps its key, all
                                    point to the aggregate's ExplicitHashKey (its first
                                    record's hash key): never dropped by the KCL, whatever
                                    the resharding, best packing; a key's records may land
                                    in different shards
                          one-key   consecutive records with the same key share an
                                    aggregate sent under that key: keeps key-to-shard
                                    affinity, packs only runs of one key
                          per-shard consecutive records of the same shard, by --shards:
                                    keeps affinity while the map is current (list it
                                    again after a reshard)
                        A record alone, or too large to share, is sent as it is. Not
                        with --profile firehose. The summary adds the user records,
                        the Kinesis records and their ratio; emit's entries carry
                        the aggregate as Data, with its PartitionKey and, when it has
                        one, its ExplicitHashKey
    --shards FILE       per-shard: the open shards, as printed by
                          aws kinesis list-shards --stream-name NAME \\
                              --shard-filter Type=AT_LATEST
                        {\"Shards\":[{\"ShardId\",\"HashKeyRange\":{\"StartingHashKey\",
                        \"EndingHashKey\"}},...]}, in any order; they must tile the hash
                        keys 0 to 2^128-1 (a bad map is a usage error naming the problem)
    --aggregate-max-bytes N[KiB|MiB]
                        The largest aggregate, data and outer keys as the service counts
                        them, 1 to the record cap (the KPL's default is 50KiB: smaller
                        aggregates fill sooner) [default: the record cap]

OPTIONS (emit):
    --out DIR           Directory for the request files
    --stream NAME       StreamName (DeliveryStreamName for firehose) in every request

OPTIONS (send): also --profile kds|kds-5mib (not firehose), the caps, the key options,
--format, --pack, --aggregate (it groups the lines of one read: what one read of the
input returned, at most 1 MiB), --stop-on-refusal, --quiet, --refusals, --summary.
    --stream NAME       The stream's name, or its ARN (arn:...)
    --endpoint-url URL  Another endpoint than the region's, e.g. http://127.0.0.1:4567
                        [default: the SDK's, AWS_ENDPOINT_URL_KINESIS or AWS_ENDPOINT_URL
                        if set]
    --region R          The region [default: AWS_REGION, or the profile's region]
    --in-flight N       Requests sent at once, 1 to 1024 [default: 4]. Throughput grows
                        with N while latency, not the stream, is the limit; each key's
                        order is kept whatever N
    --linger-ms MS      How long a record may wait for others to fill its request
                        [default: 100, the KPL's RecordMaxBufferedTime]
    --buffer N[KiB|MiB] Bytes buffered at most (records read and not yet stored, as the
                        service counts them), at least the record cap [default: 16MiB].
                        Reading waits while it is full; memory stays within about
                        three times this
    --allow-reordering  Let a key's records be sent in several requests at once (more
                        throughput with few keys; a retry may then store a record after
                        a later one of the same key) [default: each key's records are
                        stored in input order]
    Credentials: the SDK's default chain: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
    AWS_SESSION_TOKEN, the shared files (~/.aws/credentials, ~/.aws/config, AWS_PROFILE,
    credential_process), web identity (AWS_WEB_IDENTITY_TOKEN_FILE), the ECS container
    and EC2 instance (IMDS) providers. SSO profiles are not read: use
    `aws configure export-credentials --format env` or a credential_process.

Refusal reasons: record_too_large (a line longer than the record cap is refused whatever
its content, without being parsed), key_empty, key_too_long, key_not_utf8 (from the
library), invalid_json and key_field_missing (from the JSON options). Each refusal is
reported on stderr as FILE:LINE: reason: detail (the first 50, then a count of the rest).
stdin is named <stdin> and the demo data <demo>.

EXIT CODES:
    0   finished (refusals, if any, are in the summary)
    1   stopped by --stop-on-refusal
    2   usage error: bad option or value, invalid limits; send: no region, no
        credentials found
    3   input or output error: an unreadable FILE (the other files are still read
        unless --stop-on-refusal, and the summary of what was read is printed; when
        nothing could be read, there is no summary and no output is created), or an
        unwritable --out, --batches, --refusals or stdout (the run stops there)
    4   send: some records could not be stored (terminal failures: each is reported,
        the summary counts them by kind); every other record was sent
    130 143  send: stopped by SIGINT or SIGTERM; every record read was still sent or
        reported (a second signal ends it at once)
    When several apply, the highest code is the exit code.

Every error message starts with 'kinesis-batcher: '; refusal messages (FILE:LINE: ...)
do not, being about the input.
";

/// What to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Plan and print a summary.
    Plan,
    /// Plan, write request files, print a summary.
    Emit,
    /// Plan the built-in demo data.
    Demo,
    /// Send the records to a stream with the AWS SDK.
    Send,
    /// Read received records back into user records.
    Deaggregate,
    /// Print the help.
    Help,
    /// Print the version.
    Version,
}

/// Where a record's partition key comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySpec {
    /// FNV-1a 64 of the line's bytes, as 16 hex digits.
    Hash,
    /// The same key for every record.
    Constant(String),
    /// A field of the line read as a JSON object.
    Field(String),
    /// No key: the limits have none (Firehose).
    None,
}

/// How lines are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Any bytes.
    Lines,
    /// Each line must be valid JSON.
    Ndjson,
}

/// One input.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// A file by path.
    Path(PathBuf),
    /// Standard input.
    Stdin,
    /// The built-in demo data.
    Demo,
}

/// Where a JSON-lines output (`--batches`, `--refusals`) goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OutputTo {
    /// A file.
    Path(PathBuf),
    /// Standard output (the summary then goes to stderr).
    Stdout,
}

/// The summary's form.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SummaryFormat {
    /// For people: one fact per line.
    Text,
    /// One JSON object, for programs.
    Json,
}

/// How `--aggregate` groups user records (the core's `aggregate::Mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AggregateMode {
    /// `shared-hash-key`: each record keeps its key, all point to the aggregate's hash key.
    SharedHashKey,
    /// `one-key`: consecutive records with the same partition key.
    OneKey,
    /// `per-shard`: consecutive records of the same shard, by `--shards`.
    PerShard,
}

impl AggregateMode {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            AggregateMode::SharedHashKey => "shared-hash-key",
            AggregateMode::OneKey => "one-key",
            AggregateMode::PerShard => "per-shard",
        }
    }
}

/// `--aggregate[=MODE]`, `--shards FILE`, `--aggregate-max-bytes N`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AggregateOptions {
    /// The mode.
    pub mode: AggregateMode,
    /// The `ListShards` output, with `per-shard` (read when the run starts).
    pub shards: Option<PathBuf>,
    /// The largest aggregate, as the service counts it (at most the record cap).
    pub max_bytes: u32,
}

/// The options of `send`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SendOptions {
    /// `--stream`: a name, or an ARN.
    pub stream: String,
    /// `--endpoint-url`.
    pub endpoint_url: Option<String>,
    /// `--region`.
    pub region: Option<String>,
    /// `--in-flight`: requests out at once.
    pub in_flight: u32,
    /// `--linger-ms`.
    pub linger_ms: u64,
    /// `--buffer`: bytes buffered at most, as the service counts them.
    pub buffer_bytes: u64,
    /// `--allow-reordering`.
    pub allow_reordering: bool,
}

impl SendOptions {
    /// `--in-flight` when not given: several requests out hide the latency, and four
    /// keeps a small stream's shards and the memory (four requests) modest.
    pub const DEFAULT_IN_FLIGHT: u32 = 4;
    /// `--linger-ms` when not given: the KPL's `RecordMaxBufferedTime`.
    pub const DEFAULT_LINGER_MS: u64 = 100;
    /// `--buffer` when not given: 16 MiB, sixteen seconds of a shard's 1 MiB/s. Memory
    /// peaks at about three times the buffer (the records, the SDK's copies of those in
    /// flight, their base64 JSON bodies).
    pub const DEFAULT_BUFFER_BYTES: u64 = 16 << 20;
    /// The most requests in flight the engine takes.
    pub const MAX_IN_FLIGHT: u32 = 1024;
}

/// What `deaggregate` does with a record that claims to be an aggregate but is damaged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Corrupt {
    /// An error naming the file, the record and the offset.
    Error,
    /// Passed through as one plain record, as the KCL does.
    Plain,
}

/// The options of `deaggregate`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeaggregateOptions {
    /// `--data-only`: each user record's data bytes and a newline.
    pub data_only: bool,
    /// `--raw`: each FILE is one record's data, not a JSON file of records.
    pub raw: bool,
    /// `--partition-key`, with `--raw`.
    pub partition_key: String,
    /// `--corrupt`.
    pub corrupt: Corrupt,
}

/// The profile chosen, for the summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// `Limits::KDS`.
    Kds,
    /// `Limits::KDS_5MIB`.
    Kds5Mib,
    /// `Limits::FIREHOSE`.
    Firehose,
}

impl Profile {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Profile::Kds => "kds",
            Profile::Kds5Mib => "kds-5mib",
            Profile::Firehose => "firehose",
        }
    }

    fn limits(self) -> Limits {
        let limits = match self {
            Profile::Kds => Limits::KDS,
            Profile::Kds5Mib => Limits::KDS_5MIB,
            Profile::Firehose => Limits::FIREHOSE,
        };
        // The range form: the tool writes each request from its accepted lines only, so
        // a refused line need not close a request, and there are fewer requests.
        limits.spanning_refusals(true)
    }
}

/// A checked command line.
#[derive(Clone, Debug)]
pub struct Options {
    /// What to do.
    pub command: Command,
    /// The profile named (the limits below may have another record cap or key unit).
    pub profile: Profile,
    /// The limits in force.
    pub limits: Limits,
    /// Where keys come from.
    pub key: KeySpec,
    /// How lines are checked.
    pub format: Format,
    /// Pack lines into records with `LinePacker`.
    pub pack: bool,
    /// Stop at the first refusal.
    pub stop_on_refusal: bool,
    /// No per-refusal messages.
    pub quiet: bool,
    /// `--batches`.
    pub batches: Option<OutputTo>,
    /// `--refusals`.
    pub refusals: Option<OutputTo>,
    /// `--summary`.
    pub summary: SummaryFormat,
    /// `--out` (emit).
    pub out: Option<PathBuf>,
    /// `--stream` (emit).
    pub stream: Option<String>,
    /// The inputs, in order.
    pub inputs: Vec<Input>,
    /// `--aggregate`: aggregate the records before planning requests.
    pub aggregate: Option<AggregateOptions>,
    /// The options of `send`.
    pub send: Option<SendOptions>,
    /// The options of `deaggregate`.
    pub deaggregate: DeaggregateOptions,
}

/// A usage error: the message to print before exiting with code 2.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageError(pub String);

impl From<lexopt::Error> for UsageError {
    fn from(error: lexopt::Error) -> Self {
        UsageError(error.to_string())
    }
}

fn usage<T>(message: impl Into<String>) -> Result<T, UsageError> {
    Err(UsageError(message.into()))
}

/// Parses `args` (without the program name). `stdin_is_terminal` decides what no
/// arguments at all mean: the demo on a terminal, a usage error otherwise.
pub fn parse(args: Vec<OsString>, stdin_is_terminal: bool) -> Result<Options, UsageError> {
    if args.is_empty() {
        if stdin_is_terminal {
            return finish(Raw::new(Command::Demo));
        }
        return usage("no command given: use plan, emit, send, demo or deaggregate (see --help)");
    }
    let mut parser = lexopt::Parser::from_args(args);
    let mut raw = Raw::new(Command::Plan);
    let mut command = None;
    while let Some(arg) = parser.next()? {
        match &arg {
            Long(name) => raw.note_option(name),
            Short(letter) if *letter != 'h' && *letter != 'V' => raw.note_option("quiet"),
            _ => {}
        }
        match arg {
            Short('h') | Long("help") => raw.command = Command::Help,
            Short('V') | Long("version") => {
                if raw.command != Command::Help {
                    raw.command = Command::Version;
                }
            }
            Value(value) if command.is_none() => {
                let name = value.string()?;
                command = Some(match name.as_str() {
                    "plan" => Command::Plan,
                    "emit" => Command::Emit,
                    "send" => Command::Send,
                    "demo" => Command::Demo,
                    "deaggregate" => Command::Deaggregate,
                    other => {
                        return usage(format!(
                            "unknown command '{other}': use plan, emit, send, demo or deaggregate"
                        ));
                    }
                });
            }
            Value(value) => raw.files.push(value),
            Long("profile") => raw.profile = Some(parser.value()?.string()?),
            Long("max-record-size") => raw.max_record_size = Some(parser.value()?.string()?),
            Long("max-records") => raw.max_records = Some(parser.value()?.string()?),
            Long("max-request-bytes") => raw.max_request_bytes = Some(parser.value()?.string()?),
            Long("key-unit") => raw.key_unit = Some(parser.value()?.string()?),
            Long("key-hash") => raw.set_key(KeySpec::Hash, "--key-hash")?,
            Long("key") => {
                let key = parser.value()?.string()?;
                raw.set_key(KeySpec::Constant(key), "--key")?;
            }
            Long("key-field") => {
                let name = parser.value()?.string()?;
                raw.set_key(KeySpec::Field(name), "--key-field")?;
            }
            Long("format") => raw.format = Some(parser.value()?.string()?),
            Long("pack") => raw.pack = true,
            Long("stop-on-refusal") => raw.stop_on_refusal = true,
            Long("quiet") | Short('q') => raw.quiet = true,
            Long("batches") => raw.batches = Some(parser.value()?),
            Long("refusals") => raw.refusals = Some(parser.value()?),
            Long("summary") => raw.summary = Some(parser.value()?.string()?),
            Long("out") => raw.out = Some(parser.value()?),
            Long("stream") => raw.stream = Some(parser.value()?.string()?),
            Long("endpoint-url") => raw.endpoint_url = Some(parser.value()?.string()?),
            Long("region") => raw.region = Some(parser.value()?.string()?),
            Long("in-flight") => raw.in_flight = Some(parser.value()?.string()?),
            Long("linger-ms") => raw.linger_ms = Some(parser.value()?.string()?),
            Long("buffer") => raw.buffer = Some(parser.value()?.string()?),
            Long("allow-reordering") => raw.allow_reordering = true,
            Long("aggregate") => {
                let mode = match parser.optional_value() {
                    Some(mode) => mode.string()?,
                    None => AggregateMode::SharedHashKey.name().to_owned(),
                };
                raw.aggregate = Some(mode);
            }
            Long("shards") => raw.shards = Some(parser.value()?),
            Long("aggregate-max-bytes") => {
                raw.aggregate_max_bytes = Some(parser.value()?.string()?);
            }
            Long("data-only") => raw.deagg_option("--data-only", |raw| raw.data_only = true),
            Long("raw") => raw.deagg_option("--raw", |raw| raw.raw = true),
            Long("partition-key") => {
                let key = parser.value()?.string()?;
                raw.deagg_option("--partition-key", |raw| raw.partition_key = Some(key));
            }
            Long("corrupt") => {
                let how = parser.value()?.string()?;
                raw.deagg_option("--corrupt", |raw| raw.corrupt = Some(how));
            }
            _ => return Err(arg.unexpected().into()),
        }
    }
    if matches!(raw.command, Command::Help | Command::Version) {
        return finish(raw);
    }
    match command {
        Some(command) => raw.command = command,
        None => {
            return usage(
                "no command given: use plan, emit, send, demo or deaggregate (see --help)",
            );
        }
    }
    if raw.command == Command::Deaggregate {
        return finish_deaggregate(raw);
    }
    if let Some(option) = raw.deagg_only {
        return usage(format!("{option} is an option of deaggregate"));
    }
    finish(raw)
}

/// The options as given, before they are checked together.
struct Raw {
    command: Command,
    profile: Option<String>,
    max_record_size: Option<String>,
    max_records: Option<String>,
    max_request_bytes: Option<String>,
    key_unit: Option<String>,
    key: Option<(KeySpec, &'static str)>,
    format: Option<String>,
    pack: bool,
    stop_on_refusal: bool,
    quiet: bool,
    batches: Option<OsString>,
    refusals: Option<OsString>,
    summary: Option<String>,
    out: Option<OsString>,
    stream: Option<String>,
    endpoint_url: Option<String>,
    region: Option<String>,
    in_flight: Option<String>,
    linger_ms: Option<String>,
    buffer: Option<String>,
    allow_reordering: bool,
    files: Vec<OsString>,
    aggregate: Option<String>,
    shards: Option<OsString>,
    aggregate_max_bytes: Option<String>,
    data_only: bool,
    raw: bool,
    partition_key: Option<String>,
    corrupt: Option<String>,
    /// The first option of deaggregate only given, for the message.
    deagg_only: Option<&'static str>,
    /// The first option of plan, emit and demo only given, for the message.
    plan_only: Option<String>,
}

impl Raw {
    fn new(command: Command) -> Raw {
        Raw {
            command,
            profile: None,
            max_record_size: None,
            max_records: None,
            max_request_bytes: None,
            key_unit: None,
            key: None,
            format: None,
            pack: false,
            stop_on_refusal: false,
            quiet: false,
            batches: None,
            refusals: None,
            summary: None,
            out: None,
            stream: None,
            endpoint_url: None,
            region: None,
            in_flight: None,
            linger_ms: None,
            buffer: None,
            allow_reordering: false,
            files: Vec::new(),
            aggregate: None,
            shards: None,
            aggregate_max_bytes: None,
            data_only: false,
            raw: false,
            partition_key: None,
            corrupt: None,
            deagg_only: None,
            plan_only: None,
        }
    }

    /// Records an option of deaggregate only.
    fn deagg_option(&mut self, option: &'static str, set: impl FnOnce(&mut Raw)) {
        set(self);
        self.deagg_only.get_or_insert(option);
    }

    /// Records a long option given, to tell deaggregate which of plan's it cannot take.
    fn note_option(&mut self, name: &str) {
        const SHARED: [&str; 6] = [
            "help",
            "version",
            "data-only",
            "raw",
            "partition-key",
            "corrupt",
        ];
        if !SHARED.contains(&name) && self.plan_only.is_none() {
            self.plan_only = Some(format!("--{name}"));
        }
    }

    fn set_key(&mut self, key: KeySpec, option: &'static str) -> Result<(), UsageError> {
        if let Some((_, previous)) = &self.key
            && *previous != option
        {
            return usage(format!("{previous} and {option} cannot be used together"));
        }
        self.key = Some((key, option));
        Ok(())
    }
}

fn finish(raw: Raw) -> Result<Options, UsageError> {
    let profile = match raw.profile.as_deref() {
        None | Some("kds") => Profile::Kds,
        Some("kds-5mib") => Profile::Kds5Mib,
        Some("firehose") => Profile::Firehose,
        Some(other) => {
            return usage(format!("--profile {other}: use kds, kds-5mib or firehose"));
        }
    };
    let mut limits = profile.limits();
    let caps = [
        ("--max-records", &raw.max_records),
        ("--max-request-bytes", &raw.max_request_bytes),
        ("--max-record-size", &raw.max_record_size),
    ];
    if caps.iter().any(|(_, text)| text.is_some()) {
        let records = match &raw.max_records {
            Some(text) => parse_count(text)
                .map_err(|why| UsageError(format!("--max-records {text}: {why}")))?,
            None => limits.max_records(),
        };
        let size = |option: &str, text: &Option<String>, default: u32| match text {
            Some(text) => {
                parse_size(text).map_err(|why| UsageError(format!("{option} {text}: {why}")))
            }
            None => Ok(default),
        };
        let request = size(
            "--max-request-bytes",
            &raw.max_request_bytes,
            limits.max_request_bytes(),
        )?;
        let record = size(
            "--max-record-size",
            &raw.max_record_size,
            limits.max_record_bytes(),
        )?;
        // The core decides which sets are valid; its message names the rule broken.
        limits = limits
            .with_caps(records, request, record)
            .map_err(|error: LimitsError| {
                let given: Vec<String> = caps
                    .iter()
                    .filter_map(|(option, text)| {
                        text.as_ref().map(|text| format!("{option} {text}"))
                    })
                    .collect();
                let numbers = if error == LimitsError::RecordAboveRequest {
                    // One of the two may be the profile's default: say both.
                    format!(" ({record} > {request} bytes)")
                } else {
                    String::new()
                };
                UsageError(format!("{}: {error}{numbers}", given.join(" ")))
            })?;
    }
    if let Some(unit) = &raw.key_unit {
        limits = limits.with_key_unit(match unit.as_str() {
            "code-points" => KeyUnit::CodePoints,
            "utf16" => KeyUnit::Utf16Units,
            "utf8-bytes" => KeyUnit::Utf8Bytes,
            other => {
                return usage(format!(
                    "--key-unit {other}: use code-points, utf16 or utf8-bytes"
                ));
            }
        });
    }

    let given_key = raw.key.clone();
    let key = match (&given_key, limits.partition_keys()) {
        (Some((_, option)), false) => {
            return usage(format!(
                "{option}: Firehose records have no partition key (--profile firehose)"
            ));
        }
        (None, false) => KeySpec::None,
        (Some((key, _)), true) => key.clone(),
        (None, true) if raw.command == Command::Demo && raw.format.as_deref() != Some("lines") => {
            KeySpec::Field("device".into())
        }
        (None, true) => KeySpec::Hash,
    };
    if let KeySpec::Constant(text) = &key {
        // The core measures the key once, as a record with no data: whatever it refuses
        // here it would refuse on every line.
        if let Err(reason) = Record::new(b"", text.as_bytes()).measure(&limits) {
            return usage(format!("--key {text:?}: {}", reason.message()));
        }
    }
    if let KeySpec::Field(name) = &key
        && name.is_empty()
    {
        return usage("--key-field needs a field name");
    }

    let format = match raw.format.as_deref() {
        None if matches!(key, KeySpec::Field(_)) || raw.command == Command::Demo => Format::Ndjson,
        None | Some("lines") if matches!(key, KeySpec::Field(_)) => {
            return usage(
                "--key-field reads each line as JSON: it cannot be used with --format lines",
            );
        }
        None | Some("lines") => Format::Lines,
        Some("ndjson") => Format::Ndjson,
        Some(other) => return usage(format!("--format {other}: use lines or ndjson")),
    };

    if raw.pack {
        if !matches!(key, KeySpec::Constant(_) | KeySpec::None) {
            return usage(
                "--pack needs --key TEXT or --profile firehose: a packed record has one key, \
                 and --key-hash / --key-field take it from each line",
            );
        }
        if format == Format::Ndjson {
            return usage(
                "--pack joins lines into one record: it cannot be used with --format ndjson",
            );
        }
    }

    let inputs = match raw.command {
        Command::Demo => {
            if let Some(file) = raw.files.first() {
                return usage(format!(
                    "demo reads no files (got '{}'): use plan for files",
                    file.to_string_lossy()
                ));
            }
            vec![Input::Demo]
        }
        _ if raw.files.is_empty() => vec![Input::Stdin],
        _ => raw
            .files
            .iter()
            .map(|file| {
                if file == "-" {
                    Input::Stdin
                } else {
                    Input::Path(PathBuf::from(file))
                }
            })
            .collect(),
    };

    let aggregate = aggregate_options(&raw, &limits)?;

    let send = send_options(&raw, &limits)?;
    if send.is_some() && raw.batches.is_some() {
        return usage(
            "--batches is an option of plan and emit: send's requests are decided as the \
             records arrive (see the summary)",
        );
    }
    let (out, stream) = match raw.command {
        Command::Send => {
            if raw.out.is_some() {
                return usage("--out is an option of emit: send writes no request file");
            }
            (None, None)
        }
        Command::Emit => {
            let Some(out) = raw.out else {
                return usage("emit needs --out DIR");
            };
            let Some(stream) = raw.stream else {
                return usage("emit needs --stream NAME");
            };
            if stream.is_empty() {
                return usage("--stream needs a stream name");
            }
            (Some(PathBuf::from(out)), Some(stream))
        }
        _ => {
            if raw.out.is_some() {
                return usage("--out is an option of emit");
            }
            if raw.stream.is_some() {
                return usage("--stream is an option of emit and send");
            }
            (None, None)
        }
    };

    let summary = match raw.summary.as_deref() {
        None | Some("text") => SummaryFormat::Text,
        Some("json") => SummaryFormat::Json,
        Some(other) => return usage(format!("--summary {other}: use text or json")),
    };

    let output = |option: &str, path: Option<OsString>| match path {
        None => Ok(None),
        Some(path) if path == "-" => Ok(Some(OutputTo::Stdout)),
        Some(path) if path.is_empty() => usage(format!("{option} needs a path, or '-' for stdout")),
        Some(path) => Ok(Some(OutputTo::Path(PathBuf::from(path)))),
    };
    let batches = output("--batches", raw.batches)?;
    let refusals = output("--refusals", raw.refusals)?;
    if batches == Some(OutputTo::Stdout) && refusals == Some(OutputTo::Stdout) {
        // Their lines would interleave, with nothing to tell one kind from the other.
        return usage("--batches and --refusals cannot both write to stdout ('-')");
    }

    Ok(Options {
        command: raw.command,
        profile,
        limits,
        key,
        format,
        pack: raw.pack,
        stop_on_refusal: raw.stop_on_refusal,
        quiet: raw.quiet,
        batches,
        refusals,
        summary,
        out,
        stream,
        inputs,
        aggregate,
        send,
        deaggregate: DeaggregateOptions::default(),
    })
}

/// The options of `send`, checked; `None` for the other commands, which take none of
/// them.
fn send_options(raw: &Raw, limits: &Limits) -> Result<Option<SendOptions>, UsageError> {
    if raw.command != Command::Send {
        let given = [
            ("--endpoint-url", raw.endpoint_url.is_some()),
            ("--region", raw.region.is_some()),
            ("--in-flight", raw.in_flight.is_some()),
            ("--linger-ms", raw.linger_ms.is_some()),
            ("--buffer", raw.buffer.is_some()),
            ("--allow-reordering", raw.allow_reordering),
        ];
        if let Some((option, _)) = given.iter().find(|(_, given)| *given) {
            return usage(format!("{option} is an option of send"));
        }
        return Ok(None);
    }
    if !limits.partition_keys() {
        return usage(
            "send writes to a Kinesis data stream: --profile firehose cannot be used with it",
        );
    }
    let Some(stream) = raw.stream.clone() else {
        return usage("send needs --stream NAME");
    };
    if stream.is_empty() {
        return usage("--stream needs a stream name");
    }
    let in_flight = match &raw.in_flight {
        None => SendOptions::DEFAULT_IN_FLIGHT,
        Some(text) => match text.trim().parse::<u32>() {
            Ok(n) if (1..=SendOptions::MAX_IN_FLIGHT).contains(&n) => n,
            _ => {
                return usage(format!(
                    "--in-flight {text}: expected a number of requests from 1 to {}",
                    SendOptions::MAX_IN_FLIGHT
                ));
            }
        },
    };
    let linger_ms = match &raw.linger_ms {
        None => SendOptions::DEFAULT_LINGER_MS,
        // 0 is the engine's "default" (100 ms): the smallest wait given is 1 ms.
        Some(text) => match text.trim().parse::<u64>() {
            Ok(ms) if (1..=3_600_000).contains(&ms) => ms,
            _ => {
                return usage(format!(
                    "--linger-ms {text}: expected milliseconds from 1 to 3600000 (an hour)"
                ));
            }
        },
    };
    let buffer_bytes = match &raw.buffer {
        None => SendOptions::DEFAULT_BUFFER_BYTES.max(u64::from(limits.max_record_bytes())),
        Some(text) => {
            let n =
                parse_size(text).map_err(|why| UsageError(format!("--buffer {text}: {why}")))?;
            let cap = limits.max_record_bytes();
            if n < cap {
                return usage(format!(
                    "--buffer {text}: below the record cap ({n} < {cap} bytes): a record \
                     that large could never be buffered"
                ));
            }
            u64::from(n)
        }
    };
    let text = |value: &Option<String>, option: &str| match value {
        Some(text) if text.is_empty() => usage(format!("{option} needs a value")),
        value => Ok(value.clone()),
    };
    Ok(Some(SendOptions {
        stream,
        endpoint_url: text(&raw.endpoint_url, "--endpoint-url")?,
        region: text(&raw.region, "--region")?,
        in_flight,
        linger_ms,
        buffer_bytes,
        allow_reordering: raw.allow_reordering,
    }))
}

impl Default for DeaggregateOptions {
    fn default() -> Self {
        DeaggregateOptions {
            data_only: false,
            raw: false,
            partition_key: String::new(),
            corrupt: Corrupt::Error,
        }
    }
}

/// `--aggregate`, `--shards` and `--aggregate-max-bytes`, checked together and against
/// the limits (the core says whether they can be aggregated at all).
fn aggregate_options(raw: &Raw, limits: &Limits) -> Result<Option<AggregateOptions>, UsageError> {
    let Some(mode) = &raw.aggregate else {
        if raw.shards.is_some() {
            return usage("--shards is for --aggregate=per-shard");
        }
        if raw.aggregate_max_bytes.is_some() {
            return usage("--aggregate-max-bytes needs --aggregate");
        }
        return Ok(None);
    };
    let mode = match mode.as_str() {
        "shared-hash-key" => AggregateMode::SharedHashKey,
        "one-key" => AggregateMode::OneKey,
        "per-shard" => AggregateMode::PerShard,
        other => {
            return usage(format!(
                "--aggregate={other}: use shared-hash-key, one-key or per-shard"
            ));
        }
    };
    if let Err(error) = Aggregation::new(*limits) {
        return usage(format!(
            "--aggregate with --profile firehose: {error}; Firehose records have no partition key"
        ));
    }
    let shards = match (mode, &raw.shards) {
        (AggregateMode::PerShard, Some(path)) if path.is_empty() => {
            return usage("--shards needs a file");
        }
        (AggregateMode::PerShard, Some(path)) => Some(PathBuf::from(path)),
        (AggregateMode::PerShard, None) => {
            return usage(
                "--aggregate=per-shard needs --shards FILE: the output of \
                 aws kinesis list-shards --stream-name NAME --shard-filter Type=AT_LATEST",
            );
        }
        (_, Some(_)) => return usage("--shards is for --aggregate=per-shard"),
        (_, None) => None,
    };
    let cap = limits.max_record_bytes();
    let max_bytes = match &raw.aggregate_max_bytes {
        None => cap,
        Some(text) => {
            let n = parse_size(text)
                .map_err(|why| UsageError(format!("--aggregate-max-bytes {text}: {why}")))?;
            if n == 0 {
                return usage(format!("--aggregate-max-bytes {text}: must be at least 1"));
            }
            if n > cap {
                return usage(format!(
                    "--aggregate-max-bytes {text}: above the record cap ({n} > {cap} bytes)"
                ));
            }
            n
        }
    };
    Ok(Some(AggregateOptions {
        mode,
        shards,
        max_bytes,
    }))
}

/// The options of `deaggregate`, which takes none of plan's.
fn finish_deaggregate(raw: Raw) -> Result<Options, UsageError> {
    if let Some(option) = &raw.plan_only {
        return usage(format!("{option} is not an option of deaggregate"));
    }
    if raw.partition_key.is_some() && !raw.raw {
        return usage("--partition-key is for --raw input (JSON records carry their own keys)");
    }
    let corrupt = match raw.corrupt.as_deref() {
        None | Some("error") => Corrupt::Error,
        Some("plain") => Corrupt::Plain,
        Some(other) => return usage(format!("--corrupt={other}: use error or plain")),
    };
    let inputs = if raw.files.is_empty() {
        vec![Input::Stdin]
    } else {
        raw.files
            .iter()
            .map(|file| {
                if file == "-" {
                    Input::Stdin
                } else {
                    Input::Path(PathBuf::from(file))
                }
            })
            .collect()
    };
    let limits = Profile::Kds.limits();
    Ok(Options {
        command: Command::Deaggregate,
        profile: Profile::Kds,
        limits,
        key: KeySpec::Hash,
        format: Format::Lines,
        pack: false,
        stop_on_refusal: false,
        quiet: false,
        batches: None,
        refusals: None,
        summary: SummaryFormat::Text,
        out: None,
        stream: None,
        inputs,
        aggregate: None,
        send: None,
        deaggregate: DeaggregateOptions {
            data_only: raw.data_only,
            raw: raw.raw,
            partition_key: raw.partition_key.unwrap_or_default(),
            corrupt,
        },
    })
}

/// Parses a record count. One beyond `u32` is kept as `u32::MAX`, so that the core's
/// check says which maximum it is above.
fn parse_count(text: &str) -> Result<u32, &'static str> {
    let digits = text.trim();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected a whole number of records");
    }
    Ok(digits.parse::<u32>().unwrap_or(u32::MAX))
}

/// Parses a byte count: `N`, `NB`, `NKiB` or `NMiB` (the suffix in any case).
fn parse_size(text: &str) -> Result<u32, &'static str> {
    let lower = text.trim().to_ascii_lowercase();
    let (digits, unit) = if let Some(digits) = lower.strip_suffix("kib") {
        (digits, 1024)
    } else if let Some(digits) = lower.strip_suffix("mib") {
        (digits, 1024 * 1024)
    } else if let Some(digits) = lower.strip_suffix('b') {
        (digits, 1)
    } else {
        (lower.as_str(), 1)
    };
    let digits = digits.trim_end();
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected a number of bytes, optionally followed by KiB or MiB (e.g. 4MiB)");
    }
    digits
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(unit))
        .and_then(|n| u32::try_from(n).ok())
        .ok_or("too large")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1048576"), Ok(1_048_576));
        assert_eq!(parse_size("4MiB"), Ok(4 << 20));
        assert_eq!(parse_size("1000kib"), Ok(1_024_000));
        assert_eq!(parse_size("12B"), Ok(12));
        assert!(parse_size("4MB").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999MiB").is_err());
    }

    #[test]
    fn counts() {
        assert_eq!(parse_count("2"), Ok(2));
        assert_eq!(parse_count(" 500 "), Ok(500));
        assert_eq!(parse_count("99999999999"), Ok(u32::MAX));
        assert!(parse_count("").is_err());
        assert!(parse_count("-1").is_err());
        assert!(parse_count("2k").is_err());
    }
}
