package main

// End-to-end tests: build the producer, run it against bindings/c/test/fake_kinesis.py
// (a stdlib fake PutRecords endpoint that verifies SigV4 and fails entries on purpose),
// and check the fake's log: every valid line stored exactly once, retries holding
// exactly the failed entries, refusals and terminal failures reported, exit codes.
//
// Needs the library installed where pkg-config finds it (`make install`, PKG_CONFIG_PATH;
// see README.md) and python3.

import (
	"bufio"
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

const (
	testStream = "test-stream"
	testRegion = "us-east-1"
	testKeyID  = "AKIDEXAMPLE"
	testSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
	fakePath   = "../../../c/test/fake_kinesis.py"
	kmsMarker  = "KMS-FAIL"
)

var producerBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "producer-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	producerBin = filepath.Join(dir, "producer")
	out, err := exec.Command("go", "build", "-o", producerBin, ".").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "building the producer (is the library installed and PKG_CONFIG_PATH set? see README.md): %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// fake is a running fake_kinesis.py.
type fake struct {
	url, log, stored string
	cmd              *exec.Cmd
	stderr           *bytes.Buffer
}

func startFake(t *testing.T, args ...string) *fake {
	t.Helper()
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 not found")
	}
	dir := t.TempDir()
	f := &fake{log: filepath.Join(dir, "log.jsonl"), stored: filepath.Join(dir, "stored"), stderr: &bytes.Buffer{}}
	portFile := filepath.Join(dir, "port")
	all := append([]string{fakePath, "--port-file", portFile, "--log", f.log, "--stored", f.stored,
		"--stream", testStream, "--region", testRegion, "--access-key", testKeyID,
		"--secret-key", testSecret}, args...)
	f.cmd = exec.Command("python3", all...)
	f.cmd.Stderr = f.stderr
	if err := f.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		f.cmd.Process.Kill()
		f.cmd.Wait()
		if t.Failed() && f.stderr.Len() > 0 {
			t.Logf("fake_kinesis stderr:\n%s", f.stderr.String())
		}
	})
	for deadline := time.Now().Add(10 * time.Second); ; {
		if b, err := os.ReadFile(portFile); err == nil {
			f.url = "http://127.0.0.1:" + strings.TrimSpace(string(b))
			return f
		}
		if time.Now().After(deadline) {
			t.Fatalf("fake_kinesis did not start: %s", f.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

type logEntry struct {
	SHA1   string `json:"sha1"`
	Key    string `json:"key"`
	Result string `json:"result"`
}

type logRequest struct {
	N       int        `json:"n"`
	Status  int        `json:"status"`
	Entries []logEntry `json:"entries"`
}

func (f *fake) requests(t *testing.T) []logRequest {
	t.Helper()
	b, err := os.ReadFile(f.log)
	if err != nil {
		t.Fatal(err)
	}
	var reqs []logRequest
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var r logRequest
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatalf("fake log: %v: %s", err, line)
		}
		reqs = append(reqs, r)
	}
	return reqs
}

// testEnv: dummy credentials and region only; nothing from the machine's AWS setup.
func testEnv(t *testing.T, extra ...string) []string {
	home := t.TempDir()
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + home,
		"AWS_CONFIG_FILE=" + filepath.Join(home, "none"),
		"AWS_SHARED_CREDENTIALS_FILE=" + filepath.Join(home, "none"),
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_ACCESS_KEY_ID=" + testKeyID, "AWS_SECRET_ACCESS_KEY=" + testSecret,
		"AWS_REGION=" + testRegion,
	}
	// Later entries win: extra can override or blank (NAME=) the defaults.
	return append(env, extra...)
}

type result struct {
	code           int
	stdout, stderr string
}

func runProducer(t *testing.T, env []string, stdin []byte, args ...string) result {
	t.Helper()
	cmd := exec.Command(producerBin, args...)
	cmd.Env = env
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{code, out.String(), errb.String()}
}

// input is a generated NDJSON file and what should become of each line.
type input struct {
	path    string
	valid   map[string]int // sha1 of data -> line number: lines that must be stored once
	refused map[int]string // line number -> reason
	kms     map[int]bool   // line numbers that fail with KMSAccessDeniedException
}

