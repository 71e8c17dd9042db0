//! `send`: records read as they arrive, sent to a Kinesis data stream with PutRecords.
//!
//! Two threads. The reader thread is the pass of plan and emit ([`Run`]): it reads the
//! inputs (one read at a time, so a slow pipe's lines are handled when they come), keys
//! and checks each line with the core, reports refusals as emit does, and hands the
//! sendable records on, one read's worth at a time, over a channel of two messages
//! ([`sink`]). This thread is the sender: a single-threaded event loop around the core's
//! producer engine ([`Engine`]), which decides everything: which records make a request,
//! when (full, or lingered), how many are in flight, which failures are sent again and
//! when, which records are terminal. The loop only pushes records, sends what the engine
//! hands out (several PutRecords calls at once, up to `--in-flight`), maps each answer to
//! the core's error kinds, settles, and sleeps until the first of: a response, more
//! input, the engine's next due time, credentials loaded again.
//!
//! Backpressure: when the engine answers Full, the loop stops taking messages; the
//! channel fills, the reader thread waits, and so does whoever writes to its input.
//! Memory stays within the engine's buffer (`--buffer`, with the payloads kept here by
//! slot), two messages of about 1 MiB, the read buffer, and the requests in flight.

mod aws;
mod sink;
mod stop;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use aws_sdk_kinesis::error::BuildError;
use aws_sdk_kinesis::operation::put_records::PutRecordsOutput;
use aws_sdk_kinesis::primitives::Blob;
use aws_sdk_kinesis::types::PutRecordsRequestEntry;
use kinesis_batcher::engine::{
    Engine, EngineConfig, Handle, KeyEntry, Poll, PushError, RequestId, RequestSlot, ShardState,
    Slot, Storage, StorageSizes, Terminal,
};
use kinesis_batcher::retry::{ErrorKind, Outcome, RetryPolicy};
use kinesis_batcher::{Limits, Reason, Record};
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;
use tokio::task::{JoinError, JoinHandle, JoinSet};
use tokio::time::Instant;

pub use sink::{Outgoing, SendSink};

use crate::args::{Options, SendOptions};
use crate::input;
use crate::progress::Progress;
use crate::report::{Location, MESSAGES_SHOWN, SendSummary, Why, human};
use crate::run::{self, Fatal, Run, exit, print_error};

use aws::Connection;

/// Messages in the channel from the reader: with the one the sender holds, at most three
/// reads' records are between the input and the engine.
const CHANNEL: usize = 2;

/// A request of fewer records than this, while a whole request's worth waits, is worth
/// a word about per-key order.
const SMALL_REQUEST: usize = 10;

/// The first wait before credentials are loaded again, and the longest.
const RELOAD_FIRST: Duration = Duration::from_secs(1);
const RELOAD_MAX: Duration = Duration::from_secs(60);

