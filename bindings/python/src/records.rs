//! Reading Python records into the core's size form ([`RecordSize`]): the data's length
//! (its bytes are never read) and the keys' lengths and validity, measured by the core's
//! own [`RecordSize::of`]. Nothing of a record is kept once it is read, so planning holds
//! no reference into the caller's objects and allocates nothing per record.

use kinesis_batcher::cost::key_identity_of;
use kinesis_batcher::{Limits, Record, RecordSize};
use pyo3::buffer::PyUntypedBuffer;
use pyo3::exceptions::PyTypeError;
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyDict, PyList, PyString, PyTuple};

/// Key bytes that are not UTF-8: what a `str` key that cannot be encoded (a lone
/// surrogate) is handed to the core as, so that the core refuses it as `key_not_utf8`.
pub(crate) const NOT_UTF8: &[u8] = b"\xff";

/// A key as read from a record: a `str` (read as UTF-8 in place) or `bytes` (raw).
#[derive(Clone)]
pub(crate) struct Key<'py>(Bound<'py, PyAny>);

impl<'py> Key<'py> {
    /// `key` as a key, if it is a `str` or `bytes`.
    pub(crate) fn of(key: &Bound<'py, PyAny>) -> Option<Key<'py>> {
        is_key(key).then(|| Key(key.clone()))
    }

    /// The key's bytes, borrowed from the Python object.
    #[inline]
    pub(crate) fn bytes(&self) -> &[u8] {
        key_bytes(&self.0)
    }
}

/// The bytes of a key already known to be a `str` or `bytes`.
#[inline]
fn key_bytes<'a>(key: &'a Bound<'_, PyAny>) -> &'a [u8] {
    if let Ok(s) = key.cast::<PyString>() {
        // A str with a lone surrogate has no UTF-8 form: the core refuses it.
        s.to_str().map(str::as_bytes).unwrap_or(NOT_UTF8)
    } else if let Ok(b) = key.cast::<PyBytes>() {
        b.as_bytes()
    } else {
        NOT_UTF8
    }
}

/// The length in bytes of a record's data, which is never read: `bytes`, `str` (its UTF-8
/// length, as boto3 sends it), `bytearray`, or any object with the buffer protocol. The
/// exact types come first: their checks are a pointer comparison.
#[inline(always)]
pub(crate) fn data_len(data: &Bound<'_, PyAny>) -> Result<u64, &'static str> {
    if data.is_exact_instance_of::<PyBytes>() {
        // SAFETY: `data` is a live `bytes` object (its exact type was just checked) and
        // the thread is attached; `PyBytes_Size` only reads its length. One call instead
        // of `as_bytes`'s two, on the path every bytes record takes.
        let len = unsafe { pyo3::ffi::PyBytes_Size(data.as_ptr()) };
        return Ok(len as u64);
    }
    data_len_other(data)
}

/// [`data_len`] for every type but exact `bytes`.
#[inline(never)]
fn data_len_other(data: &Bound<'_, PyAny>) -> Result<u64, &'static str> {
    if let Ok(text) = data.cast::<PyString>() {
        return text
            .to_str()
            .map(|s| s.len() as u64)
            .map_err(|_| "data is a str that cannot be encoded as UTF-8");
    }
    if let Ok(bytes) = data.cast::<PyBytes>() {
        return Ok(bytes.as_bytes().len() as u64);
    }
    if let Ok(array) = data.cast::<PyByteArray>() {
        return Ok(array.len() as u64);
    }
    match PyUntypedBuffer::get(data) {
        Ok(buffer) => Ok(buffer.len_bytes() as u64),
        Err(_) => Err("data is not bytes, str or a bytes-like object"),
    }
}

/// A record as the core measures it, and its key identity when the reader was asked for
/// one (per-key order).
#[derive(Clone, Copy)]
pub(crate) struct Read {
    pub(crate) size: RecordSize,
    pub(crate) key_identity: Option<u64>,
}

/// Reads records one at a time: `PutRecords` entry dicts, `(data, key[, hash_key])`
/// tuples, or bare data with the call's one key (or under limits without keys).
pub(crate) struct Reader<'py> {
    limits: Limits,
    identify: bool,
    one_key: Option<Bound<'py, PyAny>>,
    /// The last key object read, and what it measured (a record of no data): a key
    /// shared by many records (a constant, an interned `str`, the call's one key) is
    /// measured once. The object is held, so that its address cannot be taken by another
    /// object meanwhile.
    last_key: Option<Bound<'py, PyAny>>,
    last_keys: Read,
}

impl<'py> Reader<'py> {
    /// A reader under `limits` with the call's `key` (`None` or a `str`/`bytes`); with
    /// `identify`, each read also gives the record's key identity.
    pub(crate) fn new(
        limits: Limits,
        key: Option<&Bound<'py, PyAny>>,
        identify: bool,
    ) -> PyResult<Reader<'py>> {
        let one_key = match key {
            Some(k) if !k.is_none() => Some(
                Key::of(k)
                    .ok_or_else(|| PyTypeError::new_err("key must be a str or bytes"))?
                    .0,
            ),
            _ => None,
        };
        Ok(Reader {
            limits,
            identify,
            one_key,
            last_key: None,
            last_keys: Read {
                size: RecordSize::default(),
                key_identity: None,
            },
        })
    }

    /// Reads `record`, or says why it cannot be read (it is then refused as
    /// `invalid_record`, never raised).
    #[inline(always)]
    pub(crate) fn read(&mut self, record: &Bound<'py, PyAny>) -> Result<Read, &'static str> {
        // Exact tuples, the fast shape, inline; everything else out of line.
        match record.cast_exact::<PyTuple>() {
            Ok(tuple) => self.read_tuple(tuple),
            Err(_) => self.read_other(record),
        }
    }

    /// Reads a `(data, key[, hash_key])` tuple.
    #[inline(always)]
    fn read_tuple(&mut self, tuple: &Bound<'py, PyTuple>) -> Result<Read, &'static str> {
        let n = tuple.len();
        if !(2..=3).contains(&n) {
            return Err("a tuple record is (data, key) or (data, key, hash_key)");
        }
        // Each part is used as soon as it is read: results held across calls are moved
        // through the stack, which costs more than the reading.
        let data_len = match tuple.get_borrowed_item(0) {
            Ok(data) => data_len(&data)?,
            Err(_) => return Err("the tuple cannot be read"),
        };
        let Ok(key) = tuple.get_borrowed_item(1) else {
            return Err("the tuple cannot be read");
        };
        if !is_key(&key) {
            return Err("the key is not a str");
        }
        if n == 2 {
            return Ok(self.sized(data_len, Some(&key), None));
        }
        match tuple.get_borrowed_item(2) {
            Ok(h) if h.is_none() => Ok(self.sized(data_len, Some(&key), None)),
            Ok(h) if is_key(&h) => Ok(self.sized(data_len, Some(&key), Some(&h))),
            Ok(_) => Err("the explicit hash key is not a str"),
            Err(_) => Err("the tuple cannot be read"),
        }
    }

    /// Reads a dict, a tuple subclass or bare data.
    #[inline(never)]
    fn read_other(&mut self, record: &Bound<'py, PyAny>) -> Result<Read, &'static str> {
        let keyed = self.limits.partition_keys();
        if let Ok(tuple) = record.cast::<PyTuple>() {
            return self.read_tuple(tuple);
        }
        if let Ok(dict) = record.cast::<PyDict>() {
            let (data, key, hash_key) = entry_parts(dict);
            let Some(data) = data else {
                return Err("the entry has no \"Data\"");
            };
            let data_len = data_len(&data)?;
            let key = match key {
                Some(key) if is_key(&key) => Some(key),
                Some(_) => return Err("\"PartitionKey\" is not a str"),
                None if keyed => return Err("the entry has no \"PartitionKey\""),
                None => None,
            };
            if hash_key.as_ref().is_some_and(|h| !is_key(h)) {
                return Err("\"ExplicitHashKey\" is not a str");
            }
            return Ok(self.sized(data_len, key.as_ref(), hash_key.as_ref()));
        }
        let data_len = data_len(record)?;
        if keyed && self.one_key.is_none() {
            return Err("bare data needs key= (or limits without partition keys)");
        }
        // Taken out for the call (`sized` borrows the reader), not cloned: no reference
        // count per record.
        let one_key = self.one_key.take();
        let read = self.sized(data_len, one_key.as_ref(), None);
        self.one_key = one_key;
        Ok(read)
    }

    /// The size form of a record whose parts are read and of the right types.
    #[inline(always)]
    fn sized(
        &mut self,
        data_len: u64,
        key: Option<&Bound<'py, PyAny>>,
        hash_key: Option<&Bound<'py, PyAny>>,
    ) -> Read {
        let mut read = match (key, hash_key) {
            // Under limits without keys the core reads only the data's length.
            _ if !self.limits.partition_keys() => Read {
                size: RecordSize::default(),
                key_identity: None,
            },
            (Some(key), None) => {
                if !self.last_key.as_ref().is_some_and(|last| last.is(key)) {
                    self.last_keys = self.measure_keys(key_bytes(key), None);
                    self.last_key = Some(key.clone());
                }
                self.last_keys
            }
            (key, hash_key) => self.measure_keys(
                key.map_or(&b""[..], |k| key_bytes(k)),
                hash_key.map(|h| key_bytes(h)),
            ),
        };
        read.size.data_len = data_len;
        read
    }

    /// The core's measure of the keys alone.
    fn measure_keys(&self, key: &[u8], hash_key: Option<&[u8]>) -> Read {
        let record = Record {
            data: &[],
            key,
            hash_key,
        };
        Read {
            size: RecordSize::of(&record, self.limits.key_unit()),
            key_identity: if self.identify {
                key_identity_of(&self.limits, key, hash_key)
            } else {
                None
            },
        }
    }
}

/// The `Data`, `PartitionKey` and `ExplicitHashKey` of a `PutRecords` entry dict, as
/// found: `None` when absent (a hash key of `None` too). Types are the caller's to check.
pub(crate) type EntryParts<'py> = (
    Option<Bound<'py, PyAny>>,
    Option<Bound<'py, PyAny>>,
    Option<Bound<'py, PyAny>>,
);

/// Reads the parts of an entry dict (see [`EntryParts`]).
pub(crate) fn entry_parts<'py>(dict: &Bound<'py, PyDict>) -> EntryParts<'py> {
    let py = dict.py();
    let get = |name: &Bound<'py, PyString>| dict.get_item(name).ok().flatten();
    let data = get(intern!(py, "Data"));
    let key = get(intern!(py, "PartitionKey"));
    // A dict of only the entries found has no explicit hash key: one lookup saved on the
    // usual two-entry dict.
    let found = usize::from(data.is_some()) + usize::from(key.is_some());
    let hash_key = if dict.len() > found {
        get(intern!(py, "ExplicitHashKey")).filter(|h| !h.is_none())
    } else {
        None
    };
    (data, key, hash_key)
}

/// Whether `key` can be a key: a `str` or `bytes` (exact types first: a pointer check).
#[inline]
fn is_key(key: &Bound<'_, PyAny>) -> bool {
    key.is_exact_instance_of::<PyString>()
        || key.is_instance_of::<PyString>()
        || key.is_instance_of::<PyBytes>()
}

/// The input as a list, whatever sequence or iterable it came as: batches are slices of
/// it.
pub(crate) fn as_list<'py>(records: &Bound<'py, PyAny>) -> PyResult<Bound<'py, PyList>> {
    if let Ok(list) = records.cast::<PyList>() {
        return Ok(list.clone());
    }
    if records.is_instance_of::<PyBytes>() || records.is_instance_of::<PyString>() {
        return Err(PyTypeError::new_err(
            "records must be a sequence of records, not one bytes or str (plan_lines splits a buffer)",
        ));
    }
    records
        .py()
        .get_type::<PyList>()
        .call1((records,))?
        .cast_into::<PyList>()
        .map_err(Into::into)
}
