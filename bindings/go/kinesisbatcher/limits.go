//go:build cgo

package kinesisbatcher

import (
	"fmt"
	"math"
)

// Profile is the service whose limits apply; it bounds the record cap.
type Profile uint32

// The profiles, with the C ABI's values.
const (
	// ProfileKDS: Kinesis Data Streams (500 records, 10 MiB per request, 1 MiB per
	// record by default and up to 10 MiB, partition keys required).
	ProfileKDS Profile = 0
	// ProfileKDS5MiB: Kinesis Data Streams before October 2025 (500, 5 MiB, 1 MiB).
	ProfileKDS5MiB Profile = 1
	// ProfileFirehose: Amazon Data Firehose PutRecordBatch (500, 4 MiB, 1,024,000
	// bytes, no partition key).
	ProfileFirehose Profile = 2
)

// KeyUnit is how the 256-unit partition key limit is counted.
type KeyUnit uint32

// The key units, with the C ABI's values.
const (
	CodePoints KeyUnit = 0 // Unicode code points, as documented (the default)
	UTF16Units KeyUnit = 1 // UTF-16 code units, as the Java KPL counts
	UTF8Bytes  KeyUnit = 2 // UTF-8 bytes, the strictest reading
)

// Limits are the caps a plan respects. Every Limits value is valid: the constructors
// check them with the library (kb_limits_check). The zero Limits is KDS(): Kinesis Data
// Streams, keys required and counted in code points, hash keys not counted, and batches
// that never hold a refused record.
type Limits struct {
	c cLimits
}

func mustProfile(p Profile) cLimits {
	l, s := limitsProfile(uint32(p))
	if s != statusOK {
		panic("kinesisbatcher: " + statusMessage(s))
	}
	return l
}

var kdsLimits = mustProfile(ProfileKDS)

func (l Limits) get() cLimits {
	if l.c == (cLimits{}) {
		return kdsLimits
	}
	return l.c
}

// KDS is Kinesis Data Streams: 500 records and 10 MiB per request, 1 MiB per record.
func KDS() Limits { return Limits{kdsLimits} }

// KDS5MiB is Kinesis Data Streams before 2025 (and emulators): 500, 5 MiB, 1 MiB.
func KDS5MiB() Limits { return Limits{mustProfile(ProfileKDS5MiB)} }

// Firehose is Amazon Data Firehose: 500 records, 4 MiB per request, 1,024,000 bytes per
// record, no partition key.
func Firehose() Limits { return Limits{mustProfile(ProfileFirehose)} }

// ForStream is KDS for a stream whose MaxRecordSizeInKiB is maxRecordSizeKiB
// (1024..10240, as DescribeStreamSummary reports it).
func ForStream(maxRecordSizeKiB int) (Limits, error) {
	l, s := limitsForStream(clampU32(maxRecordSizeKiB))
	if err := statusErr(s, -1); err != nil {
		return Limits{}, err
	}
	return Limits{l}, nil
}

// LimitOption changes a custom Limits before it is checked.
type LimitOption struct{ apply func(*cLimits) error }

// WithKeyUnit counts partition key length in u.
func WithKeyUnit(u KeyUnit) LimitOption {
	return LimitOption{func(l *cLimits) error { l.keyUnit = uint32(u); return nil }}
}

// WithoutPartitionKeys ignores partition keys: a record's size is its data (plus its
// explicit hash key, with CountingHashKeys), and keys are neither validated nor
// counted. On Firehose limits it changes nothing: Firehose records have no key.
func WithoutPartitionKeys() LimitOption {
	return LimitOption{func(l *cLimits) error {
		if Profile(l.profile) != ProfileFirehose { // Firehose's options stay 0, as the library's
			l.options |= optNoPartitionKeys
		}
		return nil
	}}
}

// WithPartitionKeys validates and counts partition keys: the default of the Kinesis Data
// Streams profiles, so it only undoes WithoutPartitionKeys. Firehose records have no
// partition key (PutRecordBatch has no such field), so on Firehose limits it is an
// error matching ErrInvalidLimits, rather than keys counted that are never sent.
func WithPartitionKeys() LimitOption {
	return LimitOption{func(l *cLimits) error {
		if Profile(l.profile) == ProfileFirehose {
			return errFirehoseKeys
		}
		l.options &^= optNoPartitionKeys
		return nil
	}}
}

