#!/usr/bin/env bash
# The Go binding's checks: format, vet, tests (plain, race, cgocheck2, GOGC=1), a short
# fuzz run, the benchmarks once, and the pkg-config build against an installed library.
# Only this package (`.`): bindings/go/examples/ is left to its own checks.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export PATH="/usr/local/go/bin:$PATH"

step() { printf '\n== %s\n' "$*"; }

step "make (the C library)"
make -C "$root" --no-print-directory

cd "$here"
step "gofmt"
unformatted="$(gofmt -l ./*.go)"
if [[ -n "$unformatted" ]]; then
    echo "not gofmt-ed:"; echo "$unformatted"; exit 1
fi
step "go vet"
go vet .
step "go test"
go test -count=1 .
step "go test -race"
go test -count=1 -race .
step "GOEXPERIMENT=cgocheck2 go test"
GOEXPERIMENT=cgocheck2 go test -count=1 .
step "GOGC=1 go test"
GOGC=1 go test -count=1 .
step "fuzz FuzzPlan for 10s"
go test -run '^$' -fuzz '^FuzzPlan$' -fuzztime 10s .
step "benchmarks once"
go test -run '^$' -bench . -benchtime 1x .

step "pkg-config build (-tags kinesisbatcher_pkgconfig) against make install"
# A fixed prefix, not a temporary one: the go build cache keeps a cgo package's
# pkg-config flags, and a -L into a deleted directory would fail the next run's link.
prefix="$root/target/go-pkgconfig-prefix"
rm -rf "$prefix"
make -C "$root" --no-print-directory install PREFIX="$prefix" >/dev/null
PKG_CONFIG_PATH="$prefix/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}" \
LD_LIBRARY_PATH="$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
    go test -count=1 -tags kinesisbatcher_pkgconfig .

step "ok"
