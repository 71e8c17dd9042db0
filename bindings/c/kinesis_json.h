/*
 * kinesis_json.h: the PutRecords wire format, both ways, for kb-producer.
 *
 * Writing: the request body {"StreamName":...,"Records":[{"Data":b64,"PartitionKey":...}]}
 * straight from the caller's records (no intermediate copies). Reading: a small, bounded
 * JSON scanner for exactly what a producer needs from a response, nothing more.
 */
#ifndef KINESIS_JSON_H
#define KINESIS_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <kinesis_batcher.h>

/* An upper bound (exact unless keys hold control characters) of the body for the
 * request of records[0..n], in that order: size the body buffer with it. */
size_t kj_body_bound(const char *stream, const kb_record *const *records, size_t n);

/* Writes the body into out (which holds kj_body_bound bytes) and returns its length.
 * No NUL terminator is written. */
size_t kj_body_write(char *out, const char *stream, const kb_record *const *records,
                     size_t n);

/* Parses a successful (HTTP 2xx) PutRecords response. For each entry of "Records", in
 * order, writes its outcome to outcomes[i]: KB_OUTCOME_ACCEPTED for an entry with a
 * "SequenceNumber", the kb_error_kind of its "ErrorCode" otherwise (an entry with
 * neither is KB_ERROR_KIND_BAD_RESPONSE). At most cap outcomes are written; *n_outcomes
 * is the entry count, clamped to cap. *failed_count is "FailedRecordCount" (-1 when
 * absent). Returns false when the body is not the expected JSON object. */
bool kj_parse_response(const char *body, size_t len, uint8_t *outcomes, size_t cap,
                       size_t *n_outcomes, long long *failed_count);

/* Finds the top-level string member `name` of a JSON object (an error body's "__type"
 * or "message") and returns its raw bytes (escapes left as they are) in *s, *n. */
bool kj_top_string(const char *body, size_t len, const char *name, const char **s,
                   size_t *n);

#endif /* KINESIS_JSON_H */
