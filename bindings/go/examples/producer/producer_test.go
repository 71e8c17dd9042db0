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
	"net"
	"os"
	"os/exec"
	"path/filepath"
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
