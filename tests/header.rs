//! The committed C header is what cbindgen makes of src/ffi today, and it reads as C.
//!
//! `KB_BLESS_HEADER=1 cargo test --features ffi --test header` rewrites it. The other
//! tests check what a C or C++ programmer gets: no Rust left in the comments, the
//! `uint8_t` codes usable through pointers in both languages, and a map at the top that
//! names every object, every `*_reset`, every non-error status and nothing that does not
//! exist.

#![cfg(feature = "ffi")]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The header as cbindgen makes it from src/ffi and cbindgen.toml today.
fn generate() -> String {
    let mut config =
        cbindgen::Config::from_file(root().join("cbindgen.toml")).expect("cbindgen.toml");
    // The version string comes from Cargo.toml, so it cannot drift from kb_version().
    config.after_includes = Some(format!(
        "{}\n\n// The library's version, as kb_version() returns it.\n#define KB_VERSION \"{}\"\n",
        config.after_includes.take().unwrap_or_default(),
        env!("CARGO_PKG_VERSION")
    ));
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(root())
        .with_config(config)
        .generate()
        .expect("cbindgen could not read src/ffi")
        .write(&mut generated);
    String::from_utf8(generated).expect("UTF-8 header")
}

fn header_path() -> PathBuf {
    root().join("include/kinesis_batcher.h")
}

#[test]
fn committed_header_is_current() {
    let generated = generate();
    if std::env::var_os("KB_BLESS_HEADER").is_some() {
        std::fs::write(header_path(), &generated).expect("write the header");
        return;
    }
    let committed = std::fs::read_to_string(header_path()).unwrap_or_default();
    assert!(
        committed == generated,
        "include/kinesis_batcher.h is stale: regenerate it with \
         KB_BLESS_HEADER=1 cargo test --features ffi --test header"
    );
}

/// Rust that must not reach the C reader: rustdoc headings and links, notes addressed to
/// Rust readers, Rust paths and types.
const RUST_LEFTOVERS: &[&str] = &[
    "# Safety", "[`", "In C,", "in C,", "(In C", "(in C", "::", "Option<", "&[u8]", "&mut ",
    "Result<", "Some(", "usize", "crate", "Self",
];

#[test]
fn header_has_no_rust_leftovers() {
    // The header as src/ffi makes it now, so the test does not wait for a bless.
    let header = generate();
    let found: Vec<String> = header
        .lines()
        .enumerate()
        .flat_map(|(n, line)| {
            RUST_LEFTOVERS
                .iter()
                .filter(move |bad| line.contains(*bad))
                .map(move |bad| format!("line {}: {bad:?} in {line:?}", n + 1))
        })
        .collect();
    assert!(
        found.is_empty(),
        "Rust leftovers in the header (write the C reader's sentence in `///`, and keep \
         Rust-only text in #[cfg_attr(doc, doc = \"...\")], which cbindgen does not \
         copy):\n{}",
        found.join("\n")
    );
}

/// One source, compiled as C11 and as C++17: the codes are `uint8_t` in both, so a
/// pointer to a struct's code field is a `kb_reason *`, a `kb_error_kind *` and a
/// `uint8_t *` alike, and the constants are distinct values of that type.
const CODES_TU: &str = r#"
#include <kinesis_batcher.h>

#ifdef __cplusplus
#include <type_traits>
#define KB_ASSERT(cond, msg) static_assert(cond, msg)
static_assert(std::is_same<kb_reason, uint8_t>::value, "kb_reason is uint8_t");
static_assert(std::is_same<kb_error_kind, uint8_t>::value, "kb_error_kind is uint8_t");
static_assert(std::is_same<decltype(kb_refusal().reason), kb_reason>::value,
              "kb_refusal.reason is a kb_reason");
static_assert(std::is_same<decltype(kb_terminal().kind), kb_error_kind>::value,
              "kb_terminal.kind is a kb_error_kind");
#else
#define KB_ASSERT(cond, msg) _Static_assert(cond, msg)
KB_ASSERT(_Generic((kb_reason)0, uint8_t: 1, default: 0), "kb_reason is uint8_t");
KB_ASSERT(_Generic((kb_error_kind)0, uint8_t: 1, default: 0), "kb_error_kind is uint8_t");
#endif

KB_ASSERT(sizeof(kb_reason) == 1, "kb_reason is one byte");
KB_ASSERT(sizeof(kb_error_kind) == 1, "kb_error_kind is one byte");
KB_ASSERT(sizeof(kb_status) == 4, "kb_status is a uint32_t");
KB_ASSERT(sizeof(kb_record_size) == 24, "kb_record_size is 24 bytes");

int kb_header_codes(kb_refusal *r, kb_terminal *t, kb_line_refusal *lr);

