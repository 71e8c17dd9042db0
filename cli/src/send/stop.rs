//! Stopping `send` without losing what it has read.
//!
//! The first SIGINT or SIGTERM ends the input where it is: the reader stops at its next
//! read (a line cut in two by the stop is reported, not sent), and the sender sends every
//! record it holds without lingering, then exits with 128 + the signal's number. A second
//! signal ends the process at once, saying how many records were not confirmed stored.
//!
//! A reader blocked in `read(2)` on a silent pipe (`tail -F`) would never see the stop,
//! so inputs are read through [`Stoppable`], which waits for data with `poll(2)` in short
//! steps and checks the stop between them.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::atomic::{AtomicI32, Ordering};

use crate::args::Input;
use crate::demo::DemoData;

/// 0 while running; then the number of the signal that asked for the stop.
static STOP: AtomicI32 = AtomicI32::new(0);

/// How long a read waits for data before it looks at the stop again.
const POLL_STEP_MS: libc::c_int = 100;

/// Asks the reader to stop. Returns false if a stop was asked already (a second signal).
pub fn request(signal: i32) -> bool {
    STOP.compare_exchange(0, signal, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok()
}

/// The signal that asked for the stop, if one did.
pub fn requested() -> Option<i32> {
    match STOP.load(Ordering::SeqCst) {
        0 => None,
        signal => Some(signal),
    }
}

/// The signal's name in messages.
pub fn name(signal: i32) -> &'static str {
    match signal {
        libc::SIGINT => "SIGINT",
        libc::SIGTERM => "SIGTERM",
        _ => "a signal",
    }
}

/// The exit code after a stop: 128 + the signal's number, as a shell reports it.
pub fn exit_code(signal: i32) -> u8 {
    u8::try_from(128 + signal).unwrap_or(u8::MAX)
}

/// Opens an input for `send`: [`crate::input::open`], read through [`Stoppable`].
/// Standard input is read from its descriptor directly, without std's buffer, whose
/// bytes `poll(2)` could not see.
pub fn open(input: &Input) -> io::Result<Box<dyn Read>> {
    Ok(match input {
        Input::Path(path) => Box::new(Stoppable(File::open(path)?)),
        Input::Stdin => Box::new(Stoppable(File::from(
            io::stdin().as_fd().try_clone_to_owned()?,
        ))),
        Input::Demo => Box::new(DemoData::new()),
    })
}

/// A file or pipe whose reads end with an error once a stop is requested.
pub struct Stoppable(File);

impl Read for Stoppable {
    #[allow(unsafe_code)] // poll(2): std has no way to wait for a descriptor with a timeout
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if let Some(signal) = requested() {
                return Err(io::Error::other(format!(
                    "reading stopped by {}",
                    name(signal)
                )));
            }
            let mut fd = libc::pollfd {
                fd: self.0.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd, owned by this frame, for the call's duration.
            let ready = unsafe { libc::poll(&mut fd, 1, POLL_STEP_MS) };
            // Ready, at its end, in error, or poll itself failed (EINTR aside): the read
            // says which.
            let interrupted =
                ready < 0 && io::Error::last_os_error().kind() == io::ErrorKind::Interrupted;
            if ready != 0 && !interrupted {
                return self.0.read(buf);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_codes() {
        assert_eq!(name(libc::SIGINT), "SIGINT");
        assert_eq!(name(libc::SIGTERM), "SIGTERM");
        assert_eq!(exit_code(libc::SIGINT), 130);
        assert_eq!(exit_code(libc::SIGTERM), 143);
    }

    #[test]
    fn a_file_reads_through() {
        let path = std::env::temp_dir().join(format!("kb-stop-{}", std::process::id()));
        std::fs::write(&path, b"one\ntwo\n").unwrap();
        let mut read = Vec::new();
        Stoppable(File::open(&path).unwrap())
            .read_to_end(&mut read)
            .unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(read, b"one\ntwo\n");
    }
}
