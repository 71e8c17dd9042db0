// Command kbproduce sends a generated workload to a Kinesis data stream with the
// producer package, for the end-to-end tests (tests/e2e/go_producer_e2e.sh) and for
// measuring throughput by hand.
//
// Record n (1..--records) is the JSON line {"n":N,"k":"KEY","p":"xxx..."}: key
// "k<n mod --keys>", padded to a size drawn from --size-min..--size-max with --seed.
// --writers goroutines Put at once, each the records of its own keys in increasing n,
// so that each key's records are Put in order. Then Close. It prints one JSON summary
// line on stdout, each failed record as "record N failed: KIND" on stderr, and exits 1
// if any record failed or was refused.
//
//	kbproduce --stream s --endpoint http://127.0.0.1:4566 --records 5000 --in-flight 8
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	kb "github.com/kinesis-batcher/kinesis-batcher/bindings/go/kinesisbatcher"
	"github.com/kinesis-batcher/kinesis-batcher/bindings/go/producer"
)

type summary struct {
	Records            int     `json:"records"`
	Stored             uint64  `json:"stored"`
	Failed             int64   `json:"failed"`
	Refused            int64   `json:"refused"`
	Requests           uint64  `json:"requests"`
	Retried            uint64  `json:"retried"`
	Throttled          uint64  `json:"throttled"`
	CredentialFailures uint64  `json:"credential_failures"`
	Seconds            float64 `json:"seconds"`
	RecordsPerSec      float64 `json:"records_per_sec"`
	InFlight           int     `json:"in_flight"`
}

func main() {
	var (
		stream    = flag.String("stream", "", "stream name (required)")
		endpoint  = flag.String("endpoint", "", "Kinesis endpoint URL (default: the SDK's)")
		region    = flag.String("region", "", "AWS region (default: the SDK's)")
		records   = flag.Int("records", 5000, "records to send")
		keys      = flag.Int("keys", 100, "distinct partition keys")
		sizeMin   = flag.Int("size-min", 40, "smallest record data, bytes")
		sizeMax   = flag.Int("size-max", 400, "largest record data, bytes")
		seed      = flag.Uint64("seed", 1, "seed of the record sizes")
		writers   = flag.Int("writers", 4, "goroutines calling Put")
		inFlight  = flag.Int("in-flight", 0, "Config.MaxInFlight (0: the default)")
		lingerMs  = flag.Int("linger-ms", 0, "Config.Linger in ms (0: the default)")
		buffered  = flag.Int("max-buffered-records", 0, "Config.MaxBufferedRecords (0: the default)")
		profile   = flag.String("profile", "kds", "limits: kds or kds-5mib")
		perReq    = flag.Int("max-records", 0, "records per request at most (0: the profile's 500)")
		attempts  = flag.Int("max-attempts", 0, "RetryPolicy.MaxAttempts (0: the default)")
		backoffMs = flag.Int("backoff-base-ms", 0, "RetryPolicy.BackoffBase in ms (0: the default)")
		timeout   = flag.Duration("timeout", 10*time.Minute, "Close's deadline")
	)
	flag.Parse()
	if *stream == "" || *records < 0 || *keys < 1 || *writers < 1 || *sizeMin < 0 || *sizeMax < *sizeMin {
		fmt.Fprintln(os.Stderr, "kbproduce: --stream is required; --keys and --writers at least 1; --size-min <= --size-max")
		os.Exit(2)
	}
	limits := kb.KDS()
	if *profile == "kds-5mib" {
		limits = kb.KDS5MiB()
	} else if *profile != "kds" {
		fmt.Fprintln(os.Stderr, "kbproduce: --profile kds or kds-5mib")
		os.Exit(2)
	}

	if *perReq > 0 {
		l, err := kb.NewLimits(limits.Profile(), *perReq, limits.MaxRequestBytes(), limits.MaxRecordBytes())
		if err != nil {
			fmt.Fprintln(os.Stderr, "kbproduce: --max-records:", err)
			os.Exit(2)
		}
		limits = l
	}

	ctx := context.Background()
	var opts []func(*config.LoadOptions) error
	if *region != "" {
		opts = append(opts, config.WithRegion(*region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "kbproduce:", err)
		os.Exit(1)
	}
	client := kinesis.NewFromConfig(cfg, func(o *kinesis.Options) {
		if *endpoint != "" {
			o.BaseEndpoint = aws.String(*endpoint)
		}
	})

	var failed, refused atomic.Int64
	lineN := regexp.MustCompile(`^\{"n":(\d+)`)
	var errMu sync.Mutex
	p, err := producer.New(client, producer.Config{
		StreamName:         *stream,
		Limits:             limits,
		Retry:              kb.RetryPolicy{MaxAttempts: *attempts, BackoffBase: time.Duration(*backoffMs) * time.Millisecond},
		Linger:             time.Duration(*lingerMs) * time.Millisecond,
		MaxInFlight:        *inFlight,
		MaxBufferedRecords: *buffered,
		OnFailure: func(f producer.Failure) {
			failed.Add(1)
			n := "?"
			if m := lineN.FindSubmatch(f.Record.Data); m != nil {
				n = string(m[1])
			}
			errMu.Lock()
			fmt.Fprintf(os.Stderr, "record %s failed: %s\n", n, f.Error())
			errMu.Unlock()
		},
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "kbproduce:", err)
		os.Exit(1)
	}

	// The workload, made before the clock starts.
	rng := rand.New(rand.NewPCG(*seed, 0x6b62))
	data := make([][]byte, *records+1)
	for n := 1; n <= *records; n++ {
		key := "k" + strconv.Itoa(n%*keys)
		head := `{"n":` + strconv.Itoa(n) + `,"k":"` + key + `","p":"`
		size := *sizeMin + rng.IntN(*sizeMax-*sizeMin+1)
		pad := max(0, size-len(head)-2)
		data[n] = []byte(head + strings.Repeat("x", pad) + `"}`)
	}

	start := time.Now()
	var wg sync.WaitGroup
	for w := range *writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 1; n <= *records; n++ {
				if (n%*keys)%*writers != w {
					continue
				}
				err := p.Put(ctx, data[n], "k"+strconv.Itoa(n%*keys))
				if err != nil {
					refused.Add(1)
					errMu.Lock()
					fmt.Fprintf(os.Stderr, "record %d refused: %v\n", n, err)
					errMu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	cctx, cancel := context.WithTimeout(ctx, *timeout)
	err = p.Close(cctx)
	cancel()
	secs := time.Since(start).Seconds()
	m := p.Metrics()
	eff := kb.EngineConfig{MaxInFlight: *inFlight}.Effective(limits)
	s := summary{
		Records: *records, Stored: m.AcceptedRecords, Failed: failed.Load(), Refused: refused.Load(),
		Requests: m.Requests, Retried: m.Retried, Throttled: m.Throttled,
		CredentialFailures: m.CredentialFailures, Seconds: secs,
		RecordsPerSec: float64(m.AcceptedRecords) / secs, InFlight: eff.MaxInFlight,
	}
	out, _ := json.Marshal(s)
	fmt.Println(string(out))
	if err != nil {
		fmt.Fprintln(os.Stderr, "kbproduce: Close:", err)
		os.Exit(1)
	}
	if s.Failed > 0 || s.Refused > 0 {
		os.Exit(1)
	}
}
