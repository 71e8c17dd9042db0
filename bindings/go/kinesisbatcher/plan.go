//go:build cgo

package kinesisbatcher

import (
	"iter"
	"sort"
	"sync"
)

// chunkRecords is how many records one kb_record_sizes_fill call measures: it bounds
// the column buffers (the concatenated keys above all), which stay in the CPU caches.
const chunkRecords = 16384

// planBatches and planRefusals are the capacities of the output arrays of one
// kb_planner_plan_sizes call; the planner is called again while one fills.
const (
	planBatches  = 1024
	planRefusals = 1024
)

// columns holds the column arrays kb_record_sizes_fill reads. Nothing in them is a Go
// pointer.
type columns struct {
	dataLens []uint64
	keyLens  []uintptr
	keys     []byte
	hashLens []uintptr
	hashKeys []byte
}

// fill fills out[i] with the size form of recs[i]: one kb_record_sizes_fill call. Every
// key is copied into the column buffer (the payloads never are); the library measures
// and validates them.
func (c *columns) fill(recs []Record, keyUnit uint32, out []cRecordSize) error {
	n := len(recs)
	if cap(c.dataLens) < n {
		c.dataLens = make([]uint64, n)
		c.keyLens = make([]uintptr, n)
	}
	dataLens, keyLens := c.dataLens[:n], c.keyLens[:n]
	keys := c.keys[:0]
	hashes := false
	for i := range recs {
		r := &recs[i]
		dataLens[i] = uint64(len(r.Data))
		keys = append(keys, r.PartitionKey...)
		keyLens[i] = uintptr(len(r.PartitionKey))
		hashes = hashes || r.ExplicitHashKey != ""
	}
	c.keys = keys
	var hashLens []uintptr
	var hashKeys []byte
	if hashes {
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
	s, bad := sizesFill(dataLens, keys, keyLens, hashKeys, hashLens, keyUnit, out[:n])
	return statusErr(s, bad)
}

// measure fills sizes[i] (len(records) entries) with the size form of records[i]:
// one kb_record_sizes_fill call per chunkRecords records. Plan, Batches and
// NewDelivery all measure through it.
func (c *columns) measure(records []Record, l *cLimits, sizes []cRecordSize) error {
	for start := 0; start < len(records); start += chunkRecords {
		end := min(start+chunkRecords, len(records))
		if err := c.fill(records[start:end], l.keyUnit, sizes[start:end]); err != nil {
			if se, ok := err.(*StatusError); ok && se.Index >= 0 {
				se.Index += start
			}
			return err
		}
	}
	return nil
}

// engine measures a whole slice (24 bytes a record, no Go pointer) and plans it with
// one planner, whose output arrays are bounded: kb_planner_plan_sizes is called again
// while KB_BATCHES_FULL or KB_REFUSALS_FULL, and each call's batches and refusals are
// handed on as it returns them.
type engine struct {
	cols     columns
	sizes    []cRecordSize
	batches  []cBatch
	refusals []cRefusal
}

var engines = sync.Pool{New: func() any {
	return &engine{batches: make([]cBatch, planBatches), refusals: make([]cRefusal, planRefusals)}
}}

// run plans records under l, calling refused for each refusal and batch for each batch
// in input order, every refusal before the batch whose range holds it. It stops early
// (planning no further) when a callback returns false. On success it returns the
// planner's stats.
func (e *engine) run(records []Record, l cLimits, refused func(Refusal) bool, batch func(Batch) bool) (cStats, error) {
	n := len(records)
	if cap(e.sizes) < n {
		e.sizes = make([]cRecordSize, n)
	}
	sizes := e.sizes[:n]
	if err := e.cols.measure(records, &l, sizes); err != nil {
		return cStats{}, err
	}
	p, s := plannerNew(l)
	if err := statusErr(s, -1); err != nil {
		return cStats{}, err
	}
	defer plannerFree(p)
	for {
		s, nb, nr := plannerPlanSizes(p, sizes, e.batches, e.refusals)
		if s != statusOK && s != statusBatchesFull && s != statusRefusalsFull {
			return cStats{}, &StatusError{Status: s, Index: -1}
		}
		// The refusals of a call come before, or with, the batch whose range holds them.
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
		if s == statusOK {
			return plannerStats(p), nil
		}
		if nb == 0 && nr == 0 {
			// Cannot happen: a full array means something was written.
			return cStats{}, &StatusError{Status: s, Index: -1}
		}
	}
}

// Result is a whole plan: the batches and the refusals in input order, and its stats.
type Result struct {
	Batches  []Batch
	Refusals []Refusal
	Stats    Stats
}

// RefusedIn returns the refusals whose indices lie in b's range (a sub-slice of
// r.Refusals, found by binary search; empty when b.Refused() is 0).
func (r *Result) RefusedIn(b Batch) []Refusal {
	if b.Refused() == 0 {
		return nil
	}
	lo := sort.Search(len(r.Refusals), func(i int) bool { return r.Refusals[i].Index >= b.Start })
	hi := sort.Search(len(r.Refusals), func(i int) bool { return r.Refusals[i].Index >= b.End })
	return r.Refusals[lo:hi]
}

// Plan cuts records into requests under limits: greedily and in order, which gives the
// fewest requests any order-keeping plan can. Every index is reported exactly once, as
// an accepted record of one batch or as one refusal. The payloads are never read.
//
// The error is a *StatusError; it does not occur for valid records and limits (only
// when the library cannot allocate a planner).
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
// own slice (no copy) and the Batch. The records are measured first (24 bytes each);
// planning is then lazy, yielding the batches of each planner call as it returns
// them: breaking out of the loop stops it.
//
// Refused records are not yielded: refused (which may be nil) is called with each, in
// index order, always before the batch whose range holds it. When b.Refused() > 0 the
// yielded sub-slice still holds those b.Refused() records, whose indices refused has
// just been given: skip them when building the request. Plan and Result.RefusedIn give
// the same information for a whole slice.
//
// The sequence ends early if the library cannot allocate a planner (it then panics
// with the *StatusError; it does not happen for valid input otherwise).
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
