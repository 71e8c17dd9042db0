package producer

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	kb "github.com/kinesis-batcher/kinesis-batcher/bindings/go/kinesisbatcher"
)

// answer is what the test server says to one PutRecords call.
type answer struct {
	status int
	header string // X-Amzn-ErrorType, when not ""
	body   string // the JSON body; "" with status 200: every entry stored
}

// kinesisServer is an httptest server speaking PutRecords (AWS JSON 1.1) for a real
// *kinesis.Client: call i (from 0) gets script(i).
type kinesisServer struct {
	*httptest.Server
	calls  atomic.Int64
	mu     sync.Mutex
	stored []string // data, in store order
}

func newKinesisServer(t *testing.T, script func(call int, entries int) answer) *kinesisServer {
	s := &kinesisServer{}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Amz-Target") != "Kinesis_20131202.PutRecords" {
			http.Error(w, "not PutRecords", 400)
			return
		}
		var in struct {
			StreamName string
			Records    []struct {
				Data         []byte
				PartitionKey string
			}
		}
		body, _ := io.ReadAll(r.Body)
		if err := json.Unmarshal(body, &in); err != nil || in.StreamName != "s" {
			t.Errorf("request body %q: %v", body, err)
		}
		a := script(int(s.calls.Add(1)-1), len(in.Records))
		if a.header != "" {
			w.Header().Set("X-Amzn-ErrorType", a.header)
		}
		w.Header().Set("Content-Type", "application/x-amz-json-1.1")
		if a.status == 200 && a.body == "" {
			type entry struct{ SequenceNumber, ShardId string }
			out := struct {
				FailedRecordCount int
				Records           []entry
			}{Records: make([]entry, len(in.Records))}
			s.mu.Lock()
			for i, rec := range in.Records {
				out.Records[i] = entry{"1", "shardId-000000000000"}
				s.stored = append(s.stored, string(rec.Data))
			}
			s.mu.Unlock()
			b, _ := json.Marshal(out)
			a.body = string(b)
		}
		w.WriteHeader(a.status)
		io.WriteString(w, a.body)
	}))
	t.Cleanup(s.Close)
	return s
}

// countingProvider counts Retrieve calls (the cache around it calls it again after
// Invalidate).
type countingProvider struct {
	n   atomic.Int64
	err error
}

func (c *countingProvider) Retrieve(context.Context) (aws.Credentials, error) {
	c.n.Add(1)
	if c.err != nil {
		return aws.Credentials{}, c.err
	}
	return aws.Credentials{AccessKeyID: "AKID", SecretAccessKey: "secret", Source: "test"}, nil
}

func sdkClient(url string, provider aws.CredentialsProvider) *kinesis.Client {
	return kinesis.NewFromConfig(aws.Config{Region: "us-east-1", Credentials: aws.NewCredentialsCache(provider)},
		func(o *kinesis.Options) { o.BaseEndpoint = aws.String(url) })
}

// Through the real SDK: expired credentials pause the producer and the default refresh
// invalidates the client's credentials cache; an HTTP 500 and a throttling header are
// retried by the engine alone (the SDK's retries are off: one HTTP call per request);
// a validation error is terminal, with its kind.
func TestSDKErrors(t *testing.T) {
	srv := newKinesisServer(t, func(call, _ int) answer {
		switch call {
		case 0:
			return answer{status: 400, body: `{"__type":"ExpiredTokenException","message":"The security token included in the request is expired"}`}
		case 1:
			return answer{status: 500, body: `{"__type":"InternalFailure"}`}
		case 2:
			return answer{status: 400, header: "ThrottlingException:http://internal.amazon.com/coral/"}
		case 3:
			return answer{status: 503, body: `{}`}
		case 5:
			return answer{status: 400, body: `{"__type":"com.amazon.coral.validate#ValidationException","message":"no"}`}
		case 6:
			return answer{status: 200, body: `{"FailedRecordCount":0,"Records":[]}`} // too few entries
		}
		return answer{status: 200}
	})
	creds := &countingProvider{}
	fs := &failures{}
	p, err := New(sdkClient(srv.URL, creds), Config{StreamName: "s", Linger: time.Millisecond, OnFailure: fs.add,
		Retry: kb.RetryPolicy{BackoffBase: time.Millisecond, BackoffCap: 2 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Put(ctx, []byte("one"), "k"); err != nil {
		t.Fatal(err)
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	m := p.Metrics()
	if srv.calls.Load() != 5 || m.Requests != 5 || m.CredentialFailures != 1 || m.Throttled != 1 || m.AcceptedRecords != 1 {
		t.Fatalf("%d HTTP calls, metrics %+v: want 5 calls and requests (no SDK retry), 1 credential failure, 1 throttled",
			srv.calls.Load(), m.EngineStats)
	}
	if creds.n.Load() < 2 {
		t.Fatalf("credentials retrieved %d times: the cache was not invalidated", creds.n.Load())
	}
	// Validation: terminal. Then a response with too few entries: a bad response, retried.
	if err := p.Put(ctx, []byte("two"), "k"); err != nil {
		t.Fatal(err)
	}
	if err := p.Put(ctx, []byte("three"), "k"); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(ctx); err != nil {
		t.Fatal(err)
	}
	got := fs.get()
	if len(got) != 1 || got[0].Kind != kb.Validation || string(got[0].Record.Data) != "two" {
		t.Fatalf("failures %v: want record two, validation", got)
	}
	srv.mu.Lock()
	defer srv.mu.Unlock()
	if len(srv.stored) != 2 || srv.stored[0] != "one" || srv.stored[1] != "three" {
		t.Fatalf("stored %q", srv.stored)
	}
}

// requestKind on the SDK's own errors: a connection refused is Transport; credentials
// the SDK cannot retrieve are Credentials (nothing was sent).
func TestRequestKindSDK(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL
	srv.Close() // connection refused from now on
	in := &kinesis.PutRecordsInput{StreamName: aws.String("s"),
		Records: []types.PutRecordsRequestEntry{{Data: []byte("x"), PartitionKey: aws.String("k")}}}
	_, err := sdkClient(url, &countingProvider{}).PutRecords(context.Background(), in, noSDKRetries)
	if err == nil || requestKind(err) != kb.Transport {
		t.Fatalf("connection refused: %v -> %v", err, requestKind(err))
	}
	_, err = sdkClient(url, &countingProvider{err: errors.New("sso token expired")}).PutRecords(context.Background(), in, noSDKRetries)
	if err == nil || requestKind(err) != kb.Credentials {
		t.Fatalf("credentials not retrievable: %v -> %v", err, requestKind(err))
	}
	// The SDK's own parameter check (nothing sent): terminal, not a transport retry.
	_, err = sdkClient(url, &countingProvider{}).PutRecords(context.Background(), &kinesis.PutRecordsInput{}, noSDKRetries)
	if err == nil || requestKind(err) != kb.Validation {
		t.Fatalf("invalid parameters: %v -> %v", err, requestKind(err))
	}
}