// makeInput writes n distinct NDJSON lines with some empty lines, a \r\n ending, lines
// over the record cap (refused), lines with the KMS marker (terminal), and no final
// newline.
func makeInput(t *testing.T, n int, kmsEvery int) input {
	t.Helper()
	in := input{path: filepath.Join(t.TempDir(), "events.ndjson"), valid: map[string]int{},
		refused: map[int]string{}, kms: map[int]bool{}}
	var b bytes.Buffer
	line := 0
	for i := 0; i < n; i++ {
		line++
		var data string
		switch {
		case i%97 == 13:
			b.WriteString("\n") // an empty line: skipped, not a record
			continue
		case i == n/2 || i == n/3:
			// Over the 1 MiB record cap with its key: refused as record_too_large.
			data = fmt.Sprintf(`{"id":%d,"blob":"%s"}`, i, strings.Repeat("x", 1<<20))
			in.refused[line] = "record_too_large"
		case kmsEvery > 0 && i%kmsEvery == kmsEvery-1:
			data = fmt.Sprintf(`{"id":%d,"tag":"%s"}`, i, kmsMarker)
			in.kms[line] = true
		case i%50 == 7:
			data = fmt.Sprintf(`{"id":%d,"pad":"%s"}`, i, strings.Repeat("p", 100_000)) // requests fill by bytes too
		default:
			data = fmt.Sprintf(`{"id":%d,"event":"click","user":"u-%d"}`, i, i%31)
		}
		b.WriteString(data)
		if in.refused[line] == "" && !in.kms[line] {
			sum := sha1.Sum([]byte(data))
			in.valid[hex.EncodeToString(sum[:])] = line
		}
		switch {
		case i == n-1: // no final newline
		case i == 5:
			b.WriteString("\r\n")
		default:
			b.WriteString("\n")
		}
	}
	if err := os.WriteFile(in.path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return in
}

// checkStoredOnce: every valid line stored exactly once, nothing else stored.
func checkStoredOnce(t *testing.T, reqs []logRequest, in input) {
	t.Helper()
	stored := map[string]int{}
	for _, r := range reqs {
		for _, e := range r.Entries {
			if e.Result == "stored" {
				stored[e.SHA1]++
			}
		}
	}
	for sha, line := range in.valid {
		if stored[sha] != 1 {
			t.Errorf("line %d stored %d times", line, stored[sha])
		}
	}
	for sha, n := range stored {
		if _, ok := in.valid[sha]; !ok {
			t.Errorf("a record not among the valid lines was stored %d times (sha1 %s)", n, sha)
		}
	}
}

// checkRetriesFirst: after a request with retryable failures, the next request starts
// with exactly those entries, in the same order; and no record is sent more often than
// it failed plus one.
func checkRetriesFirst(t *testing.T, reqs []logRequest) {
	t.Helper()
	sends, fails := map[string]int{}, map[string]int{}
	for i, r := range reqs {
		for _, e := range r.Entries {
			sends[e.SHA1]++
			if e.Result != "stored" {
				fails[e.SHA1]++
			}
		}
		if i+1 == len(reqs) {
			break
		}
		var retry []string
		for _, e := range r.Entries {
			if e.Result == "ProvisionedThroughputExceededException" || e.Result == "request_failed" {
				retry = append(retry, e.SHA1)
			}
		}
		next := reqs[i+1].Entries
		if len(next) < len(retry) {
			t.Fatalf("request %d: %d entries, but %d failed before it", reqs[i+1].N, len(next), len(retry))
		}
		for j, sha := range retry {
			if next[j].SHA1 != sha {
				t.Fatalf("request %d entry %d is not the failed entry %d of request %d", reqs[i+1].N, j, j, r.N)
			}
		}
	}
	for sha, n := range sends {
		if n > fails[sha]+1 {
			t.Errorf("record %s sent %d times after %d failures", sha, n, fails[sha])
		}
	}
}

// reported returns the line numbers the producer reported with the given word
// ("refused" or "failed") and the rest of each message.
func reported(stderr, word string) map[int]string {
	out := map[int]string{}
	sc := bufio.NewScanner(strings.NewReader(stderr))
	prefix := "producer: line "
	for sc.Scan() {
		l := sc.Text()
		if !strings.HasPrefix(l, prefix) {
			continue
		}
		num, rest, ok := strings.Cut(l[len(prefix):], " "+word+": ")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(num)
		if err == nil {
			out[n] = rest
		}
	}
	return out
}

func TestPartialFailures(t *testing.T) {
	f := startFake(t, "--fail-every", "3", "--first-request", "500", "--terminal-marker", kmsMarker)
	in := makeInput(t, 3000, 401)
	res := runProducer(t, testEnv(t, "KINESIS_ENDPOINT="+f.url, "KINESIS_STREAM="+testStream),
		nil, "--backoff-base-ms", "1", in.path)
	if res.code != exitNotAllStored {
		t.Fatalf("exit %d, want %d; stderr:\n%s", res.code, exitNotAllStored, res.stderr)
	}
	reqs := f.requests(t)
	if len(reqs) < 3 || reqs[0].Status != 500 {
		t.Fatalf("expected a failed first request and more; got %d requests", len(reqs))
	}
	for _, r := range reqs[1:] {
		if r.Status != 200 {
			t.Fatalf("request %d: HTTP %d (the fake rejected the SDK's request?)", r.N, r.Status)
		}
	}
	checkStoredOnce(t, reqs, in)
	checkRetriesFirst(t, reqs)

	refused := reported(res.stderr, "refused")
	for line, reason := range in.refused {
		if !strings.HasPrefix(refused[line], reason) {
			t.Errorf("line %d: want refused %s, got %q", line, reason, refused[line])
		}
	}
	if len(refused) != len(in.refused) {
		t.Errorf("%d lines reported refused, want %d", len(refused), len(in.refused))
	}
	failed := reported(res.stderr, "failed")
	for line := range in.kms {
		if !strings.HasPrefix(failed[line], "kms") {
			t.Errorf("line %d: want failed kms, got %q", line, failed[line])
		}
	}
	if len(failed) != len(in.kms) {
		t.Errorf("%d lines reported failed, want %d", len(failed), len(in.kms))
	}
	want := fmt.Sprintf("%d stored, %d refused, %d failed", len(in.valid), len(in.refused), len(in.kms))
	if !strings.Contains(res.stderr, want) {
		t.Errorf("summary does not say %q:\n%s", want, lastLine(res.stderr))
	}
}

func TestThrottledFirstRequestFromStdin(t *testing.T) {
	// The code only in X-Amzn-ErrorType; --stream and --endpoint options; stdin input.
	f := startFake(t, "--fail-every", "0", "--first-request", "throttle")
	var b bytes.Buffer
	valid := map[string]int{}
	for i := 1; i <= 1200; i++ {
		data := fmt.Sprintf(`{"n":%d}`, i)
		sum := sha1.Sum([]byte(data))
		valid[hex.EncodeToString(sum[:])] = i
		b.WriteString(data + "\n")
	}
	res := runProducer(t, testEnv(t), b.Bytes(), "--stream", testStream, "--endpoint", f.url,
		"--backoff-base-ms", "1", "--partition-key", "device-7")
	if res.code != exitAllStored {
		t.Fatalf("exit %d, want 0; stderr:\n%s", res.code, res.stderr)
	}
	reqs := f.requests(t)
	if reqs[0].Status != 400 || !strings.Contains(res.stderr, "throttling") {
		t.Errorf("the first request should fail as throttling; stderr:\n%s", res.stderr)
	}
	checkStoredOnce(t, reqs, input{valid: valid})
	checkRetriesFirst(t, reqs)
	for _, r := range reqs {
		for _, e := range r.Entries {
			if e.Key != "device-7" {
				t.Fatalf("key %q, want device-7", e.Key)
			}
		}
	}
	if !strings.Contains(res.stderr, "1200 lines, 1200 stored, 0 refused, 0 failed") {
		t.Errorf("summary: %s", lastLine(res.stderr))
	}
}

func TestAccessDeniedIsTerminal(t *testing.T) {
	f := startFake(t, "--deny-all")
	in := makeInput(t, 700, 0)
	res := runProducer(t, testEnv(t, "KINESIS_ENDPOINT="+f.url), nil,
		in.path, "--stream", testStream, "--backoff-base-ms", "1") // options after the file
	if res.code != exitNotAllStored {
		t.Fatalf("exit %d, want 1; stderr:\n%s", res.code, res.stderr)
	}
	sends := map[string]int{}
	for _, r := range f.requests(t) {
		for _, e := range r.Entries {
			sends[e.SHA1]++
		}
	}
	for sha, line := range in.valid {
		if sends[sha] != 1 {
			t.Errorf("line %d sent %d times, want once (access denied is terminal)", line, sends[sha])
		}
	}
	failed := reported(res.stderr, "failed")
	if len(failed) != len(in.valid) {
		t.Errorf("%d lines reported failed, want %d", len(failed), len(in.valid))
	}
	for line, msg := range failed {
		if msg != "access_denied" {
			t.Fatalf("line %d: failed %q, want access_denied", line, msg)
		}
	}
}

func TestNothingListening(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // a port nobody listens on
	res := runProducer(t, testEnv(t), []byte("{\"a\":1}\n{\"a\":2}\n"), "--stream", testStream,
		"--endpoint", "http://"+addr, "--max-attempts", "3", "--backoff-base-ms", "1")
	if res.code != exitNotAllStored {
		t.Fatalf("exit %d, want 1; stderr:\n%s", res.code, res.stderr)
	}
	failed := reported(res.stderr, "failed")
	if len(failed) != 2 || failed[1] != "transport (gave up: attempt or age limit)" {
		t.Errorf("want lines 1 and 2 failed as transport, gave up; got %v\n%s", failed, res.stderr)
	}
	if !strings.Contains(res.stderr, "3 requests") {
		t.Errorf("want 3 requests (--max-attempts 3): %s", lastLine(res.stderr))
	}
}

func TestDryRun(t *testing.T) {
	in := makeInput(t, 1500, 0)
	res := runProducer(t, []string{"PATH=" + os.Getenv("PATH")}, nil, "--dry-run", "--stream", "s", in.path)
	if res.code != exitNotAllStored { // the oversized lines are refused
		t.Fatalf("exit %d, want 1; stderr:\n%s", res.code, res.stderr)
	}
	seen := map[string]int{}
	for _, line := range strings.Split(strings.TrimSpace(res.stdout), "\n") {
		var body struct {
			StreamName string
			Records    []struct {
				Data         []byte
				PartitionKey string
			}
		}
		if err := json.Unmarshal([]byte(line), &body); err != nil {
			t.Fatal(err)
		}
		total := 0
		for _, r := range body.Records {
			total += len(r.Data) + len(r.PartitionKey)
			sum := sha1.Sum(r.Data)
			sha := hex.EncodeToString(sum[:])
			seen[sha]++
			if strconv.Itoa(in.valid[sha]) != r.PartitionKey {
				t.Fatalf("key %q, want the line number %d", r.PartitionKey, in.valid[sha])
			}
		}
		if body.StreamName != "s" || len(body.Records) == 0 || len(body.Records) > 500 || total > 10<<20 {
			t.Fatalf("a request of %d records, %d bytes, stream %q", len(body.Records), total, body.StreamName)
		}
	}
	if len(seen) != len(in.valid) {
		t.Errorf("%d distinct records sent, want %d", len(seen), len(in.valid))
	}
	for sha, n := range seen {
		if n != 1 {
			t.Errorf("record %s sent %d times", sha, n)
		}
	}
}

func TestSetupErrors(t *testing.T) {
	file := filepath.Join(t.TempDir(), "in.ndjson")
	os.WriteFile(file, []byte("{}\n"), 0o644)
	cases := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"no stream", testEnv(t), []string{file}, "missing a stream"},
		{"bad option", testEnv(t), []string{file, "--stream", "s", "--bogus"}, "bogus"},
		{"bad number", testEnv(t), []string{"--stream", "s", "--max-attempts", "x", file}, "max-attempts"},
		{"bad profile", testEnv(t), []string{"--stream", "s", "--profile", "firehose", file}, "--profile"},
		{"bad max-record-kib", testEnv(t), []string{"--stream", "s", "--max-record-kib", "100", file}, "limits"},
		{"empty key", testEnv(t), []string{"--stream", "s", "--partition-key", "", file}, "partition-key"},
		{"key too long", testEnv(t), []string{"--stream", "s", "--partition-key", strings.Repeat("k", 257), file}, "key_too_long"},
		{"two files", testEnv(t), []string{"--stream", "s", file, file}, "one input file"},
		// 0 would be the module's default, not what it says: refused.
		{"max-attempts 0", testEnv(t), []string{"--stream", "s", "--max-attempts", "0", file}, "--max-attempts: 0 would mean the library's default (10 sends)"},
		{"backoff-base-ms 0", testEnv(t), []string{"--stream", "s", "--backoff-base-ms", "0", file}, "--backoff-base-ms: 0 would mean the library's default (100 ms)"},
		{"bad format", testEnv(t), []string{"--stream", "s", "--format", "csv", file}, `--format: expected lines or ndjson, got "csv"`},
		{"empty key field", testEnv(t), []string{"--stream", "s", "--key-field", "", file}, "--key-field needs a field name"},
		{"key field and key", testEnv(t), []string{"--stream", "s", "--key-field", "d", "--partition-key", "k", file}, "cannot be used together"},
		{"key field not UTF-8", testEnv(t), []string{"--stream", "s", "--key-field", "d\xff", file}, "--key-field: the name is not UTF-8"},
		{"max-record-kib 0", testEnv(t), []string{"--stream", "s", "--max-record-kib", "0", file}, "MaxRecordSizeInKiB"},
		{"key field as lines", testEnv(t), []string{"--stream", "s", "--key-field", "d", "--format", "lines", file}, "cannot be used with --format lines"},
		{"missing file", testEnv(t), []string{"--stream", "s", file + ".none"}, "no such file"},
		{"no region", testEnv(t, "AWS_REGION="), []string{"--stream", "s", file}, "region"},
		{"no credentials", testEnv(t, "AWS_ACCESS_KEY_ID=", "AWS_SECRET_ACCESS_KEY="), []string{"--stream", "s", file}, "credentials"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			res := runProducer(t, c.env, nil, c.args...)
			if res.code != exitUsage || !strings.Contains(res.stderr, c.want) {
				t.Errorf("exit %d (want 2), stderr %q (want %q)", res.code, res.stderr, c.want)
			}
		})
	}
	if res := runProducer(t, testEnv(t), nil, "--help"); res.code != 0 || !strings.Contains(res.stdout, "usage:") {
		t.Errorf("--help: exit %d, stdout %q", res.code, res.stdout)
	}
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		return s[i+1:]
	}
	return s
}

