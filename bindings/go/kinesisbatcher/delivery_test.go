//go:build cgo

package kinesisbatcher

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

var timeZero = time.Unix(1_700_000_000, 0)

// A whole delivery loop against simulated responses: every sendable record is stored
// exactly once or comes back terminal, refused ones are refused, and requests respect
// the limits.
func TestDeliveryLoop(t *testing.T) {
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 99))
		l := randLimits(rng)
		recs := randRecords(rng, 300+rng.IntN(700), l)
		_, wantR := refPlan(recs, refOf(l))
		d, err := NewDelivery(recs, l, RetryPolicy{MaxAttempts: 5, MaxAge: time.Hour, BackoffBase: time.Millisecond, BackoffCap: 8 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		stored := make([]int, len(recs))
		terminal := make([]int, len(recs))
		var refused []Refusal
		now := timeZero
		for iter := 0; ; iter++ {
			if iter > 100000 {
				t.Fatal("no end")
			}
			req, done, err := d.Next(now)
			if err != nil {
				t.Fatal(err)
			}
			refused = append(refused, req.Refusals...)
			if done {
				break
			}
			if len(req.Entries) > l.MaxRecords() || req.Bytes > l.MaxRequestBytes() {
				t.Fatalf("request over limits: %d entries, %d bytes", len(req.Entries), req.Bytes)
			}
			n := 0
			for first, run := range req.Runs(recs) {
				if &run[0] != &recs[first] {
					t.Fatal("run is not a sub-slice")
				}
				n += len(run)
			}
			if n != len(req.Entries) {
				t.Fatal("runs do not cover the request")
			}
			var settled Settled
			switch rng.IntN(10) {
			case 0:
				settled, err = d.SettleAll(Transport, now)
			case 1:
				k, _ := ErrorKindFromHTTPStatus(503)
				settled, err = d.SettleAll(k, now)
			default:
				codes := make([]string, len(req.Entries))
				for i := range codes {
					switch rng.IntN(12) {
					case 0:
						codes[i] = "ProvisionedThroughputExceededException"
					case 1:
						codes[i] = "InternalFailure"
					case 2:
						codes[i] = "AccessDeniedException"
					}
				}
				settled, err = d.Settle(codes, now)
				if err == nil {
					for i, c := range codes {
						if c == "" {
							stored[req.Entries[i].Index]++
						}
					}
				}
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, tm := range settled.Terminal {
				terminal[tm.Index]++
			}
			now = now.Add(d.Backoff(rng.Uint64()) + time.Millisecond)
		}
		if !equal(refused, wantR) {
			t.Fatalf("refusals %v, want %v", refused, wantR)
		}
		isRefused := map[int]bool{}
		for _, r := range wantR {
			isRefused[r.Index] = true
		}
		for i := range recs {
			if isRefused[i] {
				if stored[i]+terminal[i] != 0 {
					t.Fatalf("refused record %d sent", i)
				}
			} else if stored[i]+terminal[i] != 1 {
				t.Fatalf("record %d: stored %d, terminal %d", i, stored[i], terminal[i])
			}
		}
		if len(d.Waiting()) != 0 || d.Position() != len(recs) {
			t.Fatal("waiting at the end")
		}
		d.Close()
	}
}

func TestDeliveryErrors(t *testing.T) {
	recs := []Record{{Data: []byte("a"), PartitionKey: "k"}}
	d, err := NewDelivery(recs, KDS(), RetryPolicy{})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if _, err := d.Settle(nil, timeZero); !errors.Is(err, ErrNothingInFlight) {
		t.Fatalf("settle with nothing in flight: %v", err)
	}
	req, done, err := d.Next(timeZero)
	if err != nil || done || len(req.Entries) != 1 {
		t.Fatal(req, done, err)
	}
	if _, _, err := d.Next(timeZero); !errors.Is(err, ErrInFlight) {
		t.Fatal("Next with a request in flight")
	}
	if _, err := d.SettleAll(ErrorKind(200), timeZero); !errors.Is(err, ErrInvalidArgument) {
		t.Fatalf("bad kind: %v", err)
	}
	st, err := d.Settle([]string{"ValidationException"}, timeZero)
	if err != nil || len(st.Terminal) != 1 || st.Terminal[0].Kind != Validation || st.Terminal[0].GaveUp {
		t.Fatal(st, err)
	}
	if _, done, _ := d.Next(timeZero); !done {
		t.Fatal("not done")
	}
	if ErrorKindFromCode("ProvisionedThroughputExceededException") != ThroughputExceeded || !ThroughputExceeded.Retryable() || AccessDenied.Retryable() {
		t.Fatal("kinds")
	}
	if _, ok := ErrorKindFromHTTPStatus(200); ok {
		t.Fatal("200 is an error")
	}
	if BackoffDelay(RetryPolicy{}, 0, 1) != 0 || BackoffDelay(RetryPolicy{}, 1, ^uint64(0)) > 100*time.Millisecond {
		t.Fatal("backoff")
	}
}

// Every kind with its C ABI value, name and retryability; the value after the last is
// not a kind.
func TestErrorKinds(t *testing.T) {
	kinds := []struct {
		kind      ErrorKind
		name      string
		retryable bool
	}{
		{ThroughputExceeded, "throughput_exceeded", true},
		{InternalFailure, "internal_failure", true},
		{Throttling, "throttling", true},
		{ServerError, "server_error", true},
		{Transport, "transport", true},
		{BadResponse, "bad_response", true},
		{UnknownError, "unknown", true},
		{Validation, "validation", false},
		{InvalidArgument, "invalid_argument", false},
		{ResourceNotFound, "resource_not_found", false},
		{AccessDenied, "access_denied", false},
		{KMS, "kms", false},
		{ClientError, "client_error", false},
		{Credentials, "credentials", false},
	}
	for i, k := range kinds {
		if int(k.kind) != i || k.kind.String() != k.name || k.kind.Retryable() != k.retryable {
			t.Errorf("kind %d: value %d, %q, retryable %v; want %q, %v", i, k.kind, k.kind, k.kind.Retryable(), k.name, k.retryable)
		}
	}
	past := ErrorKind(len(kinds))
	if past.String() != "unknown" || past.Retryable() {
		t.Errorf("ErrorKind(%d) is a kind: %q", past, past)
	}
	codes := map[string]ErrorKind{
		"AccessDeniedException":               AccessDenied,
		"NotAuthorized":                       AccessDenied,
		"ExpiredTokenException":               Credentials,
		"ExpiredToken":                        Credentials,
		"InvalidSignatureException":           Credentials,
		"SignatureDoesNotMatch":               Credentials,
		"RequestExpired":                      Credentials,
		"UnrecognizedClientException":         Credentials,
		"InvalidClientTokenId":                Credentials,
		"MissingAuthenticationToken":          Credentials,
		"MissingAuthenticationTokenException": Credentials,
		"IncompleteSignatureException":        Credentials,
	}
	for code, want := range codes {
		if got := ErrorKindFromCode("com.amazonaws.kinesis.v20131202#" + code); got != want {
			t.Errorf("%s: %v, want %v", code, got, want)
		}
	}
}

// A Delivery has no pause: expired credentials end the record at once, reported as
// Credentials, not retried until the attempts run out.
func TestDeliveryCredentialsAreTerminal(t *testing.T) {
	recs := []Record{{Data: []byte("a"), PartitionKey: "a"}, {Data: []byte("b"), PartitionKey: "b"}}
	d, err := NewDelivery(recs, KDS(), RetryPolicy{MaxAttempts: 1000})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	req, done, err := d.Next(timeZero)
	if err != nil || done || len(req.Entries) != 2 {
		t.Fatal(req, done, err)
	}
	st, err := d.Settle([]string{"ExpiredTokenException", ""}, timeZero)
	if err != nil || len(st.Terminal) != 1 || st.Terminal[0].Kind != Credentials || st.Terminal[0].GaveUp || st.Terminal[0].Kind.String() != "credentials" {
		t.Fatal(st, err)
	}
	if _, done, _ := d.Next(timeZero); !done {
		t.Fatal("the record with expired credentials was sent again")
	}
}
