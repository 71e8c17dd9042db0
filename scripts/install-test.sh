#!/usr/bin/env bash
# Checks the C library as a C user gets it: `make install` into a temporary prefix, then
# a C program (tests/pkgconfig/consumer.c) built with nothing but what pkg-config says,
# linked dynamically and statically, then `make uninstall`. Run from the repository
# root; every build output goes to target/ or the temporary directory.
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
  lib/pkgconfig/kinesis_batcher.pc; do
  [[ -f "$prefix/$f" && ! -L "$prefix/$f" ]] || fail "$f is not installed as a file"
done
[[ $(readlink "$libdir/$soname") == "$real" ]] || fail "$soname does not point to $real"
[[ $(readlink "$libdir/libkinesis_batcher.so") == "$soname" ]] ||
  fail "libkinesis_batcher.so does not point to $soname"
got_soname=$(readelf -d "$libdir/$real" | sed -n 's/.*(SONAME).*\[\(.*\)\]/\1/p')
[[ $got_soname == "$soname" ]] || fail "SONAME is '$got_soname', not $soname"
echo "ok: $real (SONAME $got_soname), $soname -> $real, libkinesis_batcher.so -> $soname, .a, header, .pc"

export PKG_CONFIG_PATH="$libdir/pkgconfig"
[[ $(pkg-config --modversion kinesis_batcher) == "$version" ]] || fail "pkg-config --modversion"
echo "pkg-config --cflags --libs:          $(pkg-config --cflags --libs kinesis_batcher)"
echo "pkg-config --cflags --static --libs: $(pkg-config --cflags --static --libs kinesis_batcher)"

step "Libs.private against rustc's native-static-libs"
# A fresh build prints them (a cached one prints nothing), hence its own target dir.
native=$(cargo rustc -p kinesis-batcher --lib --profile capi --features ffi \
  --target-dir "$build/cargo" --crate-type staticlib -- --print native-static-libs 2>&1 |
  sed -n 's/.*native-static-libs: //p')
[[ -n $native ]] || fail "rustc printed no native-static-libs"
static_libs=" $(pkg-config --static --libs kinesis_batcher) "
for lib in $native; do
  [[ $static_libs == *" $lib "* ]] || fail "rustc needs $lib, missing from Libs.private"
done
echo "ok: rustc needs '$native', all in Libs.private"

step "dynamic link: cc ... \$(pkg-config --cflags --libs kinesis_batcher)"
# shellcheck disable=SC2046 # pkg-config's output is meant to be split into words
cc -std=c11 -Wall -Wextra -Werror tests/pkgconfig/consumer.c \
  $(pkg-config --cflags --libs kinesis_batcher) -o "$build/consumer-dynamic"
LD_LIBRARY_PATH="$libdir" "$build/consumer-dynamic"
needed=$(readelf -d "$build/consumer-dynamic" | sed -n 's/.*(NEEDED).*\[\(libkinesis_batcher[^]]*\)\]/\1/p')
[[ $needed == "$soname" ]] || fail "the dynamic binary's NEEDED is '$needed', not $soname"
resolved=$(LD_LIBRARY_PATH="$libdir" ldd "$build/consumer-dynamic" | sed -n "s/.*$soname => \([^ ]*\).*/\1/p")
[[ $resolved == "$libdir/$soname" ]] || fail "$soname resolves to '$resolved', not the installed one"
echo "ok: NEEDED $needed, resolved to $resolved"

step "static link: pkg-config --static, with -lkinesis_batcher asking for the archive"
# With both libkinesis_batcher.so and .a in libdir, `-lkinesis_batcher` always picks the
# .so. Putting the .a's path in front of the pkg-config flags resolves every symbol from
# the archive, but GNU ld still records the .so named later as NEEDED (Debian's gcc
# links without --as-needed). So the one -lkinesis_batcher in pkg-config's output is
# wrapped in -Bstatic/-Bdynamic, in place: everything else, Libs.private included and in
# its order after the library, is pkg-config's, and libc and libgcc_s stay dynamic.
static_flags=$(pkg-config --cflags --static --libs kinesis_batcher)
static_flags=${static_flags/-lkinesis_batcher/-Wl,-Bstatic -lkinesis_batcher -Wl,-Bdynamic}
echo "flags: $static_flags"
# shellcheck disable=SC2086 # split into words on purpose
cc -std=c11 -Wall -Wextra -Werror tests/pkgconfig/consumer.c $static_flags \
  -o "$build/consumer-static"
env -u LD_LIBRARY_PATH "$build/consumer-static"
if readelf -d "$build/consumer-static" | grep -q 'NEEDED.*libkinesis_batcher'; then
  fail "the static binary still needs libkinesis_batcher"
fi
echo "ok: no NEEDED libkinesis_batcher ($(readelf -d "$build/consumer-static" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' '))"

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
echo "install-test: kinesis_batcher $version installed, found by pkg-config, linked dynamically"
echo "(NEEDED $soname) and statically (no NEEDED), $(wc -l <<<"$exported") kb_* exports, uninstalled cleanly"