// ---- --key-field and --format ndjson, against the CLI's answers ----

// keyFieldLine is a line of the crafted --key-field device file, and what becomes of
// it: stored with key, or refused for reason.
type keyFieldLine struct {
	line, key, reason string
}

// keyFieldLines covers every way a line can go under --key-field device, each answer
// the kinesis-batcher CLI's for the same line (cli/src/keys.rs, serde_json): the JSON
// refusals decided here, the key refusals and sizes decided by the library.
func keyFieldLines() []keyFieldLine {
	const capB = 1 << 20
	return []keyFieldLine{
		{`{"device":"d-1","v":1}`, "d-1", ""},
		{`{"device":1.50,"v":2}`, "1.50", ""}, // a number's JSON text
		{`{"device":-7,"v":3}`, "-7", ""},
		{`{"device":"","v":4}`, "", "key_empty"},
		{`{"device":null}`, "", "key_field_missing"},
		{`{"device":{"a":1}}`, "", "key_field_missing"},
		{`{"device":true}`, "", "key_field_missing"},
		{`{"other":1}`, "", "key_field_missing"},
		{`[1,2]`, "", "key_field_missing"},
		{`"device"`, "", "key_field_missing"},
		{`not json`, "", "invalid_json"},
		{`{"device":"x"} trailing`, "", "invalid_json"},
		{`{"device":"x"`, "", "invalid_json"},
		{`{"device":"a","device":"b"}`, "b", ""}, // the last one wins
		{`{"dev\u0069ce":"esc"}`, "esc", ""},     // names are compared unescaped
		{`{"device":"caf\u00e9"}`, "café", ""},
		{`{"device":"\ud83d\ude00"}`, "😀", ""},
		{`{"device":"\ud800"}`, "", "key_not_utf8"}, // an unpaired surrogate: not UTF-8
		{"{\"device\":\"\xff\"}", "", "invalid_json"},
		{"{\"device\":\"ok\",\"x\":\"\xff\"}", "ok", ""}, // other strings: bytes
		{`{"device":"ok2","n":1e400}`, "ok2", ""},
		{`1e400`, "", "invalid_json"}, // a top-level number out of a float64's range
		{`{"device":"` + strings.Repeat("x", 300) + `"}`, "", "key_too_long"},
		{"{\"device\":\"ok3\",\"c\":\"\x01\"}", "", "invalid_json"},
		{"{\"d\x01\":1,\"device\":\"ctl\"}", "ctl", ""}, // member names are read as bytes
		{`   `, "", "invalid_json"},
		{`{"device":"crlf"}` + "\r", "crlf", ""},
		// Over the record cap: not parsed, refused as too large.
		{strings.Repeat("z", capB+10), "", "record_too_large"},
		// Under the cap alone, over it with its key: parsed, then too large.
		{`{"device":"big","p":"` + strings.Repeat("p", capB-24) + `"}`, "", "record_too_large"},
		{`{"device":"last"}`, "last", ""},
	}
}

