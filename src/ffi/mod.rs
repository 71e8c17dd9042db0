//! The C ABI: the whole core behind `kb_` functions, described by
//! `include/kinesis_batcher.h` (generated from this module by cbindgen).
//!
//! This layer adds no batching logic. It checks what C can get wrong (NULL pointers,
//! lengths, capacities, integer codes, limits, an input that is not the one planned),
//! translates types, and keeps panics from unwinding into C. The conventions every
//! function follows:
//!
//! * Every fallible function returns a [`kb_status`]: `KB_OK` (0), a non-error status
//!   below 100 that says how the call ended, or an error of 100 or more.
//! * No partial success: after an error, nothing is written except that every count
//!   out-parameter the caller passed (`n_batches`, `n_refusals`, `n_entries`, `bytes`,
//!   `consumed`, `settled`) is set to 0, so code that forgets the status reads "nothing
//!   written" rather than a stale count; and the optional `bad_index` (or `key_reason`)
//!   names the offending record or entry. Output arrays and objects are unchanged. One
//!   place does it for every function: the `counts` form of `guard!`.
//! * Zero means the default, and the default is the safe choice: a `kb_limits` with
//!   `profile`, `key_unit` and `options` 0 is Kinesis Data Streams with partition keys
//!   validated and counted and batches that never hold a refused record; a zero field of
//!   `kb_retry_policy` is its default.
//! * `(NULL, 0)` is an empty array; NULL with a non-zero length is `KB_NULL_ARRAY`.
//! * Objects (`kb_planner`, `kb_accumulator`, `kb_lines`, `kb_line_planner`,
//!   `kb_delivery`, `kb_engine`) are created by `*_new`, which is the only place this
//!   library allocates, started over by `*_reset` and released by `*_free`. An object may
//!   be used by one thread at a time; different objects, and every function that takes no
//!   object, on any thread at once. There is no global state.
//! * The caller owns every array; the library never keeps a pointer into one past a call.
//!
//! Doc comments on exported items become the header's comments, read by C programmers:
//! they name C types and functions, and say what a caller must guarantee in a plain
//! "Requires:" paragraph rather than a `# Safety` heading (hence the allowed
//! `clippy::missing_safety_doc`).

#![allow(unsafe_code)] // This module is the boundary; every block says why it is sound.
#![allow(non_camel_case_types)] // C names, as the header shows them.
#![allow(clippy::missing_safety_doc)] // The header says "Requires:" instead (see above).

mod aggregate;
mod codes;
mod cost;
mod engine;
mod lines;
mod plan;
mod records;
mod retry;
mod shards;
mod status;

pub use aggregate::*;
pub use codes::*;
pub use cost::*;
pub use engine::*;
pub use lines::*;
pub use plan::*;
pub use records::*;
pub use retry::*;
pub use shards::*;
pub use status::*;

use core::ffi::c_char;
use core::mem::MaybeUninit;
use std::boxed::Box;

use cost::core_limits;

/// The library's major version.
pub const KB_VERSION_MAJOR: u32 = 0;
/// The library's minor version.
pub const KB_VERSION_MINOR: u32 = 1;
/// The library's patch version.
pub const KB_VERSION_PATCH: u32 = 0;

/// The library's version, `"MAJOR.MINOR.PATCH"`: a static string, never freed.
#[unsafe(no_mangle)]
pub extern "C" fn kb_version() -> *const c_char {
    let version = || concat!(env!("CARGO_PKG_VERSION"), "\0").as_ptr().cast();
    guard!(version(), { version() })
}

/// Panics inside the guard: for the C suite's check that a panic becomes `KB_PANIC`.
/// Only with the `ffi-test-panic` feature, and not in the header.
#[cfg(feature = "ffi-test-panic")]
#[doc(hidden)]
#[unsafe(no_mangle)]
pub extern "C" fn kb_test_panic() -> kb_status {
    guard!({ panic!("kb_test_panic was called") })
}

