//! `aggregate` and `deaggregate`: the KPL record format, planned, encoded and decoded by
//! the core.

use kinesis_batcher::aggregate::{Aggregation, AsRecord, Mode, Step, encode};
use kinesis_batcher::shards::{MAX_HASH_KEY_DIGITS, ShardMap, ShardRange, parse_hash_key};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyInt, PyString, PyTuple};

use crate::INVALID_RECORD;
use crate::limits::{PyLimits, limits_or_default};
use crate::records::{Key, as_list, entry_parts};

/// A record for aggregation, which needs the data bytes too (encoding copies them once,
/// into the aggregate): `bytes` or `str` data, read in place.
struct AggEntry<'py> {
    data: Option<Bound<'py, PyAny>>,
    key: Option<Key<'py>>,
    hash_key: Option<Key<'py>>,
    invalid: Option<&'static str>,
}

fn data_bytes<'a>(data: &'a Bound<'_, PyAny>) -> Option<&'a [u8]> {
    if let Ok(b) = data.cast::<PyBytes>() {
        Some(b.as_bytes())
    } else if let Ok(s) = data.cast::<PyString>() {
        s.to_str().ok().map(str::as_bytes)
    } else {
        None
    }
}

impl AsRecord for AggEntry<'_> {
    fn as_record(&self) -> Option<kinesis_batcher::Record<'_>> {
        if self.invalid.is_some() {
            // Unreadable: the core refuses it (reported as `invalid_record`).
            return None;
        }
        let data = data_bytes(self.data.as_ref()?)?;
        let key = self.key.as_ref().map_or(&b""[..], Key::bytes);
        let record = kinesis_batcher::Record::new(data, key);
        Some(match &self.hash_key {
            Some(h) => record.with_hash_key(h.bytes()),
            None => record,
        })
    }
}

fn read_agg<'py>(record: &Bound<'py, PyAny>, one_key: Option<&Key<'py>>) -> AggEntry<'py> {
    let invalid = |why| AggEntry {
        data: None,
        key: None,
        hash_key: None,
        invalid: Some(why),
    };
    let (data, key, hash_key) = if let Ok(dict) = record.cast::<PyDict>() {
        entry_parts(dict)
    } else if let Ok(t) = record.cast::<PyTuple>() {
        if !(2..=3).contains(&t.len()) {
            return invalid("a tuple record is (data, key) or (data, key, hash_key)");
        }
        (t.get_item(0).ok(), t.get_item(1).ok(), t.get_item(2).ok())
    } else {
        (Some(record.clone()), None, None)
    };
    let Some(data) = data else {
        return invalid("the entry has no \"Data\"");
    };
    if data_bytes(&data).is_none() {
        return invalid("aggregated data must be bytes or a str encodable as UTF-8");
    }
    let key = match key {
        Some(k) => match Key::of(&k) {
            Some(k) => k,
            None => return invalid("the key is not a str"),
        },
        None => match one_key {
            Some(k) => k.clone(),
            None => return invalid("the record has no partition key"),
        },
    };
    let hash_key = match hash_key {
        Some(h) if !h.is_none() => match Key::of(&h) {
            Some(h) => Some(h),
            None => return invalid("the explicit hash key is not a str"),
        },
        _ => None,
    };
    AggEntry {
        data: Some(data),
        key: Some(key),
        hash_key,
        invalid: None,
    }
}

/// What `aggregate` hands back: PutRecords entries with their user record ranges, and
/// refusals.
type AggregateOut<'py> = (
    Vec<(Bound<'py, PyDict>, usize, usize)>,
    Vec<(usize, &'static str, &'static str)>,
);

/// One hash key of a shard range: an `int` or a decimal `str`, as `ListShards` gives it.
fn read_hash_key(value: &Bound<'_, PyAny>) -> PyResult<u128> {
    if let Ok(text) = value.cast::<PyString>() {
        return parse_hash_key(text.to_str()?.as_bytes()).ok_or_else(|| {
            PyValueError::new_err("a shard's hash key is not a decimal integer in 0..=2^128-1")
        });
    }
    if !value.is_instance_of::<PyInt>() {
        return Err(PyTypeError::new_err(
            "a shard's hash key is an int or a decimal str",
        ));
    }
    value
        .extract::<u128>()
        .map_err(|_| PyValueError::new_err("a shard's hash key is not in 0..=2^128-1"))
}

/// The stream's open shards: `ListShards` entries (dicts with `HashKeyRange`), as
/// `client.list_shards(StreamName=..., ShardFilter={"Type": "AT_LATEST"})["Shards"]`
/// gives them, or `(starting_hash_key, ending_hash_key)` pairs, in any order.
fn read_shards(shards: &Bound<'_, PyAny>) -> PyResult<Vec<ShardRange>> {
    let py = shards.py();
    let mut ranges = Vec::new();
    for shard in shards.try_iter()? {
        let shard = shard?;
        let (start, end) = if let Ok(entry) = shard.cast::<PyDict>() {
            let range = entry
                .get_item(intern!(py, "HashKeyRange"))?
                .ok_or_else(|| PyValueError::new_err("a shard dict has no \"HashKeyRange\""))?;
            (
                range.get_item(intern!(py, "StartingHashKey"))?,
                range.get_item(intern!(py, "EndingHashKey"))?,
            )
        } else {
            let pair = shard.cast::<PyTuple>().map_err(|_| {
                PyTypeError::new_err(
                    "a shard is a ListShards dict or a (starting_hash_key, ending_hash_key) tuple",
                )
            })?;
            if pair.len() != 2 {
                return Err(PyValueError::new_err(
                    "a shard tuple is (starting_hash_key, ending_hash_key)",
                ));
            }
            (pair.get_item(0)?, pair.get_item(1)?)
        };
        ranges.push(ShardRange {
            start: read_hash_key(&start)?,
            end: read_hash_key(&end)?,
        });
    }
    // ListShards lists shards by id, not by hash key: order them as the map needs.
    ranges.sort_unstable_by_key(|r| r.start);
    Ok(ranges)
}

