//! Compiles the C suite (tests/c/*.c) twice into one static library: as C11 and as C++17,
//! the C++ copy with its entry points renamed (`cxx_` instead of `c_`), so both link into
//! the same test binaries.

use std::path::Path;

const SOURCES: [&str; 9] = [
    "suite.c",
    "suite_plan.c",
    "suite_lines.c",
    "suite_delivery.c",
    "suite_shards.c",
    "suite_aggregate.c",
    "suite_engine.c",
    "drivers.c",
    "threads.c",
];

fn main() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let include = here.join("../../include");
    println!("cargo:rerun-if-changed=kb_test.h");
    println!("cargo:rerun-if-changed=../../include/kinesis_batcher.h");
    for source in SOURCES {
        println!("cargo:rerun-if-changed={source}");
    }

    let mut c = cc::Build::new();
    // warnings(true): warnings(false) would add -w, which silences every -W flag below.
    c.include(&include)
        .include(here)
        .warnings(true)
        .flag("-std=c11")
        .flag("-Wall")
        .flag("-Wextra")
        .flag("-Wpedantic")
        .flag("-Werror")
        .define("KB_SUITE_PREFIX", "c_");
    for source in SOURCES {
        c.file(here.join(source));
    }
    c.compile("kb_csuite_c");

    let mut cxx = cc::Build::new();
    cxx.cpp(true)
        .include(&include)
        .include(here)
        .warnings(true)
        .flag("-x")
        .flag("c++")
        .flag("-std=c++17")
        .flag("-Wall")
        .flag("-Wextra")
        .flag("-Werror")
        .define("KB_SUITE_PREFIX", "cxx_");
    for source in SOURCES {
        cxx.file(here.join(source));
    }
    cxx.compile("kb_csuite_cxx");
    // threads.c starts pthreads.
    println!("cargo:rustc-link-lib=pthread");
}