// writeKeyFieldInput writes the crafted lines, an empty line, then n ordinary lines,
// and returns the path with, by line number, the key of each line to be stored and the
// reason of each refused one.
func writeKeyFieldInput(t *testing.T, n int) (path string, keys map[int]string, reasons map[int]string) {
	t.Helper()
	keys, reasons = map[int]string{}, map[int]string{}
	var b bytes.Buffer
	num := 0
	for _, l := range keyFieldLines() {
		num++
		b.WriteString(l.line + "\n")
		if l.reason != "" {
			reasons[num] = l.reason
		} else {
			keys[num] = l.key
		}
	}
	num++
	b.WriteString("\n") // an empty line: skipped
	for i := 0; i < n; i++ {
		num++
		fmt.Fprintf(&b, `{"id":%d,"device":"dev-%d"}`+"\n", i, i%7)
		keys[num] = fmt.Sprintf("dev-%d", i%7)
	}
	path = filepath.Join(t.TempDir(), "keyed.ndjson")
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path, keys, reasons
}

// cliRefusals runs the kinesis-batcher CLI's plan over path (`cargo run --release -p
// kinesis-batcher-cli -- plan ARGS --refusals FILE path`) and returns its refusals by
// line number; it skips the test when cargo is not found.
func cliRefusals(t *testing.T, path string, args ...string) map[int]string {
	t.Helper()
	if _, err := exec.LookPath("cargo"); err != nil {
		t.Skip("cargo not found: the comparison with the CLI is skipped")
	}
	out := filepath.Join(t.TempDir(), "refusals.jsonl")
	all := append([]string{"run", "--release", "-q", "-p", "kinesis-batcher-cli", "--", "plan", "-q", "--refusals", out}, args...)
	cmd := exec.Command("cargo", append(all, path)...)
	cmd.Dir = "../../../.."
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("the CLI: %v\n%s", err, msg)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int]string{}
	for _, line := range bytes.Split(bytes.TrimSpace(b), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		var r struct {
			Line   int    `json:"line"`
			Reason string `json:"reason"`
		}
		if err := json.Unmarshal(line, &r); err != nil {
			t.Fatal(err)
		}
		got[r.Line] = r.Reason
	}
	return got
}

