//! The one pass: read every input in chunks, split it with the core's line splitter, key
//! each line, push it into one `Accumulator`, and act on what the core answers: a request
//! is complete (log it, write it), a record is refused (report it), or it joined the
//! open request. The tool decides no size, limit or boundary itself.
//!
//! `send` reads the same way on its reader thread, but each record the core measures as
//! sendable goes to the sender (a [`SendSink`]) instead of the accumulator, one read's
//! records at a time; the producer engine decides the requests there.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};

use kinesis_batcher::aggregate::{Aggregate, encode};
use kinesis_batcher::cost::{key_units, record_size};
use kinesis_batcher::limits::MAX_KEY_UNITS;
use kinesis_batcher::lines::{Line, LinePacker, LineSource, LineStep, Lines};
use kinesis_batcher::shards::MAX_HASH_KEY_DIGITS;
use kinesis_batcher::{Accumulator, Batch, KeyUnit, Limits, Measure, Push, Reason, Record};

use crate::aggregate::{Item, Shard, ShardsError, Window, load_shards};

use crate::args::{Command, Input, KeySpec, Options, OutputTo, SummaryFormat};
use crate::emit::{RequestWriter, push_json_string};
use crate::input::{self, ChunkBuffer};
use crate::keys::{KeyError, KeyMaker};
use crate::progress::Progress;
use crate::report::{
    AggregationSummary, FileStats, Location, Refusals, SendSummary, Summary, Why, Written,
};
use crate::send::SendSink;

/// The exit codes.
pub mod exit {
    /// Finished; refusals, if any, are in the summary.
    pub const OK: u8 = 0;
    /// Stopped by `--stop-on-refusal`.
    pub const STOPPED: u8 = 1;
    /// Usage error: bad option or value, invalid limits.
    pub const USAGE: u8 = 2;
    /// Input or output error.
    pub const IO: u8 = 3;
    /// `send`: some records could not be stored.
    pub const NOT_STORED: u8 = 4;
}

/// An error that ends the run at once: an output that cannot be written.
pub struct Fatal(pub String);

/// Whether to go on reading.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Flow {
    Go,
    Stop,
}

/// Where the open request's lines are.
#[derive(Clone, Copy)]
struct Span {
    first: Location,
    last_input: usize,
    last_line: u64,
    /// With `--aggregate`: user records in the request, and the refusals counted when
    /// its first and its last user record were read.
    users: u64,
    refused_first: u64,
    refused_last: u64,
}

/// What feeding bytes to a line source came to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fed {
    /// It needs more bytes: this many of those given are consumed.
    More(usize),
    /// Every line has been planned.
    End,
    /// A refusal stopped the run (`--stop-on-refusal`).
    Stop,
}

/// A line source of the core, and how many lines it has started, empty ones included.
trait Source: LineSource {
    fn seen(&self) -> u64;
}

impl Source for Lines {
    fn seen(&self) -> u64 {
        self.lines_seen()
    }
}

impl Source for LinePacker {
    fn seen(&self) -> u64 {
        self.lines_seen()
    }
}

/// Opens an input for reading: [`input::open`], or a stand-in in tests.
type Opener<'a> = &'a mut dyn FnMut(&Input) -> io::Result<Box<dyn Read>>;

/// A JSON-lines output (`--batches`, `--refusals`), opened when the first input is read:
/// a run that reads nothing creates no file and truncates no earlier one.
struct JsonLines {
    /// The option, for messages.
    option: &'static str,
    to: OutputTo,
    out: Option<BufWriter<Box<dyn Write + Send>>>,
}

impl JsonLines {
    fn new(option: &'static str, to: &OutputTo) -> JsonLines {
        JsonLines {
            option,
            to: to.clone(),
            out: None,
        }
    }

    fn fail(&self, error: &io::Error) -> Fatal {
        let name = match &self.to {
            OutputTo::Stdout => "stdout".into(),
            OutputTo::Path(path) => path.display().to_string(),
        };
        output_error(&format!("{} {name}", self.option), error)
    }

    /// Creates the file, if not done yet.
    fn open(&mut self) -> Result<(), Fatal> {
        if self.out.is_none() {
            let out: Box<dyn Write + Send> = match &self.to {
                OutputTo::Stdout => Box::new(io::stdout()),
                OutputTo::Path(path) => Box::new(File::create(path).map_err(|e| self.fail(&e))?),
            };
            self.out = Some(BufWriter::new(out));
        }
        Ok(())
    }

    /// Writes one line, `\n` included.
    fn write(&mut self, line: &[u8]) -> Result<(), Fatal> {
        self.open()?;
        let written = match &mut self.out {
            Some(out) => out.write_all(line),
            None => Ok(()),
        };
        written.map_err(|e| self.fail(&e))
    }

    /// Flushes what is buffered, if the file was ever opened.
    fn flush(&mut self) -> Result<(), Fatal> {
        let flushed = match &mut self.out {
            Some(out) => out.flush(),
            None => Ok(()),
        };
        flushed.map_err(|e| self.fail(&e))
    }
}

/// Runs a plan, emit or demo command and returns its exit code.
pub fn run(options: Options) -> u8 {
    run_with(&options, &mut input::open, None)
}