/// Runs an exported function's body, turning a panic into `KB_PANIC` (or the given
/// value, for functions that return no status) instead of unwinding into C. The shipped
/// library is built with `panic = "abort"`, where this never triggers; it protects
/// builds that unwind (tests, Rust programs that link the ABI).
///
/// `guard!(counts: [n_batches, n_refusals], { ... })` is the form for every function
/// with count out-parameters: when the body ends in an error (a panic included), each of
/// them that is not NULL is set to 0 (see [`zero_count`]).
macro_rules! guard {
    ($body:block) => {
        guard!(crate::ffi::KB_PANIC, $body)
    };
    (counts: [$($count:expr),+ $(,)?], $body:block) => {{
        let status: crate::ffi::kb_status = guard!($body);
        if crate::ffi::status::is_error(status) {
            $(
                // SAFETY: a count out-parameter is NULL or writable (every function's
                // contract), and the body is over: nothing else writes it now.
                unsafe { crate::ffi::zero_count($count) };
            )+
        }
        status
    }};
    ($on_panic:expr, $body:block) => {
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| $body)) {
            Ok(value) => value,
            Err(_) => $on_panic,
        }
    };
}
pub(crate) use guard;

/// `Err(KB_NULL_POINTER)` unless `ptr` is non-NULL: for required object and
/// out-parameter pointers.
macro_rules! non_null {
    ($($ptr:expr),+ $(,)?) => {
        if false $(|| $ptr.is_null())+ {
            return crate::ffi::KB_NULL_POINTER;
        }
    };
}
pub(crate) use non_null;

/// Returns early with the status when the expression is an `Err`.
macro_rules! check {
    ($result:expr) => {
        match $result {
            Ok(value) => value,
            Err(status) => return status,
        }
    };
}
pub(crate) use check;

/// An input array as a slice: `(NULL, 0)` and `(p, 0)` are empty, NULL with a non-zero
/// length is `KB_NULL_ARRAY`.
///
/// # Safety
/// When `ptr` is non-NULL it must point to `len` initialised `T`s that stay valid and
/// unchanged for `'a`.
pub(crate) unsafe fn input<'a, T>(ptr: *const T, len: usize) -> Result<&'a [T], kb_status> {
    if len == 0 {
        return Ok(&[]);
    }
    if ptr.is_null() {
        return Err(KB_NULL_ARRAY);
    }
    if len > isize::MAX as usize / core::mem::size_of::<T>().max(1) {
        return Err(KB_LENGTH_OVERFLOW);
    }
    // SAFETY: non-NULL, and the caller guarantees `len` valid `T`s behind it; the total
    // size was checked to be at most isize::MAX.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// An output array as a slice of possibly uninitialised entries: NULL with a non-zero
/// capacity is `KB_NULL_ARRAY`, a zero capacity `KB_ZERO_CAPACITY` (no call could make
/// progress). `MaybeUninit` because C's memory may hold any bytes (an uninitialised
/// array, or a `bool` or enum field with a value Rust does not allow): the core only
/// writes into it, through the `*_uninit` methods.
///
/// # Safety
/// When `ptr` is non-NULL it must point to `cap` writable `T`s, valid for `'a` and not
/// aliased by any other argument.
pub(crate) unsafe fn output<'a, T>(
    ptr: *mut T,
    cap: usize,
) -> Result<&'a mut [MaybeUninit<T>], kb_status> {
    if cap == 0 {
        return Err(KB_ZERO_CAPACITY);
    }
    if ptr.is_null() {
        return Err(KB_NULL_ARRAY);
    }
    if cap > isize::MAX as usize / core::mem::size_of::<T>().max(1) {
        return Err(KB_LENGTH_OVERFLOW);
    }
    // SAFETY: non-NULL, and the caller guarantees `cap` writable `T`s behind it, not
    // aliased; the total size was checked to be at most isize::MAX. `MaybeUninit<T>` has
    // the layout of `T` and no validity requirement, whatever the memory holds.
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr.cast::<MaybeUninit<T>>(), cap) })
}

/// Writes `value` through an out-parameter the caller passed, if it is not NULL.
///
/// # Safety
/// `ptr` is NULL or valid for a write of `T`.
pub(crate) unsafe fn set<T>(ptr: *mut T, value: T) {
    if !ptr.is_null() {
        // SAFETY: non-NULL, and the caller guarantees it is valid for writes.
        unsafe { ptr.write(value) }
    }
}