/// Runs `send` and returns its exit code.
pub fn run(options: &Options) -> u8 {
    let Some(send) = &options.send else {
        return exit::USAGE;
    };
    let shards = match run::read_shards(options) {
        Ok(shards) => shards,
        Err(code) => return code,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            print_error(&format!("send: cannot start: {error}"));
            return exit::IO;
        }
    };
    // Region and credentials are checked before any input is read.
    let connection = match runtime.block_on(aws::connect(send)) {
        Ok(connection) => connection,
        Err(message) => {
            print_error(&message);
            return exit::USAGE;
        }
    };
    let limits = options.limits;
    let config = EngineConfig {
        linger_ms: send.linger_ms,
        max_in_flight: send.in_flight,
        max_buffered_bytes: send.buffer_bytes,
        allow_reordering: send.allow_reordering,
        ..EngineConfig::default()
    };
    let capacity = capacity(&limits, send.in_flight);
    let sizes = match StorageSizes::new(&limits, &config, capacity, 0) {
        Ok(sizes) => sizes,
        Err(error) => {
            print_error(&format!("send: {error}"));
            return exit::USAGE;
        }
    };
    let mut slots = vec![Slot::default(); sizes.slots];
    let mut keys = vec![KeyEntry::default(); sizes.keys];
    let mut requests = vec![RequestSlot::default(); sizes.requests];
    let mut entries = vec![Handle::default(); sizes.entries];
    let mut shard_states = vec![ShardState::default(); sizes.shards];
    let storage = Storage {
        slots: &mut slots,
        keys: &mut keys,
        requests: &mut requests,
        entries: &mut entries,
        shards: &mut shard_states,
    };
    let engine = match Engine::new(limits, RetryPolicy::DEFAULT, config, storage, None) {
        Ok(engine) => engine,
        Err(error) => {
            print_error(&format!("send: {error}"));
            return exit::USAGE;
        }
    };

    let progress = Progress::new(input::total_size(&options.inputs));
    let (tx, rx) = mpsc::channel(CHANNEL);
    let names: Vec<String> = options.inputs.iter().map(input::display_name).collect();
    std::thread::scope(|scope| {
        let reader_progress = progress.clone();
        let reader = scope.spawn(move || {
            let mut run = Run::for_send(options, &shards, reader_progress, SendSink::new(tx))?;
            let read = run.read_all(options, &mut stop::open);
            Ok::<_, Fatal>((run, read))
        });
        let sender = Sender::new(
            engine,
            &limits,
            send,
            connection,
            names,
            progress,
            options.quiet,
        );
        let summary = runtime.block_on(sender.run(rx));
        let reader = match reader.join() {
            Ok(reader) => reader,
            // The reader's panic has been printed; what was read has been sent.
            Err(_) => return exit::IO.max(summary.exit_floor()),
        };
        let (mut run, read) = match reader {
            Ok(pair) => pair,
            Err(Fatal(message)) => {
                print_error(&message);
                return exit::IO.max(summary.exit_floor());
            }
        };
        if let Err(Fatal(message)) = read {
            if !message.is_empty() {
                print_error(&message);
            }
            return exit::IO.max(summary.exit_floor());
        }
        for &(reason, at) in &summary.late_refusals {
            run.count_refusal(Why::Core(reason), at);
        }
        if run.nothing_read() {
            return exit::IO.max(summary.exit_floor());
        }
        match run.finish(options, None, Some(summary)) {
            Ok(code) => code,
            Err(Fatal(message)) => {
                if !message.is_empty() {
                    print_error(&message);
                }
                exit::IO
            }
        }
    })
}

/// Records buffered at most: enough for every request in flight to be full, one more
/// filling, and one more waiting; at least 4,096 (small records are cheap to hold).
fn capacity(limits: &Limits, in_flight: u32) -> usize {
    let per_request = limits.max_records() as usize;
    ((in_flight as usize + 2) * per_request).max(4096)
}

/// What the sender keeps of a buffered record besides its bytes.
#[derive(Clone, Copy, Debug, Default)]
struct Meta {
    data_len: usize,
    key_len: usize,
    /// `usize::MAX`: no explicit hash key.
    hash_key_len: usize,
    first: Location,
    last: Location,
    users: u32,
}

/// A request's answer, as the task that sent it returns it.
type Answer = Result<PutRecordsOutput, (ErrorKind, String)>;

/// The sending side: the engine, the payloads by slot, the requests in flight.
struct Sender<'e, 'o> {
    engine: Engine<'e>,
    send: &'o SendOptions,
    connection: Connection,
    names: Vec<String>,
    progress: Progress,
    quiet: bool,
    started: Instant,
    random: u64,
    /// Each slot's data, key and hash key, back to back (empty when the slot is free).
    payloads: Vec<Vec<u8>>,
    meta: Vec<Meta>,
    tasks: JoinSet<Answer>,
    /// The request each task sends, and the credentials generation it was signed with.
    sending: HashMap<tokio::task::Id, (RequestId, u64)>,
    /// A request's handles, copied before it is settled.
    handles: Vec<Handle>,
    outcomes: Vec<Outcome>,
    terminal: Vec<Terminal>,
    /// Credentials being loaded again, after the engine paused.
    reload: Option<JoinHandle<Result<Connection, String>>>,
    reload_wait: Duration,
    /// Clients built so far: requests signed with an older one say nothing about the
    /// credentials in use now.
    generation: u64,
    /// The generation whose credentials were refused (the message was printed), until
    /// a request of a later one is accepted.
    failing_since: Option<u64>,
    /// The last generation known to work.
    working: u64,
    /// Whether a failure to load credentials again was said (once until they work).
    reload_failure_said: bool,
    /// Which error kinds were described once on stderr already.
    described: [bool; ErrorKind::ALL.len()],
    summary: SendSummary,
    messages: u64,
    /// Whether `hint_key_order` has spoken.
    key_order_hinted: bool,
    /// Records a request holds at most.
    max_records: u32,
    /// The reader's counters, from its last message.
    bytes_read: u64,
    records_read: u64,
}

