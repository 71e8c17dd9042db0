//! `deaggregate`: received Kinesis records read back into their user records with the
//! core's decoder, one NDJSON line each (or each one's data bytes, `--data-only`).
//!
//! Inputs are JSON files with a top-level `"Records"` array whose items have `"Data"`
//! (base64), `"PartitionKey"` and an optional `"ExplicitHashKey"` (our request files, a
//! `PutRecords` request, `aws kinesis get-records` output), or with `--raw` files that
//! each hold one record's data. A record that is not an aggregate is one user record
//! with its own keys (the KCL's rule). A damaged aggregate is an error naming the file,
//! the record and the offset, and none of its user records is printed; with
//! `--corrupt=plain` it is printed as one plain record, as the KCL does.

use std::io::{self, BufWriter, Read, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use kinesis_batcher::aggregate::wire::DIGEST_LEN;
use kinesis_batcher::aggregate::{DecodeError, SubRecord, SubRecords, deaggregate};
use serde_json::Value;

use crate::args::{Corrupt, Options};
use crate::emit::{push_base64, push_json_string};
use crate::input;
use crate::run::{describe, exit, print_error};

/// What went wrong with the inputs, for the exit code.
#[derive(Default)]
struct Faults {
    /// Inputs that could not be read, or are not a records file (exit 3).
    unreadable: u64,
    /// Records that could not be read back: damaged aggregates, bad entries (exit 1).
    damaged: u64,
}

/// Runs `deaggregate` and returns its exit code: 0, 1 when a record could not be read
/// back (the others are printed), 3 when an input could not be read or stdout written.
pub fn run(options: &Options) -> u8 {
    let stdout = io::stdout();
    let mut out = BufWriter::new(stdout.lock());
    let mut faults = Faults::default();
    let mut line = Vec::new();
    for source in &options.inputs {
        let name = input::display_name(source);
        let mut bytes = Vec::new();
        let read = input::open(source).and_then(|mut reader| reader.read_to_end(&mut bytes));
        if let Err(error) = read {
            print_error(&format!("{name}: {}", describe(&error)));
            faults.unreadable += 1;
            continue;
        }
        let written = if options.deaggregate.raw {
            let key = options.deaggregate.partition_key.as_bytes();
            one_record(
                options,
                &name,
                "",
                &bytes,
                key,
                None,
                &mut line,
                &mut out,
                &mut faults,
            )
        } else {
            records_file(options, &name, &bytes, &mut line, &mut out, &mut faults)
        };
        if let Err(error) = written {
            return output_failed(&error);
        }
    }
    if let Err(error) = out.flush() {
        return output_failed(&error);
    }
    if faults.unreadable > 0 {
        exit::IO
    } else if faults.damaged > 0 {
        exit::STOPPED
    } else {
        exit::OK
    }
}

fn output_failed(error: &io::Error) -> u8 {
    if error.kind() != io::ErrorKind::BrokenPipe {
        print_error(&format!("stdout: {}", describe(error)));
    }
    exit::IO
}

/// A JSON file of records: each entry read back in order.
fn records_file(
    options: &Options,
    name: &str,
    bytes: &[u8],
    line: &mut Vec<u8>,
    out: &mut dyn Write,
    faults: &mut Faults,
) -> io::Result<()> {
    let value: Value = match serde_json::from_slice(bytes) {
        Ok(value) => value,
        Err(error) => {
            print_error(&format!(
                "{name}: not JSON ({error}); use --raw for a file of one record's data"
            ));
            faults.unreadable += 1;
            return Ok(());
        }
    };
    let Some(records) = value.get("Records").and_then(Value::as_array) else {
        print_error(&format!(
            "{name}: no top-level \"Records\" array (expected a request file, a PutRecords \
             request or get-records output; --raw for a file of one record's data)"
        ));
        faults.unreadable += 1;
        return Ok(());
    };
    for (index, entry) in records.iter().enumerate() {
        let place = format!("Records[{index}]");
        let field = |field: &str| entry.get(field).and_then(Value::as_str);
        let Some(data) = field("Data") else {
            print_error(&format!("{name}: {place}: no \"Data\" string"));
            faults.damaged += 1;
            continue;
        };
        let Ok(data) = STANDARD.decode(data) else {
            print_error(&format!("{name}: {place}: \"Data\" is not base64"));
            faults.damaged += 1;
            continue;
        };
        let Some(key) = field("PartitionKey") else {
            print_error(&format!("{name}: {place}: no \"PartitionKey\" string"));
            faults.damaged += 1;
            continue;
        };
        let hash_key = match entry.get("ExplicitHashKey") {
            None | Some(Value::Null) => None,
            Some(Value::String(hash_key)) => Some(hash_key.as_bytes()),
            Some(_) => {
                print_error(&format!(
                    "{name}: {place}: \"ExplicitHashKey\" is not a string"
                ));
                faults.damaged += 1;
                continue;
            }
        };
        one_record(
            options,
            name,
            &place,
            &data,
            key.as_bytes(),
            hash_key,
            line,
            out,
            faults,
        )?;
    }
    Ok(())
}

/// One received record: its user records printed, or the error that it is damaged.
#[allow(clippy::too_many_arguments)]
fn one_record(
    options: &Options,
    name: &str,
    place: &str,
    data: &[u8],
    key: &[u8],
    hash_key: Option<&[u8]>,
    line: &mut Vec<u8>,
    out: &mut dyn Write,
    faults: &mut Faults,
) -> io::Result<()> {
    let users = match deaggregate(data, key, hash_key) {
        Ok(users) => users,
        Err(error) if options.deaggregate.corrupt == Corrupt::Plain => {
            let _ = error;
            SubRecords::plain(data, key, hash_key)
        }
        Err(error) => {
            let offset = match error {
                DecodeError::Malformed { offset } => offset,
                DecodeError::DigestMismatch => data.len() - DIGEST_LEN,
            };
            let at = if place.is_empty() {
                String::new()
            } else {
                format!("{place}: ")
            };
            print_error(&format!(
                "{name}: {at}damaged aggregate at offset {offset}: {error} \
                 (none of its user records printed; --corrupt=plain passes it through as one \
                 plain record, as the KCL does)"
            ));
            faults.damaged += 1;
            return Ok(());
        }
    };
    for user in users {
        line.clear();
        write_user(line, &user, options.deaggregate.data_only);
        out.write_all(line)?;
    }
    Ok(())
}

/// One user record as an output line.
fn write_user(line: &mut Vec<u8>, user: &SubRecord<'_>, data_only: bool) {
    if data_only {
        line.extend_from_slice(user.data);
        line.push(b'\n');
        return;
    }
    line.extend_from_slice(b"{\"Data\":\"");
    push_base64(line, user.data);
    line.extend_from_slice(b"\",\"PartitionKey\":");
    push_json_string(line, user.partition_key);
    if let Some(hash_key) = user.explicit_hash_key {
        line.extend_from_slice(b",\"ExplicitHashKey\":");
        push_json_string(line, hash_key);
    }
    line.extend_from_slice(b"}\n");
}