/// Sets a count out-parameter to 0 (its type's default), if the caller passed one: what
/// every function does to its counts after an error, through `guard!(counts: ...)`.
///
/// # Safety
/// `ptr` is NULL or valid for a write of `T`.
pub(crate) unsafe fn zero_count<T: Default>(ptr: *mut T) {
    // SAFETY: the caller's promise above.
    unsafe { set(ptr, T::default()) }
}

/// Moves `value` to the heap for C to hold, or `KB_OUT_OF_MEMORY` instead of aborting.
pub(crate) fn into_handle<T>(value: T) -> Result<*mut T, kb_status> {
    let layout = std::alloc::Layout::new::<T>();
    // SAFETY: every handle type holds data, so the layout's size is not zero.
    let ptr = unsafe { std::alloc::alloc(layout) }.cast::<T>();
    if ptr.is_null() {
        return Err(KB_OUT_OF_MEMORY);
    }
    // SAFETY: freshly allocated for a `T`, properly aligned, and not yet initialised.
    unsafe { ptr.write(value) };
    Ok(ptr)
}

/// Releases a handle made by [`into_handle`]; NULL is ignored.
///
/// # Safety
/// `ptr` is NULL or came from [`into_handle`] for the same `T` and was not freed yet.
pub(crate) unsafe fn free_handle<T>(ptr: *mut T) {
    if !ptr.is_null() {
        // SAFETY: allocated with the global allocator and the layout of `T` by
        // `into_handle`, which is what `Box` uses, and not freed before (the caller's
        // promise).
        drop(unsafe { Box::from_raw(ptr) });
    }
}

/// The object behind a handle, for reading.
///
/// # Safety
/// `ptr` is non-NULL, came from [`into_handle`], was not freed, and no other thread uses
/// it mutably during the call.
pub(crate) unsafe fn object<'a, T>(ptr: *const T) -> &'a T {
    // SAFETY: the caller's promise above.
    unsafe { &*ptr }
}

/// The object behind a handle, for changing.
///
/// # Safety
/// As for [`object`], and no other thread uses it at all during the call.
pub(crate) unsafe fn object_mut<'a, T>(ptr: *mut T) -> &'a mut T {
    // SAFETY: the caller's promise above.
    unsafe { &mut *ptr }
}

/// The body of every getter: `KB_NULL_POINTER` for a NULL object or out-pointer, else
/// `*out = read(object)` and `KB_OK`.
///
/// # Safety
/// `object` is NULL or a live handle of its type, not changed by another thread during
/// the call; `out` is NULL or writable.
pub(crate) unsafe fn get<T, V>(
    object: *const T,
    out: *mut V,
    read: impl FnOnce(&T) -> V,
) -> kb_status {
    non_null!(object, out);
    // SAFETY: non-NULL, a live handle (the caller's promise).
    let value = read(unsafe { &*object });
    // SAFETY: non-NULL and writable (the caller's promise).
    unsafe { out.write(value) };
    KB_OK
}

/// The body of every constructor: checks `out` and `limits`, makes the object from the
/// core's limits, moves it to the heap and hands it out.
///
/// # Safety
/// `limits` is NULL or readable; `out` is NULL or writable.
pub(crate) unsafe fn new_object<T>(
    limits: *const kb_limits,
    out: *mut *mut T,
    make: impl FnOnce(crate::Limits) -> Result<T, kb_status>,
) -> kb_status {
    non_null!(out);
    // SAFETY: the caller's promise above.
    let limits = check!(unsafe { core_limits(limits) });
    let handle = check!(into_handle(check!(make(limits))));
    // SAFETY: non-NULL and writable (the caller's promise).
    unsafe { out.write(handle) };
    KB_OK
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::format;

    #[test]
    fn version_macros_match_the_package_version() {
        let expected = format!("{KB_VERSION_MAJOR}.{KB_VERSION_MINOR}.{KB_VERSION_PATCH}");
        assert_eq!(env!("CARGO_PKG_VERSION"), expected);
        // SAFETY: kb_version returns a static NUL-terminated string.
        let version = unsafe { core::ffi::CStr::from_ptr(kb_version()) };
        assert_eq!(version.to_str().unwrap(), expected);
    }
}