/// The shards of `--shards`, read before anything else; an error is printed and its
/// exit code returned.
pub fn read_shards(options: &Options) -> Result<Vec<Shard>, u8> {
    let Some(path) = options
        .aggregate
        .as_ref()
        .and_then(|agg| agg.shards.as_ref())
    else {
        return Ok(Vec::new());
    };
    load_shards(path).map_err(|error| match error {
        ShardsError::Io(error) => {
            print_error(&format!(
                "--shards {}: {}",
                path.display(),
                describe(&error)
            ));
            exit::IO
        }
        ShardsError::Bad(why) => {
            print_error(&format!("--shards {}: {why}", path.display()));
            exit::USAGE
        }
    })
}

/// [`run`], with the inputs opened by `open`, and the summary written to `summary` if
/// given (else to stdout, or stderr when `--batches -` has stdout).
fn run_with(options: &Options, open: Opener<'_>, summary: Option<&mut dyn Write>) -> u8 {
    let shards = match read_shards(options) {
        Ok(shards) => shards,
        Err(code) => return code,
    };
    match Run::new(options, &shards).and_then(|run| run.go(options, open, summary)) {
        Ok(code) => code,
        Err(Fatal(message)) => {
            if !message.is_empty() {
                print_error(&message);
            }
            exit::IO
        }
    }
}

/// Prints an error on stderr after the program's name, as every error is printed, so
/// that it can be told apart from the refusal messages (`FILE:LINE: ...`) and from other
/// programs' messages in a pipeline.
pub fn print_error(message: &str) {
    eprintln!("kinesis-batcher: {message}");
}

/// An I/O error's text without Rust's " (os error N)" suffix, as other tools print it:
/// "No such file or directory".
pub fn describe(error: &io::Error) -> String {
    let text = error.to_string();
    match error.raw_os_error() {
        Some(code) => text
            .strip_suffix(&format!(" (os error {code})"))
            .map_or(text.clone(), str::to_owned),
        None => text,
    }
}

/// Everything but the key maker, so that a key borrowed from it can be pushed.
struct State {
    limits: Limits,
    /// The same limits without keys: measures a line's data alone.
    data_only: Limits,
    acc: Accumulator,
    stop_on_refusal: bool,
    field: Option<String>,
    names: Vec<String>,
    /// What became of each input, for `--summary json`.
    files: Vec<FileStats>,
    open: Option<Span>,
    refusals: Refusals,
    batch_log: Option<JsonLines>,
    /// `--refusals`: one JSON line per refused line.
    refusal_log: Option<JsonLines>,
    emit: Option<RequestWriter>,
    /// `--aggregate`: the records not yet aggregated.
    window: Option<Window>,
    /// An aggregate's data, encoded for `emit`.
    encoded: Vec<u8>,
    progress: Progress,
    /// `send`: where the records the core measured as sendable go.
    send: Option<SendSink>,
    records: u64,
    lines: u64,
    bytes_read: u64,
    input_errors: u64,
    /// Inputs that gave at least their first read (bytes, or their end).
    inputs_read: u64,
    stopped_at: Option<Location>,
}

/// A reading pass and what it found.
pub struct Run {
    keys: KeyMaker,
    state: State,
}

impl Run {
    fn new(options: &Options, shards: &[Shard]) -> Result<Run, Fatal> {
        let progress = Progress::new(input::total_size(&options.inputs));
        Run::with_sink(options, shards, progress, None)
    }

    /// A pass for `send`: every record the core measures as sendable goes to `sink`,
    /// and messages go through the sender's `progress`.
    pub fn for_send(
        options: &Options,
        shards: &[Shard],
        progress: Progress,
        sink: SendSink,
    ) -> Result<Run, Fatal> {
        Run::with_sink(options, shards, progress, Some(sink))
    }

    fn with_sink(
        options: &Options,
        shards: &[Shard],
        progress: Progress,
        send: Option<SendSink>,
    ) -> Result<Run, Fatal> {
        let limits = options.limits;
        let batch_log = options
            .batches
            .as_ref()
            .map(|to| JsonLines::new("--batches", to));
        let refusal_log = options
            .refusals
            .as_ref()
            .map(|to| JsonLines::new("--refusals", to));
        let emit = match (&options.out, &options.stream) {
            (Some(dir), Some(stream)) => {
                Some(RequestWriter::create(dir, stream, &limits).map_err(|e| {
                    Fatal(format!(
                        "--out {}: {}",
                        e.path.display(),
                        describe(&e.error)
                    ))
                })?)
            }
            _ => None,
        };
        let keys = KeyMaker::new(options.key.clone(), options.format);
        Ok(Run {
            state: State {
                limits,
                data_only: limits.without_partition_keys(),
                acc: Accumulator::new(limits),
                stop_on_refusal: options.stop_on_refusal,
                field: keys.field().map(str::to_owned),
                names: options.inputs.iter().map(input::display_name).collect(),
                files: vec![FileStats::default(); options.inputs.len()],
                open: None,
                refusals: Refusals::new(options.quiet),
                batch_log,
                refusal_log,
                emit,
                window: options
                    .aggregate
                    .as_ref()
                    .map(|agg| Window::new(limits, agg, shards)),
                encoded: Vec::new(),
                progress,
                send,
                records: 0,
                lines: 0,
                bytes_read: 0,
                input_errors: 0,
                inputs_read: 0,
                stopped_at: None,
            },
            keys,
        })
    }

