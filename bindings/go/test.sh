#!/usr/bin/env bash
# The Go binding's checks: format, vet, tests (plain, race, cgocheck2, GOGC=1), a short
# fuzz run, the benchmarks once, the shared-library build tag, and a program in a module
# of its own outside the checkout, built as a Go user would build it. Then the producer
# module (./producer, its own go.mod: the AWS SDK): format, vet, tests (race,
# cgocheck2), its benchmarks once, and the README's Producer program in a module of its
# own outside the checkout, run against bindings/c/test/fake_kinesis.py. The package
# (./kinesisbatcher) and ./producer only: bindings/go/examples/ is left to its own checks.
#
# The package finds the library with pkg-config, so this installs it first (`make
# install`) into target/go-prefix. A fixed prefix, not a temporary one: the go build
# cache keeps a cgo package's pkg-config flags (`go help cache`), and a path into a
# deleted directory would fail the next run's link.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
export PATH="/usr/local/go/bin:$PATH"
module=github.com/kinesis-batcher/kinesis-batcher/bindings/go

step() { printf '\n== %s\n' "$*"; }
fail() {
    echo "bindings/go/test.sh: FAILED: $*" >&2
    exit 1
}

step "make install PREFIX=target/go-prefix (the C library, found through pkg-config)"
prefix="$root/target/go-prefix"
rm -rf "$prefix"
make -C "$root" --no-print-directory -s install PREFIX="$prefix" >/dev/null
export PKG_CONFIG_PATH="$prefix/lib/pkgconfig"
# Go's build cache does not see the C header or library (`go help cache`): a package
# compiled against the last install would be reused as it is, old constants and all,
# and pass; one built against another prefix would link that prefix's archive. CGO_CFLAGS
# is part of the cache key, so name this install (its path and its bytes) in it.
library_id="$( { echo "$prefix"; cat "$prefix/include/kinesis_batcher.h" "$prefix/lib/libkinesis_batcher.a"; } | sha256sum | cut -c1-16)"
export CGO_CFLAGS="$(go env CGO_CFLAGS) -DKBGO_LIBRARY_ID=$library_id"

cd "$here"
step "gofmt"
unformatted="$(gofmt -l ./kinesisbatcher ./producer)"
if [[ -n "$unformatted" ]]; then
    echo "not gofmt-ed:"; echo "$unformatted"; exit 1
fi
step "go vet"
go vet ./kinesisbatcher
step "go test"
go test -count=1 ./kinesisbatcher
step "go test -race"
go test -count=1 -race ./kinesisbatcher
step "GOEXPERIMENT=cgocheck2 go test"
GOEXPERIMENT=cgocheck2 go test -count=1 ./kinesisbatcher
step "GOGC=1 go test"
GOGC=1 go test -count=1 ./kinesisbatcher
# A count, not a duration: with a duration, Go's fuzz coordinator can report its own
# deadline as a failure (golang/go#75804, in Go 1.26). 100,000 runs take about 10 s here.
step "fuzz FuzzPlan for 100,000 runs"
go test -run '^$' -fuzz '^FuzzPlan$' -fuzztime 100000x ./kinesisbatcher
step "fuzz FuzzDeaggregate for 100,000 runs"
go test -run '^$' -fuzz '^FuzzDeaggregate$' -fuzztime 100000x ./kinesisbatcher
step "benchmarks once"
go test -run '^$' -bench . -benchtime 1x ./kinesisbatcher

step "-tags kinesisbatcher_shared: the shared library, through kinesis_batcher.pc"
shared_test="$root/target/go-shared.test"
go test -c -tags kinesisbatcher_shared -o "$shared_test" ./kinesisbatcher
readelf -d "$shared_test" | grep -q 'NEEDED.*libkinesis_batcher\.so\.' ||
    fail "-tags kinesisbatcher_shared did not link the shared library"
(cd kinesisbatcher && LD_LIBRARY_PATH="$prefix/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" "$shared_test")
rm -f "$shared_test"

# The producer module: the Producer on the AWS SDK, over the package (a `replace ../`).
step "producer: go vet"
(cd producer && go vet ./...)
step "producer: go test -race"
(cd producer && go test -count=1 -race ./...)
step "producer: GOEXPERIMENT=cgocheck2 go test"
(cd producer && GOEXPERIMENT=cgocheck2 go test -count=1 ./...)
step "producer: benchmarks once"
(cd producer && go test -run '^$' -bench . -benchtime 1x .)