int kb_header_codes(kb_refusal *r, kb_terminal *t, kb_line_refusal *lr) {
    kb_reason *p = &r->reason;
    uint8_t *q = &r->reason;
    kb_reason *lp = &lr->refusal.reason;
    kb_error_kind *k = &t->kind;
    uint8_t *k8 = &t->kind;
    int n = 0;
    switch (*p) {
    case KB_REASON_KEY_NOT_UTF8:
    case KB_REASON_KEY_EMPTY:
    case KB_REASON_KEY_TOO_LONG:
    case KB_REASON_HASH_KEY_INVALID:
    case KB_REASON_RECORD_TOO_LARGE:
        n += 1;
        break;
    default:
        n += 2;
        break;
    }
    switch (*k) {
    case KB_ERROR_KIND_THROUGHPUT_EXCEEDED:
    case KB_ERROR_KIND_INTERNAL_FAILURE:
    case KB_ERROR_KIND_THROTTLING:
    case KB_ERROR_KIND_SERVER_ERROR:
    case KB_ERROR_KIND_TRANSPORT:
    case KB_ERROR_KIND_BAD_RESPONSE:
    case KB_ERROR_KIND_UNKNOWN:
        n += 3;
        break;
    case KB_ERROR_KIND_VALIDATION:
    case KB_ERROR_KIND_INVALID_ARGUMENT:
    case KB_ERROR_KIND_RESOURCE_NOT_FOUND:
    case KB_ERROR_KIND_ACCESS_DENIED:
    case KB_ERROR_KIND_KMS:
    case KB_ERROR_KIND_CLIENT_ERROR:
        n += 4;
        break;
    case KB_ERROR_KIND_NONE:
        n += 5;
        break;
    default:
        break;
    }
    /* The struct fields go straight to the functions that write or read the codes. */
    kb_status st = kb_record_measure(NULL, NULL, NULL, &r->reason);
    st |= kb_error_kind_from_code(NULL, 0, &t->kind);
    st |= kb_error_kind_from_http_status(503, k);
    if (kb_error_kind_is_retryable(*k) && kb_reason_name(*lp) && kb_error_kind_name(t->kind))
        n += 6;
    return n + *q + *k8 + (int)st;
}
"#;

fn compile(compiler: &str, std: &str, lang: &str, source: &Path) {
    let output = Command::new(compiler)
        .arg(format!("-std={std}"))
        .args(["-x", lang])
        .args(["-Wall", "-Wextra", "-Wpedantic", "-Werror", "-fsyntax-only"])
        .arg(format!("-I{}", root().join("include").display()))
        .arg(source)
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run {compiler} (a C and a C++ compiler are needed): {e}")
        });
    assert!(
        output.status.success(),
        "{compiler} -std={std} rejects the header's codes:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn codes_are_one_type_in_c_and_cpp() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("header-codes");
    std::fs::create_dir_all(&dir).expect("temporary directory");
    let source = dir.join("codes.txt");
    std::fs::write(&source, CODES_TU).expect("write the translation unit");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let cxx = std::env::var("CXX").unwrap_or_else(|_| "c++".into());
    compile(&cc, "c11", "c", &source);
    compile(&cxx, "c++17", "c++", &source);
}

/// Every `kb_...` and `KB_...` identifier in `text`.
fn names(text: &str) -> BTreeSet<&str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|word| word.starts_with("kb_") || word.starts_with("KB_"))
        .collect()
}

/// The header's opening comment (the map) and the rest.
fn map_and_rest(header: &str) -> (&str, &str) {
    let end = header.find("*/").expect("the header opens with a comment") + 2;
    header.split_at(end)
}

/// The lines of C code, without comments.
fn code(rest: &str) -> String {
    rest.lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn the_map_names_every_object_reset_and_status() {
    let header = std::fs::read_to_string(header_path()).expect("the committed header");
    let (map, rest) = map_and_rest(&header);
    let code = code(rest);
    let declared = names(&code);
    let mentioned = names(map);

    // The objects: the opaque types, `typedef struct kb_x kb_x;`.
    let objects: Vec<&str> = code
        .lines()
        .filter_map(|line| {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words[..] {
                ["typedef", "struct", name, alias] if alias == format!("{name};") => Some(name),
                _ => None,
            }
        })
        .collect();
    assert!(objects.len() >= 5, "objects found: {objects:?}");
    let resets: Vec<&str> = declared
        .iter()
        .copied()
        .filter(|name| name.ends_with("_reset"))
        .collect();
    assert!(!resets.is_empty(), "no kb_*_reset in the header");

    let mut missing = Vec::new();
    for object in &objects {
        for name in [
            object.to_string(),
            format!("{object}_new"),
            format!("{object}_free"),
        ] {
            if !mentioned.contains(name.as_str()) {
                missing.push(name);
            }
        }
        // The map says every object has a _reset: it must exist.
        let reset = format!("{object}_reset");
        if !declared.contains(reset.as_str()) {
            missing.push(format!("{reset} (not declared in the header)"));
        }
    }
    for reset in &resets {
        if !mentioned.contains(reset) {
            missing.push(reset.to_string());
        }
    }
    // Every status that is not an error is listed (they are what the loops test).
    let status_rs = std::fs::read_to_string(root().join("src/ffi/status.rs")).expect("status.rs");
    let statuses: Vec<(&str, u32)> = status_rs
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("pub const ")?;
            let (name, value) = rest.split_once(": kb_status = ")?;
            Some((name, value.trim_end_matches(';').parse().ok()?))
        })
        .collect();
    assert!(
        statuses.len() > 20,
        "statuses found in status.rs: {statuses:?}"
    );
    for (name, value) in statuses {
        if value < 100 && !mentioned.contains(name) {
            missing.push(name.to_string());
        }
    }
    assert!(
        missing.is_empty(),
        "the header's map does not mention: {missing:?}"
    );

    // And it names nothing that does not exist (a renamed function, a retired status).
    let unknown: Vec<&&str> = mentioned
        .iter()
        .filter(|name| !declared.contains(*name) && !name.ends_with('_'))
        .filter(|name| **name != "KB_BLESS_HEADER")
        .collect();
    assert!(
        unknown.is_empty(),
        "the header's map names what the header does not declare: {unknown:?}"
    );
}
