//! The committed C header is what cbindgen makes of src/ffi today.
//!
//! `KB_BLESS_HEADER=1 cargo test --features ffi --test header` rewrites it.

#![cfg(feature = "ffi")]

use std::path::Path;

#[test]
fn committed_header_is_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut config =
        cbindgen::Config::from_file(root.join("cbindgen.toml")).expect("cbindgen.toml");
    // The version string comes from Cargo.toml, so it cannot drift from kb_version().
    config.after_includes = Some(format!(
        "{}\n\n// The library's version, as kb_version() returns it.\n#define KB_VERSION \"{}\"\n",
        config.after_includes.take().unwrap_or_default(),
        env!("CARGO_PKG_VERSION")
    ));
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(root)
        .with_config(config)
        .generate()
        .expect("cbindgen could not read src/ffi")
        .write(&mut generated);
    let generated = String::from_utf8(generated).expect("UTF-8 header");
    let path = root.join("include/kinesis_batcher.h");
    if std::env::var_os("KB_BLESS_HEADER").is_some() {
        std::fs::write(&path, &generated).expect("write the header");
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == generated,
        "include/kinesis_batcher.h is stale: regenerate it with \
         KB_BLESS_HEADER=1 cargo test --features ffi --test header"
    );
}