    fn go(
        mut self,
        options: &Options,
        open: Opener<'_>,
        summary_to: Option<&mut dyn Write>,
    ) -> Result<u8, Fatal> {
        self.read_all(options, open)?;
        self.finish(options, summary_to, None)
    }

    /// Reads every input (or up to a stop), then plans or hands on what is left: the
    /// last request is closed, the logs flushed; with `send`, the sink is dropped, which
    /// tells the sender that the input has ended.
    pub fn read_all(&mut self, options: &Options, open: Opener<'_>) -> Result<(), Fatal> {
        let outcome = self.read_inputs(options, open);
        // Whatever happened, the sender must learn that no more records come.
        self.state.send = None;
        outcome
    }

    fn read_inputs(&mut self, options: &Options, open: Opener<'_>) -> Result<(), Fatal> {
        let limits = options.limits;
        let record_cap = limits.max_record_bytes() as usize;
        // The window the core's protocol needs to always make progress.
        let need = record_cap + 2;
        let mut chunk = ChunkBuffer::new(need);
        if self.state.send.is_some() {
            // Each line is handled when it arrives (`tail -F`), not when 1 MiB has.
            chunk = chunk.eager();
        }
        let key_len = match &options.key {
            KeySpec::Constant(key) => u32::try_from(key.len()).unwrap_or(u32::MAX),
            _ => 0,
        };
        for (index, input) in options.inputs.iter().enumerate() {
            self.state.files[index].reached = true;
            let flow = match open(input) {
                Err(error) => self.state.input_error(index, &error, 0),
                Ok(mut reader) if options.pack => {
                    let packer = LinePacker::new(&limits, key_len);
                    self.read(index, &mut *reader, packer, &mut chunk)?
                }
                Ok(mut reader) => {
                    self.read(index, &mut *reader, Lines::new(&limits), &mut chunk)?
                }
            };
            if flow == Flow::Stop {
                break;
            }
        }
        let state = &mut self.state;
        state.plan_window(true)?;
        state.send_out()?;
        if let Some(batch) = state.acc.flush() {
            let span = state.open.take();
            state.close(&batch, span)?;
        }
        if state.send.is_none() {
            state.progress.clear();
        }
        for log in [&mut state.batch_log, &mut state.refusal_log]
            .into_iter()
            .flatten()
        {
            log.flush()?;
        }
        Ok(())
    }

    /// Counts a refusal found after the reading (by the sender).
    pub fn count_refusal(&mut self, why: Why, at: Location) {
        self.state.refusals.add(why, at);
    }

    /// Whether nothing could be read at all (every input failed): no summary then.
    pub fn nothing_read(&self) -> bool {
        self.state.inputs_read == 0 && self.state.input_errors > 0
    }

    /// Prints the summary and returns the exit code. `send`: what the sender did, for
    /// `send` (its summary goes to stderr, unless `--quiet`; `--summary json` to stdout).
    pub fn finish(
        self,
        options: &Options,
        summary_to: Option<&mut dyn Write>,
        send: Option<SendSummary>,
    ) -> Result<u8, Fatal> {
        let limits = options.limits;
        let state = &self.state;
        if state.inputs_read == 0 && state.input_errors > 0 {
            // Nothing could be read: a summary of zeros would only bury the errors above.
            return Ok(send.map_or(exit::IO, |send| exit::IO.max(send.exit_floor())));
        }
        let stats = match &send {
            Some(send) => send.stats(),
            None => *state.acc.stats(),
        };
        for reason in Reason::ALL {
            // With --aggregate the core's refusals are the tool's measures, not the
            // accumulator's (which sees aggregates).
            debug_assert!(
                state.window.is_some()
                    || send.is_some()
                    || state.refusals.count(Why::Core(reason)) == stats.refused_for(reason)
            );
        }
        let not_shown = state.refusals.not_shown();
        if not_shown > 0 {
            eprintln!(
                "kinesis-batcher: {not_shown} more refusals not shown (the summary counts them all)"
            );
        }
        // The highest code that applies.
        let exit_code = if send.as_ref().is_some_and(|send| send.not_stored() > 0) {
            exit::NOT_STORED
        } else if state.input_errors > 0 {
            exit::IO
        } else if state.stopped_at.is_some() {
            exit::STOPPED
        } else {
            exit::OK
        };
        // send stopped by a signal: 128 + its number, above the rest.
        let exit_code = send
            .as_ref()
            .map_or(exit_code, |send| exit_code.max(send.exit_floor()));
        let summary = Summary {
            command: match options.command {
                Command::Emit => "emit",
                Command::Demo => "demo",
                Command::Send => "send",
                _ => "plan",
            },
            profile: options.profile,
            limits,
            keys: describe_keys(&options.key, limits.key_unit()),
            key: &options.key,
            names: &state.names,
            files: &state.files,
            input_errors: state.input_errors,
            bytes_read: state.bytes_read,
            lines: state.lines,
            records: state.records,
            packed: options.pack,
            stats,
            aggregation: state.window.as_ref().map(|window| AggregationSummary {
                mode: options.aggregate.as_ref().map_or("", |agg| agg.mode.name()),
                max_bytes: window.max_bytes(),
                shards: options
                    .aggregate
                    .as_ref()
                    .and_then(|agg| agg.shards.as_ref())
                    .map(|path| (window.shard_count(), path.display().to_string())),
                counts: window.counts,
            }),
            refusals: &state.refusals,
            stopped_at: state.stopped_at,
            written: state.emit.as_ref().map(|emit| {
                let (files, bytes) = emit.written();
                Written {
                    dir: emit.dir(),
                    dir_exists: emit.dir_exists(),
                    files,
                    bytes,
                }
            }),
            send: send.as_ref(),
            exit_code,
        };
        let write = |out: &mut dyn Write| match options.summary {
            SummaryFormat::Text => summary.write(out),
            SummaryFormat::Json => summary.write_json(out),
        };
        let text_to_stderr = send.is_some() && options.summary == SummaryFormat::Text;
        let (written, to) = if let Some(out) = summary_to {
            (write(out), "summary")
        } else if text_to_stderr && options.quiet {
            (Ok(()), "stderr")
        } else if text_to_stderr
            || options.batches == Some(OutputTo::Stdout)
            || options.refusals == Some(OutputTo::Stdout)
        {
            (write(&mut io::stderr().lock()), "stderr")
        } else {
            (write(&mut io::stdout().lock()), "stdout")
        };
        written.map_err(|e| output_error(to, &e))?;
        Ok(exit_code)
    }

