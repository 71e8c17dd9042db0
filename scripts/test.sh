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
cargo clippy --all-targets -- -D warnings

step "docs (broken links and examples are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --no-deps --quiet

step "unit, boundary, property, no-allocation and doc tests (optimised, with overflow and debug checks)"
cargo test --profile ci

step "benchmarks run once each (timings come from 'cargo bench', not from here)"
cargo bench --bench plan -- --test

step "demo"
cargo run --quiet --release --example demo >/dev/null

echo
echo "all checks passed"
