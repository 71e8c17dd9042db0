#!/usr/bin/env bash
# Runs the C suite (tests/c) against the Rust static library under AddressSanitizer +
# UndefinedBehaviorSanitizer, and under valgrind's memcheck. Installs valgrind if
# missing. Run from anywhere; build outputs go to target/c-memcheck/.
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/c-memcheck
mkdir -p "$out"
start=$SECONDS

if ! command -v valgrind >/dev/null 2>&1; then
  echo "== installing valgrind"
  if [ "$(id -u)" -eq 0 ]; then sudo=""; else sudo="sudo"; fi
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq valgrind
fi
cc=${CC:-cc}

echo "== building the Rust static library"
cargo rustc --quiet --release -p kinesis-batcher --lib --features ffi-test-panic \
  --crate-type staticlib
# A copy: a shared CARGO_TARGET_DIR may be rebuilt by another checkout meanwhile.
cp "${CARGO_TARGET_DIR:-target}/release/libkinesis_batcher.a" "$out/"
lib=$out/libkinesis_batcher.a
test -f "$lib"

sources=(tests/c/main.c tests/c/suite.c tests/c/suite_plan.c tests/c/suite_lines.c
  tests/c/suite_delivery.c tests/c/suite_shards.c tests/c/suite_aggregate.c tests/c/suite_engine.c tests/c/drivers.c tests/c/threads.c)
cflags=(-std=c11 -Wall -Wextra -Wpedantic -Werror -Iinclude -Itests/c -DKB_SUITE_PREFIX=c_
  -pthread)
libs=("$lib" -lpthread -ldl -lm -lrt)

echo "== AddressSanitizer + UndefinedBehaviorSanitizer"
"$cc" "${cflags[@]}" -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
  -fno-sanitize-recover=all "${sources[@]}" "${libs[@]}" -o "$out/suite-asan"
asan_line=$(ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
  "$out/suite-asan" 2>"$out/suite-asan.stderr" | tail -n 1) || {
  cat "$out/suite-asan.stderr" >&2
  echo "c-memcheck: the sanitizer build failed" >&2
  exit 1
}
echo "$asan_line"

echo "== valgrind memcheck"
"$cc" "${cflags[@]}" -O1 -g "${sources[@]}" "${libs[@]}" -o "$out/suite-plain"
vg_line=$(valgrind --quiet --error-exitcode=1 --leak-check=full \
  --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect \
  "$out/suite-plain" 2>"$out/suite-valgrind.stderr" | tail -n 1) || {
  cat "$out/suite-valgrind.stderr" >&2
  echo "c-memcheck: valgrind found errors or the suite failed" >&2
  exit 1
}
echo "$vg_line"

echo "== the engine example (tests/c/engine_example.c, the README's): ASan+UBSan, valgrind"
example_want='record 2 refused: the partition key is empty
record 6 refused: the partition key is empty
request of 3 records, 34 bytes
request of 2 records, 22 bytes
request of 1 records, 12 bytes
request of 1 records, 12 bytes
6 stored, 1 retried, 0 terminal, 2 refused: nothing more'
"$cc" "${cflags[@]}" -O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer \
  -fno-sanitize-recover=all tests/c/engine_example.c "${libs[@]}" -o "$out/engine-example-asan"
"$cc" "${cflags[@]}" -O1 -g tests/c/engine_example.c "${libs[@]}" -o "$out/engine-example"
for run in "$out/engine-example-asan" "valgrind --quiet --error-exitcode=1 --leak-check=full $out/engine-example"; do
  example_got=$($run) || { echo "c-memcheck: $run failed" >&2; exit 1; }
  if [ "$example_got" != "$example_want" ]; then
    printf 'c-memcheck: %s printed\n%s\nexpected\n%s\n' "$run" "$example_got" "$example_want" >&2
    exit 1
  fi
done

echo "c-memcheck: ok (ASan+UBSan and valgrind clean; $asan_line) in $((SECONDS - start)) s"