    /// Reads one input to its end (or to a stop), feeding every line to the core.
    ///
    /// On a read error, the whole lines already read are still planned (a packed run
    /// open at the error is closed, as at the end of an input); the bytes after the last
    /// newline, a line cut short, are dropped and the message says so: a truncated line
    /// must not be sent as a record. A refusal among those lines that stops the run
    /// (`--stop-on-refusal`) stops it there, before the error.
    fn read<S: Source>(
        &mut self,
        input: usize,
        reader: &mut dyn Read,
        mut source: S,
        chunk: &mut ChunkBuffer,
    ) -> Result<Flow, Fatal> {
        chunk.reset();
        let mut first = true;
        let flow = loop {
            match chunk.refill(reader) {
                Ok(n) => {
                    if first {
                        first = false;
                        self.state.input_read()?;
                    }
                    self.state.bytes_read += n as u64;
                    self.state.files[input].bytes += n as u64;
                }
                Err(error) => {
                    let data = chunk.data();
                    let whole = data
                        .iter()
                        .rposition(|&b| b == b'\n')
                        .map_or(0, |last| last + 1);
                    if self.feed(input, &mut source, &data[..whole], true)? == Fed::Stop {
                        break Flow::Stop;
                    }
                    break self.state.input_error(input, &error, data.len() - whole);
                }
            }
            let fed = self.feed(input, &mut source, chunk.data(), chunk.eof())?;
            if fed != Fed::Stop && self.state.end_of_read()? == Flow::Stop {
                break Flow::Stop;
            }
            match fed {
                Fed::More(consumed) => chunk.consume(consumed),
                Fed::End => break Flow::Go,
                Fed::Stop => break Flow::Stop,
            }
            let state = &mut self.state;
            if state.send.is_none() {
                state
                    .progress
                    .tick(state.bytes_read, state.records, state.acc.stats().batches);
            }
        };
        self.state.lines += source.seen();
        self.state.files[input].lines = source.seen();
        Ok(flow)
    }

    /// Feeds `data` (and `eof`) to `source`, one line after another, until it needs more
    /// bytes, has no more lines, or a refusal stops the run.
    fn feed<S: Source>(
        &mut self,
        input: usize,
        source: &mut S,
        data: &[u8],
        eof: bool,
    ) -> Result<Fed, Fatal> {
        let mut done = 0;
        loop {
            let (step, consumed) = source.next_line(&data[done..], eof);
            match step {
                LineStep::Line(line) => {
                    let flow = self.line(input, &line)?;
                    done += consumed;
                    if flow == Flow::Stop {
                        return Ok(Fed::Stop);
                    }
                }
                LineStep::NeedMore if !eof => return Ok(Fed::More(done + consumed)),
                LineStep::NeedMore | LineStep::End => return Ok(Fed::End),
            }
        }
    }

    /// One line (or packed run of lines): its key, then the core's answer.
    fn line(&mut self, input: usize, line: &Line<'_>) -> Result<Flow, Fatal> {
        self.state.records += 1;
        // A line over the record cap is refused as too large whatever it holds, so it is
        // not parsed: the core measures its data alone to say so.
        let over_cap = !line.is_whole()
            || Record::new(line.bytes, b"")
                .measure(&self.state.data_only)
                .is_err();
        let stand_in = over_cap && self.keys.is_stand_in();
        let key = if over_cap {
            self.keys.unparsed_key(line.bytes)
        } else {
            match self.keys.key(line.bytes) {
                Ok(key) => key,
                Err(KeyError { why, detail }) => {
                    // The core takes the line's index without measuring it: a request
                    // spanning it counts it in `Batch::refused`.
                    self.state.acc.skip();
                    return self.state.refuse(input, line, why, |_| detail);
                }
            }
        };
        self.state.push(input, line, key, stand_in)
    }
}

