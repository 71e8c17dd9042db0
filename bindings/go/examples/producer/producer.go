package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"time"

	kb "github.com/kinesis-batcher/kinesis-batcher/bindings/go/kinesisbatcher"
)

// sliceRecords is the most records handed to one delivery: a multiple of 500, so small
// lines fill whole requests (as kb-producer's SLICE_RECORDS).
const sliceRecords = 5000

type totals struct {
	lines, stored, refused, failed, requests, retries uint64
	posted                                            uint64 // requests sent, to name them
}

// producer holds the settings, the sender and the buffers of the current slice.
type producer struct {
	opts   options
	limits kb.Limits
	policy kb.RetryPolicy
	send   sender
	totals totals

	// The current slice: line bytes in one arena, the records as views into it, and
	// each record's line number and partition key (indexed like the records).
	arena   []byte
	spans   [][2]int // each line's bytes in arena, while the slice fills
	records []kb.Record
	lineOf  []uint64
	keys    []string
}

// newProducer checks the limits, the retry policy and a fixed partition key with the
// module. Errors are usage errors.
func newProducer(o options) (*producer, error) {
	limits := kb.KDS()
	switch {
	case o.maxRecordKiBGiven: // 0 too: the library refuses it
		l, err := kb.ForStream(int(o.maxRecordKiB))
		if err != nil {
			return nil, fmt.Errorf("--max-record-kib %d: invalid limits: %w", o.maxRecordKiB, err)
		}
		limits = l
	case o.profile == "kds-5mib":
		limits = kb.KDS5MiB()
	}
	// The module's policy (5 minutes at most, backoff doubling up to 10 s), with the
	// options' attempts and first backoff step.
	policy := kb.DefaultRetryPolicy()
	policy.MaxAttempts = int(o.maxAttempts)
	policy.BackoffBase = time.Duration(o.backoffBaseMs) * time.Millisecond
	policy.BackoffCap = max(policy.BackoffCap, policy.BackoffBase)

	// A fixed key that every record would be refused for is a usage error, not a
	// million refusals: plan one empty record with it.
	if o.fixedKey != "" {
		res, err := kb.Plan([]kb.Record{{PartitionKey: o.fixedKey}}, limits)
		if err != nil {
			return nil, err
		}
		if len(res.Refusals) > 0 {
			r := res.Refusals[0].Reason
			return nil, fmt.Errorf("--partition-key: %s: %s", r, r.Message())
		}
	}
	return &producer{opts: o, limits: limits, policy: policy}, nil
}