/// aggregate(records, limits=Limits.KDS, *, key=None, mode="shared_hash_key", max_bytes=0, shards=None)
/// --
///
/// Aggregates user records (KPL format) with the core. See ``kinesis_batcher.aggregate``.
#[pyfunction]
#[pyo3(signature = (records, limits = None, *, key = None, mode = "shared_hash_key", max_bytes = 0, shards = None))]
#[allow(clippy::too_many_arguments)]
pub(crate) fn aggregate<'py>(
    py: Python<'py>,
    records: &Bound<'py, PyAny>,
    limits: Option<&Bound<'py, PyLimits>>,
    key: Option<&Bound<'py, PyAny>>,
    mode: &str,
    max_bytes: u32,
    shards: Option<&Bound<'py, PyAny>>,
) -> PyResult<AggregateOut<'py>> {
    let limits = limits_or_default(limits);
    let ranges = match shards {
        Some(s) if !s.is_none() => Some(read_shards(s)?),
        _ => None,
    };
    let mode = match (mode, &ranges) {
        ("shared_hash_key", None) => Mode::SharedHashKey,
        ("one_key", None) => Mode::OneKey,
        ("per_shard", Some(ranges)) => Mode::PerShard(ShardMap::new(ranges).map_err(|e| {
            PyValueError::new_err(format!(
                "{}: pass the open shards only \
                 (list_shards(..., ShardFilter={{\"Type\": \"AT_LATEST\"}}))",
                e.message()
            ))
        })?),
        ("per_shard", None) => {
            return Err(PyValueError::new_err(
                "mode \"per_shard\" needs shards= (the stream's open shards)",
            ));
        }
        ("shared_hash_key" | "one_key", Some(_)) => {
            return Err(PyValueError::new_err(
                "shards= is for mode \"per_shard\" only",
            ));
        }
        _ => {
            return Err(PyValueError::new_err(
                "mode must be \"shared_hash_key\", \"one_key\" or \"per_shard\"",
            ));
        }
    };
    let aggregation = Aggregation::new(limits)
        .map_err(|e| PyValueError::new_err(e.message()))?
        .with_mode(mode)
        .with_max_bytes(max_bytes);
    let one_key = match key {
        Some(k) if !k.is_none() => {
            Some(Key::of(k).ok_or_else(|| PyTypeError::new_err("key must be a str or bytes"))?)
        }
        _ => None,
    };
    let list = as_list(records)?;
    let entries: Vec<AggEntry<'py>> = list
        .iter()
        .map(|r| read_agg(&r, one_key.as_ref()))
        .collect();
    let mut out = Vec::new();
    let mut refused = Vec::new();
    for step in aggregation.plan(&entries) {
        match step {
            Step::Refused(r) => refused.push(match entries[r.index].invalid {
                Some(why) => (r.index, INVALID_RECORD, why),
                None => (r.index, r.reason.as_str(), r.reason.message()),
            }),
            Step::Aggregate(a) => {
                let mut failed = None;
                let data = PyBytes::new_with(py, a.data_len as usize, |buf| {
                    if let Err(e) = encode(&entries, &a, buf) {
                        failed = Some(e);
                    }
                    Ok(())
                })?;
                if let Some(e) = failed {
                    return Err(PyRuntimeError::new_err(e.message()));
                }
                let entry = PyDict::new(py);
                entry.set_item(intern!(py, "Data"), data)?;
                let pk = a.partition_key(&entries);
                entry.set_item(intern!(py, "PartitionKey"), String::from_utf8_lossy(pk))?;
                let mut digits = [0; MAX_HASH_KEY_DIGITS];
                if let Some(h) = a.explicit_hash_key(&entries, &mut digits) {
                    entry.set_item(intern!(py, "ExplicitHashKey"), String::from_utf8_lossy(h))?;
                }
                out.push((entry, a.start, a.end));
            }
        }
    }
    Ok((out, refused))
}

/// What `deaggregate` hands back: each user record's data, partition key and explicit
/// hash key.
type SubRecordOut<'py> = (Bound<'py, PyBytes>, String, Option<String>);

/// deaggregate(data, partition_key, explicit_hash_key=None)
/// --
///
/// The user records of one Kinesis record (itself when it is not an aggregate).
#[pyfunction]
#[pyo3(signature = (data, partition_key, explicit_hash_key = None))]
pub(crate) fn deaggregate<'py>(
    py: Python<'py>,
    data: &[u8],
    partition_key: &str,
    explicit_hash_key: Option<&str>,
) -> PyResult<Vec<SubRecordOut<'py>>> {
    let records = kinesis_batcher::aggregate::deaggregate(
        data,
        partition_key.as_bytes(),
        explicit_hash_key.map(str::as_bytes),
    )
    .map_err(|e| PyValueError::new_err(e.message()))?;
    Ok(records
        .map(|r| {
            (
                PyBytes::new(py, r.data),
                String::from_utf8_lossy(r.partition_key).into_owned(),
                r.explicit_hash_key
                    .map(|h| String::from_utf8_lossy(h).into_owned()),
            )
        })
        .collect())
}