impl State {
    /// Pushes an accepted-so-far line into the accumulator and acts on the answer.
    fn push(
        &mut self,
        input: usize,
        line: &Line<'_>,
        key: &[u8],
        stand_in: bool,
    ) -> Result<Flow, Fatal> {
        let at = (input, line.number);
        if self.window.is_some() {
            return self.push_user_record(input, line, key, stand_in);
        }
        if self.send.is_some() {
            let record = Record::new(line.bytes, key);
            if let Err(reason) = measure_line(&record, line, &self.limits) {
                return self.refuse(input, line, Why::Core(reason), |state| {
                    state.detail(reason, line, key, stand_in)
                });
            }
            let full = self.send.as_mut().is_some_and(|sink| {
                sink.add(&record, at, (input, line.last_number), 1);
                sink.is_full()
            });
            return if full { self.send_out() } else { Ok(Flow::Go) };
        }
        match self.acc.push(&Record::new(line.bytes, key)) {
            Push::Added => {
                match &mut self.open {
                    Some(span) => {
                        span.last_input = input;
                        span.last_line = line.last_number;
                    }
                    None => self.open = Some(Span::new(at, line.last_number)),
                }
                if let Some(emit) = &mut self.emit {
                    emit.push(line.bytes, key);
                }
                Ok(Flow::Go)
            }
            Push::SendFirst(batch) => {
                let span = self.open.take();
                self.close(&batch, span)?;
                self.open = Some(Span::new(at, line.last_number));
                if let Some(emit) = &mut self.emit {
                    emit.push(line.bytes, key);
                }
                Ok(Flow::Go)
            }
            Push::Refused(reason) => self.refuse(input, line, Why::Core(reason), |state| {
                state.detail(reason, line, key, stand_in)
            }),
        }
    }

    /// `--aggregate`: measures the user record with the core, then refuses it or adds it
    /// to the window, which is planned when it holds enough.
    fn push_user_record(
        &mut self,
        input: usize,
        line: &Line<'_>,
        key: &[u8],
        stand_in: bool,
    ) -> Result<Flow, Fatal> {
        let record = Record::new(line.bytes, key);
        if let Err(reason) = measure_line(&record, line, &self.limits) {
            return self.refuse(input, line, Why::Core(reason), |state| {
                state.detail(reason, line, key, stand_in)
            });
        }
        let item = Window::item(
            (input, line.number),
            line.last_number,
            self.refusals.total(),
        );
        let full = self
            .window
            .as_mut()
            .is_some_and(|window| window.push(line.bytes, key, item));
        if full {
            self.plan_window(false)?;
        }
        Ok(Flow::Go)
    }

    /// Plans the window with the core and pushes its final aggregates (all of them when
    /// `last`) into the requests.
    fn plan_window(&mut self, last: bool) -> Result<(), Fatal> {
        let Some(mut window) = self.window.take() else {
            return Ok(());
        };
        let names = self.names.clone();
        let planned = window.plan(
            last,
            |aggregate, records, items| self.push_aggregate(aggregate, records, items),
            |item| {
                Fatal(format!(
                    "internal error: the core refused {}:{} after measuring it as one to send",
                    names[item.at.0], item.at.1
                ))
            },
        );
        self.window = Some(window);
        planned
    }