impl<'e, 'o> Sender<'e, 'o> {
    fn new(
        engine: Engine<'e>,
        limits: &Limits,
        send: &'o SendOptions,
        connection: Connection,
        names: Vec<String>,
        progress: Progress,
        quiet: bool,
    ) -> Sender<'e, 'o> {
        let capacity = engine.capacity();
        let max_records = limits.max_records() as usize;
        let summary = SendSummary::new(send, &connection.region);
        Sender {
            engine,
            send,
            connection,
            names,
            progress,
            quiet,
            started: Instant::now(),
            random: seed(),
            payloads: vec![Vec::new(); capacity],
            meta: vec![Meta::default(); capacity],
            tasks: JoinSet::new(),
            sending: HashMap::new(),
            handles: Vec::with_capacity(max_records),
            outcomes: Vec::with_capacity(max_records),
            terminal: vec![Terminal::default(); max_records],
            reload: None,
            reload_wait: RELOAD_FIRST,
            generation: 0,
            failing_since: None,
            working: 0,
            reload_failure_said: false,
            described: [false; ErrorKind::ALL.len()],
            summary,
            messages: 0,
            key_order_hinted: false,
            max_records: limits.max_records(),
            bytes_read: 0,
            records_read: 0,
        }
    }

    /// Milliseconds since the start: the engine's clock.
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// A random number for the engine's backoff jitter (xorshift64*).
    fn random(&mut self) -> u64 {
        let mut x = self.random;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.random = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// The loop, until the input has ended and every record is stored or terminal.
    async fn run(mut self, mut rx: mpsc::Receiver<Outgoing>) -> SendSummary {
        // A message being pushed (the engine was full), and how far.
        let mut pending: Option<(Outgoing, usize)> = None;
        let mut input_ended = false;
        let mut unflushed = false;
        // Registered here, so that a signal before the loop still ends the process.
        let mut interrupt = signal(SignalKind::interrupt()).ok();
        let mut terminate = signal(SignalKind::terminate()).ok();
        loop {
            let now = self.now_ms();
            if let Some((out, done)) = &mut pending {
                let (pushed, finished) = self.push_records(out, done, now);
                unflushed |= pushed;
                if finished {
                    pending = None;
                }
            }
            if input_ended && pending.is_none() && unflushed {
                // The last records need not linger: nothing more will join them.
                self.engine.flush();
                unflushed = false;
            }
            let wake = self.send_due(now);
            if input_ended
                && pending.is_none()
                && self.engine.is_empty()
                && self.tasks.is_empty()
                && self.reload.is_none()
            {
                break;
            }
            self.draw_progress();
            let deadline = wake.map(|ms| self.started + Duration::from_millis(ms));
            tokio::select! {
                answer = self.tasks.join_next_with_id(), if !self.tasks.is_empty() => {
                    if let Some(answer) = answer {
                        self.answered(answer);
                    }
                }
                message = rx.recv(), if !input_ended && pending.is_none() => match message {
                    Some(out) => {
                        self.bytes_read = out.bytes_read;
                        self.records_read = out.records_read;
                        pending = Some((out, 0));
                    }
                    None => input_ended = true,
                },
                () = sleep_until(deadline), if deadline.is_some() => {}
                loaded = wait_for(&mut self.reload), if self.reload.is_some() => {
                    self.reload = None;
                    self.reloaded(loaded);
                }
                Some(()) = next_signal(&mut interrupt) => {
                    self.signalled(libc::SIGINT, pending.as_ref().map_or(0, |(out, done)| out.len() - done));
                }
                Some(()) = next_signal(&mut terminate) => {
                    self.signalled(libc::SIGTERM, pending.as_ref().map_or(0, |(out, done)| out.len() - done));
                }
            }
        }
        self.progress.clear();
        let not_shown = self.summary.not_stored().saturating_sub(self.messages);
        if !self.quiet && not_shown > 0 {
            self.progress.eprint(&format!(
                "kinesis-batcher: {not_shown} more records not stored (the summary counts them all)"
            ));
        }
        let stats = *self.engine.stats();
        self.summary.finish(&stats, self.started.elapsed());
        // Every record read was still sent or reported, but the input was not read to
        // its end: the exit code says so, as a shell would.
        self.summary.stopped_by =
            stop::requested().map(|signal| (stop::name(signal), stop::exit_code(signal)));
        if self.quiet && self.summary.not_stored() > 0 {
            // Records lost are never silent, whatever --quiet says.
            print_error(&format!(
                "{} records could not be stored (exit code 4)",
                self.summary.not_stored()
            ));
        }
        self.summary
    }

    /// SIGINT or SIGTERM. The first stops the reading (see [`stop`]) and sends what the
    /// engine holds at once, as at the end of the input; a second ends the process now.
    /// `unpushed`: records of a message not yet in the engine.
    fn signalled(&mut self, signal: i32, unpushed: usize) {
        let name = stop::name(signal);
        if stop::request(signal) {
            self.engine.flush();
            if !self.quiet {
                self.progress.eprint(&format!(
                    "kinesis-batcher: {name}: reading stops; sending the records read ({name} again to stop at once)"
                ));
            }
            return;
        }
        self.progress.clear();
        let stats = self.engine.stats();
        let unconfirmed = stats.buffered_records + unpushed as u64;
        print_error(&format!(
            "{name} again: stopped at once; {unconfirmed} records read are not confirmed stored ({} in requests in flight, which may have been)",
            stats.in_flight_records
        ));
        std::process::exit(i32::from(stop::exit_code(signal)));
    }

    /// Pushes records of `out` from `*done` on, until it is all pushed or the engine is
    /// full. Returns (whether any was pushed, whether all are).
    fn push_records(&mut self, out: &Outgoing, done: &mut usize, now: u64) -> (bool, bool) {
        let mut pushed = false;
        while *done < out.len() {
            let (record, at) = out.get(*done);
            match self.engine.push(&record, now) {
                Ok(handle) => {
                    self.keep(handle, &record, at.first, at.last, at.users);
                    pushed = true;
                }
                Err(PushError::Full) => return (pushed, false),
                Err(PushError::Refused(reason)) => self.refused_late(reason, at.first),
            }
            *done += 1;
        }
        (pushed, true)
    }

    /// Keeps a pushed record's bytes under its handle's slot until it is settled.
    fn keep(
        &mut self,
        handle: Handle,
        record: &Record<'_>,
        first: Location,
        last: Location,
        users: u32,
    ) {
        let slot = handle.slot();
        let hash_key = record.hash_key.unwrap_or_default();
        let mut bytes = Vec::with_capacity(record.data.len() + record.key.len() + hash_key.len());
        bytes.extend_from_slice(record.data);
        bytes.extend_from_slice(record.key);
        bytes.extend_from_slice(hash_key);
        self.payloads[slot] = bytes;
        self.meta[slot] = Meta {
            data_len: record.data.len(),
            key_len: record.key.len(),
            hash_key_len: record.hash_key.map_or(usize::MAX, <[u8]>::len),
            first,
            last,
            users,
        };
    }

    /// A record the reader measured as sendable and the engine refused: the two
    /// measures disagree, which is a bug; reported as a refusal all the same.
    fn refused_late(&mut self, reason: Reason, at: Location) {
        self.progress.eprint(&format!(
            "{}:{}: {} (refused by the engine after the reader's measure accepted it)",
            self.names[at.0],
            at.1,
            Why::Core(reason).label()
        ));
        self.summary.late_refusals.push((reason, at));
    }

    /// Sends every request the engine hands out now; returns when to ask again.
    fn send_due(&mut self, now: u64) -> Option<u64> {
        loop {
            let entries = match self.engine.next_request(now) {
                Poll::Ready(request) => {
                    let id = request.id;
                    let small = request.handles.len() < SMALL_REQUEST;
                    let entries = request
                        .handles
                        .iter()
                        .map(|handle| {
                            entry(&self.payloads[handle.slot()], &self.meta[handle.slot()])
                        })
                        .collect::<Result<Vec<_>, _>>();
                    if small {
                        self.hint_key_order();
                    }
                    (id, entries)
                }
                Poll::Wait { until_ms } => return Some(until_ms),
                Poll::Busy | Poll::Idle => return None,
                Poll::Paused => {
                    self.start_reload();
                    return None;
                }
            };
            let (id, entries) = entries;
            let entries = match entries {
                Ok(entries) => entries,
                Err(error) => {
                    // Data and key are always set: the SDK's builder has nothing to refuse.
                    let generation = self.generation;
                    self.answer_now(
                        id,
                        generation,
                        Err((ErrorKind::ClientError, error.to_string())),
                    );
                    continue;
                }
            };
            let call = self
                .connection
                .client
                .put_records()
                .set_records(Some(entries));
            let call = if self.send.stream.starts_with("arn:") {
                call.stream_arn(&self.send.stream)
            } else {
                call.stream_name(&self.send.stream)
            };
            let task = self.tasks.spawn(async move {
                call.send().await.map_err(|error| {
                    let status = error.raw_response().map(|raw| raw.status().as_u16());
                    (aws::classify(&error, status), aws::describe(&error))
                })
            });
            self.sending.insert(task.id(), (id, self.generation));
            self.summary.peak_in_flight = self.summary.peak_in_flight.max(self.tasks.len() as u64);
        }
    }

    /// A request of few records left while many wait. With per-key order that means
    /// most waiting records share keys already in flight (a request holds one record
    /// of a key; `yes | send` has one key): throughput is then a record per round
    /// trip. Said once, with the ways out.
    fn hint_key_order(&mut self) {
        let stats = self.engine.stats();
        let waiting = stats.buffered_records - stats.in_flight_records;
        if self.key_order_hinted
            || self.quiet
            || self.send.allow_reordering
            || waiting < u64::from(self.max_records)
        {
            return;
        }
        self.key_order_hinted = true;
        self.progress.eprint(&format!(
            "kinesis-batcher: requests leave with few records while {waiting} wait: most share a partition key already in flight, and with per-key order a request holds one record of a key (spread the keys with --key-field, or lift the order with --allow-reordering)"
        ));
    }

    /// A request's task ended: settle the request with its answer.
    fn answered(&mut self, answer: Result<(tokio::task::Id, Answer), JoinError>) {
        let (task, answer) = match answer {
            Ok((task, answer)) => (task, answer),
            // A task that panicked: no response, as a connection lost.
            Err(error) => (
                error.id(),
                Err((
                    ErrorKind::Transport,
                    format!("the request's task failed: {error}"),
                )),
            ),
        };
        if let Some((id, generation)) = self.sending.remove(&task) {
            self.answer_now(id, generation, answer);
        }
    }

    /// Settles request `id` (signed with credentials of `generation`) with its answer,
    /// and reports what became of its records.
    fn answer_now(&mut self, id: RequestId, generation: u64, answer: Answer) {
        self.handles.clear();
        if let Some(handles) = self.engine.request(id) {
            self.handles.extend_from_slice(handles);
        }
        let now = self.now_ms();
        let random = self.random();
        let settled = match answer {
            Ok(output) if output.records().len() == self.handles.len() => {
                self.outcomes.clear();
                for result in output.records() {
                    self.outcomes
                        .push(match (result.error_code(), result.sequence_number()) {
                            (Some(code), _) => {
                                Outcome::Failed(ErrorKind::from_code(code.as_bytes()))
                            }
                            (None, Some(_)) => Outcome::Accepted,
                            (None, None) => Outcome::Failed(ErrorKind::BadResponse),
                        });
                }
                if let Some(first) = output.records().iter().find(|r| r.error_code().is_some()) {
                    let kind =
                        ErrorKind::from_code(first.error_code().unwrap_or_default().as_bytes());
                    if !kind.is_retryable() {
                        let text = format!(
                            "{}: {}",
                            first.error_code().unwrap_or_default(),
                            first.error_message().unwrap_or_default()
                        );
                        self.describe_once(kind, &text);
                    }
                }
                self.engine
                    .settle(id, &self.outcomes, now, random, &mut self.terminal)
            }
            Ok(output) => {
                self.describe_once(
                    ErrorKind::BadResponse,
                    &format!(
                        "{} result entries for {} records",
                        output.records().len(),
                        self.handles.len()
                    ),
                );
                self.outcomes.clear();
                self.engine
                    .settle_all(id, ErrorKind::BadResponse, now, random, &mut self.terminal)
            }
            Err((kind, text)) => {
                if kind != ErrorKind::Credentials && !kind.is_retryable() {
                    self.describe_once(kind, &text);
                }
                if kind == ErrorKind::Credentials {
                    self.credentials_refused(generation, &text);
                }
                self.outcomes.clear();
                self.engine
                    .settle_all(id, kind, now, random, &mut self.terminal)
            }
        };
        let settled = match settled {
            Ok(settled) => settled,
            Err(error) => {
                // The engine refused the settle, and changed nothing: a bug in this loop.
                print_error(&format!(
                    "internal error: settle of request {id:?}: {error}"
                ));
                return;
            }
        };
        // Stored records: counted, their bytes freed.
        let mut accepted = false;
        for i in 0..self.outcomes.len() {
            if self.outcomes[i] == Outcome::Accepted {
                let slot = self.handles[i].slot();
                self.summary.stored_users += u64::from(self.meta[slot].users);
                self.payloads[slot] = Vec::new();
                accepted = true;
            }
        }
        if accepted {
            self.credentials_work(generation);
        }
        for i in 0..settled.terminal {
            let Terminal {
                handle,
                kind,
                gave_up,
            } = self.terminal[i];
            self.not_stored(handle, kind, gave_up);
        }
    }

    /// A record that will not be sent again: reported, counted, its bytes freed.
    fn not_stored(&mut self, handle: Handle, kind: ErrorKind, gave_up: bool) {
        let slot = handle.slot();
        let meta = self.meta[slot];
        self.payloads[slot] = Vec::new();
        self.summary
            .add_not_stored(kind, meta.first, u64::from(meta.users));
        if self.quiet || self.messages >= MESSAGES_SHOWN {
            return;
        }
        self.messages += 1;
        let mut message = format!(
            "{}:{}: not stored: {kind}",
            self.names[meta.first.0], meta.first.1
        );
        let _ = write!(
            message,
            "{}",
            if gave_up {
                " (retries exhausted)"
            } else {
                " (not retryable)"
            }
        );
        if meta.users > 1 {
            let _ = write!(
                message,
                "; an aggregate of {} user records, to {}:{}",
                meta.users, self.names[meta.last.0], meta.last.1
            );
        } else if meta.last != meta.first {
            let _ = write!(message, "; lines to {}", meta.last.1);
        }
        self.progress.eprint(&message);
    }

    /// Describes an error kind's first occurrence on stderr (the service's message says
    /// what to fix: a stream name, a permission, a key).
    fn describe_once(&mut self, kind: ErrorKind, text: &str) {
        let seen = &mut self.described[kind as usize];
        if !*seen {
            *seen = true;
            self.progress
                .eprint(&format!("kinesis-batcher: PutRecords failed: {text}"));
        }
    }

    /// The service refused the credentials of `generation`: said once, until those of
    /// a later generation work (answers to requests signed before say nothing new).
    fn credentials_refused(&mut self, generation: u64, text: &str) {
        if self.failing_since.is_none() && generation >= self.working {
            self.failing_since = Some(generation);
            self.progress.eprint(&format!(
                "kinesis-batcher: credentials refused ({text}): sending paused, loading them \
                 again (records wait, none is dropped)"
            ));
        }
    }

    /// A request signed with credentials of `generation` was accepted.
    fn credentials_work(&mut self, generation: u64) {
        self.working = self.working.max(generation);
        if self.failing_since.is_some_and(|failed| generation > failed) {
            self.failing_since = None;
            self.reload_failure_said = false;
            self.reload_wait = RELOAD_FIRST;
            self.progress
                .eprint("kinesis-batcher: credentials accepted again; sending resumed");
        }
    }

    /// The engine paused on credentials: load them again after a wait.
    fn start_reload(&mut self) {
        if self.reload.is_some() {
            return;
        }
        self.summary.credential_pauses += 1;
        let wait = self.reload_wait;
        self.reload_wait = (self.reload_wait * 2).min(RELOAD_MAX);
        let send = self.send.clone();
        self.reload = Some(tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            aws::connect(&send).await
        }));
    }

    /// Credentials were loaded again (or not): resume, or try again later.
    fn reloaded(&mut self, loaded: Result<Result<Connection, String>, JoinError>) {
        match loaded {
            Ok(Ok(connection)) => {
                self.connection = connection;
                self.generation += 1;
                self.engine.resume();
            }
            Ok(Err(message)) => {
                // Still paused: the next loop starts another reload, after a longer wait.
                if !self.reload_failure_said {
                    self.reload_failure_said = true;
                    self.progress.eprint(&format!(
                        "kinesis-batcher: loading credentials again failed: {message} \
                         (trying again, every {} s at most)",
                        RELOAD_MAX.as_secs()
                    ));
                }
            }
            Err(error) => {
                self.progress.eprint(&format!(
                    "kinesis-batcher: loading credentials failed: {error}"
                ));
            }
        }
    }

    fn draw_progress(&self) {
        let stats = self.engine.stats();
        self.progress.draw(|| {
            let mut line = format!(
                "{} read, {} records, {} stored, {} in flight",
                self.progress.read(self.bytes_read),
                self.records_read,
                stats.accepted_records,
                stats.in_flight_requests,
            );
            if stats.retried > 0 {
                let _ = write!(line, ", {} retried", stats.retried);
            }
            if stats.terminal > 0 {
                let _ = write!(line, ", {} not stored", stats.terminal);
            }
            if self.engine.is_paused() {
                line.push_str(", paused (credentials)");
            }
            let _ = write!(line, ", {} buffered", human(stats.buffered_bytes));
            line
        });
    }
}