// run reads the input, cuts it into slices of records and delivers each slice to the
// end (every record stored, refused or terminal) before reading on.
func (p *producer) run(ctx context.Context, in io.Reader) error {
	name := p.opts.input
	if name == "" || name == "-" {
		name = "stdin"
	}
	maxRecord := p.limits.MaxRecordBytes()
	r := newLineReader(in, maxRecord)
	// A slice ends at sliceRecords records or once its bytes reach a request's and a
	// record's worth: memory stays bounded whatever the input.
	maxArena := p.limits.MaxRequestBytes() + maxRecord + 2
	for {
		p.arena, p.spans, p.lineOf, p.keys = p.arena[:0], p.spans[:0], p.lineOf[:0], p.keys[:0]
		var err error
		for len(p.spans) < sliceRecords && len(p.arena) < maxArena {
			var line []byte
			var number uint64
			if line, number, err = r.next(); err != nil {
				break
			}
			p.totals.lines++
			key, refused := p.key(line, number)
			if refused != nil {
				// The line never reaches the delivery: report it here, as the module's
				// refusals are reported.
				fail("line %d refused: %s: %s", number, refused.reason, refused.detail)
				p.totals.refused++
				continue
			}
			p.spans = append(p.spans, [2]int{len(p.arena), len(p.arena) + len(line)})
			p.arena = append(p.arena, line...)
			p.lineOf = append(p.lineOf, number)
			p.keys = append(p.keys, key)
		}
		if len(p.spans) > 0 {
			// The arena has stopped growing: the records can point into it now.
			p.records = p.records[:0]
			for i, sp := range p.spans {
				p.records = append(p.records, kb.Record{Data: p.arena[sp[0]:sp[1]:sp[1]], PartitionKey: p.keys[i]})
			}
			if derr := p.deliver(ctx); derr != nil {
				return derr
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading %s: %w", name, err)
		}
	}
}

// key is a line's partition key, or why the line is refused before it reaches the
// delivery (--format ndjson, --key-field), as the kinesis-batcher CLI decides: a line
// over the record cap is not parsed, since the module refuses it as too large whatever
// its key (with --key-field it gets the CLI's stand-in key "-"). Whether the key itself
// is valid (empty, too long, not UTF-8) is the module's answer, in the delivery.
func (p *producer) key(line []byte, number uint64) (string, *jsonRefusal) {
	overCap := len(line) > p.limits.MaxRecordBytes()
	switch {
	case p.opts.keyField != "" && overCap:
		return "-", nil
	case p.opts.keyField != "":
		key, refused := keyField(line, p.opts.keyField)
		if refused != nil {
			return "", refused
		}
		return string(key), nil
	case p.opts.format == "ndjson" && !overCap:
		if refused := checkNDJSON(line); refused != nil {
			return "", refused
		}
	}
	if p.opts.fixedKey != "" {
		return p.opts.fixedKey, nil
	}
	return strconv.FormatUint(number, 10), nil // spreads records over shards
}

// deliver sends the current slice to the end: when it returns nil, every record is
// stored, refused or terminal. The kinesisbatcher Delivery makes every decision:
// refusals, request boundaries, which entries go again (failed ones first, in input
// order), the attempt and age limits, and the backoff.
func (p *producer) deliver(ctx context.Context) error {
	d, err := kb.NewDelivery(p.records, p.limits, p.policy)
	if err != nil {
		return err
	}
	defer func() {
		s := d.Stats()
		p.totals.stored += uint64(s.Accepted)
		p.totals.failed += uint64(s.Terminal)
		p.totals.requests += uint64(s.Requests)
		p.totals.retries += uint64(s.Retried)
		for _, n := range s.Refused {
			p.totals.refused += uint64(n)
		}
		d.Close()
	}()
	var delay time.Duration // the backoff the delivery asked for after the last request
	entries := make([]entry, 0, p.limits.MaxRecords())
	for {
		req, done, err := d.Next(time.Now())
		if err != nil {
			return err
		}
		for _, r := range req.Refusals {
			fail("line %d refused: %s: %s", p.lineOf[r.Index], r.Reason, r.Reason.Message())
		}
		if done {
			return nil // everything is stored, refused or terminal
		}
		// Wait only when something is sent next (not after a slice's last request).
		if delay > 0 {
			if err := sleep(ctx, delay); err != nil {
				return err
			}
		}
		entries = entries[:0]
		for _, e := range req.Entries {
			r := &p.records[e.Index]
			entries = append(entries, entry{data: r.Data, key: r.PartitionKey})
		}
		p.totals.posted++
		resp := p.send.putRecords(ctx, entries)
		if ctx.Err() != nil {
			return ctx.Err() // interrupted: stop; the summary says how far it got
		}
		var out errStdout
		if errors.As(resp.err, &out) {
			return resp.err
		}
		settled, err := p.settle(d, resp)
		if err != nil {
			return err
		}
		for _, t := range settled.Terminal {
			gaveUp := ""
			if t.GaveUp {
				gaveUp = " (gave up: attempt or age limit)"
			}
			fail("line %d failed: %s%s", p.lineOf[t.Index], t.Kind, gaveUp)
		}
		// The backoff before the next request: 0 after a request without failures.
		// Jitter needs to be uncorrelated between producers, not secret.
		delay = d.Backoff(rand.Uint64())
	}
}

// settle reports a response to the delivery: per entry when PutRecords returned a
// result, else the whole request with one error kind.
func (p *producer) settle(d *kb.Delivery, resp response) (kb.Settled, error) {
	n := p.totals.posted
	if !resp.whole {
		failed, bad := 0, false
		for _, c := range resp.codes {
			failed += btoi(c != "")
			bad = bad || c == badEntry
		}
		if resp.failedCount >= 0 && int(resp.failedCount) != failed {
			fail("request %d: FailedRecordCount %d, but %d entries failed", n, resp.failedCount, failed)
		}
		if !bad {
			// "" (a SequenceNumber): accepted; otherwise the entry's ErrorCode, which
			// the module classifies. A count unlike the request's fails every entry.
			return d.Settle(resp.codes, time.Now())
		}
		// An entry with neither a SequenceNumber nor an ErrorCode: a bad response
		// for that entry (Settle takes codes only, so classify them here).
		ok, kinds := make([]bool, len(resp.codes)), make([]kb.ErrorKind, len(resp.codes))
		for i, c := range resp.codes {
			switch c {
			case "":
				ok[i] = true
			case badEntry:
				kinds[i] = kb.BadResponse
			default:
				kinds[i] = kb.ErrorKindFromCode(c)
			}
		}
		return d.SettleKinds(ok, kinds, time.Now())
	}
	kind := requestKind(resp)
	retry := ""
	if kind.Retryable() {
		retry = ", will retry"
	}
	fail("request %d: %s (%s%s)", n, resp.describe(), kind, retry)
	return d.SettleAll(kind, time.Now())
}

// requestKind is the module's error kind of a request that failed as a whole. The
// error code (__type in the body, else the X-Amzn-ErrorType header, which the SDK
// reads) is more precise than the status; an unknown code falls back to the status (a
// 400 nobody can name is a client error, not a retry).
func requestKind(r response) kb.ErrorKind {
	switch {
	case r.transport:
		// No response: the service may have stored the records anyway (at-least-once).
		return kb.Transport
	case r.badResponse:
		return kb.BadResponse
	}
	kind, isError := kb.ErrorKindFromHTTPStatus(r.status)
	byCode := kb.UnknownError
	if r.code != "" {
		byCode = kb.ErrorKindFromCode(r.code)
	}
	if byCode != kb.UnknownError || !isError {
		kind = byCode
	}
	return kind
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lineReader splits the input into lines, numbered from 1: a '\r' before '\n' is
// dropped, empty lines are skipped (but counted), and the last line may lack its '\n'.
// A line longer than limit bytes is returned with its first limit+1 bytes only (the
// rest is skipped as it arrives): those bytes are already over the record cap, so the
// delivery refuses the record as too large, and memory stays bounded.
type lineReader struct {
	r      *bufio.Reader
	limit  int
	number uint64
	buf    []byte
}

func newLineReader(in io.Reader, limit int) *lineReader {
	return &lineReader{r: bufio.NewReaderSize(in, 1<<20), limit: limit}
}

// next returns the next non-empty line (valid until the next call), or io.EOF.
func (l *lineReader) next() ([]byte, uint64, error) {
	for {
		l.buf = l.buf[:0]
		over, sawAny := false, false
		for {
			chunk, err := l.r.ReadSlice('\n')
			sawAny = sawAny || len(chunk) > 0
			// Keep at most limit+2 bytes: a line of limit bytes with its "\r\n".
			if room := l.limit + 2 - len(l.buf); len(chunk) > room {
				l.buf = append(l.buf, chunk[:max(room, 0)]...)
				over = true
			} else {
				l.buf = append(l.buf, chunk...)
			}
			if err == bufio.ErrBufferFull {
				continue
			}
			if err != nil && err != io.EOF {
				return nil, 0, err
			}
			if err == io.EOF && !sawAny {
				return nil, 0, io.EOF
			}
			break
		}
		l.number++
		line := l.buf
		if over {
			line = line[:l.limit+1] // over the cap whatever its end: refused as too large
		} else if n := len(line); n > 0 && line[n-1] == '\n' {
			line = line[:n-1]
			if n := len(line); n > 0 && line[n-1] == '\r' {
				line = line[:n-1]
			}
		}
		if len(line) > 0 {
			return line, l.number, nil
		}
	}
}
