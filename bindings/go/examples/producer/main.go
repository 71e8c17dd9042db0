// Command producer sends NDJSON lines to an Amazon Kinesis data stream with PutRecords,
// using the kinesisbatcher module for every batching and retry decision and the AWS
// SDK for Go v2 for the calls.
//
// It is the Go counterpart of bindings/c/producer.c, a starting point for an ingestion
// agent: it reads lines, hands them to a kinesisbatcher.Delivery, sends the requests
// the delivery plans, and reports each response back. Which line is refused, where a
// request ends, which entries are sent again, and how long to wait are all the
// module's answers; this program only moves bytes.
//
//	input ──lines──▶ records ──Delivery.NextRequest──▶ entries ──PutRecords (SDK)──▶
//	per-entry outcome (SequenceNumber / ErrorCode) ──Delivery.Settle──▶ backoff
//
// See README.md for usage and limitations.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/config"
)

// Exit statuses, as kb-producer's.
const (
	exitAllStored    = 0 // every record was stored
	exitNotAllStored = 1 // some records were refused or failed for good
	exitUsage        = 2 // usage or setup error
	exitIO           = 3 // stopped early: a read or stdout error, an unexpected library error
)

const usageText = `usage: producer [options] [FILE]   (no FILE or '-': standard input)
Sends NDJSON lines (one record per non-empty line) to a Kinesis data stream.
  --stream NAME           stream name (or KINESIS_STREAM)
  --region REGION         AWS region (default: the AWS config chain: AWS_REGION, profile)
  --endpoint URL          endpoint override (or KINESIS_ENDPOINT)
  --partition-key KEY     one key for every record (default: the line number)
  --key-field NAME        key = the line's JSON field NAME (a string's value, or a
                          number's JSON text); implies --format ndjson. A line that
                          is not JSON is refused as invalid_json, one without the
                          field (or whose field is not a string or number) as
                          key_field_missing
  --format lines|ndjson   lines: any bytes (default); ndjson: lines that are not
                          valid JSON are refused as invalid_json
  --profile kds|kds-5mib  service limits (default kds: 500 records, 10 MiB)
  --max-record-kib N      the stream's MaxRecordSizeInKiB, 1024..10240 (kds)
  --max-attempts N        sends of one record at most, 1 or more (default 10; 1: no
                          retry)
  --backoff-base-ms N     first backoff ceiling, 1 or more (default 100; doubles up
                          to 10 s)
  --timeout-ms N          timeout of one PutRecords call (default 30000; 0: none)
  --dry-run               print each request on stdout, one JSON line each; no AWS calls
  --help                  this text
Credentials and region: the AWS SDK's default chain (environment, shared config and
credentials files, SSO, web identity, container and instance roles).
Exit: 0 all stored, 1 records refused or failed, 2 usage or setup, 3 I/O error.
`

type options struct {
	stream, region, endpoint, fixedKey, input string
	profile, keyField, format                 string
	maxRecordKiB, maxAttempts                 uint64
	maxRecordKiBGiven                         bool
	backoffBaseMs, timeoutMs                  uint64
	dryRun                                    bool
}

// errHelp: --help was asked for.
var errHelp = errors.New("help")

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "producer: "+format+"\n", args...)
}

// numberFlag is a decimal flag value with an upper bound.
type numberFlag struct {
	v   *uint64
	max uint64
}

func (n numberFlag) String() string {
	if n.v == nil {
		return ""
	}
	return strconv.FormatUint(*n.v, 10)
}

func (n numberFlag) Set(s string) error {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v > n.max {
		return fmt.Errorf("expected a number up to %d", n.max)
	}
	*n.v = v
	return nil
}

