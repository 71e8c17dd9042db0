#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ for a bounded time (FUZZ_SECONDS each, default
# 20), starting from the committed seed corpus copied to a scratch dir under
# fuzz/target/ (the committed corpus is never grown here), and fails on any crash.
# Needs a nightly toolchain (libFuzzer's sanitizer coverage); without one it skips.
#
#   bash scripts/fuzz.sh                       # every target, 20 s each
#   FUZZ_SECONDS=60 bash scripts/fuzz.sh       # longer
#   FUZZ_TARGETS="ffi_plan" bash scripts/fuzz.sh
#
# One target for longer, by hand, growing a local corpus (from fuzz/):
#   cd fuzz && cargo +nightly fuzz run plan_bulk -- -max_total_time=3600 -max_len=4096
# (that writes new inputs into fuzz/corpus/plan_bulk: do not commit them wholesale; keep
# the committed seed corpus under 100 KB). A crash is saved under fuzz/artifacts/<target>/;
# reproduce with `cargo +nightly fuzz run <target> <file>`, print the input with
# `cargo +nightly fuzz fmt <target> <file>`, shrink with `cargo +nightly fuzz tmin`.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root/fuzz"

if ! cargo +nightly --version >/dev/null 2>&1; then
    echo "fuzz: skipped: no nightly toolchain (rustup toolchain install nightly to run it)"
    exit 0
fi

# cargo-fuzz itself builds with stable or nightly; 0.13.2 is the version checked here
# (built with rustc 1.95 stable, 2026). --locked keeps its dependencies as released.
CARGO_FUZZ_VERSION="${CARGO_FUZZ_VERSION:-0.13.2}"
if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz $CARGO_FUZZ_VERSION"
    cargo install cargo-fuzz --version "$CARGO_FUZZ_VERSION" --locked
fi

seconds="${FUZZ_SECONDS:-20}"
targets="${FUZZ_TARGETS:-plan_bulk lines retry ffi_plan deaggregate aggregate_roundtrip}"
max_len="${FUZZ_MAX_LEN:-4096}"
scratch="$root/fuzz/target/fuzz-scratch"

echo "fuzz: building targets ($(cargo +nightly --version))"
cargo +nightly fuzz build

failed=()
for target in $targets; do
    corpus="$scratch/corpus/$target"
    artifacts="$scratch/artifacts/$target/"
    rm -rf "$corpus" "$artifacts"
    mkdir -p "$corpus" "$artifacts"
    if [ -d "corpus/$target" ]; then
        cp -r "corpus/$target/." "$corpus/"
    fi
    log="$scratch/$target.log"
    echo "fuzz: $target for ${seconds}s"
    start=$(date +%s)
    status=0
    cargo +nightly fuzz run "$target" "$corpus" -- \
        -max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 \
        -artifact_prefix="$artifacts" -print_final_stats=1 >"$log" 2>&1 || status=$?
    elapsed=$(( $(date +%s) - start ))
    runs=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$log" | grep -Eo '[0-9]+$' | tail -n 1 || true)
    if [ -z "$runs" ]; then
        runs=$(grep -Eo '^Done [0-9]+ runs' "$log" | grep -Eo '[0-9]+' | tail -n 1 || true)
    fi
    echo "fuzz: $target: ${runs:-?} executions in ${elapsed}s, corpus $(ls "$corpus" | wc -l) inputs"
    if [ "$status" -ne 0 ] || [ -n "$(ls -A "$artifacts")" ]; then
        echo "fuzz: $target FAILED (exit $status); last lines of $log:"
        tail -n 60 "$log"
        ls -l "$artifacts"
        failed+=("$target")
    fi
done

if [ "${#failed[@]}" -ne 0 ]; then
    echo "fuzz: crashes in: ${failed[*]} (inputs under $scratch/artifacts/)"
    exit 1
fi
echo "fuzz: all targets passed"
