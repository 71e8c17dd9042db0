//! Reading inputs in chunks into one reusable buffer, for the core's streaming protocol.
//!
//! The core's line splitters take the bytes not yet consumed plus whatever was read since,
//! and say how many they consumed. [`ChunkBuffer`] keeps exactly that window: it drops
//! consumed bytes, moves the rest to the front, and reads more behind them. It grows
//! only when a line fills it, and never beyond what the protocol needs to make progress
//! (`max_record_bytes + 2` for `Lines`, `2 * max_record_bytes + 2` for `LinePacker`), so
//! memory stays bounded whatever the input.

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
        }
    }

    /// Empties the window for the next input.
    pub fn reset(&mut self) {
        self.start = 0;
        self.end = 0;
        self.eof = false;
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
    /// reads until it is full or the input ends. Returns the bytes read.
    pub fn refill(&mut self, reader: &mut dyn Read) -> io::Result<usize> {
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
                }
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return Err(error),
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
}