    /// One Kinesis record made by the aggregation: into the open request, or the next.
    fn push_aggregate(
        &mut self,
        aggregate: &Aggregate,
        records: &[Record<'_>],
        items: &[Item],
    ) -> Result<(), Fatal> {
        let first = items[aggregate.start];
        let last = items[aggregate.end - 1];
        let users = aggregate.records() as u64;
        if let Some(sink) = &mut self.send {
            let mut digits = [0; MAX_HASH_KEY_DIGITS];
            let hash_key = aggregate.explicit_hash_key(records, &mut digits);
            let key = aggregate.partition_key(records);
            sink.add_encoded(
                aggregate.data_len as usize,
                |buffer| encode(records, aggregate, buffer).map(|_| ()),
                key,
                hash_key,
                first.at,
                (last.at.0, last.last_line),
                aggregate.records() as u32,
            )
            .map_err(|error| {
                Fatal(format!(
                    "internal error: the aggregate of {}:{} cannot be encoded: {error}",
                    self.names[first.at.0], first.at.1
                ))
            })?;
            return Ok(());
        }
        match self.acc.push(aggregate) {
            Push::Added => match &mut self.open {
                Some(span) => {
                    span.last_input = last.at.0;
                    span.last_line = last.last_line;
                    span.users += users;
                    span.refused_last = last.refused_before;
                }
                None => self.open = Some(Span::of_aggregate(&first, &last, users)),
            },
            Push::SendFirst(batch) => {
                let span = self.open.take();
                self.close(&batch, span)?;
                self.open = Some(Span::of_aggregate(&first, &last, users));
            }
            Push::Refused(reason) => {
                return Err(Fatal(format!(
                    "internal error: the planner refused an aggregate of {}:{} ({reason})",
                    self.names[first.at.0], first.at.1
                )));
            }
        }
        if let Some(emit) = &mut self.emit {
            self.encoded.clear();
            self.encoded.resize(aggregate.data_len as usize, 0);
            encode(records, aggregate, &mut self.encoded).map_err(|error| {
                Fatal(format!(
                    "internal error: the aggregate of {}:{} cannot be encoded: {error}",
                    self.names[first.at.0], first.at.1
                ))
            })?;
            let mut digits = [0; MAX_HASH_KEY_DIGITS];
            let hash_key = aggregate.explicit_hash_key(records, &mut digits);
            emit.push_with_hash_key(&self.encoded, aggregate.partition_key(records), hash_key);
        }
        Ok(())
    }

    /// Counts a refusal, logs it (`--refusals`), reports it, and stops if asked to.
    fn refuse(
        &mut self,
        input: usize,
        line: &Line<'_>,
        why: Why,
        detail: impl FnOnce(&State) -> String,
    ) -> Result<Flow, Fatal> {
        let at = (input, line.number);
        let print = self.refusals.add(why, at);
        if !print && !self.stop_on_refusal && self.refusal_log.is_none() {
            // The detail is only worked out for someone who will read it.
            return Ok(Flow::Go);
        }
        let detail = detail(self);
        if let Some(log) = &mut self.refusal_log {
            let mut json = Vec::with_capacity(128);
            json.extend_from_slice(b"{\"file\":");
            push_json_string(&mut json, self.names[input].as_bytes());
            // A packed record is refused only when it is one line (the packer never
            // joins lines past the cap, and its key was checked up front): its line and
            // offset are that line's.
            json.extend_from_slice(
                format!(
                    ",\"line\":{},\"offset\":{},\"reason\":\"{}\",\"detail\":",
                    line.number,
                    line.offset,
                    why.id()
                )
                .as_bytes(),
            );
            push_json_string(&mut json, detail.as_bytes());
            json.extend_from_slice(b"}\n");
            log.write(&json)?;
        }
        if !print && !self.stop_on_refusal {
            return Ok(Flow::Go);
        }
        let message = if detail.is_empty() {
            format!("{}:{}: {}", self.names[at.0], at.1, why.label())
        } else {
            format!("{}:{}: {}: {detail}", self.names[at.0], at.1, why.label())
        };
        if self.stop_on_refusal {
            self.progress.eprint(&format!(
                "kinesis-batcher: stopped at {message} (--stop-on-refusal)"
            ));
            self.stopped_at = Some(at);
            return Ok(Flow::Stop);
        }
        self.progress.eprint(&message);
        Ok(Flow::Go)
    }

    /// The detail of a refusal by the core, from the core's own measures.
    fn detail(&self, reason: Reason, line: &Line<'_>, key: &[u8], stand_in: bool) -> String {
        let limits = &self.limits;
        let field = self
            .field
            .as_deref()
            .map(|name| format!("field \"{name}\": "));
        let field = field.unwrap_or_default();
        match reason {
            Reason::RecordTooLarge => {
                let cap = limits.max_record_bytes();
                if !line.is_whole() {
                    // Refused before its end arrived: `bytes` is what was seen, and a '\r'
                    // last may be the start of its "\r\n".
                    let seen = line.bytes.len() - usize::from(line.bytes.ends_with(b"\r"));
                    format!("line of at least {seen} bytes, cap {cap}")
                } else if stand_in {
                    format!("{} bytes of data alone, cap {cap}", line.len)
                } else if limits.partition_keys() {
                    let size = record_size(limits, line.len, key.len() as u64, 0);
                    format!("{size} bytes with its key, cap {cap}")
                } else {
                    format!("{} bytes, cap {cap}", line.len)
                }
            }
            Reason::KeyEmpty => match &self.field {
                Some(name) => format!("field \"{name}\" is an empty string"),
                None => String::new(),
            },
            Reason::KeyTooLong => {
                let unit = limits.key_unit();
                let units = std::str::from_utf8(key).map_or(key.len(), |key| key_units(key, unit));
                format!("{field}{units} {}, max {MAX_KEY_UNITS}", unit_name(unit))
            }
            // A key field is read from valid JSON, so its key is UTF-8 unless a `\u` escape
            // in it is half of a surrogate pair.
            Reason::KeyNotUtf8 => match &self.field {
                Some(name) => format!("field \"{name}\" holds an unpaired UTF-16 surrogate"),
                None => String::new(),
            },
            Reason::HashKeyInvalid => field.trim_end_matches(": ").to_owned(),
        }
    }

    /// A request is complete: log it and write it.
    fn close(&mut self, batch: &Batch, span: Option<Span>) -> Result<(), Fatal> {
        let Some(span) = span else {
            return Err(Fatal(
                "internal error: a request closed with no line recorded".into(),
            ));
        };
        let number = self.acc.stats().batches;
        if let Some(log) = &mut self.batch_log {
            let mut json = Vec::with_capacity(160);
            json.extend_from_slice(format!("{{\"batch\":{number},\"file\":").as_bytes());
            push_json_string(&mut json, self.names[span.first.0].as_bytes());
            json.extend_from_slice(format!(",\"first_line\":{}", span.first.1).as_bytes());
            if span.last_input != span.first.0 {
                json.extend_from_slice(b",\"last_file\":");
                push_json_string(&mut json, self.names[span.last_input].as_bytes());
            }
            let (users, refused_inside) = if self.window.is_some() {
                (
                    format!(",\"user_records\":{}", span.users),
                    span.refused_last - span.refused_first,
                )
            } else {
                (String::new(), batch.refused() as u64)
            };
            json.extend_from_slice(
                format!(
                    ",\"last_line\":{},\"records\":{}{users},\"bytes\":{},\"refused_inside\":{}}}\n",
                    span.last_line, batch.records, batch.bytes, refused_inside,
                )
                .as_bytes(),
            );
            log.write(&json)?;
        }
        if let Some(emit) = &mut self.emit {
            emit.finish(batch)
                .map_err(|e| output_error(&format!("--out {}", e.path.display()), &e.error))?;
        }
        Ok(())
    }

    /// `send`: one read's lines are in. With `--aggregate` they are aggregated now (an
    /// aggregate never waits for a later read: a slow input's lines are not held back),
    /// and the records go to the sender.
    fn end_of_read(&mut self) -> Result<Flow, Fatal> {
        if self.send.is_none() {
            return Ok(Flow::Go);
        }
        self.plan_window(true)?;
        self.send_out()
    }

    /// `send`: hands the records gathered to the sender, waiting while it has no room
    /// (backpressure). Stops the reading if the sender has ended.
    fn send_out(&mut self) -> Result<Flow, Fatal> {
        let (bytes_read, records) = (self.bytes_read, self.records);
        let closed = match &mut self.send {
            Some(sink) => sink.flush(bytes_read, records).is_err(),
            None => false,
        };
        Ok(if closed { Flow::Stop } else { Flow::Go })
    }

    /// An input gave its first read: the outputs opened lazily are opened now, before
    /// anything is written to them.
    fn input_read(&mut self) -> Result<(), Fatal> {
        self.inputs_read += 1;
        for log in [&mut self.batch_log, &mut self.refusal_log]
            .into_iter()
            .flatten()
        {
            log.open()?;
        }
        Ok(())
    }

    /// An input that cannot be opened or read: reported, and the run goes on with the
    /// next one (exit code 3 at the end), unless `--stop-on-refusal` stops it at once.
    /// `dropped`: the bytes of an unfinished last line read before the error.
    fn input_error(&mut self, input: usize, error: &io::Error, dropped: usize) -> Flow {
        let detail = read_error_detail(error, dropped);
        self.progress
            .eprint(&format!("kinesis-batcher: {}: {detail}", self.names[input]));
        self.files[input].error = Some(detail);
        self.input_errors += 1;
        if self.stop_on_refusal {
            Flow::Stop
        } else {
            Flow::Go
        }
    }
}

impl Span {
    fn new(first: Location, last_line: u64) -> Span {
        Span {
            first,
            last_input: first.0,
            last_line,
            users: 0,
            refused_first: 0,
            refused_last: 0,
        }
    }

