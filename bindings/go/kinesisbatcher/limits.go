//go:build cgo

package kinesisbatcher

import "math"

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
// check them with the library (kb_limits_check). The zero Limits is KDS().
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
type LimitOption struct{ apply func(*cLimits) }

// WithKeyUnit counts partition key length in u.
func WithKeyUnit(u KeyUnit) LimitOption {
	return LimitOption{func(l *cLimits) { l.keyUnit = uint32(u) }}
}

// WithoutPartitionKeys ignores partition keys: a record's size is its data length.
func WithoutPartitionKeys() LimitOption {
	return LimitOption{func(l *cLimits) { l.options &^= optPartitionKeys }}
}

// WithPartitionKeys validates and counts partition keys (the default but for Firehose).
func WithPartitionKeys() LimitOption {
	return LimitOption{func(l *cLimits) { l.options |= optPartitionKeys }}
}

// CountingHashKeys counts explicit hash key bytes towards record and request size (the
// service does not document that it does, so it is off by default).
func CountingHashKeys() LimitOption {
	return LimitOption{func(l *cLimits) { l.options |= optCountHashKey }}
}

// NewLimits makes custom limits: profile's options, with the three caps given, then
// opts. The library validates them: no zero cap, nothing above the service's maximum
// (500 records, 10 MiB per request and per record), the record cap not above the
// request cap nor the profile's ceiling. A refusal is a *StatusError matching
// ErrInvalidLimits whose message names the rule. Negative values count as 0.
func NewLimits(profile Profile, maxRecords, maxRequestBytes, maxRecordBytes int, opts ...LimitOption) (Limits, error) {
	base, s := limitsProfile(uint32(profile))
	if err := statusErr(s, -1); err != nil {
		return Limits{}, err
	}
	base.maxRecords = clampU32(maxRecords)
	base.maxRequestBytes = clampU32(maxRequestBytes)
	base.maxRecordBytes = clampU32(maxRecordBytes)
	for _, o := range opts {
		o.apply(&base)
	}
	if err := statusErr(limitsCheck(base), -1); err != nil {
		return Limits{}, err
	}
	return Limits{base}, nil
}

// With returns l changed by opts, checked again.
func (l Limits) With(opts ...LimitOption) (Limits, error) {
	c := l.get()
	for _, o := range opts {
		o.apply(&c)
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

// PartitionKeys reports whether partition keys are validated and counted.
func (l Limits) PartitionKeys() bool { return l.get().options&optPartitionKeys != 0 }

// CountsHashKeys reports whether explicit hash keys count towards size.
func (l Limits) CountsHashKeys() bool { return l.get().options&optCountHashKey != 0 }