var errFirehoseKeys = fmt.Errorf("%w: WithPartitionKeys: Firehose records have no partition key", ErrInvalidLimits)

// CountingHashKeys counts explicit hash key bytes towards record and request size (the
// service does not document that it does, so it is off by default).
func CountingHashKeys() LimitOption {
	return LimitOption{func(l *cLimits) error { l.options |= optCountHashKey; return nil }}
}

// SpanningRefusals lets a batch span refused records, for the fewest requests. By
// default a refused record closes the open batch, so that records[b.Start:b.End] is
// always exactly the request (b.Refused() == 0). With this option a batch's range can
// hold refused records (b.Refused() of them, each reported before the batch), which
// the caller must leave out of the request: see Batches.
func SpanningRefusals() LimitOption {
	return LimitOption{func(l *cLimits) error { l.options |= optSpanRefusals; return nil }}
}

// NewLimits makes custom limits: profile's options, with the three caps given, then
// opts. The library validates them: no zero cap, nothing above the service's maximum
// (500 records, 10 MiB per request and per record), the record cap not above the
// request cap, neither cap above the profile's (5 MiB requests for KDS5MiB; 4 MiB
// requests and 1,024,000-byte records for Firehose). A refusal is a *StatusError
// matching ErrInvalidLimits whose message names the rule (WithPartitionKeys on
// Firehose is an error matching ErrInvalidLimits too, not a *StatusError). Negative
// values count as 0.
func NewLimits(profile Profile, maxRecords, maxRequestBytes, maxRecordBytes int, opts ...LimitOption) (Limits, error) {
	base, s := limitsProfile(uint32(profile))
	if err := statusErr(s, -1); err != nil {
		return Limits{}, err
	}
	base.maxRecords = clampU32(maxRecords)
	base.maxRequestBytes = clampU32(maxRequestBytes)
	base.maxRecordBytes = clampU32(maxRecordBytes)
	return checked(base, opts)
}

// With returns l changed by opts, checked again.
func (l Limits) With(opts ...LimitOption) (Limits, error) {
	return checked(l.get(), opts)
}

func checked(c cLimits, opts []LimitOption) (Limits, error) {
	for _, o := range opts {
		if o.apply == nil {
			continue // the zero LimitOption changes nothing
		}
		if err := o.apply(&c); err != nil {
			return Limits{}, err
		}
	}
	if err := statusErr(limitsCheck(c), -1); err != nil {
		return Limits{}, err
	}
	return Limits{c}, nil
}

func clampU32(v int) uint32 {
	if v < 0 {
		return 0
	}
	if uint64(v) > math.MaxUint32 {
		return math.MaxUint32
	}
	return uint32(v)
}

// Profile is the service the limits are for.
func (l Limits) Profile() Profile { return Profile(l.get().profile) }

// MaxRecords is the number of records per request.
func (l Limits) MaxRecords() int { return int(l.get().maxRecords) }

// MaxRequestBytes is the bytes per request (data + keys).
func (l Limits) MaxRequestBytes() int { return int(l.get().maxRequestBytes) }

// MaxRecordBytes is the bytes per record (data + key).
func (l Limits) MaxRecordBytes() int { return int(l.get().maxRecordBytes) }

// KeyUnit is how partition key length is counted.
func (l Limits) KeyUnit() KeyUnit { return KeyUnit(l.get().keyUnit) }

// PartitionKeys reports whether partition keys are validated and counted: true for the
// Kinesis Data Streams profiles unless WithoutPartitionKeys, never for Firehose.
func (l Limits) PartitionKeys() bool {
	c := l.get()
	return Profile(c.profile) != ProfileFirehose && c.options&optNoPartitionKeys == 0
}

// CountsHashKeys reports whether explicit hash keys count towards size.
func (l Limits) CountsHashKeys() bool { return l.get().options&optCountHashKey != 0 }

// SpansRefusals reports whether a batch may span refused records (SpanningRefusals).
// When false, the default, every batch is exactly records[b.Start:b.End].
func (l Limits) SpansRefusals() bool { return l.get().options&optSpanRefusals != 0 }
