//go:build cgo

package kinesisbatcher

import (
	"iter"
	"sort"
	"sync"
)

// chunkRecords is how many records one cgo call measures (and, for Plan and Batches,
// plans): it bounds the column buffers, which stay in the CPU caches, and costs one cgo
// call per 8,192 records.
const chunkRecords = 8192

// columns holds the column arrays kb_record_sizes_fill reads. Nothing in them is a Go
// pointer.
type columns struct {
	dataLens []uint64
	keyLens  []uintptr
	keys     []byte
	hashLens []uintptr
	hashKeys []byte
}

// build fills the columns with recs: data lengths, every key copied back to back (the
// payloads never are), and the hash keys only when some record has one (hashLens is nil
// otherwise). The library measures and validates them.
func (c *columns) build(recs []Record) (dataLens []uint64, keys []byte, keyLens []uintptr, hashKeys []byte, hashLens []uintptr) {
	n := len(recs)
	if cap(c.dataLens) < n {
		c.dataLens = make([]uint64, n)
		c.keyLens = make([]uintptr, n)
	}
	dataLens, keyLens = c.dataLens[:n], c.keyLens[:n]
	keys = c.keys[:0]
	hashBytes := 0 // or-ed, not a bool: no branch per record
	for i := range recs {
		r := &recs[i]
		dataLens[i] = uint64(len(r.Data))
		keys = append(keys, r.PartitionKey...)
		keyLens[i] = uintptr(len(r.PartitionKey))
		hashBytes |= len(r.ExplicitHashKey)
	}
	c.keys = keys
	if hashBytes != 0 {
		if cap(c.hashLens) < n {
			c.hashLens = make([]uintptr, n)
		}
		hashLens, hashKeys = c.hashLens[:n], c.hashKeys[:0]
		for i := range recs {
			h := recs[i].ExplicitHashKey
			if h == "" {
				hashLens[i] = noHashKey
			} else {
				hashKeys = append(hashKeys, h...)
				hashLens[i] = uintptr(len(h))
			}
		}
		c.hashKeys = hashKeys
	}
	return dataLens, keys, keyLens, hashKeys, hashLens
}

// measure fills sizes[i] (len(records) entries) with the size form of records[i]:
// one kb_record_sizes_fill call per chunkRecords records. NewDelivery measures through
// it (a delivery plans over the whole sizes array, call after call).
func (c *columns) measure(records []Record, l *cLimits, sizes []cRecordSize) error {
	for start := 0; start < len(records); start += chunkRecords {
		end := min(start+chunkRecords, len(records))
		dataLens, keys, keyLens, hashKeys, hashLens := c.build(records[start:end])
		s, bad := sizesFill(dataLens, keys, keyLens, hashKeys, hashLens, l.keyUnit, sizes[start:end])
		if err := statusErr(s, bad); err != nil {
			if se, ok := err.(*StatusError); ok && se.Index >= 0 {
				se.Index += start
			}
			return err
		}
	}
	return nil
}

// engine plans a slice chunk by chunk: one cgo call per chunk measures its records
// from the columns and pushes their sizes into one kb_accumulator, whose open batch
// carries over to the next chunk (kbgo_plan_chunk). So the buffers are a chunk's, not
// the slice's (no 24-byte-a-record array to allocate and zero for a large slice), and
// planning stops with the caller. Every batching decision is the library's.
type engine struct {
	cols     columns
	sizes    []cRecordSize
	batches  []cBatch   // a push yields at most one batch or one refusal,
	refusals []cRefusal // so a chunk's fit in chunkRecords entries each
}

var engines = sync.Pool{New: func() any {
	return &engine{
		sizes:    make([]cRecordSize, chunkRecords),
		batches:  make([]cBatch, chunkRecords),
		refusals: make([]cRefusal, chunkRecords),
	}
}}

