#!/usr/bin/env bash
# The full test suite: what the README's second command runs and what CI runs.
# Installs what it needs; safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n== %s\n' "$*"; }

step "toolchain components"
if command -v rustup >/dev/null 2>&1; then
  rustup component add rustfmt clippy >/dev/null 2>&1 || true
fi

step "format and lints"
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -- -D warnings

step "docs (broken links and examples are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --quiet

step "unit, boundary, property, no-allocation and doc tests (optimised, with overflow and debug checks)"
cargo test --workspace --profile ci

step "benchmarks run once each (timings come from 'cargo bench', not from here)"
cargo bench -- --test

step "the README's main command, and the Rust example"
cargo run --quiet --release -- demo >/dev/null 2>&1
cargo run --quiet --release --example plan_records >/dev/null

echo
echo "all checks passed"
