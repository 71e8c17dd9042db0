//! Reading inputs in chunks into one reusable buffer, for the core's streaming protocol.
//!
//! The core's line splitters take the bytes not yet consumed plus whatever was read since,
//! and say how many they consumed. [`ChunkBuffer`] keeps exactly that window: it drops
//! consumed bytes, moves the rest to the front, and reads more behind them. It starts at
//! [`CHUNK`] bytes and grows only when unconsumed bytes fill it, doubling up to the size
//! it was given: `max_record_bytes + 2`, with which the core guarantees progress for
//! every line source (`Lines` and `LinePacker` alike), or [`CHUNK`] if that is larger.
//! So it never grows past `max(CHUNK, max_record_bytes + 2)`, and memory stays bounded
//! whatever the input; only a splitter that broke that guarantee would make it grow
//! further, [`CHUNK`] bytes at a time, rather than loop for ever.
//!
//! A read that fails after it got some bytes returns those bytes first, and the error on
//! the next [`ChunkBuffer::refill`]: the whole lines read before an error are planned.
//!
//! `send` reads [`ChunkBuffer::eager`]ly: a refill returns after the first read that gave
//! bytes, so that a line from a slow pipe (`tail -F`) is handled when it arrives, not
//! when a megabyte has.

use std::fs::File;
use std::io::{self, Read};

use crate::args::Input;
use crate::demo::DemoData;

/// The read size, and the buffer's starting size: 1 MiB.
pub const CHUNK: usize = 1 << 20;

/// The read window over one input at a time.
pub struct ChunkBuffer {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    max: usize,
    eof: bool,
    /// Return from a refill after the first read that gives bytes.
    eager: bool,
    /// A read error met after some bytes were read in the same refill, for the next.
    error: Option<io::Error>,
}

impl ChunkBuffer {
    /// A buffer that may grow to `need` bytes (at least [`CHUNK`]).
    pub fn new(need: usize) -> ChunkBuffer {
        let max = need.max(CHUNK);
        ChunkBuffer {
            buf: vec![0; CHUNK.min(max)],
            start: 0,
            end: 0,
            max,
            eof: false,
            eager: false,
            error: None,
        }
    }

    /// The same buffer, whose refills return as soon as one read gave bytes.
    pub fn eager(self) -> ChunkBuffer {
        ChunkBuffer {
            eager: true,
            ..self
        }
    }

    /// Empties the window for the next input, and forgets a read error kept for it.
    pub fn reset(&mut self) {
        self.start = 0;
        self.end = 0;
        self.eof = false;
        self.error = None;
    }

