/*
 * ndjson.h: the JSON checks of --format ndjson and the partition keys of --key-field, for
 * kb-producer.
 *
 * They answer as the kinesis-batcher command-line tool does (cli/src/keys.rs, which reads
 * lines with serde_json), so that one file gets one answer from both: the same lines are
 * refused, for the same reasons, and the same keys are taken from the others.
 *
 * Lines are only scanned, never copied or turned into a tree: a key is a view into its
 * line, except a string key with escapes, which ndj_unescape decodes into a buffer of the
 * caller's. Whether a key is valid (empty, too long, not UTF-8) and whether the record
 * fits is not decided here: that is the library's answer, when the record is planned.
 */
#ifndef NDJSON_H
#define NDJSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* The producer's own refusal reasons, beside the library's kb_reason. */
enum { NDJ_OK = 0, NDJ_INVALID_JSON = 1, NDJ_KEY_FIELD_MISSING = 2 };

/* Why a line is refused. */
typedef struct {
    int reason;       /* NDJ_INVALID_JSON or NDJ_KEY_FIELD_MISSING */
    const char *what; /* invalid_json: the problem, in serde_json's words; key_field_missing:
                         what the field (or the line) holds, "null", "an array"...; NULL
                         when the object has no such field */
    size_t column;    /* invalid_json: the 1-based byte column of the problem */
    bool line_is;     /* key_field_missing: `what` is the line itself, not an object */
} ndj_refusal;

/* Scanner state: a stack of one bit per open array or object, so that nesting of any
 * depth is read without recursion, and the powers of ten serde_json scales numbers by. */
typedef struct {
    uint8_t *stack;
    size_t stack_bits;
    double powers[309];
} ndj_scanner;

/* Sizes the scanner for lines of up to max_line bytes (longer ones must not be given);
 * false when out of memory. */
bool ndj_init(ndj_scanner *s, size_t max_line);
void ndj_free(ndj_scanner *s);

/* "invalid_json" or "key_field_missing", as the tool names them. */
const char *ndj_reason_name(int reason);

/* Writes the refusal's detail (after "reason: ") as the tool words it; `field` is the key
 * field's name. */
void ndj_print_detail(FILE *out, const ndj_refusal *why, const char *field);

/* --format ndjson: whether line[0..len] is one JSON value (whitespace around it allowed).
 * When it is not, *why says where. */
bool ndj_check(ndj_scanner *s, const uint8_t *line, size_t len, ndj_refusal *why);

/* A key found in a line: the bytes of a string between its quotes, or a number's JSON
 * text; `escaped` says the string holds escapes, so its key is ndj_unescape(bytes, len). */
typedef struct {
    const uint8_t *bytes;
    size_t len;
    bool escaped;
} ndj_key;

/* --key-field: reads line[0..len] as one JSON value and finds the top-level member
 * named field[0..field_len] (the last one, when it appears more than once). True with
 * its key in *key when it is a string or a number; false with *why otherwise: the line
 * is not JSON (invalid_json), or not an object, has no such member or holds something
 * else in it (key_field_missing). */
bool ndj_key_field(ndj_scanner *s, const uint8_t *line, size_t len, const char *field,
                   size_t field_len, ndj_key *key, ndj_refusal *why);

/* Decodes the escapes of a key string (key->escaped) into out, which holds key->len
 * bytes (never too few: decoding only shortens), and returns the decoded length. An
 * unpaired UTF-16 surrogate escape ("\ud800", valid JSON) becomes the three bytes UTF-8
 * forbids for it, so that the library refuses the key as key_not_utf8, as the tool does. */
size_t ndj_unescape(const ndj_key *key, uint8_t *out);

/* Whether s[0..n] is valid UTF-8. */
bool ndj_utf8_valid(const uint8_t *s, size_t n);

#endif /* NDJSON_H */
