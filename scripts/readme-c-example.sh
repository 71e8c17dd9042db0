#!/usr/bin/env bash
# Compiles and runs the C examples in README.md (each block after a `<!-- c-example -->`
# line, in order) against the static library, as C11 and as C++17, and checks what each
# prints, so the README cannot go stale.
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/readme-c
mkdir -p "$out"
rm -f "$out"/example-*.c
awk -v out="$out" '
    /<!-- c-example -->/ {n++; found = 1; next}
    found && /^```c/ {inside = 1; found = 0; next}
    inside && /^```/ {inside = 0; next}
    inside {print > (out "/example-" n ".c")}' README.md

# What each example prints, in README order.
expected=(
'record 1 refused: the partition key is empty
request: records 0..1, 1 records, 14 bytes
request: records 2..3, 1 records, 14 bytes'
'record 2 refused: the partition key is empty
request of 3: 2 stored, 1 to retry
request of 1: 1 stored, 0 to retry'
'records 0..1000: one Kinesis record of 27076 bytes, key "a"
read back: 1000 user records, 1000 as sent'
'record 2 refused: the partition key is empty
record 6 refused: the partition key is empty
request of 3 records, 34 bytes
request of 2 records, 22 bytes
request of 1 records, 12 bytes
request of 1 records, 12 bytes
6 stored, 1 retried, 0 terminal, 2 refused: nothing more'
)
count=$(find "$out" -name 'example-*.c' | wc -l)
# The engine example is also tests/c/engine_example.c, which c-memcheck runs under
# ASan+UBSan and valgrind: the two must not drift apart.
if ! diff -u tests/c/engine_example.c "$out/example-4.c"; then
    echo "readme-c-example: README's engine example differs from tests/c/engine_example.c" >&2
    exit 1
fi
if [ "$count" -ne "${#expected[@]}" ]; then
    echo "readme-c-example: found $count C examples in README.md, expected ${#expected[@]}" >&2
    exit 1
fi

cargo rustc -q --release -p kinesis-batcher --lib --features ffi --crate-type staticlib
# A copy: a shared CARGO_TARGET_DIR may be rebuilt by another checkout meanwhile.
cp "${CARGO_TARGET_DIR:-target}/release/libkinesis_batcher.a" "$out/"
lib=$out/libkinesis_batcher.a
for i in $(seq 1 "$count"); do
    src="$out/example-$i.c"
    cc -std=c11 -Wall -Wextra -Werror -Iinclude "$src" "$lib" -lpthread -ldl -lm -o "$out/example-$i"
    c++ -x c++ -std=c++17 -Wall -Wextra -Werror -Iinclude -c "$src" -o "$out/example-$i-cxx.o"
    c++ "$out/example-$i-cxx.o" "$lib" -lpthread -ldl -lm -o "$out/example-$i-cxx"
    want=${expected[$((i - 1))]}
    for program in "$out/example-$i" "$out/example-$i-cxx"; do
        actual=$("$program") || {
            printf 'readme-c-example: %s exited with %d\n' "$program" "$?" >&2
            exit 1
        }
        if [ "$actual" != "$want" ]; then
            printf 'readme-c-example: %s printed\n%s\nexpected\n%s\n' "$program" "$actual" "$want" >&2
            exit 1
        fi
    done
done
echo "readme-c-example: the README's $count C examples build (C11, C++17) and print what they should"