    /// The span of a request's first aggregate, of user records `first` to `last`.
    fn of_aggregate(first: &Item, last: &Item, users: u64) -> Span {
        Span {
            first: first.at,
            last_input: last.at.0,
            last_line: last.last_line,
            users,
            refused_first: first.refused_before,
            refused_last: last.refused_before,
        }
    }
}

/// The core's measure of a line's record; a line cut short at the cap is too large,
/// whatever the bytes seen.
fn measure_line(record: &Record<'_>, line: &Line<'_>, limits: &Limits) -> Result<u32, Reason> {
    match record.measure(limits) {
        Ok(_) if !line.is_whole() => Err(Reason::RecordTooLarge),
        measured => measured,
    }
}

/// A read error, and the bytes of a line cut short by it, if any (printed after the
/// input's name).
fn read_error_detail(error: &io::Error, dropped: usize) -> String {
    let error = describe(error);
    match dropped {
        0 => error,
        1 => format!("{error}; 1 byte of an unfinished last line dropped"),
        n => format!("{error}; {n} bytes of an unfinished last line dropped"),
    }
}

fn output_error(what: &str, error: &io::Error) -> Fatal {
    if error.kind() == io::ErrorKind::BrokenPipe {
        // The reader went away (`| head`): nothing more to say.
        return Fatal(String::new());
    }
    Fatal(format!("{what}: {}", describe(error)))
}

fn unit_name(unit: KeyUnit) -> &'static str {
    match unit {
        KeyUnit::CodePoints => "code points",
        KeyUnit::Utf16Units => "UTF-16 units",
        KeyUnit::Utf8Bytes => "UTF-8 bytes",
    }
}

fn describe_keys(key: &KeySpec, unit: KeyUnit) -> String {
    let source = match key {
        KeySpec::Hash => "FNV-1a 64 hash of each line, 16 hex digits".to_owned(),
        KeySpec::Constant(key) => format!("the same key for every record: {key:?}"),
        KeySpec::Field(name) => format!("the JSON field \"{name}\" of each line"),
        KeySpec::None => return "none (Firehose records have no partition key)".into(),
    };
    format!("{source}; lengths counted in {}", unit_name(unit))
}

#[cfg(test)]
mod tests {
    use std::ffi::OsString;
    use std::fs;
    use std::path::PathBuf;

    use super::*;
    use crate::args;

    /// Yields `bytes` in one read, then fails on every read.
    struct FailsAfter(Option<&'static [u8]>);

    impl Read for FailsAfter {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            match self.0.take() {
                Some(bytes) => {
                    buf[..bytes.len()].copy_from_slice(bytes);
                    Ok(bytes.len())
                }
                None => Err(io::Error::other("device gone")),
            }
        }
    }

