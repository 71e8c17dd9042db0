/*
 * kb_test.h: the C suite's shared declarations: a counting assertion macro, sentinel
 * helpers, and the suite's entry points.
 *
 * Written in the common subset of C11 and C++17: every file is compiled twice (as C,
 * and as C++ with -DKB_SUITE_PREFIX=cxx_), so every external name goes through
 * KB_SUITE() to get the language's prefix and both copies link into one binary.
 */
#ifndef KB_TEST_H
#define KB_TEST_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kinesis_batcher.h"

#ifndef KB_SUITE_PREFIX
#define KB_SUITE_PREFIX c_
#endif
#define KB_CAT2(a, b) a##b
#define KB_CAT(a, b) KB_CAT2(a, b)
#define KB_SUITE(name) KB_CAT(KB_SUITE_PREFIX, name)

#ifdef __cplusplus
#define KB_LANG "c++"
#else
#define KB_LANG "c"
#endif

/* The byte every output is filled with before a call that must fail. */
#define KB_SENTINEL 0xA5

/* Byte-string literals as the header's `const uint8_t *`. */
#define U8(s) ((const uint8_t *)(s))
#define U8LEN(s) (sizeof(s) - 1)

#ifdef __cplusplus
extern "C" {
#endif

/* Not in the header: exported only with the cargo feature ffi-test-panic. */
kb_status kb_test_panic(void);

/* ---- The assertion state, shared by every file of one language's copy. ---- */

struct kb_check_state {
  unsigned long checks;
  unsigned long failures;
  /* Statuses seen returned by a CHECK_ST, indexed by value (0..199). */
  unsigned char seen[200];
};

extern struct kb_check_state KB_SUITE(state);

int KB_SUITE(check)(int ok, const char *what, const char *file, int line);
int KB_SUITE(check_eq)(unsigned long long actual, unsigned long long expected,
                       const char *a, const char *b, const char *file, int line);
int KB_SUITE(check_status)(kb_status actual, kb_status expected, const char *call,
                           const char *file, int line);
int KB_SUITE(check_str)(const char *actual, const char *expected, const char *a,
                        const char *file, int line);
void KB_SUITE(fill)(void *p, size_t n);
int KB_SUITE(untouched)(const void *p, size_t n);
int KB_SUITE(check_count)(const char *call, const char *name, const void *p, size_t n,
                          const char *file, int line);

/* ---- Test groups, one per file. ---- */
void KB_SUITE(test_basics)(void);
void KB_SUITE(test_planner)(void);
void KB_SUITE(test_lines)(void);
void KB_SUITE(test_delivery)(void);
void KB_SUITE(test_shards)(void);
void KB_SUITE(test_aggregate)(void);

/* ---- Entry points (called from Rust, and from main.c). ---- */

/* Runs the whole suite; returns the number of failed checks (0: all passed). */
unsigned long KB_SUITE(suite_run)(void);
/* Checks made by the last suite_run. */
unsigned long KB_SUITE(suite_checks)(void);

/*
 * A few independent planners, accumulators and line planners over a record array
 * generated from `seed`: run by several threads at once. Returns its own failure count
 * (it does not touch the shared state).
 */
unsigned long KB_SUITE(thread_worker)(uint64_t seed);
/* n_threads pthreads planning one shared record array at once, each compared with the
 * single-threaded plan (threads.c); returns the mismatches. */
unsigned long KB_SUITE(threads_shared)(unsigned n_threads);

/*
 * Differential drivers: plan `records` under `limits` through one entry point with
 * small capacities drawn from `seed`, appending every batch and refusal to the output
 * arrays (which hold n + 1 entries each). Return KB_OK, or the first error status.
 */
kb_status KB_SUITE(drive_plan)(const kb_limits *limits, const kb_record *records, size_t n,
                               uint64_t seed, kb_batch *batches, size_t *n_batches,
                               kb_refusal *refusals, size_t *n_refusals);
kb_status KB_SUITE(drive_next)(const kb_limits *limits, const kb_record *records, size_t n,
                               uint64_t seed, kb_batch *batches, size_t *n_batches,
                               kb_refusal *refusals, size_t *n_refusals);
kb_status KB_SUITE(drive_accumulator)(const kb_limits *limits, const kb_record *records,
                                      size_t n, uint64_t seed, kb_batch *batches,
                                      size_t *n_batches, kb_refusal *refusals,
                                      size_t *n_refusals);
kb_status KB_SUITE(drive_sizes)(const kb_limits *limits, const kb_record *records, size_t n,
                                uint64_t seed, kb_batch *batches, size_t *n_batches,
                                kb_refusal *refusals, size_t *n_refusals);
/*
 * Line planning of `input` fed in random chunks (drop what is consumed, keep the rest,
 * append more) with random small capacities. KB_KEY_REFUSED writes `*key_reason`.
 */
kb_status KB_SUITE(drive_lines)(const kb_limits *limits, const uint8_t *key, size_t key_len,
                                uint32_t options, const uint8_t *input, size_t len,
                                uint64_t seed, kb_line_batch *batches, size_t batches_cap,
                                size_t *n_batches, kb_line_refusal *refusals,
                                size_t refusals_cap, size_t *n_refusals,
                                kb_reason *key_reason);

/* A small deterministic generator (xorshift64*). */
uint64_t KB_SUITE(rand_next)(uint64_t *state);

#ifdef __cplusplus
}
#endif

