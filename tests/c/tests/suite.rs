//! Runs the C suite as C and as C++ and asserts that no check failed; runs the suite's
//! thread worker on several threads at once; and checks that the suite calls every
//! function the header declares.

use std::path::Path;

use kinesis_batcher_ctests::LANGS;

#[test]
fn c_suite_passes_as_c() {
    let lang = LANGS[0];
    // SAFETY: the suite's entry point takes nothing and uses its own state.
    let failures = unsafe { (lang.suite_run)() };
    // SAFETY: as above.
    let checks = unsafe { (lang.suite_checks)() };
    assert!(
        checks > 1000,
        "the {} suite made only {checks} checks",
        lang.name
    );
    assert_eq!(
        failures, 0,
        "{failures} of {checks} checks failed in the {} suite",
        lang.name
    );
}

#[test]
fn c_suite_passes_as_cxx() {
    let lang = LANGS[1];
    // SAFETY: as in c_suite_passes_as_c.
    let failures = unsafe { (lang.suite_run)() };
    // SAFETY: as above.
    let checks = unsafe { (lang.suite_checks)() };
    assert!(
        checks > 1000,
        "the {} suite made only {checks} checks",
        lang.name
    );
    assert_eq!(
        failures, 0,
        "{failures} of {checks} checks failed in the {} suite",
        lang.name
    );
}

/// Independent objects on several threads at once, from both copies of the suite.
#[test]
fn independent_objects_on_many_threads() {
    let workers: Vec<_> = (0..8u64)
        .map(|i| {
            let lang = LANGS[(i % 2) as usize];
            std::thread::spawn(move || {
                // SAFETY: the worker makes and frees its own objects and arrays.
                (lang.name, unsafe { (lang.thread_worker)(0x5eed + i) })
            })
        })
        .collect();
    for worker in workers {
        let (name, failures) = worker.join().expect("worker thread");
        assert_eq!(
            failures, 0,
            "a {name} thread worker failed {failures} checks"
        );
    }
}

/// Every `kb_` function in the header is called somewhere in the suite's C sources.
#[test]
fn suite_calls_every_header_function() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let header = std::fs::read_to_string(root.join("../../include/kinesis_batcher.h"))
        .expect("read the header");
    let mut sources = String::new();
    for entry in std::fs::read_dir(root).expect("tests/c") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "c") {
            sources += &std::fs::read_to_string(&path).expect("read a C source");
        }
    }
    // Every identifier followed by `(` outside comments: the declared functions.
    let mut declared: Vec<&str> = Vec::new();
    for line in header.lines().filter(|l| !l.trim_start().starts_with("//")) {
        let mut rest = line;
        while let Some(at) = rest.find("kb_") {
            let tail = &rest[at..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            if tail[end..].starts_with('(') {
                declared.push(&tail[..end]);
            }
            rest = &tail[end..];
        }
    }
    assert!(
        declared.len() >= 50,
        "found only {} functions in the header",
        declared.len()
    );
    let missing: Vec<&&str> = declared
        .iter()
        .filter(|name| !sources.contains(&format!("{name}(")))
        .collect();
    assert!(missing.is_empty(), "the C suite never calls {missing:?}");
}
