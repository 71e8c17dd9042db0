#!/usr/bin/env bash
# Checks the C library as a C user gets it: `make install` into a temporary prefix, then
# a C program (tests/pkgconfig/consumer.c) built with exactly the two commands the
# README documents (shared: kinesis_batcher.pc; static: kinesis_batcher-static.pc), run,
# and checked with readelf; then `make uninstall`. Run from the repository root; every
# build output goes to target/ or the temporary directory.
set -euo pipefail

if [[ ! -f Cargo.toml || ! -f Makefile || ! -f tests/pkgconfig/consumer.c ]]; then
  echo "install-test.sh: run me from the repository root" >&2
  exit 2
fi

step() { printf '\n== %s\n' "$*"; }
fail() {
  echo "install-test.sh: FAILED: $*" >&2
  exit 1
}

if ! command -v pkg-config >/dev/null 2>&1; then
  step "installing pkg-config"
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  $sudo apt-get install -y pkg-config || { $sudo apt-get update && $sudo apt-get install -y pkg-config; }
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/kb-install-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix="$tmp/prefix"
build="$tmp/build"
mkdir -p "$build"

step "make install PREFIX=$prefix"
make install PREFIX="$prefix"

libdir="$prefix/lib"
version=$(sed -n '/^\[package\]/,/^\[/s/^version *= *"\([^"]*\)".*/\1/p' Cargo.toml)
major=${version%%.*}
real="libkinesis_batcher.so.$version"
soname="libkinesis_batcher.so.$major"

step "installed files"
for f in "lib/$real" "lib/libkinesis_batcher.a" include/kinesis_batcher.h \
  lib/pkgconfig/kinesis_batcher.pc lib/pkgconfig/kinesis_batcher-static.pc; do
  [[ -f "$prefix/$f" && ! -L "$prefix/$f" ]] || fail "$f is not installed as a file"
done
[[ $(readlink "$libdir/$soname") == "$real" ]] || fail "$soname does not point to $real"
[[ $(readlink "$libdir/libkinesis_batcher.so") == "$soname" ]] ||
  fail "libkinesis_batcher.so does not point to $soname"
got_soname=$(readelf -d "$libdir/$real" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ $got_soname == "$soname" ]] || fail "SONAME is '$got_soname', not $soname"
echo "ok: $real (SONAME $got_soname), $soname -> $real, libkinesis_batcher.so -> $soname, .a, header, both .pc"

export PKG_CONFIG_PATH="$libdir/pkgconfig"
for pc in kinesis_batcher kinesis_batcher-static; do
  [[ $(pkg-config --modversion $pc) == "$version" ]] || fail "pkg-config --modversion $pc"
done
echo "pkg-config --cflags --libs kinesis_batcher:        $(pkg-config --cflags --libs kinesis_batcher)"
echo "pkg-config --cflags --libs kinesis_batcher-static: $(pkg-config --cflags --libs kinesis_batcher-static)"

step "Libs.private and kinesis_batcher-static's Libs against rustc's native-static-libs"
# A fresh build prints them (a cached one prints nothing), hence its own target dir.
native=$(cargo rustc -p kinesis-batcher --lib --profile capi --features ffi \
  --target-dir "$build/cargo" --crate-type staticlib -- --print native-static-libs 2>&1 |
  sed -n 's/.*native-static-libs: //p')
[[ -n $native ]] || fail "rustc printed no native-static-libs"
private_libs=" $(pkg-config --static --libs kinesis_batcher) "
static_libs=" $(pkg-config --libs kinesis_batcher-static) "
for lib in $native; do
  [[ $private_libs == *" $lib "* ]] || fail "rustc needs $lib, missing from Libs.private"
  [[ $static_libs == *" $lib "* ]] || fail "rustc needs $lib, missing from kinesis_batcher-static"
done
echo "ok: rustc needs '$native', all in Libs.private and in kinesis_batcher-static's Libs"

# The README's two link commands, run as they are written (app.c is consumer.c); the
# README must still hold each one word for word.
shared_cmd='cc -std=c11 app.c $(pkg-config --cflags --libs kinesis_batcher) -o app'
static_cmd='cc -std=c11 app.c $(pkg-config --cflags --libs kinesis_batcher-static) -o app'
for cmd in "$shared_cmd" "$static_cmd"; do
  grep -qF -- "$cmd" README.md || fail "README.md no longer documents: $cmd"
done
mkdir -p "$build/shared" "$build/static"
cp tests/pkgconfig/consumer.c "$build/shared/app.c"
cp tests/pkgconfig/consumer.c "$build/static/app.c"

step "shared: $shared_cmd"
(cd "$build/shared" && eval "$shared_cmd")
LD_LIBRARY_PATH="$libdir" "$build/shared/app"
needed=$(readelf -d "$build/shared/app" | sed -n 's/.*(NEEDED).*\[\(libkinesis_batcher[^]]*\)\]/\1/p')
[[ $needed == "$soname" ]] || fail "the shared-linked binary's NEEDED is '$needed', not $soname"
resolved=$(LD_LIBRARY_PATH="$libdir" ldd "$build/shared/app" | sed -n "s/.*$soname => \([^ ]*\).*/\1/p")
[[ $resolved == "$libdir/$soname" ]] || fail "$soname resolves to '$resolved', not the installed one"
echo "ok: NEEDED $needed, resolved to $resolved"

step "static: $static_cmd"
(cd "$build/static" && eval "$static_cmd")
# Run as a user would, with no loader path: the prefix is in no system directory.
env -u LD_LIBRARY_PATH "$build/static/app"
if readelf -d "$build/static/app" | grep -q 'NEEDED.*libkinesis_batcher'; then
  fail "the static-linked binary still needs libkinesis_batcher"
fi
if env -u LD_LIBRARY_PATH ldd "$build/static/app" | grep -q libkinesis_batcher; then
  fail "ldd lists libkinesis_batcher for the static-linked binary"
fi
echo "ok: no NEEDED libkinesis_batcher ($(readelf -d "$build/static/app" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' '))"

step "exported symbols"
exported=$(nm -D --defined-only "$libdir/$real" | awk '{print $NF}' | sort -u)
others=$(grep -v '^kb_' <<<"$exported" || true)
[[ -z $others ]] || fail "symbols other than kb_* are exported: $(tr '\n' ' ' <<<"$others")"
# And they are exactly the functions the header declares.
declared=$(grep -v '^ *//' include/kinesis_batcher.h | grep -oE '\bkb_[a-z0-9_]+\(' | tr -d '(' | sort -u)
if [[ $exported != "$declared" ]]; then
  diff <(echo "$declared") <(echo "$exported") >&2 || true
  fail "exported symbols (>) differ from the header's functions (<)"
fi
echo "ok: $(wc -l <<<"$exported") symbols, all kb_*, exactly the header's functions"

step "make uninstall PREFIX=$prefix"
make uninstall PREFIX="$prefix"
left=$(find "$prefix" \( -type f -o -type l \) -print)
[[ -z $left ]] || fail "left after uninstall: $left"
echo "ok: no files left under $prefix"

step "summary"
echo "install-test: kinesis_batcher $version installed, found by pkg-config, linked with kinesis_batcher.pc"
echo "(NEEDED $soname) and kinesis_batcher-static.pc (no NEEDED), $(wc -l <<<"$exported") kb_* exports, uninstalled cleanly"