    /// The bytes read and not yet consumed.
    pub fn data(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Whether the input is exhausted: [`ChunkBuffer::data`] is all there is.
    pub fn eof(&self) -> bool {
        self.eof
    }

    /// Drops the first `n` bytes of [`ChunkBuffer::data`].
    pub fn consume(&mut self, n: usize) {
        self.start = (self.start + n).min(self.end);
    }

    /// The buffer's size now.
    #[cfg(test)]
    pub fn size(&self) -> usize {
        self.buf.len()
    }

    /// Moves the unconsumed bytes to the front, grows the buffer if they fill it, and
    /// reads until it is full or the input ends (an eager buffer: until one read gave
    /// bytes, or the input ends). Returns the bytes read.
    ///
    /// A read error is returned at once if nothing was read in this call. If some bytes
    /// were, they are returned (`Ok`) and the error is kept for the next call, which
    /// returns it without reading; [`ChunkBuffer::data`] is then all that was read.
    pub fn refill(&mut self, reader: &mut dyn Read) -> io::Result<usize> {
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        if self.end == self.buf.len() {
            // Doubling, up to what the protocol needs. A full buffer of that size always
            // lets the core make progress; growing past it anyway keeps this loop finite
            // if a splitter ever asked for more.
            let grown = (self.buf.len() * 2).min(self.max);
            let size = if grown > self.buf.len() {
                grown
            } else {
                self.buf.len() + CHUNK
            };
            self.buf.resize(size, 0);
        }
        let mut read = 0;
        while self.end < self.buf.len() {
            match reader.read(&mut self.buf[self.end..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(n) => {
                    self.end += n;
                    read += n;
                    if self.eager {
                        break;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) if read == 0 => return Err(error),
                Err(error) => {
                    self.error = Some(error);
                    break;
                }
            }
        }
        Ok(read)
    }
}

/// The name of an input in messages and reports.
pub fn display_name(input: &Input) -> String {
    match input {
        Input::Path(path) => path.display().to_string(),
        Input::Stdin => "<stdin>".into(),
        Input::Demo => "<demo>".into(),
    }
}

/// Opens an input for reading.
pub fn open(input: &Input) -> io::Result<Box<dyn Read>> {
    Ok(match input {
        Input::Path(path) => Box::new(File::open(path)?),
        Input::Stdin => Box::new(io::stdin().lock()),
        Input::Demo => Box::new(DemoData::new()),
    })
}

/// The total size of the inputs when every one is a regular file, for progress.
pub fn total_size(inputs: &[Input]) -> Option<u64> {
    inputs.iter().try_fold(0u64, |total, input| match input {
        Input::Path(path) => {
            let meta = std::fs::metadata(path).ok()?;
            meta.is_file().then(|| total + meta.len())
        }
        Input::Stdin | Input::Demo => None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_keeps_unconsumed_bytes_and_grows_to_need() {
        let data: Vec<u8> = (0..3 * CHUNK).map(|i| (i % 251) as u8).collect();
        let mut reader: &[u8] = &data;
        let mut buffer = ChunkBuffer::new(CHUNK + CHUNK / 2);
        assert_eq!(buffer.refill(&mut reader).ok(), Some(CHUNK));
        buffer.consume(10);
        assert_eq!(buffer.refill(&mut reader).ok(), Some(10));
        assert_eq!(buffer.data(), &data[10..CHUNK + 10]);
        // Nothing consumed and full: grows, but only to what was asked.
        assert_eq!(buffer.refill(&mut reader).ok(), Some(CHUNK / 2));
        assert_eq!(buffer.size(), CHUNK + CHUNK / 2);
        assert_eq!(buffer.data(), &data[10..CHUNK + CHUNK / 2 + 10]);
        buffer.consume(buffer.data().len());
        while !buffer.eof() {
            assert!(buffer.refill(&mut reader).is_ok());
            buffer.consume(buffer.data().len());
        }
        assert!(reader.is_empty());
    }

    /// Yields its parts one read at a time, then the end of the input.
    struct Parts(Vec<&'static [u8]>);

    impl Read for Parts {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Ok(0);
            }
            let part = self.0.remove(0);
            buf[..part.len()].copy_from_slice(part);
            Ok(part.len())
        }
    }

    #[test]
    fn an_eager_buffer_returns_after_one_read() {
        let mut reader = Parts(vec![b"a\n", b"b\n"]);
        let mut buffer = ChunkBuffer::new(CHUNK).eager();
        assert_eq!(buffer.refill(&mut reader).ok(), Some(2));
        assert_eq!(buffer.data(), b"a\n");
        assert!(!buffer.eof());
        assert_eq!(buffer.refill(&mut reader).ok(), Some(2));
        assert_eq!(buffer.data(), b"a\nb\n");
        // The end: nothing read, and eof.
        assert_eq!(buffer.refill(&mut reader).ok(), Some(0));
        assert!(buffer.eof());
        // Not eager: both reads and the end in one refill.
        let mut reader = Parts(vec![b"a\n", b"b\n"]);
        let mut buffer = ChunkBuffer::new(CHUNK);
        assert_eq!(buffer.refill(&mut reader).ok(), Some(4));
        assert!(buffer.eof());
    }

    /// Yields its parts one read at a time, then fails on every read.
    struct FailsAfter(Vec<&'static [u8]>);

    impl Read for FailsAfter {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.0.is_empty() {
                return Err(io::Error::other("device gone"));
            }
            let part = self.0.remove(0);
            buf[..part.len()].copy_from_slice(part);
            Ok(part.len())
        }
    }

    #[test]
    fn a_read_error_after_bytes_returns_the_bytes_first() {
        let mut buffer = ChunkBuffer::new(CHUNK);
        let mut reader = FailsAfter(vec![b"a\n", b"b\nc"]);
        // Both reads in one refill, then the error: the bytes first.
        assert_eq!(buffer.refill(&mut reader).ok(), Some(5));
        assert_eq!(buffer.data(), b"a\nb\nc");
        assert!(!buffer.eof());
        buffer.consume(2);
        // Then the error, without reading again; the bytes stay.
        let error = buffer.refill(&mut reader).err().map(|e| e.to_string());
        assert_eq!(error.as_deref(), Some("device gone"));
        assert_eq!(buffer.data(), b"b\nc");
        // An error with nothing read in the call is returned at once.
        assert!(buffer.refill(&mut reader).is_err());

        // reset() forgets a kept error: the next input starts clean.
        let mut reader = FailsAfter(vec![b"x"]);
        assert_eq!(buffer.refill(&mut reader).ok(), Some(1));
        buffer.reset();
        let mut next: &[u8] = b"next\n";
        assert_eq!(buffer.refill(&mut next).ok(), Some(5));
        assert_eq!(buffer.data(), b"next\n");
        assert!(buffer.eof());
    }
}