/// The PutRecords entry of a kept record.
fn entry(payload: &[u8], meta: &Meta) -> Result<PutRecordsRequestEntry, BuildError> {
    let key_start = meta.data_len;
    let hash_start = key_start + meta.key_len;
    let mut entry = PutRecordsRequestEntry::builder()
        .data(Blob::new(payload[..key_start].to_vec()))
        // The core checked that the key is UTF-8.
        .partition_key(String::from_utf8_lossy(&payload[key_start..hash_start]));
    if meta.hash_key_len != usize::MAX {
        entry = entry.explicit_hash_key(String::from_utf8_lossy(
            &payload[hash_start..hash_start + meta.hash_key_len],
        ));
    }
    entry.build()
}

/// The next delivery of a signal; never, when it could not be registered (the default
/// action then applies).
async fn next_signal(signal: &mut Option<Signal>) -> Option<()> {
    match signal {
        Some(signal) => signal.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

async fn wait_for<T>(handle: &mut Option<JoinHandle<T>>) -> Result<T, JoinError> {
    match handle {
        Some(handle) => handle.await,
        None => std::future::pending().await,
    }
}

/// A seed for the jitter: the clock and the process id, never 0.
fn seed() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    (nanos ^ (u64::from(std::process::id()) << 32)) | 1
}