// refusalReasons is reported(stderr, "refused") with only each message's reason.
func refusalReasons(stderr string) map[int]string {
	out := map[int]string{}
	for line, msg := range reported(stderr, "refused") {
		reason, _, _ := strings.Cut(msg, ":")
		out[line] = reason
	}
	return out
}

func sameReasons(t *testing.T, what string, got, want map[int]string) {
	t.Helper()
	for line, r := range want {
		if got[line] != r {
			t.Errorf("%s: line %d refused %q, want %q", what, line, got[line], r)
		}
	}
	for line, r := range got {
		if _, ok := want[line]; !ok {
			t.Errorf("%s: line %d refused %q, want it stored", what, line, r)
		}
	}
}

// --key-field device against the fake endpoint: every other line stored once, with
// its field's value as its partition key; every refusal reported with its line number
// and the CLI's reason.
func TestKeyField(t *testing.T) {
	path, keys, reasons := writeKeyFieldInput(t, 1200)
	f := startFake(t, "--fail-every", "5")
	res := runProducer(t, testEnv(t, "KINESIS_ENDPOINT="+f.url), nil,
		"--stream", testStream, "--key-field", "device", "--backoff-base-ms", "1", path)
	if res.code != exitNotAllStored {
		t.Fatalf("exit %d, want 1 (some lines refused); stderr:\n%s", res.code, res.stderr)
	}
	reqs := f.requests(t)
	checkRetriesFirst(t, reqs)
	// The fake names records by the SHA-1 of their data: map each line's to its key.
	lines := strings.Split(strings.TrimSuffix(string(mustRead(t, path)), "\n"), "\n")
	wantKey := map[string]string{}
	for num, key := range keys {
		sum := sha1.Sum([]byte(strings.TrimSuffix(lines[num-1], "\r")))
		wantKey[hex.EncodeToString(sum[:])] = key
	}
	stored := map[string]int{}
	for _, r := range reqs {
		for _, e := range r.Entries {
			if e.Result != "stored" {
				continue
			}
			stored[e.SHA1]++
			if k, ok := wantKey[e.SHA1]; !ok || k != e.Key {
				t.Errorf("stored a record with key %q, want %q (known: %v)", e.Key, k, ok)
			}
		}
	}
	for sha, key := range wantKey {
		if stored[sha] != 1 {
			t.Errorf("the line keyed %q stored %d times", key, stored[sha])
		}
	}
	got := refusalReasons(res.stderr)
	sameReasons(t, "producer", got, reasons)
	if !strings.Contains(res.stderr, `refused: key_field_missing: no field "device"`) ||
		!strings.Contains(res.stderr, "refused: invalid_json: ") {
		t.Errorf("refusal messages:\n%s", res.stderr)
	}
	want := fmt.Sprintf("%d stored, %d refused, 0 failed", len(keys), len(reasons))
	if !strings.Contains(res.stderr, want) {
		t.Errorf("summary %q, want %q", lastLine(res.stderr), want)
	}
	// One file, one answer: the CLI refuses the same lines for the same reasons.
	cli := cliRefusals(t, path, "--key-field", "device", "--format", "ndjson")
	sameReasons(t, "the CLI against the producer", cli, got)
	if len(cli) != len(got) {
		t.Errorf("the CLI refused %d lines, the producer %d", len(cli), len(got))
	}
}

