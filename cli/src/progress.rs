//! A one-line progress indicator on stderr, only when stderr is a terminal and the run
//! lasts long enough to need one. Erased before any other message and at the end.
//!
//! `send` reads on one thread and sends on another: both hold a clone of one indicator,
//! and every message goes through [`Progress::eprint`], which erases the line and
//! prints under one lock, so that a message never lands in the middle of the line.

use std::io::{self, IsTerminal, Write};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::report::human;

/// Nothing is drawn before this much time has passed: short runs show no indicator.
const DELAY: Duration = Duration::from_millis(300);

/// At most ten updates a second.
const INTERVAL: Duration = Duration::from_millis(100);

/// The indicator's state.
struct State {
    started: Instant,
    last: Option<Instant>,
    shown: bool,
}

/// A handle on the indicator; clones share it.
#[derive(Clone)]
pub struct Progress {
    enabled: bool,
    total: Option<u64>,
    state: Arc<Mutex<State>>,
}

impl Progress {
    /// An indicator for inputs of `total` bytes (if known); inert unless stderr is a
    /// terminal.
    pub fn new(total: Option<u64>) -> Progress {
        Progress {
            enabled: io::stderr().is_terminal(),
            total,
            state: Arc::new(Mutex::new(State {
                started: Instant::now(),
                last: None,
                shown: false,
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while drawing leaves nothing inconsistent here.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Redraws the line for plan and emit, if enough time has passed.
    pub fn tick(&self, bytes: u64, records: u64, requests: u64) {
        if !self.enabled {
            return;
        }
        self.draw(|| {
            format!(
                "{} read, {records} records, {requests} requests",
                self.read(bytes)
            )
        });
    }

    /// Redraws the line with `text()`, if enough time has passed since the last time.
    pub fn draw(&self, text: impl FnOnce() -> String) {
        if !self.enabled {
            return;
        }
        let mut state = self.lock();
        let now = Instant::now();
        if now.duration_since(state.started) < DELAY
            || state
                .last
                .is_some_and(|last| now.duration_since(last) < INTERVAL)
        {
            return;
        }
        state.last = Some(now);
        let mut err = io::stderr().lock();
        // A progress line that cannot be drawn is no reason to stop.
        let _ = write!(err, "\r\x1b[2K{}", text());
        let _ = err.flush();
        state.shown = true;
    }

    /// "12.0 MiB / 100.0 MiB (12%)" when the total is known, else "12.0 MiB".
    pub fn read(&self, bytes: u64) -> String {
        match self.total {
            Some(total) if total > 0 => format!(
                "{} / {} ({:.0}%)",
                human(bytes),
                human(total),
                100.0 * bytes as f64 / total as f64
            ),
            _ => human(bytes),
        }
    }

    fn erase(state: &mut State, err: &mut io::StderrLock<'_>) {
        if state.shown {
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            state.shown = false;
        }
    }

    /// Erases the line, if one is drawn.
    pub fn clear(&self) {
        let mut state = self.lock();
        Self::erase(&mut state, &mut io::stderr().lock());
    }

    /// Erases the line and prints `line` and a newline on stderr, under the lock.
    pub fn eprint(&self, line: &str) {
        let mut state = self.lock();
        let mut err = io::stderr().lock();
        Self::erase(&mut state, &mut err);
        let _ = writeln!(err, "{line}");
    }
}