# A Go user's program: its own module in a temporary directory outside the checkout,
# requiring the module. The `replace` stands in for the module proxy (nothing is
# published); it brings the Go source only. The library comes from a `make install`
# into a prefix of its own, through PKG_CONFIG_PATH, as the README says. A fresh build
# cache (the first build of a new user) makes every build below run cgo and pkg-config
# for real, instead of reusing the package built above.
step "a program in its own module outside the checkout, after one make install"
unset CGO_CFLAGS # a user's: the fresh build cache below needs no key
user="$(mktemp -d "${TMPDIR:-/tmp}/kb-go-user.XXXXXX")"
trap 'chmod -R u+w "$user" 2>/dev/null; rm -rf "$user"' EXIT
make -C "$root" --no-print-directory -s install PREFIX="$user/prefix" >/dev/null
mkdir -p "$user/app" "$user/empty-pkgconfig"
export GOCACHE="$user/gocache" GOFLAGS=-mod=mod
user_env=(env -u LD_LIBRARY_PATH PKG_CONFIG_PATH="$user/prefix/lib/pkgconfig")

# Every README example marked <!-- go-example --> (its first ```go block after the mark),
# with the output the README shows after <!-- go-example-output --> (its first ```text
# block).
block() { # file mark lang
    awk -v mark="$2" -v fence="\`\`\`$3" '
        $0 == mark { armed = 1; next }
        armed && !inside && $0 == fence { inside = 1; next }
        inside && $0 == "```" { exit }
        inside { print }' "$1"
}
write_app() { # readme: its example as main.go, its output as $user/want, and a go.mod
    block "$1" '<!-- go-example -->' go >"$user/app/main.go"
    block "$1" '<!-- go-example-output -->' text >"$user/want"
    [[ -s "$user/app/main.go" && -s "$user/want" ]] ||
        fail "${1#"$root"/}: no Go example or no output after the marks"
    cat >"$user/app/go.mod" <<EOF
module example.com/kb-user

go 1.23

require $module v0.0.0

replace $module => $here
EOF
}

# The two ways a user's build goes wrong, each saying what to do. First, while the fresh
# cache holds no build of the package: a cached one is linked without pkg-config.
expect_failure() { # what pattern... -- command
    local what=$1 out
    shift
    local patterns=()
    while [[ $1 != -- ]]; do patterns+=("$1"); shift; done
    shift
    if out=$(cd "$user/app" && "$@" 2>&1); then
        fail "$what: the build succeeded"
    fi
    for p in "${patterns[@]}"; do
        grep -qF -- "$p" <<<"$out" || { echo "$out" >&2; fail "$what: the error does not mention '$p'"; }
    done
    echo "ok: $what fails with:"
    sed 's/^/    /' <<<"$out"
}
write_app "$root/README.md"
expect_failure "CGO_ENABLED=0" kinesisbatcher_needs_cgo__set_CGO_ENABLED_1 see_README -- \
    "${user_env[@]}" CGO_ENABLED=0 go build -o /dev/null .
# PKG_CONFIG_LIBDIR too: a library installed in a system directory must not be found.
expect_failure "the library not installed" pkg-config kinesis_batcher-static PKG_CONFIG_PATH -- \
    env -u LD_LIBRARY_PATH PKG_CONFIG_PATH= PKG_CONFIG_LIBDIR="$user/empty-pkgconfig" \
    go build -o /dev/null .

checked=0
for readme in "$root/README.md" "$here/README.md"; do
    grep -q '^<!-- go-example -->$' "$readme" || continue
    name="${readme#"$root"/}"
    write_app "$readme"
    (
        cd "$user/app"
        "${user_env[@]}" go build -o "$user/app/app" .
        "${user_env[@]}" "$user/app/app" >"$user/got"
    )
    diff -u "$user/want" "$user/got" || fail "$name: the Go example's output differs from the README's"
    if readelf -d "$user/app/app" | grep -q 'NEEDED.*libkinesis_batcher'; then
        fail "$name: the Go program needs libkinesis_batcher at run time"
    fi
    echo "ok: $name's example builds outside the checkout, runs without LD_LIBRARY_PATH"
    echo "    (NEEDED: $(readelf -d "$user/app/app" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | tr '\n' ' '))"
    checked=$((checked + 1))
