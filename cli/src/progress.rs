//! A one-line progress indicator on stderr, only when stderr is a terminal and the run
//! lasts long enough to need one. Erased before any other message and at the end.

use std::io::{self, IsTerminal, Write};
use std::time::{Duration, Instant};

use crate::report::human;

/// Nothing is drawn before this much time has passed: short runs show no indicator.
const DELAY: Duration = Duration::from_millis(300);

/// At most ten updates a second.
const INTERVAL: Duration = Duration::from_millis(100);

/// The indicator's state.
pub struct Progress {
    enabled: bool,
    started: Instant,
    last: Option<Instant>,
    shown: bool,
    total: Option<u64>,
}

impl Progress {
    /// An indicator for inputs of `total` bytes (if known); inert unless stderr is a
    /// terminal.
    pub fn new(total: Option<u64>) -> Progress {
        Progress {
            enabled: io::stderr().is_terminal(),
            started: Instant::now(),
            last: None,
            shown: false,
            total,
        }
    }

    /// Redraws the line, if enough time has passed since the last time.
    pub fn tick(&mut self, bytes: u64, records: u64, requests: u64) {
        if !self.enabled {
            return;
        }
        let now = Instant::now();
        if now.duration_since(self.started) < DELAY
            || self
                .last
                .is_some_and(|last| now.duration_since(last) < INTERVAL)
        {
            return;
        }
        self.last = Some(now);
        let read = match self.total {
            Some(total) if total > 0 => format!(
                "{} / {} ({:.0}%)",
                human(bytes),
                human(total),
                100.0 * bytes as f64 / total as f64
            ),
            _ => human(bytes),
        };
        let mut err = io::stderr().lock();
        // A progress line that cannot be drawn is no reason to stop.
        let _ = write!(
            err,
            "\r\x1b[2K{read} read, {records} records, {requests} requests"
        );
        let _ = err.flush();
        self.shown = true;
    }

    /// Erases the line, if one is drawn.
    pub fn clear(&mut self) {
        if self.shown {
            let mut err = io::stderr().lock();
            let _ = write!(err, "\r\x1b[2K");
            let _ = err.flush();
            self.shown = false;
        }
    }
}
