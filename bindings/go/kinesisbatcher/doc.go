// Package kinesisbatcher cuts records into AWS Kinesis PutRecords (and Firehose
// PutRecordBatch) requests exactly as the service counts them: at most 500 records and
// 10 MiB per request, each record (data + partition key) at most the stream's record
// cap, in order, with every record that can never be sent refused by index and reason.
//
// It is a binding of the kinesis-batcher C library (a no_std Rust core). Records cross
// into C as sizes only: the payloads are never copied or passed; the partition keys of
// a slice are copied into one buffer so that the library validates and counts them.
// Planning a slice takes one cgo call per 8,192 records.
//
// Three ways in, one plan:
//   - [Plan] plans a whole slice and returns its batches, refusals and stats;
//   - [Batches] iterates over the requests as sub-slices of the caller's slice;
//   - [Accumulator] takes records one at a time (one cgo call per record).
//
// By default a refused record closes the open batch, so every batch is exactly
// records[b.Start:b.End], ready to send ([SpanningRefusals] trades that for fewer
// requests). [Delivery] plans requests and re-plans the failed entries of each
// PutRecords response. Zero values are safe: the zero [Limits] is [KDS], and a zero
// field of a [RetryPolicy] means its default.
//
// The package needs cgo and the library installed where pkg-config finds it (`make
// install` in the repository, then PKG_CONFIG_PATH=<prefix>/lib/pkgconfig); it links
// the static archive, so programs need no libkinesis_batcher at run time. See README.md.
package kinesisbatcher
