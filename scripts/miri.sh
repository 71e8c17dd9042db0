#!/usr/bin/env bash
# Runs the tests that exercise unsafe code and are quick under Miri (about a minute on 2
# cores, after Miri's first sysroot build): the library's unit tests (src/ffi's included),
# tests/boundaries.rs, and tests/miri_ffi.rs (every C ABI entry point that dereferences a
# caller's pointer, on tiny inputs). The proptest suites (properties, lines, retry, reach)
# are left out: they run at least 10,000 cases whatever PROPTEST_CASES says, hours under
# Miri. Needs a nightly toolchain with the miri component; without one it skips.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

if ! cargo +nightly miri --version >/dev/null 2>&1; then
    echo "miri: skipped: no nightly toolchain with miri (rustup +nightly component add miri rust-src to run it)"
    exit 0
fi

export MIRIFLAGS="${MIRIFLAGS:--Zmiri-strict-provenance}"
export PROPTEST_CASES="${PROPTEST_CASES:-8}"
echo "miri: $(cargo +nightly miri --version), MIRIFLAGS=$MIRIFLAGS"
start=$(date +%s)
cargo +nightly miri setup
cargo +nightly miri test --features ffi --lib
cargo +nightly miri test --features ffi --test boundaries --test miri_ffi
echo "miri: passed in $(( $(date +%s) - start ))s"