/* ---- Assertions: each counts, and prints file:line when it fails. ---- */

#define CHECK(cond) KB_SUITE(check)((cond) ? 1 : 0, #cond, __FILE__, __LINE__)
#define CHECK_EQ(actual, expected)                                                  \
  KB_SUITE(check_eq)((unsigned long long)(actual), (unsigned long long)(expected), \
                     #actual, #expected, __FILE__, __LINE__)
#define CHECK_ST(call, expected) \
  KB_SUITE(check_status)((call), (kb_status)(expected), #call, __FILE__, __LINE__)
#define CHECK_STR(actual, expected) \
  KB_SUITE(check_str)((actual), (expected), #actual, __FILE__, __LINE__)
/* Fills an object with the sentinel; CHECK_UNTOUCHED says it still holds only that. */
#define FILL(x) KB_SUITE(fill)(&(x), sizeof(x))
#define FILL_N(p, n) KB_SUITE(fill)((p), (n) * sizeof(*(p)))
#define CHECK_UNTOUCHED(x) CHECK(KB_SUITE(untouched)(&(x), sizeof(x)))
#define CHECK_UNTOUCHED_N(p, n) CHECK(KB_SUITE(untouched)((p), (n) * sizeof(*(p))))
/*
 * After an error, a count out-parameter (n_batches, n_entries, bytes, consumed, settled,
 * ...) is 0 when the call was passed it (`&x` appears in the call's text, `call_text`:
 * #call inside a macro) and untouched (the sentinel) when it was not. Fill it first.
 */
#define CHECK_COUNT(call_text, x) \
  KB_SUITE(check_count)((call_text), #x, &(x), sizeof(x), __FILE__, __LINE__)

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A record from byte strings (NULL hash key: none). */
static inline kb_record kb_rec(const uint8_t *data, size_t data_len, const uint8_t *key,
                               size_t key_len) {
  kb_record r;
  r.data = data;
  r.data_len = data_len;
  r.key = key;
  r.key_len = key_len;
  r.hash_key = NULL;
  r.hash_key_len = 0;
  return r;
}

static inline kb_limits kb_profile(uint32_t profile) {
  kb_limits l;
  memset(&l, 0, sizeof l);
  kb_status st = kb_limits_profile(profile, &l);
  if (st != KB_OK) {
    fprintf(stderr, "kb_limits_profile(%u) failed: %u\n", (unsigned)profile, (unsigned)st);
    abort();
  }
  return l;
}

/* Custom limits from a profile, or abort: for tests that need valid ones. */
static inline kb_limits kb_custom(uint32_t profile, uint32_t records, uint32_t request,
                                  uint32_t record) {
  kb_limits l = kb_profile(profile);
  l.max_records = records;
  l.max_request_bytes = request;
  l.max_record_bytes = record;
  if (kb_limits_check(&l) != KB_OK) {
    fprintf(stderr, "invalid custom limits %u/%u/%u\n", (unsigned)records, (unsigned)request,
            (unsigned)record);
    abort();
  }
  return l;
}

static inline int kb_batch_eq(const kb_batch *a, const kb_batch *b) {
  return a->start == b->start && a->end == b->end && a->records == b->records &&
         a->bytes == b->bytes;
}

static inline int kb_refusal_eq(const kb_refusal *a, const kb_refusal *b) {
  return a->index == b->index && (unsigned)a->reason == (unsigned)b->reason;
}

#endif /* KB_TEST_H */
