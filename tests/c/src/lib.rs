//! The C test suite (`tests/c/*.c`), compiled by `build.rs` once as C11 and once as
//! C++17, and the entry points of both copies, for the tests in `tests/`.
//!
//! Every entry point is a plain C function; [`Lang`] bundles one copy's, so each test runs
//! against both languages.

use core::ffi::{c_uint, c_ulong};

use kinesis_batcher::ffi::{kb_limits, kb_record, kb_status};
use kinesis_batcher::lines::{LineBatch, LineRefusal};
use kinesis_batcher::{Batch, Reason, Refusal};

/// A planning driver: limits, records, their count, a seed; the batches and refusals
/// (arrays of `n + 1`) with their counts.
pub type Driver = unsafe extern "C" fn(
    *const kb_limits,
    *const kb_record,
    usize,
    u64,
    *mut Batch,
    *mut usize,
    *mut Refusal,
    *mut usize,
) -> kb_status;

/// The line-planning driver: limits, key, options, input, seed, outputs, key reason.
pub type LineDriver = unsafe extern "C" fn(
    *const kb_limits,
    *const u8,
    usize,
    u32,
    *const u8,
    usize,
    u64,
    *mut LineBatch,
    usize,
    *mut usize,
    *mut LineRefusal,
    usize,
    *mut usize,
    *mut Reason,
) -> kb_status;

/// One language's copy of the suite.
#[derive(Clone, Copy)]
pub struct Lang {
    /// `"C"` or `"C++"`.
    pub name: &'static str,
    /// Runs the whole suite; returns the number of failed checks.
    pub suite_run: unsafe extern "C" fn() -> c_ulong,
    /// How many checks the last `suite_run` made.
    pub suite_checks: unsafe extern "C" fn() -> c_ulong,
    /// Independent planners over records generated from the seed; returns failures.
    pub thread_worker: unsafe extern "C" fn(u64) -> c_ulong,
    /// That many pthreads planning one shared record array at once, each compared with
    /// the single-threaded plan; returns the number of mismatches.
    pub threads_shared: unsafe extern "C" fn(c_uint) -> c_ulong,
    /// `kb_planner_plan` with small random capacities, resumed until done.
    pub drive_plan: Driver,
    /// `kb_planner_next` until `KB_END`.
    pub drive_next: Driver,
    /// `kb_accumulator_push` for each record, then `kb_accumulator_flush`.
    pub drive_accumulator: Driver,
    /// `kb_record_size_of` then `kb_planner_plan_sizes` with small random capacities.
    pub drive_sizes: Driver,
    /// `kb_line_planner_plan` fed in random chunks with small random capacities.
    pub drive_lines: LineDriver,
}

/// Declares one language's copy of the entry points (`c_*` or `cxx_*`, as build.rs
/// names them) in a module, with its [`Lang`].
macro_rules! copy_of_the_suite {
    ($module:ident, $name:literal, $prefix:literal) => {
        mod $module {
            use super::*;

            unsafe extern "C" {
                #[link_name = concat!($prefix, "suite_run")]
                fn suite_run() -> c_ulong;
                #[link_name = concat!($prefix, "suite_checks")]
                fn suite_checks() -> c_ulong;
                #[link_name = concat!($prefix, "thread_worker")]
                fn thread_worker(seed: u64) -> c_ulong;
                #[link_name = concat!($prefix, "threads_shared")]
                fn threads_shared(n_threads: c_uint) -> c_ulong;
                #[link_name = concat!($prefix, "drive_plan")]
                fn drive_plan(
                    l: *const kb_limits,
                    r: *const kb_record,
                    n: usize,
                    seed: u64,
                    b: *mut Batch,
                    nb: *mut usize,
                    f: *mut Refusal,
                    nf: *mut usize,
                ) -> kb_status;
                #[link_name = concat!($prefix, "drive_next")]
                fn drive_next(
                    l: *const kb_limits,
                    r: *const kb_record,
                    n: usize,
                    seed: u64,
                    b: *mut Batch,
                    nb: *mut usize,
                    f: *mut Refusal,
                    nf: *mut usize,
                ) -> kb_status;
                #[link_name = concat!($prefix, "drive_accumulator")]
                fn drive_accumulator(
                    l: *const kb_limits,
                    r: *const kb_record,
                    n: usize,
                    seed: u64,
                    b: *mut Batch,
                    nb: *mut usize,
                    f: *mut Refusal,
                    nf: *mut usize,
                ) -> kb_status;
                #[link_name = concat!($prefix, "drive_sizes")]
                fn drive_sizes(
                    l: *const kb_limits,
                    r: *const kb_record,
                    n: usize,
                    seed: u64,
                    b: *mut Batch,
                    nb: *mut usize,
                    f: *mut Refusal,
                    nf: *mut usize,
                ) -> kb_status;
                #[link_name = concat!($prefix, "drive_lines")]
                fn drive_lines(
                    l: *const kb_limits,
                    key: *const u8,
                    key_len: usize,
                    options: u32,
                    input: *const u8,
                    len: usize,
                    seed: u64,
                    b: *mut LineBatch,
                    b_cap: usize,
                    nb: *mut usize,
                    f: *mut LineRefusal,
                    f_cap: usize,
                    nf: *mut usize,
                    key_reason: *mut Reason,
                ) -> kb_status;
            }

            pub const LANG: Lang = Lang {
                name: $name,
                suite_run,
                suite_checks,
                thread_worker,
                threads_shared,
                drive_plan,
                drive_next,
                drive_accumulator,
                drive_sizes,
                drive_lines,
            };
        }
    };
}

copy_of_the_suite!(c, "C", "c_");
copy_of_the_suite!(cxx, "C++", "cxx_");

/// Both copies: the suite compiled as C, and as C++.
pub const LANGS: [Lang; 2] = [c::LANG, cxx::LANG];

/// The library's C ABI is what the C code calls: keep the rlib linked.
pub use kinesis_batcher::ffi::kb_version;
