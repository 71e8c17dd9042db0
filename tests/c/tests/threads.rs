//! Many pthreads planning one shared, read-only `kb_record` array at once (tests/c/threads.c),
//! each with its own planner or accumulator, in every style (bulk with small and large
//! capacities, cursor, the size form filled from shared columns by `kb_record_sizes_fill`,
//! accumulator), under two limit sets: every thread's plan must equal the single-threaded
//! `kb_planner_plan`. Run for the suite compiled as C and as C++.

use kinesis_batcher_ctests::{LANGS, Lang};

const THREADS: u32 = 8;

fn shared_input_on_threads(lang: Lang) {
    // SAFETY: the entry point builds, shares and frees its own arrays and joins its threads.
    let mismatches = unsafe { (lang.threads_shared)(THREADS) };
    assert_eq!(
        mismatches, 0,
        "{mismatches} mismatches among {THREADS} {} threads planning one shared array (details on stderr)",
        lang.name
    );
}

#[test]
fn threads_share_one_record_array_as_c() {
    shared_input_on_threads(LANGS[0]);
}

#[test]
fn threads_share_one_record_array_as_cxx() {
    shared_input_on_threads(LANGS[1]);
}
