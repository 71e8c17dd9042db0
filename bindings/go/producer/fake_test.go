package producer

import (
	"context"
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
)

// fakeKinesis is a PutRecordsAPI in memory: each call waits a random latency (so that
// concurrent calls finish out of order), may fail as a whole or per entry, and stores
// the entries it accepts at the end of its latency, in the order the calls finish.
// Record data starts with the record's number (8 bytes, big-endian).
type fakeKinesis struct {
	minLatency, maxLatency time.Duration

	// Rates in 0..1, drawn per call or per entry.
	entryFail    float64 // an entry fails: ProvisionedThroughputExceededException or InternalFailure
	throttle     float64 // the call fails: ThrottlingException (HTTP 400)
	serverError  float64 // the call fails: InternalFailure (HTTP 500)
	transport    float64 // the call fails before anything is stored (no response)
	terminalMark byte    // data[8] == terminalMark: the entry fails with KMSAccessDeniedException

	// expireAfter > 0: the credentials expire after that many calls; every call fails
	// with ExpiredTokenException until refresh() is called.
	expireAfter int64

	gate chan struct{} // non-nil: each call waits for a value (or ctx) before answering

	// overlap: the first call waits (up to 5 s) until a second call has started, so a
	// test of concurrency does not depend on how fast this machine puts records.
	overlap bool

	mu        sync.Mutex
	rng       *rand.Rand
	calls     int64
	expired   bool
	refreshes int
	stored    []uint64            // record numbers, in store order
	byKey     map[string][]uint64 // per key, in store order
	inFlight  int
	maxFlight int
	sizes     []int // entries per call
}

func newFake(seed uint64) *fakeKinesis {
	return &fakeKinesis{rng: rand.New(rand.NewPCG(seed, 7)), byKey: map[string][]uint64{}}
}

func number(data []byte) uint64 { return binary.BigEndian.Uint64(data) }

func record(n uint64, size int, mark byte) []byte {
	b := make([]byte, max(size, 9))
	binary.BigEndian.PutUint64(b, n)
	b[8] = mark
	return b
}

type apiError struct{ code string }

func (e *apiError) Error() string                 { return e.code }
func (e *apiError) ErrorCode() string             { return e.code }
func (e *apiError) ErrorMessage() string          { return e.code }
func (e *apiError) ErrorFault() smithy.ErrorFault { return smithy.FaultUnknown }

var _ smithy.APIError = (*apiError)(nil)

func (f *fakeKinesis) refresh(context.Context) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.expired = false
	f.refreshes++
	return nil
}

func (f *fakeKinesis) PutRecords(ctx context.Context, in *kinesis.PutRecordsInput, _ ...func(*kinesis.Options)) (*kinesis.PutRecordsOutput, error) {
	f.mu.Lock()
	f.calls++
	f.inFlight++
	f.maxFlight = max(f.maxFlight, f.inFlight)
	f.sizes = append(f.sizes, len(in.Records))
	latency := f.minLatency
	if f.maxLatency > f.minLatency {
		latency += time.Duration(f.rng.Int64N(int64(f.maxLatency - f.minLatency)))
	}
	if f.expireAfter > 0 && f.calls == f.expireAfter {
		f.expired = true
	}
	expired := f.expired
	draw := f.rng.Float64()
	gate := f.gate
	first := f.overlap && f.calls == 1
	f.mu.Unlock()
	defer func() {
		f.mu.Lock()
		f.inFlight--
		f.mu.Unlock()
	}()

	for deadline := time.Now().Add(5 * time.Second); first && time.Now().Before(deadline); {
		f.mu.Lock()
		company := f.inFlight >= 2
		f.mu.Unlock()
		if company || ctx.Err() != nil {
			break
		}
		time.Sleep(time.Millisecond)
	}

	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return nil, ctx.Err()
		}
	}
	switch {
	case expired:
		return nil, &apiError{"ExpiredTokenException"}
	case draw < f.throttle:
		return nil, &apiError{"ThrottlingException"}
	case draw < f.throttle+f.serverError:
		return nil, &apiError{"InternalFailure"}
	case draw < f.throttle+f.serverError+f.transport:
		return nil, errors.New("connection reset by peer")
	}

	f.mu.Lock()
	defer f.mu.Unlock()
	out := &kinesis.PutRecordsOutput{Records: make([]types.PutRecordsResultEntry, len(in.Records))}
	failed := int32(0)
	for i, e := range in.Records {
		var code string
		switch {
		case f.terminalMark != 0 && len(e.Data) > 8 && e.Data[8] == f.terminalMark:
			code = "KMSAccessDeniedException"
		case f.rng.Float64() < f.entryFail:
			code = "ProvisionedThroughputExceededException"
			if f.rng.IntN(2) == 0 {
				code = "InternalFailure"
			}
		}
		if code != "" {
			out.Records[i] = types.PutRecordsResultEntry{ErrorCode: aws.String(code), ErrorMessage: aws.String(code)}
			failed++
			continue
		}
		n := number(e.Data)
		f.stored = append(f.stored, n)
		f.byKey[*e.PartitionKey] = append(f.byKey[*e.PartitionKey], n)
		out.Records[i] = types.PutRecordsResultEntry{SequenceNumber: aws.String("1"), ShardId: aws.String("shardId-0")}
	}
	out.FailedRecordCount = aws.Int32(failed)
	return out, nil
}

// storedCounts is how many times each record number was stored.
func (f *fakeKinesis) storedCounts() map[uint64]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := map[uint64]int{}
	for _, n := range f.stored {
		c[n]++
	}
	return c
}

func (f *fakeKinesis) storedLen() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.stored)
}

// failures collects what OnFailure receives.
type failures struct {
	mu   sync.Mutex
	list []Failure
	n    atomic.Int64
}

func (fs *failures) add(f Failure) {
	fs.mu.Lock()
	fs.list = append(fs.list, f)
	fs.mu.Unlock()
	fs.n.Add(1)
}

func (fs *failures) get() []Failure {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]Failure(nil), fs.list...)
}