// --format ndjson keeps the default keys (the line number) and refuses the lines that
// are not JSON, as the CLI's --format ndjson does.
func TestFormatNDJSON(t *testing.T) {
	var b bytes.Buffer
	reasons, keys := map[int]string{}, map[int]string{}
	num := 0
	for i, l := range keyFieldLines() {
		num++
		fmt.Fprintf(&b, "%s\n", l.line)
		if i >= len(keyFieldLines())-3 {
			continue // the over-cap lines and the last one: below
		}
		if checkNDJSON([]byte(strings.TrimSuffix(l.line, "\r"))) != nil {
			reasons[num] = "invalid_json"
		} else {
			keys[num] = strconv.Itoa(num)
		}
	}
	reasons[num-2], reasons[num-1], keys[num] = "record_too_large", "record_too_large", strconv.Itoa(num)
	for i := 0; i < 700; i++ {
		num++
		fmt.Fprintf(&b, "{\"n\":%d}\n", i)
		keys[num] = strconv.Itoa(num)
	}
	num++
	b.WriteString("{\"n\": oops}\n")
	reasons[num] = "invalid_json"
	path := filepath.Join(t.TempDir(), "events.ndjson")
	os.WriteFile(path, b.Bytes(), 0o644)
	// The crafted lines' JSON verdicts as the CLI gives them, rather than as
	// checkNDJSON says: not JSON, trailing characters, unclosed, a control character in
	// a string or a member's name, only blanks. Bytes that are not UTF-8 in a string
	// (line 19) and 1e400 (line 22) are JSON to --format ndjson.
	invalid := 0
	for n, r := range reasons {
		if r == "invalid_json" {
			invalid++
			if !slices.Contains([]int{11, 12, 13, 24, 25, 26, num}, n) {
				t.Fatalf("line %d: invalid_json", n)
			}
		}
	}
	if invalid != 7 || keys[19] == "" || keys[22] == "" {
		t.Fatalf("%d invalid lines, %v", invalid, reasons)
	}

	f := startFake(t)
	res := runProducer(t, testEnv(t, "KINESIS_ENDPOINT="+f.url), nil,
		"--stream", testStream, "--format", "ndjson", "--backoff-base-ms", "1", path)
	if res.code != exitNotAllStored {
		t.Fatalf("exit %d, want 1; stderr:\n%s", res.code, res.stderr)
	}
	got := refusalReasons(res.stderr)
	sameReasons(t, "producer", got, reasons)
	storedKeys := map[string]int{}
	for _, r := range f.requests(t) {
		for _, e := range r.Entries {
			if e.Result == "stored" {
				storedKeys[e.Key]++
			}
		}
	}
	for num, key := range keys {
		if storedKeys[key] != 1 {
			t.Errorf("line %d (key %s) stored %d times", num, key, storedKeys[key])
		}
	}
	if len(storedKeys) != len(keys) {
		t.Errorf("%d records stored, want %d", len(storedKeys), len(keys))
	}
	// The CLI with one key for every line: keys do not change the JSON verdicts, and
	// the line one byte under the record cap (29) is over it with "29" as with "12345".
	cli := cliRefusals(t, path, "--format", "ndjson", "--key", "12345")
	sameReasons(t, "the CLI against the producer", cli, got)
}

