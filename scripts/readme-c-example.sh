#!/usr/bin/env bash
# Compiles and runs the C example in README.md (the block after `<!-- c-example -->`)
# against the static library, as C11 and as C++17, so the README cannot go stale.
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/readme-c
mkdir -p "$out"
awk '/<!-- c-example -->/ {found = 1; next}
     found && /^```c/ {inside = 1; next}
     inside && /^```/ {exit}
     inside {print}' README.md > "$out/example.c"
test -s "$out/example.c" || { echo "readme-c-example: no C example found in README.md" >&2; exit 1; }

cargo rustc -q --release -p kinesis-batcher --lib --features ffi --crate-type staticlib
lib=target/release/libkinesis_batcher.a
cc -std=c11 -Wall -Wextra -Werror -Iinclude "$out/example.c" "$lib" -lpthread -ldl -lm -o "$out/example"
c++ -x c++ -std=c++17 -Wall -Wextra -Werror -Iinclude -c "$out/example.c" -o "$out/example-cxx.o"
c++ "$out/example-cxx.o" "$lib" -lpthread -ldl -lm -o "$out/example-cxx"

expected='record 1 refused: the partition key is empty
request: records 0..3, 2 records, 28 bytes'
for program in "$out/example" "$out/example-cxx"; do
    actual=$("$program")
    if [ "$actual" != "$expected" ]; then
        printf 'readme-c-example: %s printed\n%s\nexpected\n%s\n' "$program" "$actual" "$expected" >&2
        exit 1
    fi
done
echo "readme-c-example: the README's C example builds (C11, C++17) and prints what it should"