    /// Runs `args` with `broken.txt` yielding "a\nb\nc" then an error, and `good.txt`
    /// holding "d\n". Returns the exit code, the summary, and every request's `Data`.
    fn run_broken(name: &str, args: &[&str]) -> (u8, String, Vec<Vec<String>>) {
        let dir =
            std::env::temp_dir().join(format!("kinesis-batcher-run-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let out = dir.to_str().expect("UTF-8 temp path");
        let mut line = vec!["emit", "--out", out, "--stream", "s", "--quiet"];
        line.extend_from_slice(args);
        let options = args::parse(line.into_iter().map(OsString::from).collect(), false)
            .expect("valid options");
        let mut open = |input: &Input| -> io::Result<Box<dyn Read>> {
            match input {
                Input::Path(path) if path.ends_with("broken.txt") => {
                    Ok(Box::new(FailsAfter(Some(b"a\nb\nc"))))
                }
                Input::Path(path) if path.ends_with("good.txt") => Ok(Box::new(&b"d\n"[..])),
                _ => Err(io::Error::other("no such test input")),
            }
        };
        let mut summary = Vec::new();
        let code = run_with(&options, &mut open, Some(&mut summary));
        // No request written: no directory (it is created with the first request).
        let mut names: Vec<PathBuf> = match fs::read_dir(&dir) {
            Ok(entries) => entries.map(|entry| entry.expect("entry").path()).collect(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("read --out: {e}"),
        };
        names.sort();
        let requests = names
            .iter()
            .map(|path| {
                let body: serde_json::Value =
                    serde_json::from_slice(&fs::read(path).expect("read request")).expect("JSON");
                body["Records"]
                    .as_array()
                    .expect("Records")
                    .iter()
                    .map(|record| record["Data"].as_str().expect("Data").to_owned())
                    .collect()
            })
            .collect();
        let _ = fs::remove_dir_all(&dir);
        (code, String::from_utf8(summary).expect("UTF-8"), requests)
    }

    #[test]
    fn whole_lines_read_before_a_read_error_are_planned() {
        // "a" and "b" are planned and written ("YQ==", "Yg=="), "c" (cut short) is not;
        // the next input is still read, and the run exits with 3.
        let (code, summary, requests) = run_broken("lines", &["--key", "k", "broken.txt"]);
        assert_eq!(code, exit::IO, "{summary}");
        assert_eq!(requests, [["YQ==", "Yg=="]]);
        assert!(
            summary.contains("1 input, 5 bytes (5 B), 2 lines, 1 unreadable"),
            "{summary}"
        );
        let (code, summary, requests) =
            run_broken("next", &["--key", "k", "broken.txt", "good.txt"]);
        assert_eq!(code, exit::IO, "{summary}");
        assert_eq!(requests, [["YQ==", "Yg==", "ZA=="]]);
        assert!(summary.contains("3 lines, 1 unreadable"), "{summary}");

        // Packed: the open run "a\nb" is closed at the error, as at the end of an input.
        let (code, summary, requests) = run_broken("pack", &["--pack", "--key", "k", "broken.txt"]);
        assert_eq!(code, exit::IO, "{summary}");
        assert_eq!(requests, [["YQpi"]]);
        assert!(summary.contains("2 lines, 1 unreadable"), "{summary}");

        // A refusal among those lines stops the run there, before the error.
        let (code, summary, requests) = run_broken(
            "stop",
            &[
                "--key",
                "k",
                "--max-record-size",
                "1",
                "--stop-on-refusal",
                "broken.txt",
            ],
        );
        assert_eq!(code, exit::STOPPED, "{summary}");
        assert!(requests.is_empty());
        assert!(
            summary.contains("stopped      at broken.txt:1"),
            "{summary}"
        );
    }

    #[test]
    fn the_tools_own_refusals_take_an_index_in_the_core() {
        let line = ["plan", "--quiet", "--key-field", "d", "in.ndjson"];
        let options = args::parse(line.into_iter().map(OsString::from).collect(), false)
            .expect("valid options");
        let Ok(mut run) = Run::new(&options, &[]) else {
            panic!("a run");
        };
        let mut chunk = ChunkBuffer::new(input::CHUNK);
        let mut reader: &[u8] = b"{\"d\":\"a\"}\nnot json\n{\"e\":1}\n{\"d\":\"b\"}\n{\"d\":1}\n";
        let source = Lines::new(&options.limits);
        assert!(run.read(0, &mut reader, source, &mut chunk).ok() == Some(Flow::Go));
        let state = &run.state;
        // invalid_json and key_field_missing: skipped, so every line has its index, and
        // the open request counts them as refused inside it.
        assert_eq!(state.acc.pushed() as u64, state.records);
        let pending = state.acc.pending().copied().expect("an open request");
        assert_eq!(
            (pending.range(), pending.records, pending.refused()),
            (0..5, 3, 2)
        );
        // The core's reasons do not count them; the tool's do.
        assert_eq!(state.acc.stats().refused_total(), 0);
        assert_eq!(state.refusals.total(), 2);
        assert_eq!(state.lines, 5);
    }

    #[test]
    fn read_error_messages_say_what_was_dropped() {
        let error = io::Error::other("device gone");
        assert_eq!(read_error_detail(&error, 0), "device gone");
        assert_eq!(
            read_error_detail(&error, 1),
            "device gone; 1 byte of an unfinished last line dropped"
        );
        assert_eq!(
            read_error_detail(&error, 4096),
            "device gone; 4096 bytes of an unfinished last line dropped"
        );
        // An OS error loses Rust's "(os error N)", as other tools print it.
        #[cfg(unix)]
        assert_eq!(
            read_error_detail(&io::Error::from_raw_os_error(2), 0),
            "No such file or directory"
        );
    }
}