// Thousands of lines mutated at random from JSON ones, through the producer (--dry-run)
// and the CLI (emit): the same lines refused for the same reasons, and the same
// records, data and key, in the same order.
func TestJSONAgainstCLIRandom(t *testing.T) {
	if _, err := exec.LookPath("cargo"); err != nil {
		t.Skip("cargo not found")
	}
	rng := rand.New(rand.NewPCG(3, 14))
	base := []string{`{"device":"d-1","x":[1,2,{"a":null}],"t":true}`, `{"device":12.5e3,"n":-0.5}`,
		`[{"device":"x"}]`, `{"a":{"device":"n"},"device":"\u00e9\ud83d\ude00"}`, `"str"`, `123`,
		`{"device":"a\"b\\c\/\n"}`, `{"device":false}`, `{}`, "{\"device\":\"caf\xc3\xa9\",\"z\":\"\xff\"}",
		`{"dev\u0069ce":"\ud800"}`, `  {"device" : [ ] }  `, `{"device":"k","n":1E400,"m":-1e-999}`,
		`null`, `{"device":"\uDBFF\uDFFF"}`}
	const alphabet = "{}[]\":,\\u0123456789abcdefeE+-.tnrl \t\xff\xc3\x80\x01"
	var b bytes.Buffer
	for i := 0; i < 6000; i++ {
		line := []byte(base[rng.IntN(len(base))])
		for range rng.IntN(4) {
			pos := rng.IntN(len(line) + 1)
			switch c := alphabet[rng.IntN(len(alphabet))]; rng.IntN(3) {
			case 0:
				if len(line) > 0 {
					line = append(line[:min(pos, len(line)-1)], line[min(pos, len(line)-1)+1:]...)
				}
			case 1:
				line = append(line[:pos], append([]byte{c}, line[pos:]...)...)
			default:
				if len(line) > 0 {
					line[min(pos, len(line)-1)] = c
				}
			}
		}
		b.Write(bytes.ReplaceAll(bytes.ReplaceAll(line, []byte("\n"), []byte(" ")), []byte("\r"), []byte(" ")))
		b.WriteByte('\n')
	}
	path := filepath.Join(t.TempDir(), "mutated.ndjson")
	os.WriteFile(path, b.Bytes(), 0o644)

	for _, mode := range []struct{ producer, cli []string }{
		{[]string{"--key-field", "device"}, []string{"--key-field", "device"}},
		{[]string{"--format", "ndjson", "--partition-key", "k"}, []string{"--format", "ndjson", "--key", "k"}},
	} {
		res := runProducer(t, []string{"PATH=" + os.Getenv("PATH")}, nil,
			append([]string{"--dry-run", "--stream", "s", path}, mode.producer...)...)
		if res.code == exitUsage || res.code == exitIO {
			t.Fatalf("%v: exit %d: %s", mode.producer, res.code, lastLine(res.stderr))
		}
		got := refusalReasons(res.stderr)
		sameReasons(t, fmt.Sprint(mode.producer), cliRefusals(t, path, mode.cli...), got)

		// The records: the CLI's request files against the dry run's requests.
		dir := filepath.Join(t.TempDir(), "out")
		cmd := exec.Command("cargo", append(append([]string{"run", "--release", "-q", "-p", "kinesis-batcher-cli", "--",
			"emit", "-q", "--stream", "s", "--out", dir}, mode.cli...), path)...)
		cmd.Dir = "../../../.."
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("the CLI: %v\n%s", err, msg)
		}
		type rec struct{ Data, PartitionKey string }
		var cli, producer []rec
		files, _ := filepath.Glob(filepath.Join(dir, "request-*.json"))
		for _, name := range files {
			var body struct{ Records []rec }
			if err := json.Unmarshal(mustRead(t, name), &body); err != nil {
				t.Fatal(err)
			}
			cli = append(cli, body.Records...)
		}
		for _, line := range strings.Split(strings.TrimSpace(res.stdout), "\n") {
			var body struct{ Records []rec }
			if err := json.Unmarshal([]byte(line), &body); err != nil {
				t.Fatal(err)
			}
			producer = append(producer, body.Records...)
		}
		if len(cli) != len(producer) || len(cli) < 500 {
			t.Fatalf("%v: the CLI sends %d records, the producer %d", mode.producer, len(cli), len(producer))
		}
		for i := range cli {
			if cli[i] != producer[i] {
				t.Fatalf("%v: record %d: the CLI sends %+v, the producer %+v", mode.producer, i, cli[i], producer[i])
			}
		}
		t.Logf("%v: %d lines refused, %d records, as the CLI", mode.producer, len(got), len(cli))
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