done
[[ $checked -eq 2 ]] || fail "README.md and bindings/go/README.md must each hold a <!-- go-example -->"

# The README's shortest Producer program (marked <!-- go-producer-example -->, its
# output after <!-- go-producer-example-output -->), in a module of its own requiring
# the producer module as a user does (`replace` directives standing in for the module
# proxy, the SDK at the producer's versions and sums), built with the fresh cache and
# the temporary install above, and run against the fake Kinesis endpoint of the C
# producer's tests (which checks each request's SigV4 signature and fails the first
# attempt of every third record). The SDK finds the endpoint in AWS_ENDPOINT_URL_KINESIS.
# bindings/go/README.md must hold the program; README.md's is checked when it has one.
step "the README's Producer program in its own module, against a fake Kinesis endpoint"
papp="$user/producer-app"
mkdir -p "$papp"
sdk_require="$(grep -E '^	github.com/aws/aws-sdk-go-v2(/config|/service/kinesis)? v' "$here/producer/go.mod")"
[[ $(wc -l <<<"$sdk_require") -eq 3 ]] ||
    fail "producer/go.mod: no aws-sdk-go-v2, config and service/kinesis requirements"
fake="$root/bindings/c/test/fake_kinesis.py"
pchecked=0
for readme in "$root/README.md" "$here/README.md"; do
    name="${readme#"$root"/}"
    if ! grep -q '^<!-- go-producer-example -->$' "$readme"; then
        [[ $readme == "$here/README.md" ]] && fail "$name: no <!-- go-producer-example -->"
        echo "($name holds no Producer program)"
        continue
    fi
    block "$readme" '<!-- go-producer-example -->' go >"$papp/main.go"
    block "$readme" '<!-- go-producer-example-output -->' text >"$user/pwant"
    [[ -s "$papp/main.go" && -s "$user/pwant" ]] || fail "$name: no Producer program or no output after the marks"
    cat >"$papp/go.mod" <<EOF
module example.com/kb-producer-user

go 1.24

require (
	$module/producer v0.0.0
	$module v0.0.0
$sdk_require
)

replace $module => $here

replace $module/producer => $here/producer
EOF
    cp "$here/producer/go.sum" "$papp/go.sum"
    (cd "$papp" && "${user_env[@]}" go build -o "$papp/app" .)
    rm -f "$user/fake.port" "$user/fake.stored" "$user/fake.log"
    python3 "$fake" --port-file "$user/fake.port" --log "$user/fake.log" --stored "$user/fake.stored" \
        --stream events --region eu-west-1 2>"$user/fake.err" &
    fake_pid=$!
    for _ in $(seq 1 100); do [[ -s "$user/fake.port" ]] && break; sleep 0.05; done
    [[ -s "$user/fake.port" ]] || { kill "$fake_pid"; fail "fake_kinesis.py did not start"; }
    status=0
    (
        cd "$papp"
        env -u AWS_PROFILE -u AWS_SESSION_TOKEN -u AWS_ENDPOINT_URL "${user_env[@]}" AWS_REGION=eu-west-1 \
            AWS_ACCESS_KEY_ID=AKIDEXAMPLE AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY \
            AWS_CONFIG_FILE=/dev/null AWS_SHARED_CREDENTIALS_FILE=/dev/null AWS_EC2_METADATA_DISABLED=true \
            AWS_ENDPOINT_URL_KINESIS="http://127.0.0.1:$(cat "$user/fake.port")" \
            timeout 120 "$papp/app" >"$user/pgot"
    ) || status=$?
    kill "$fake_pid" 2>/dev/null || true
    wait "$fake_pid" 2>/dev/null || true
    [[ $status -eq 0 ]] || { cat "$user/fake.err" >&2; fail "$name: the Producer program exited with $status"; }
    diff -u "$user/pwant" "$user/pgot" || fail "$name: the Producer program's output differs from the README's"
    stored=$(wc -l <"$user/fake.stored")
    throttled=$(grep -c ProvisionedThroughputExceededException "$user/fake.log" || true)
    [[ $throttled -ge 1 ]] || fail "$name: the fake failed no entry: its retries were not exercised"
    echo "ok: $name's Producer program builds outside the checkout and runs against the fake endpoint"
    echo "    ($stored records stored, $throttled requests with failed entries, SigV4 checked)"
    pchecked=$((pchecked + 1))
done
[[ $pchecked -ge 1 ]] || fail "no Producer program checked"

step "ok"