// run plans records under l, calling refused for each refusal and batch for each batch
// in input order: every refusal before the batch that follows it (or, under
// SpanningRefusals, whose range holds it). It stops early
// (planning no further) when a callback returns false. On success it returns the
// plan's stats.
func (e *engine) run(records []Record, l cLimits, refused func(Refusal) bool, batch func(Batch) bool) (cStats, error) {
	a, s := accumulatorNew(l)
	if err := statusErr(s, -1); err != nil {
		return cStats{}, err
	}
	defer accumulatorFree(a)
	for start := 0; start < len(records); start += chunkRecords {
		end := min(start+chunkRecords, len(records))
		dataLens, keys, keyLens, hashKeys, hashLens := e.cols.build(records[start:end])
		s, nb, nr, bad := planChunk(a, start, dataLens, keys, keyLens, hashKeys, hashLens, l.keyUnit,
			e.sizes[:end-start], e.batches, e.refusals)
		if s != statusOK {
			// Not for valid columns: a length the library finds past its buffer.
			return cStats{}, &StatusError{Status: s, Index: start + bad}
		}
		ri := 0
		for _, b := range e.batches[:nb] {
			for ; ri < nr && e.refusals[ri].index < b.end; ri++ {
				if !refused(Refusal{Index: int(e.refusals[ri].index), Reason: Reason(e.refusals[ri].reason)}) {
					return cStats{}, nil
				}
			}
			if !batch(batchOf(b, 0)) {
				return cStats{}, nil
			}
		}
		for ; ri < nr; ri++ {
			if !refused(Refusal{Index: int(e.refusals[ri].index), Reason: Reason(e.refusals[ri].reason)}) {
				return cStats{}, nil
			}
		}
	}
	switch b, s := accumulatorFlush(a); s {
	case statusOK:
		if !batch(batchOf(b, 0)) {
			return cStats{}, nil
		}
	case statusEnd:
	default:
		return cStats{}, &StatusError{Status: s, Index: -1}
	}
	return accumulatorStats(a), nil
}

// Result is a whole plan: the batches and the refusals in input order, and its stats.
type Result struct {
	Batches  []Batch
	Refusals []Refusal
	Stats    Stats
}

// RefusedIn returns the refusals whose indices lie in b's range (a sub-slice of
// r.Refusals, found by binary search; empty when b.Refused() is 0, which is always the
// case without SpanningRefusals).
func (r *Result) RefusedIn(b Batch) []Refusal {
	if b.Refused() == 0 {
		return nil
	}
	lo := sort.Search(len(r.Refusals), func(i int) bool { return r.Refusals[i].Index >= b.Start })
	hi := sort.Search(len(r.Refusals), func(i int) bool { return r.Refusals[i].Index >= b.End })
	return r.Refusals[lo:hi]
}

// Plan cuts records into requests under limits: greedily and in order, which gives the
// fewest requests any order-keeping plan can (whose requests, by default, hold no
// refused record: a refusal closes the open batch). Every index is reported exactly
// once, as an accepted record of one batch or as one refusal. The payloads are never
// read.
//
// The error is a *StatusError; it does not occur for valid records and limits (only
// when the library cannot allocate its accumulator).
func Plan(records []Record, limits Limits) (*Result, error) {
	l := limits.get()
	res := &Result{Batches: make([]Batch, 0, len(records)/400+1)}
	e := engines.Get().(*engine)
	defer engines.Put(e)
	st, err := e.run(records, l,
		func(r Refusal) bool {
			res.Refusals = append(res.Refusals, r)
			return true
		},
		func(b Batch) bool {
			res.Batches = append(res.Batches, b)
			return true
		})
	if err != nil {
		return nil, err
	}
	res.Stats = statsOf(st, l)
	return res, nil
}

// Batches returns an iterator over the requests of records under limits, in the manner
// of slices.Chunk: each step yields the sub-slice records[b.Start:b.End] of the caller's
// own slice (no copy) and the Batch. Planning is lazy, 8,192 records at a time, each
// chunk's batches yielded as it is planned: breaking out of the loop stops it.
//
// Refused records are never yielded: refused (which may be nil) is called with each, in
// index order, before any batch that comes after it in the input. By default a refused record closes the
// open batch, so every yielded sub-slice is exactly one request, with no refused record
// in it: send it as it is.
//
//	for recs, b := range kinesisbatcher.Batches(records, kinesisbatcher.KDS(), onRefusal) {
//		send(recs) // one PutRecords request: b.Records records, b.Bytes bytes
//	}
//
// Under limits with SpanningRefusals (fewer, fuller requests when refusals are common)
// a batch's range may hold refused records: b.Refused() of them, whose indices refused
// has just been given, always before the batch. Leave them out of the request then:
//
//	for recs, b := range kinesisbatcher.Batches(records, spanning, onRefusal) {
//		for i := range recs {
//			if b.Refused() > 0 && isRefused[b.Start+i] {
//				continue
//			}
//			add(recs[i])
//		}
//	}
//
// Plan and Result.RefusedIn give the same information for a whole slice. The sequence
// ends early if the library cannot allocate an accumulator (it then panics with the
// *StatusError; it does not happen for valid input otherwise).
func Batches(records []Record, limits Limits, refused func(Refusal)) iter.Seq2[[]Record, Batch] {
	l := limits.get()
	return func(yield func([]Record, Batch) bool) {
		e := engines.Get().(*engine)
		defer engines.Put(e)
		_, err := e.run(records, l,
			func(r Refusal) bool {
				if refused != nil {
					refused(r)
				}
				return true
			},
			func(b Batch) bool { return yield(records[b.Start:b.End:b.End], b) })
		if err != nil {
			panic(err)
		}
	}
}
