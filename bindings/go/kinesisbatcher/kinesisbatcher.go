//go:build cgo

package kinesisbatcher

// Version is the C library's version, "MAJOR.MINOR.PATCH".
func Version() string { return libraryVersion() }

// Record is one record to send. Only len(Data) is used; the bytes are never read or
// copied. PartitionKey must be 1..256 characters of valid UTF-8 (unless the limits have
// no partition keys). ExplicitHashKey is a decimal integer in 0..2^128-1, or "" for none.
type Record struct {
	Data            []byte
	PartitionKey    string
	ExplicitHashKey string
}

// Batch is one request: the input indices Start..End (End exclusive) of which Records
// are accepted, Bytes in total as the service counts them. By default a refused record
// closes the open batch, so no batch holds one: Refused() is 0 and records[Start:End]
// is the request as it stands. Only under limits with SpanningRefusals can the range
// hold refused indices (Refused() of them), to be left out of the request.
type Batch struct {
	Start, End int
	Records    int
	Bytes      int
}

// Refused is the number of refused records inside the batch's range (End-Start-Records).
func (b Batch) Refused() int { return b.End - b.Start - b.Records }

func batchOf(b cBatch, offset int) Batch {
	return Batch{Start: int(b.start) + offset, End: int(b.end) + offset, Records: int(b.records), Bytes: int(b.bytes)}
}

// Reason says why a record can never be sent. When several apply, the first in the
// order of the constants is reported.
type Reason uint8

// The reasons, with the C ABI's values.
const (
	KeyNotUTF8     Reason = 0 // the partition key is not valid UTF-8
	KeyEmpty       Reason = 1 // the partition key is empty
	KeyTooLong     Reason = 2 // the partition key is over 256 units of the key unit
	HashKeyInvalid Reason = 3 // the explicit hash key is not a decimal in 0..2^128-1
	RecordTooLarge Reason = 4 // data + key (+ hash key, when counted) is over the record cap
)

// String is the reason's short stable identifier, such as "record_too_large".
func (r Reason) String() string { return reasonName(uint8(r)) }

// Message is a sentence describing the reason.
func (r Reason) Message() string { return reasonMessage(uint8(r)) }

// Refusal is a record that can never be sent: its index in the input and why.
type Refusal struct {
	Index  int
	Reason Reason
}

// Stats counts a plan: closed batches, the records and bytes in them, refused records by
// reason, and how full the batches are (in 0..1, by bytes and by record count, against
// the limits' request caps; 0 without batches).
type Stats struct {
	Batches    int
	Records    int
	Bytes      int
	Refused    [5]int // indexed by Reason
	ByteFill   float64
	RecordFill float64
}

// RefusedTotal is the number of refused records, all reasons together.
func (s Stats) RefusedTotal() int {
	n := 0
	for _, c := range s.Refused {
		n += c
	}
	return n
}

func statsOf(c cStats, l cLimits) Stats {
	s := Stats{Batches: int(c.batches), Records: int(c.records), Bytes: int(c.bytes)}
	for i, n := range c.refused {
		s.Refused[i] = int(n)
	}
	s.ByteFill, s.RecordFill = statsFill(c, l)
	return s
}
