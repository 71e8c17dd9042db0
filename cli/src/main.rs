//! `kinesis-batcher`: the command-line tool of the kinesis-batcher library.
//!
//! It plans newline-delimited records into Kinesis `PutRecords` (or Firehose
//! `PutRecordBatch`) requests and writes request files for the AWS CLI. Every size,
//! limit, key check and request boundary comes from the library; the tool reads, keys,
//! reports and writes. See `kinesis-batcher --help`.
//!
//! * [`args`]: the command line and the help text;
//! * [`input`]: inputs read in chunks for the core's streaming protocol;
//! * [`keys`]: partition keys (constant, hash, JSON field) and the JSON checks;
//! * [`run`]: the one pass from lines to the core's answers;
//! * [`emit`]: request files, built as records are pushed;
//! * [`report`]: refusals and the summary; [`progress`]: the progress line;
//! * [`aggregate`]: `--aggregate`, the records aggregated by the core in a window;
//! * [`send`]: the `send` command, on the core's producer engine and the AWS SDK;
//! * [`deaggregate`]: the `deaggregate` command;
//! * [`demo`]: the built-in demo data.

// One exception, allowed where it is: poll(2) in send's stop (send/stop.rs).
#![deny(unsafe_code)]

mod aggregate;
mod args;
mod deaggregate;
mod demo;
mod emit;
mod input;
mod keys;
mod progress;
mod report;
mod run;
mod send;

use std::io::{self, IsTerminal, Write};
use std::process::ExitCode;

use args::{Command, UsageError};

fn main() -> ExitCode {
    let args = std::env::args_os().skip(1).collect();
    let options = match args::parse(args, io::stdin().is_terminal()) {
        Ok(options) => options,
        Err(UsageError(message)) => {
            run::print_error(&message);
            eprintln!("Try 'kinesis-batcher --help' for more information.");
            return ExitCode::from(run::exit::USAGE);
        }
    };
    let text = match options.command {
        Command::Help => args::HELP.to_owned(),
        Command::Version => format!("kinesis-batcher {}\n", env!("CARGO_PKG_VERSION")),
        Command::Plan | Command::Emit | Command::Demo => {
            return ExitCode::from(run::run(options));
        }
        Command::Send => return ExitCode::from(send::run(&options)),
        Command::Deaggregate => return ExitCode::from(deaggregate::run(&options)),
    };
    match io::stdout().lock().write_all(text.as_bytes()) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`| head`): nothing more to say.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::from(run::exit::IO),
        Err(e) => {
            run::print_error(&format!("stdout: {}", run::describe(&e)));
            ExitCode::from(run::exit::IO)
        }
    }
}