func parseArgs(args []string) (options, error) {
	o := options{profile: "kds", format: "lines", maxAttempts: 10, backoffBaseMs: 100, timeoutMs: 30000}
	fs := flag.NewFlagSet("producer", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // errors are reported below, in one line
	fs.StringVar(&o.stream, "stream", "", "")
	fs.StringVar(&o.region, "region", "", "")
	fs.StringVar(&o.endpoint, "endpoint", "", "")
	fs.StringVar(&o.fixedKey, "partition-key", "", "")
	fs.StringVar(&o.keyField, "key-field", "", "")
	fs.StringVar(&o.format, "format", o.format, "")
	fs.StringVar(&o.profile, "profile", o.profile, "")
	fs.Var(numberFlag{&o.maxRecordKiB, 1000000}, "max-record-kib", "") // the library says which are valid
	fs.Var(numberFlag{&o.maxAttempts, 1000000}, "max-attempts", "")
	fs.Var(numberFlag{&o.backoffBaseMs, 3600000}, "backoff-base-ms", "")
	fs.Var(numberFlag{&o.timeoutMs, 3600000}, "timeout-ms", "")
	fs.BoolVar(&o.dryRun, "dry-run", false, "")
	// Options may come before or after the file, as kb-producer's: parse, take one
	// positional argument, parse the rest. After "--", everything is positional.
	var files []string
	for rest := args; ; {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return o, errHelp
			}
			return o, fmt.Errorf("%v (see --help)", err)
		}
		left := fs.Args()
		if len(left) == 0 {
			break
		}
		if used := len(rest) - len(left); used > 0 && rest[used-1] == "--" {
			files = append(files, left...)
			break
		}
		files, rest = append(files, left[0]), left[1:]
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	keySet := set["partition-key"]
	switch len(files) {
	case 0:
	case 1:
		o.input = files[0]
	default:
		return o, fmt.Errorf("one input file at most (got %s)", strings.Join(files, ", "))
	}
	if o.stream == "" {
		o.stream = os.Getenv("KINESIS_STREAM")
	}
	if o.endpoint == "" {
		o.endpoint = os.Getenv("KINESIS_ENDPOINT")
	}
	if o.stream == "" {
		return o, errors.New("missing a stream (--stream or KINESIS_STREAM)")
	}
	if o.profile != "kds" && o.profile != "kds-5mib" {
		return o, fmt.Errorf("--profile: expected kds or kds-5mib, got %q", o.profile)
	}
	o.maxRecordKiBGiven = set["max-record-kib"]
	if o.maxRecordKiBGiven && o.profile != "kds" {
		return o, errors.New("--max-record-kib applies to --profile kds only")
	}
	if keySet && o.fixedKey == "" {
		// An empty key would get every record refused; say so once instead.
		return o, errors.New("--partition-key: the key is empty")
	}
	// --key-field and --format as the kinesis-batcher CLI takes them.
	if set["key-field"] {
		switch {
		case keySet:
			return o, errors.New("--partition-key and --key-field cannot be used together")
		case o.keyField == "":
			return o, errors.New("--key-field needs a field name")
		case !utf8.ValidString(o.keyField):
			return o, errors.New("--key-field: the name is not UTF-8")
		}
	}
	if o.format != "lines" && o.format != "ndjson" {
		return o, fmt.Errorf("--format: expected lines or ndjson, got %q", o.format)
	}
	if set["key-field"] {
		switch {
		case set["format"] && o.format == "lines":
			return o, errors.New("--key-field reads each line as JSON: it cannot be used with --format lines")
		}
		o.format = "ndjson"
	}
	// The module takes 0 as "its default", not "none": refuse it rather than hand
	// over a policy other than the one asked for.
	if o.maxAttempts == 0 {
		return o, errors.New("--max-attempts: 0 would mean the library's default (10 sends); use 1 to send each record once")
	}
	if o.backoffBaseMs == 0 {
		return o, errors.New("--backoff-base-ms: 0 would mean the library's default (100 ms); 1 is the shortest backoff")
	}
	return o, nil
}

// awsSender loads the AWS configuration (region and credentials from the default
// chain) and makes the SDK sender. Errors here are setup errors (exit 2).
func awsSender(ctx context.Context, o options) (sender, error) {
	var loadOpts []func(*config.LoadOptions) error
	if o.region != "" {
		loadOpts = append(loadOpts, config.WithRegion(o.region))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("loading the AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return nil, errors.New("missing a region (--region, AWS_REGION or a profile's region)")
	}
	// Fail now, once, rather than on every request: no credentials is a setup error.
	if _, err := cfg.Credentials.Retrieve(ctx); err != nil {
		return nil, fmt.Errorf("no AWS credentials: %w", err)
	}
	return &sdkSender{
		client:  newSDKClient(cfg, o.endpoint),
		stream:  o.stream,
		timeout: time.Duration(o.timeoutMs) * time.Millisecond,
	}, nil
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	o, err := parseArgs(args)
	if err == errHelp {
		fmt.Print(usageText)
		return exitAllStored
	}
	if err != nil {
		fail("%v", err)
		return exitUsage
	}
	p, err := newProducer(o)
	if err != nil {
		fail("%v", err)
		return exitUsage
	}

	in := io.Reader(os.Stdin)
	if o.input != "" && o.input != "-" {
		f, err := os.Open(o.input)
		if err != nil {
			fail("%v", err)
			return exitUsage
		}
		defer f.Close()
		in = f
	}

	// Ctrl-C / SIGTERM: stop between requests (the one in flight is cancelled).
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if o.dryRun {
		p.send = &dryRunSender{w: os.Stdout, stream: o.stream}
	} else if p.send, err = awsSender(ctx, o); err != nil {
		fail("%v", err)
		return exitUsage
	}

	err = p.run(ctx, in)
	state := "done"
	if err != nil {
		fail("%v", err)
		state = "stopped"
	}
	s := p.totals
	fail("%s: %d lines, %d stored, %d refused, %d failed, %d requests, %d retries",
		state, s.lines, s.stored, s.refused, s.failed, s.requests, s.retries)
	switch {
	case err != nil:
		return exitIO
	case s.refused > 0 || s.failed > 0:
		return exitNotAllStored
	}
	return exitAllStored
}
