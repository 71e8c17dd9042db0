package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/kinesis"
	"github.com/aws/aws-sdk-go-v2/service/kinesis/types"
	"github.com/aws/smithy-go"
)

// entry is one record of a request, as the sender needs it.
type entry struct {
	data []byte
	key  string
}

// response is what one PutRecords call came back with, before the library classifies
// it. Exactly one of these holds:
//   - whole == false: the call returned a result; codes[i] is "" for an entry with a
//     SequenceNumber, its ErrorCode otherwise, or badEntry for an entry with neither.
//     len(codes) may differ from the request's entry count (the library then fails
//     every entry as a bad response).
//   - whole == true: the request failed as a whole. transport: no HTTP response at all
//     (connection refused, reset, timeout); badResponse: a 2xx whose body is not a
//     PutRecords result; otherwise status and code (possibly empty) say what failed.
type response struct {
	codes       []string
	failedCount int32 // the response's FailedRecordCount, -1 when absent
	whole       bool
	transport   bool
	badResponse bool
	status      int
	code        string
	err         error // the SDK's error, for the message
}

// badEntry marks a result entry with neither a SequenceNumber nor an ErrorCode.
const badEntry = "\x00bad"

// sender sends PutRecords requests: with the SDK, or printed on stdout (--dry-run).
type sender interface {
	putRecords(ctx context.Context, entries []entry) response
}

// sdkSender calls PutRecords with the AWS SDK for Go v2.
type sdkSender struct {
	client  *kinesis.Client
	stream  string
	timeout time.Duration
}

// newSDKClient makes the Kinesis client from an aws.Config (the default chain).
func newSDKClient(cfg aws.Config, endpoint string) *kinesis.Client {
	return kinesis.NewFromConfig(cfg, func(o *kinesis.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		// The SDK's own retries are off: one HTTP attempt per PutRecords call. Every
		// retry decision (which entries, how often, after how long) is the
		// kinesis-batcher Delivery's, which re-sends only the failed entries; an SDK
		// retry would re-send the whole request (duplicating the entries it stored)
		// and hide the failure from the retry planning.
		o.Retryer = aws.NopRetryer{}
	})
}

func (s *sdkSender) putRecords(ctx context.Context, entries []entry) response {
	in := &kinesis.PutRecordsInput{
		StreamName: aws.String(s.stream),
		Records:    make([]types.PutRecordsRequestEntry, len(entries)),
	}
	for i, e := range entries {
		in.Records[i] = types.PutRecordsRequestEntry{Data: e.data, PartitionKey: aws.String(e.key)}
	}
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	out, err := s.client.PutRecords(ctx, in)
	if err == nil {
		r := response{codes: make([]string, len(out.Records)), failedCount: -1}
		if out.FailedRecordCount != nil {
			r.failedCount = *out.FailedRecordCount
		}
		for i, rec := range out.Records {
			switch {
			case rec.SequenceNumber != nil:
				r.codes[i] = ""
			case rec.ErrorCode != nil && *rec.ErrorCode != "":
				r.codes[i] = *rec.ErrorCode
			default:
				r.codes[i] = badEntry
			}
		}
		return r
	}
	return classifyError(err)
}

// classifyError sorts an SDK error into transport, bad response, or an HTTP error with
// its code. The error kind itself is the library's call (see requestKind).
func classifyError(err error) response {
	r := response{whole: true, err: err}
	var re *awshttp.ResponseError
	if errors.As(err, &re) && re.Response != nil {
		r.status = re.HTTPStatusCode()
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		r.code = ae.ErrorCode()
	}
	switch {
	case r.status == 0:
		r.transport = true // no response: the service may have stored the records anyway
	case r.status >= 200 && r.status < 300:
		r.badResponse = true
	}
	return r
}

// dryRunSender prints each request as a JSON line (the body PutRecords would get:
// StreamName and Records with base64 Data) and treats every entry as stored.
type dryRunSender struct {
	w      io.Writer
	stream string
}

type dryRecord struct {
	Data         []byte // encoding/json writes []byte as base64, as the API wants
	PartitionKey string
}

func (s *dryRunSender) putRecords(_ context.Context, entries []entry) response {
	body := struct {
		StreamName string
		Records    []dryRecord
	}{s.stream, make([]dryRecord, len(entries))}
	for i, e := range entries {
		body.Records[i] = dryRecord{e.data, e.key}
	}
	line, err := json.Marshal(body)
	if err == nil {
		line = append(line, '\n')
		_, err = s.w.Write(line)
	}
	if err != nil {
		// Not a delivery failure: the producer stops (exit 3), as on any output error.
		return response{whole: true, err: fmt.Errorf("writing to stdout: %w", errStdout{err})}
	}
	return response{codes: make([]string, len(entries)), failedCount: 0}
}

// errStdout marks an error writing the dry run's output.
type errStdout struct{ error }

func (e errStdout) Unwrap() error { return e.error }

// describe is a short message for a whole-request failure.
func (r response) describe() string {
	var ae smithy.APIError
	if errors.As(r.err, &ae) {
		msg := ae.ErrorMessage()
		if len(msg) > 300 {
			msg = msg[:300]
		}
		if r.status != 0 {
			return fmt.Sprintf("HTTP %d %s: %s", r.status, ae.ErrorCode(), msg)
		}
		return fmt.Sprintf("%s: %s", ae.ErrorCode(), msg)
	}
	if r.status != 0 {
		return fmt.Sprintf("HTTP %d %s: %v", r.status, http.StatusText(r.status), r.err)
	}
	return r.err.Error()
}
