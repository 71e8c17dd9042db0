/*
 * suite_engine.c: the producer engine (kb_engine): creation and its errors, every entry
 * point with NULLs, zero and overflowing lengths, linger and flush, backpressure, per-key
 * order, pauses on credentials, terminal records, shards, reset, and simulated runs
 * against a fake service that fails entries and answers out of order.
 */
#include "kb_test.h"

void KB_SUITE(test_engine)(void);

static const uint8_t PAYLOAD[256] = {0};

static kb_engine_config zero_config(void) {
  kb_engine_config c;
  memset(&c, 0, sizeof c);
  return c;
}

static kb_engine_counters counters(const kb_engine *e) {
  kb_engine_counters s;
  memset(&s, 0, sizeof s);
  CHECK_ST(kb_engine_stats(e, &s), KB_OK);
  return s;
}

static int paused(const kb_engine *e) {
  int p = -1;
  CHECK_ST(kb_engine_is_paused(e, &p), KB_OK);
  return p;
}

/* A record of `len` payload bytes with a NUL-terminated key. */
static kb_record rec(size_t len, const char *key) {
  return kb_rec(PAYLOAD, len, U8(key), strlen(key));
}

/* Pushes a record that must be taken, and returns its handle. */
static kb_handle push_ok(kb_engine *e, kb_record r, uint64_t now) {
  kb_handle h = UINT32_MAX;
  kb_reason why = 0;
  CHECK_ST(kb_engine_push(e, &r, now, &h, &why), KB_OK);
  return h;
}

/* Two shards splitting the hash key space in halves. */
static void two_shards(kb_shard_range *r) {
  r[0].start.high = 0;
  r[0].start.low = 0;
  r[0].end.high = UINT64_MAX >> 1;
  r[0].end.low = UINT64_MAX;
  r[1].start.high = (UINT64_MAX >> 1) + 1;
  r[1].start.low = 0;
  r[1].end.high = UINT64_MAX;
  r[1].end.low = UINT64_MAX;
}

static void test_engine_statuses(void) {
  CHECK_EQ(KB_FULL, 10);
  CHECK_EQ(KB_WAIT, 11);
  CHECK_EQ(KB_BUSY, 12);
  CHECK_EQ(KB_PAUSED, 13);
  CHECK_EQ(KB_HANDLE_ARRAY_TOO_SMALL, 115);
  CHECK(!kb_status_is_error(KB_FULL));
  CHECK(!kb_status_is_error(KB_WAIT));
  CHECK(!kb_status_is_error(KB_BUSY));
  CHECK(!kb_status_is_error(KB_PAUSED));
  CHECK(kb_status_is_error(KB_HANDLE_ARRAY_TOO_SMALL));
  CHECK_EQ(KB_ERROR_KIND_CREDENTIALS, 13);
  CHECK_EQ(KB_ENGINE_ALLOW_REORDERING, 1);
  CHECK_EQ(KB_ENGINE_MAX_IN_FLIGHT, 1024);
}

static void test_engine_new(void) {
  kb_limits l = kb_profile(KB_PROFILE_KDS);
  kb_limits bad_limits;
  kb_engine_config c = zero_config();
  kb_retry_policy pol;
  kb_engine *e = NULL;
  kb_shard_range ranges[2];
  size_t bad;

  /* NULL limits, policy and config: the defaults. */
  CHECK_ST(kb_engine_new(NULL, NULL, NULL, 16, NULL, 0, &e, NULL), KB_OK);
  CHECK(e != NULL);
  CHECK_EQ(kb_engine_capacity(e), 16);
  CHECK_EQ(paused(e), 0);
  kb_engine_free(e);
  /* Zeroed structs are the same defaults. */
  memset(&pol, 0, sizeof pol);
  e = NULL;
  CHECK_ST(kb_engine_new(&l, &pol, &c, 1, NULL, 0, &e, NULL), KB_OK);
  CHECK_EQ(kb_engine_capacity(e), 1);
  kb_engine_free(e);
  kb_engine_free(NULL);
  CHECK_EQ(kb_engine_capacity(NULL), 0);

#define EXPECT_NEW_ERROR(call, status) \
  do {                                 \
    FILL(e);                           \
    CHECK_ST(call, status);            \
    CHECK_UNTOUCHED(e);                \
  } while (0)
  CHECK_ST(kb_engine_new(NULL, NULL, NULL, 16, NULL, 0, NULL, NULL), KB_NULL_POINTER);
  EXPECT_NEW_ERROR(kb_engine_new(&l, NULL, NULL, 0, NULL, 0, &e, NULL), KB_ZERO_CAPACITY);
  EXPECT_NEW_ERROR(kb_engine_new(&l, NULL, NULL, SIZE_MAX, NULL, 0, &e, NULL),
                   KB_LENGTH_OVERFLOW);
  EXPECT_NEW_ERROR(kb_engine_new(&l, NULL, NULL, SIZE_MAX / 2, NULL, 0, &e, NULL),
                   KB_LENGTH_OVERFLOW);
  /* Handles are uint32_t, one value kept out. */
  EXPECT_NEW_ERROR(kb_engine_new(&l, NULL, NULL, (size_t)UINT32_MAX, NULL, 0, &e, NULL),
                   KB_LENGTH_OVERFLOW);
  bad_limits = l;
  bad_limits.max_records = 0;
  EXPECT_NEW_ERROR(kb_engine_new(&bad_limits, NULL, NULL, 16, NULL, 0, &e, NULL),
                   KB_LIMITS_ZERO_RECORDS);
  bad_limits = l;
  bad_limits.profile = 7;
  EXPECT_NEW_ERROR(kb_engine_new(&bad_limits, NULL, NULL, 16, NULL, 0, &e, NULL),
                   KB_LIMITS_BAD_PROFILE);
  bad_limits = l;
  bad_limits.max_records = 501;
  EXPECT_NEW_ERROR(kb_engine_new(&bad_limits, NULL, NULL, 16, NULL, 0, &e, NULL),
                   KB_LIMITS_RECORDS_ABOVE_SERVICE);
  c.max_in_flight = KB_ENGINE_MAX_IN_FLIGHT + 1;
  EXPECT_NEW_ERROR(kb_engine_new(&l, NULL, &c, 16, NULL, 0, &e, NULL), KB_INVALID_ARGUMENT);
  c.max_in_flight = UINT32_MAX;
  EXPECT_NEW_ERROR(kb_engine_new(&l, NULL, &c, 16, NULL, 0, &e, NULL), KB_INVALID_ARGUMENT);
  c.max_in_flight = KB_ENGINE_MAX_IN_FLIGHT; /* the most */
  CHECK_ST(kb_engine_new(&l, NULL, &c, 16, NULL, 0, &e, NULL), KB_OK);
  kb_engine_free(e);
  c = zero_config();
  c.flags = 2;
  EXPECT_NEW_ERROR(kb_engine_new(&l, NULL, &c, 16, NULL, 0, &e, NULL), KB_INVALID_ARGUMENT);
  c.flags = UINT32_MAX;
  EXPECT_NEW_ERROR(kb_engine_new(&l, NULL, &c, 16, NULL, 0, &e, NULL), KB_INVALID_ARGUMENT);
  c.flags = KB_ENGINE_ALLOW_REORDERING;
  CHECK_ST(kb_engine_new(&l, NULL, &c, 16, NULL, 0, &e, NULL), KB_OK);
  kb_engine_free(e);

  /* Shard maps: (NULL, 0) and (p, 0) are none; checked as kb_shard_map_check does. */
  two_shards(ranges);
  CHECK_ST(kb_engine_new(&l, NULL, NULL, 16, ranges, 2, &e, NULL), KB_OK);
  kb_engine_free(e);
  CHECK_ST(kb_engine_new(&l, NULL, NULL, 16, ranges, 0, &e, NULL), KB_OK);
  kb_engine_free(e);
  EXPECT_NEW_ERROR(kb_engine_new(&l, NULL, NULL, 16, NULL, 2, &e, NULL), KB_NULL_ARRAY);
  EXPECT_NEW_ERROR(kb_engine_new(&l, NULL, NULL, 16, ranges, SIZE_MAX, &e, NULL),
                   KB_LENGTH_OVERFLOW);
  ranges[1].end.high = 0; /* ends before it starts */
  FILL(bad);
  EXPECT_NEW_ERROR(kb_engine_new(&l, NULL, NULL, 16, ranges, 2, &e, &bad),
                   KB_SHARD_MAP_REVERSED);
  CHECK_EQ(bad, 1);
  two_shards(ranges);
  ranges[1].start.low = 1; /* a gap */
  FILL(bad);
  EXPECT_NEW_ERROR(kb_engine_new(&l, NULL, NULL, 16, ranges, 2, &e, &bad),
                   KB_SHARD_MAP_NOT_CONTIGUOUS);
  CHECK_EQ(bad, 1);
  EXPECT_NEW_ERROR(kb_engine_new(&l, NULL, NULL, 16, ranges, 2, &e, NULL),
                   KB_SHARD_MAP_NOT_CONTIGUOUS);
  two_shards(ranges);
  FILL(bad);
  EXPECT_NEW_ERROR(kb_engine_new(&l, NULL, NULL, 16, ranges, 1, &e, &bad),
                   KB_SHARD_MAP_INCOMPLETE);
  CHECK_EQ(bad, 0);
  /* Errors come before the capacity is looked at. */
  EXPECT_NEW_ERROR(kb_engine_new(&l, NULL, NULL, 0, ranges, 1, &e, NULL),
                   KB_SHARD_MAP_INCOMPLETE);
#undef EXPECT_NEW_ERROR
}

/* The entry points that take only the engine, and their NULLs. */
static void test_engine_nulls(void) {
  kb_engine *e = NULL;
  int p;
  uint64_t x;
  kb_engine_counters s;
  CHECK_ST(kb_engine_new(NULL, NULL, NULL, 4, NULL, 0, &e, NULL), KB_OK);
  CHECK_ST(kb_engine_reset(NULL), KB_NULL_POINTER);
  CHECK_ST(kb_engine_flush(NULL), KB_NULL_POINTER);
  CHECK_ST(kb_engine_resume(NULL), KB_NULL_POINTER);
  FILL(p);
  CHECK_ST(kb_engine_is_paused(NULL, &p), KB_NULL_POINTER);
  CHECK_UNTOUCHED(p);
  CHECK_ST(kb_engine_is_paused(e, NULL), KB_NULL_POINTER);
  FILL(s);
  CHECK_ST(kb_engine_stats(NULL, &s), KB_NULL_POINTER);
  CHECK_UNTOUCHED(s);
  CHECK_ST(kb_engine_stats(e, NULL), KB_NULL_POINTER);
  FILL(x);
  CHECK_ST(kb_engine_shard_throttled(NULL, 0, &x), KB_NULL_POINTER);
  CHECK_UNTOUCHED(x);
  CHECK_ST(kb_engine_shard_throttled(e, 0, NULL), KB_NULL_POINTER);
  /* Without a map every shard reads 0. */
  CHECK_ST(kb_engine_shard_throttled(e, 0, &x), KB_OK);
  CHECK_EQ(x, 0);
  CHECK_ST(kb_engine_shard_throttled(e, SIZE_MAX, &x), KB_OK);
  CHECK_EQ(x, 0);
  CHECK_ST(kb_engine_flush(e), KB_OK);
  CHECK_ST(kb_engine_resume(e), KB_OK); /* not paused: harmless */
  CHECK_EQ(paused(e), 0);
  s = counters(e);
  CHECK_EQ(s.buffered_records + s.requests + s.accepted_records + s.terminal, 0);
  kb_engine_free(e);
}

static void test_engine_push(void) {
  kb_limits l = kb_custom(KB_PROFILE_KDS, 4, 1000, 100);
  kb_engine_config c = zero_config();
  kb_engine *e = NULL;
  kb_record r = rec(10, "k");
  kb_handle h;
  kb_reason why;
  kb_engine_counters s;
  c.max_buffered_bytes = 30; /* 11-byte records: two fit, a third does not */
  CHECK_ST(kb_engine_new(&l, NULL, &c, 3, NULL, 0, &e, NULL), KB_OK);

#define EXPECT_PUSH(call, status) \
  do {                            \
    FILL(h);                      \
    FILL(why);                    \
    CHECK_ST(call, status);       \
    CHECK_UNTOUCHED(h);           \
  } while (0)
  EXPECT_PUSH(kb_engine_push(NULL, &r, 0, &h, &why), KB_NULL_POINTER);
  EXPECT_PUSH(kb_engine_push(e, NULL, 0, &h, &why), KB_NULL_POINTER);
  CHECK_ST(kb_engine_push(e, &r, 0, NULL, &why), KB_NULL_POINTER);
  EXPECT_PUSH(kb_engine_push(e, &r, 0, &h, NULL), KB_NULL_POINTER);
  r.data = NULL;
  EXPECT_PUSH(kb_engine_push(e, &r, 0, &h, &why), KB_NULL_FIELD);
  CHECK_UNTOUCHED(why);
  r = rec(10, "k");
  r.key = NULL;
  EXPECT_PUSH(kb_engine_push(e, &r, 0, &h, &why), KB_NULL_FIELD);
  r = rec(10, "k");
  r.data_len = SIZE_MAX;
  EXPECT_PUSH(kb_engine_push(e, &r, 0, &h, &why), KB_LENGTH_OVERFLOW);
  CHECK_UNTOUCHED(why);
  /* Refused: never sendable, not kept. */
  r = rec(10, "");
  EXPECT_PUSH(kb_engine_push(e, &r, 0, &h, &why), KB_REFUSED);
  CHECK_EQ(why, KB_REASON_KEY_EMPTY);
  r = rec(100, "k");
  EXPECT_PUSH(kb_engine_push(e, &r, 0, &h, &why), KB_REFUSED);
  CHECK_EQ(why, KB_REASON_RECORD_TOO_LARGE);
  r = rec(1, "\xff");
  EXPECT_PUSH(kb_engine_push(e, &r, 0, &h, &why), KB_REFUSED);
  CHECK_EQ(why, KB_REASON_KEY_NOT_UTF8);
  s = counters(e);
  CHECK_EQ(s.buffered_records, 0);
  CHECK_EQ(s.refused[KB_REASON_KEY_EMPTY], 1);
  CHECK_EQ(s.refused[KB_REASON_RECORD_TOO_LARGE], 1);
  CHECK_EQ(s.refused[KB_REASON_KEY_NOT_UTF8], 1);

  /* Taken: handles are slots, from 0. Then full on bytes, before the 3 records. */
  CHECK_EQ(push_ok(e, rec(10, "a"), 0), 0);
  CHECK_EQ(push_ok(e, rec(10, "b"), 0), 1);
  r = rec(10, "c");
  EXPECT_PUSH(kb_engine_push(e, &r, 0, &h, &why), KB_FULL);
  CHECK_UNTOUCHED(why);
  /* A smaller record still fits the bytes; then full on records. */
  CHECK_EQ(push_ok(e, rec(7, "d"), 0), 2);
  r = rec(0, "e");
  EXPECT_PUSH(kb_engine_push(e, &r, 0, &h, &why), KB_FULL);
  s = counters(e);
  CHECK_EQ(s.buffered_records, 3);
  CHECK_EQ(s.buffered_bytes, 11 + 11 + 8);
  /* Reset: everything forgotten, the handles start over. */
  CHECK_ST(kb_engine_reset(e), KB_OK);
  s = counters(e);
  CHECK_EQ(s.buffered_records + s.buffered_bytes + s.refused[KB_REASON_KEY_EMPTY], 0);
  CHECK_EQ(kb_engine_capacity(e), 3);
  CHECK_EQ(push_ok(e, rec(10, "a"), 5), 0);
  kb_engine_free(e);
#undef EXPECT_PUSH
}

/* Linger, flush, a full request, KB_END, KB_BUSY, and next_request's errors. */
static void test_engine_next(void) {
  kb_limits l = kb_custom(KB_PROFILE_KDS, 4, 1000, 100);
  kb_engine_config c = zero_config();
  kb_engine *e = NULL;
  kb_handle hs[8];
  uint64_t id, until;
  size_t n;
  uint32_t bytes;
  uint8_t ok[4];
  size_t nt;
  kb_terminal_entry t[4];
  kb_engine_counters s;
  kb_handle pushed[5];
  int i;
  for (i = 0; i < 4; i++) {
    ok[i] = KB_OUTCOME_ACCEPTED;
  }
  c.linger_ms = 50;
  CHECK_ST(kb_engine_new(&l, NULL, &c, 8, NULL, 0, &e, NULL), KB_OK);

  /* Nothing buffered. */
  FILL(n);
  FILL(bytes);
  FILL(id);
  CHECK_ST(kb_engine_next_request(e, 0, &id, hs, 8, &n, &bytes, &until), KB_END);
  CHECK_EQ(n, 0);
  CHECK_EQ(bytes, 0);
  CHECK_UNTOUCHED(id);

  CHECK_EQ(push_ok(e, rec(10, "a"), 1000), 0);
  /* Not due before its linger. */
  FILL(until);
  FILL(n);
  CHECK_ST(kb_engine_next_request(e, 1000, &id, hs, 8, &n, &bytes, &until), KB_WAIT);
  CHECK_EQ(until, 1050);
  CHECK_EQ(n, 0);
  CHECK_ST(kb_engine_next_request(e, 1049, &id, hs, 8, &n, &bytes, &until), KB_WAIT);
  CHECK_EQ(until, 1050);
  /* until_ms and bytes may be NULL. */
  CHECK_ST(kb_engine_next_request(e, 1049, &id, hs, 8, &n, NULL, NULL), KB_WAIT);

#define EXPECT_NEXT_ERROR(call, status) \
  do {                                  \
    FILL_N(hs, 8);                      \
    FILL(id);                           \
    FILL(n);                            \
    FILL(bytes);                        \
    FILL(until);                        \
    CHECK_ST(call, status);             \
    CHECK_UNTOUCHED_N(hs, 8);           \
    CHECK_UNTOUCHED(id);                \
    CHECK_UNTOUCHED(until);             \
    CHECK_COUNT(#call, n);              \
    CHECK_COUNT(#call, bytes);          \
  } while (0)
  EXPECT_NEXT_ERROR(kb_engine_next_request(NULL, 1050, &id, hs, 8, &n, &bytes, &until),
                    KB_NULL_POINTER);
  EXPECT_NEXT_ERROR(kb_engine_next_request(e, 1050, NULL, hs, 8, &n, &bytes, &until),
                    KB_NULL_POINTER);
  EXPECT_NEXT_ERROR(kb_engine_next_request(e, 1050, &id, hs, 8, NULL, &bytes, &until),
                    KB_NULL_POINTER);
  EXPECT_NEXT_ERROR(kb_engine_next_request(e, 1050, &id, hs, 3, &n, &bytes, &until),
                    KB_HANDLE_ARRAY_TOO_SMALL);
  EXPECT_NEXT_ERROR(kb_engine_next_request(e, 1050, &id, hs, 0, &n, &bytes, &until),
                    KB_HANDLE_ARRAY_TOO_SMALL);
  EXPECT_NEXT_ERROR(kb_engine_next_request(e, 1050, &id, NULL, 4, &n, &bytes, &until),
                    KB_NULL_ARRAY);
  EXPECT_NEXT_ERROR(kb_engine_next_request(e, 1050, &id, hs, SIZE_MAX, &n, &bytes, &until),
                    KB_LENGTH_OVERFLOW);
  s = counters(e);
  CHECK_EQ(s.requests, 0); /* nothing was taken */
  CHECK_EQ(s.in_flight_requests, 0);

  /* Due at its linger: exactly max_records handles is room enough. */
  FILL(hs);
  FILL(until);
  CHECK_ST(kb_engine_next_request(e, 1050, &id, hs, 4, &n, &bytes, &until), KB_OK);
  CHECK_EQ(n, 1);
  CHECK_EQ(hs[0], 0);
  CHECK_UNTOUCHED_N(hs + 1, 3);
  CHECK_EQ(bytes, 11);
  CHECK_UNTOUCHED(until);
  /* Sent: nothing left buffered that was not sent. */
  CHECK_ST(kb_engine_next_request(e, 1050, &id, hs, 8, &n, &bytes, &until), KB_END);
  s = counters(e);
  CHECK_EQ(s.requests, 1);
  CHECK_EQ(s.in_flight_requests, 1);
  CHECK_EQ(s.in_flight_records, 1);
  CHECK_EQ(s.buffered_records, 1);
  /* One in flight at most (the default): busy. */
  CHECK_EQ(push_ok(e, rec(20, "b"), 1060), 1);
  CHECK_ST(kb_engine_next_request(e, 5000, &id, hs, 8, &n, &bytes, &until), KB_BUSY);
  CHECK_EQ(n, 0);
  /* `id` is still the KB_OK's: the other statuses do not write it. */
  CHECK_ST(kb_engine_settle(e, id, ok, 1, 1070, 0, t, 4, &nt), KB_OK);
  CHECK_EQ(nt, 0);
  /* Linger counts from the push (1060), not from the settle. */
  CHECK_ST(kb_engine_next_request(e, 1070, &id, hs, 8, &n, &bytes, &until), KB_WAIT);
  CHECK_EQ(until, 1110);
  /* Flush: due at once. */
  CHECK_ST(kb_engine_flush(e), KB_OK);
  CHECK_ST(kb_engine_next_request(e, 1071, &id, hs, 8, &n, &bytes, &until), KB_OK);
  CHECK_EQ(n, 1);
  CHECK_EQ(hs[0], 1);
  CHECK_EQ(bytes, 21);
  CHECK_ST(kb_engine_settle(e, id, ok, 1, 1072, 0, t, 4, &nt), KB_OK);
  /* Records pushed after a flush linger as usual. Settled handles are free again. */
  pushed[0] = push_ok(e, rec(1, "c"), 1080);
  CHECK(pushed[0] < 8);
  CHECK_ST(kb_engine_next_request(e, 1080, &id, hs, 8, &n, &bytes, &until), KB_WAIT);
  CHECK_EQ(until, 1130);
  /* A full request (max_records) goes at once, in push order. */
  pushed[1] = push_ok(e, rec(1, "d"), 1081);
  pushed[2] = push_ok(e, rec(1, "e"), 1081);
  pushed[3] = push_ok(e, rec(1, "f"), 1081);
  pushed[4] = push_ok(e, rec(1, "g"), 1081);
  for (i = 0; i < 5; i++) {
    int j;
    for (j = 0; j < i; j++) {
      CHECK(pushed[i] != pushed[j]); /* handles of buffered records are distinct */
    }
  }
  CHECK_ST(kb_engine_next_request(e, 1081, &id, hs, 8, &n, &bytes, &until), KB_OK);
  CHECK_EQ(n, 4);
  CHECK_EQ(bytes, 8);
  for (i = 0; i < 4; i++) {
    CHECK_EQ(hs[i], pushed[i]);
  }
  CHECK_ST(kb_engine_settle(e, id, ok, 4, 1082, 0, t, 4, &nt), KB_OK);
  s = counters(e);
  CHECK_EQ(s.accepted_records, 6);
  CHECK_EQ(s.accepted_bytes, 11 + 21 + 4 * 2);
  CHECK_EQ(s.buffered_records, 1); /* "g" */
  CHECK_EQ(s.requests, 3);
  CHECK_EQ(s.in_flight_requests, 0);
  kb_engine_free(e);
#undef EXPECT_NEXT_ERROR
}

/* settle and settle_all: errors leave everything as it was; outcomes; terminal entries. */
static void test_engine_settle(void) {
  kb_limits l = kb_custom(KB_PROFILE_KDS, 4, 1000, 100);
  kb_engine_config c = zero_config();
  kb_retry_policy pol;
  kb_engine *e = NULL;
  kb_handle hs[4];
  uint64_t id, other;
  size_t n, nt;
  uint32_t bytes;
  uint8_t out[5];
  kb_terminal_entry t[5];
  kb_engine_counters s;
  int i;
  kb_retry_policy_default(&pol);
  pol.max_attempts = 2;
  c.max_in_flight = 2;
  c.linger_ms = 1;
  CHECK_ST(kb_engine_new(&l, &pol, &c, 8, NULL, 0, &e, NULL), KB_OK);

  /* Nothing in flight. */
  FILL(nt);
  CHECK_ST(kb_engine_settle(e, 0, NULL, 0, 0, 0, NULL, 0, &nt), KB_NOTHING_IN_FLIGHT);
  CHECK_EQ(nt, 0);
  FILL(nt);
  CHECK_ST(kb_engine_settle_all(e, 0, KB_ERROR_KIND_TRANSPORT, 0, 0, NULL, 0, &nt),
           KB_NOTHING_IN_FLIGHT);
  CHECK_EQ(nt, 0);

  for (i = 0; i < 4; i++) {
    static const char *const keys[] = {"a", "b", "c", "d"};
    CHECK_EQ(push_ok(e, rec(10, keys[i]), 0), i);
  }
  CHECK_ST(kb_engine_next_request(e, 0, &id, hs, 4, &n, &bytes, NULL), KB_OK);
  CHECK_EQ(n, 4);
  out[0] = KB_OUTCOME_ACCEPTED;
  out[1] = KB_ERROR_KIND_THROTTLING;
  out[2] = KB_ERROR_KIND_VALIDATION;
  out[3] = KB_ERROR_KIND_THROUGHPUT_EXCEEDED;
  out[4] = KB_OUTCOME_ACCEPTED;

#define EXPECT_SETTLE_ERROR(call, status)            \
  do {                                               \
    FILL(nt);                                        \
    FILL_N(t, 5);                                    \
    CHECK_ST(call, status);                          \
    CHECK_COUNT(#call, nt);                          \
    CHECK_UNTOUCHED_N(t, 5);                         \
    s = counters(e);                                 \
    CHECK_EQ(s.in_flight_requests, 1);               \
    CHECK_EQ(s.in_flight_records, 4);                \
    CHECK_EQ(s.accepted_records + s.retried + s.terminal, 0); \
  } while (0)
  EXPECT_SETTLE_ERROR(kb_engine_settle(NULL, id, out, 4, 1, 0, t, 5, &nt), KB_NULL_POINTER);
  EXPECT_SETTLE_ERROR(kb_engine_settle(e, id, out, 4, 1, 0, t, 5, NULL), KB_NULL_POINTER);
  EXPECT_SETTLE_ERROR(kb_engine_settle(e, id + 1, out, 4, 1, 0, t, 5, &nt),
                      KB_NOT_THE_REQUEST_IN_FLIGHT);
  EXPECT_SETTLE_ERROR(kb_engine_settle(e, id ^ (1ull << 32), out, 4, 1, 0, t, 5, &nt),
                      KB_NOT_THE_REQUEST_IN_FLIGHT);
  EXPECT_SETTLE_ERROR(kb_engine_settle(e, UINT64_MAX, out, 4, 1, 0, t, 5, &nt),
                      KB_NOT_THE_REQUEST_IN_FLIGHT);
  /* Not one outcome per entry. */
  EXPECT_SETTLE_ERROR(kb_engine_settle(e, id, out, 3, 1, 0, t, 5, &nt), KB_INVALID_ARGUMENT);
  EXPECT_SETTLE_ERROR(kb_engine_settle(e, id, out, 5, 1, 0, t, 5, &nt), KB_INVALID_ARGUMENT);
  EXPECT_SETTLE_ERROR(kb_engine_settle(e, id, out, 0, 1, 0, t, 5, &nt), KB_INVALID_ARGUMENT);
  EXPECT_SETTLE_ERROR(kb_engine_settle(e, id, NULL, 4, 1, 0, t, 5, &nt), KB_NULL_ARRAY);
  EXPECT_SETTLE_ERROR(kb_engine_settle(e, id, out, SIZE_MAX, 1, 0, t, 5, &nt),
                      KB_LENGTH_OVERFLOW);
  /* An outcome that is neither a kind nor accepted. */
  out[2] = 14;
  EXPECT_SETTLE_ERROR(kb_engine_settle(e, id, out, 4, 1, 0, t, 5, &nt), KB_INVALID_ARGUMENT);
  out[2] = 254;
  EXPECT_SETTLE_ERROR(kb_engine_settle(e, id, out, 4, 1, 0, t, 5, &nt), KB_INVALID_ARGUMENT);
  out[2] = KB_ERROR_KIND_VALIDATION;
  /* The terminal array holds the request, whatever ends up terminal. */
  EXPECT_SETTLE_ERROR(kb_engine_settle(e, id, out, 4, 1, 0, t, 3, &nt),
                      KB_TERMINAL_ARRAY_TOO_SMALL);
  EXPECT_SETTLE_ERROR(kb_engine_settle(e, id, out, 4, 1, 0, NULL, 0, &nt),
                      KB_TERMINAL_ARRAY_TOO_SMALL);
  EXPECT_SETTLE_ERROR(kb_engine_settle(e, id, out, 4, 1, 0, NULL, 4, &nt), KB_NULL_ARRAY);
  EXPECT_SETTLE_ERROR(kb_engine_settle(e, id, out, 4, 1, 0, t, SIZE_MAX, &nt),
                      KB_LENGTH_OVERFLOW);
  /* settle_all: the kind must be one. */
  EXPECT_SETTLE_ERROR(kb_engine_settle_all(e, id, 14, 1, 0, t, 5, &nt), KB_INVALID_ARGUMENT);
  EXPECT_SETTLE_ERROR(kb_engine_settle_all(e, id, KB_OUTCOME_ACCEPTED, 1, 0, t, 5, &nt),
                      KB_INVALID_ARGUMENT);
  EXPECT_SETTLE_ERROR(kb_engine_settle_all(NULL, id, KB_ERROR_KIND_TRANSPORT, 1, 0, t, 5, &nt),
                      KB_NULL_POINTER);
  EXPECT_SETTLE_ERROR(kb_engine_settle_all(e, id, KB_ERROR_KIND_TRANSPORT, 1, 0, t, 5, NULL),
                      KB_NULL_POINTER);
  EXPECT_SETTLE_ERROR(kb_engine_settle_all(e, id + 1, KB_ERROR_KIND_TRANSPORT, 1, 0, t, 5, &nt),
                      KB_NOT_THE_REQUEST_IN_FLIGHT);
  EXPECT_SETTLE_ERROR(kb_engine_settle_all(e, id, KB_ERROR_KIND_TRANSPORT, 1, 0, t, 3, &nt),
                      KB_TERMINAL_ARRAY_TOO_SMALL);
  EXPECT_SETTLE_ERROR(kb_engine_settle_all(e, id, KB_ERROR_KIND_TRANSPORT, 1, 0, NULL, 4, &nt),
                      KB_NULL_ARRAY);
#undef EXPECT_SETTLE_ERROR

  /* The response: one stored, two retried, one terminal (validation). */
  FILL_N(t, 5);
  CHECK_ST(kb_engine_settle(e, id, out, 4, 10, 0, t, 4, &nt), KB_OK);
  CHECK_EQ(nt, 1);
  CHECK_EQ(t[0].handle, 2);
  CHECK_EQ(t[0].kind, KB_ERROR_KIND_VALIDATION);
  CHECK_EQ(t[0].gave_up, 0);
  CHECK_UNTOUCHED_N(t + 1, 4);
  s = counters(e);
  CHECK_EQ(s.accepted_records, 1);
  CHECK_EQ(s.retried, 2);
  CHECK_EQ(s.throttled, 2);
  CHECK_EQ(s.terminal, 1);
  CHECK_EQ(s.buffered_records, 2);
  CHECK_EQ(s.in_flight_requests, 0);
  /* Settled already. */
  CHECK_ST(kb_engine_settle(e, id, out, 4, 10, 0, t, 4, &nt), KB_NOTHING_IN_FLIGHT);
  other = id;

  /* The two retried records go again (after their backoff: random 0 draws no delay),
   * and fail again: out of attempts (2), terminal with gave_up. */
  {
    uint64_t now = 10, until = 0;
    kb_status st;
    size_t seen = 0;
    while (seen < 2 && now < 100000) {
      st = kb_engine_next_request(e, now, &id, hs, 4, &n, &bytes, &until);
      if (st == KB_WAIT) {
        CHECK(until > now);
        now = until;
        continue;
      }
      if (!CHECK_ST(st, KB_OK)) {
        break;
      }
      CHECK(id != other);
      for (i = 0; i < (int)n; i++) {
        CHECK(hs[i] == 1 || hs[i] == 3);
      }
      seen += n;
      CHECK_ST(kb_engine_settle_all(e, id, KB_ERROR_KIND_SERVER_ERROR, now, 0, t, 4, &nt),
               KB_OK);
      CHECK_EQ(nt, n);
      for (i = 0; i < (int)nt; i++) {
        CHECK_EQ(t[i].kind, KB_ERROR_KIND_SERVER_ERROR);
        CHECK_EQ(t[i].gave_up, 1);
      }
    }
    CHECK_EQ(seen, 2);
  }
  s = counters(e);
  CHECK_EQ(s.terminal, 3);
  CHECK_EQ(s.buffered_records, 0);
  CHECK_ST(kb_engine_next_request(e, 200000, &id, hs, 4, &n, &bytes, NULL), KB_END);
  kb_engine_free(e);
}

/* Per-key order: a key's next record waits for the one in flight. */
static void test_engine_key_order(void) {
  kb_limits l = kb_custom(KB_PROFILE_KDS, 4, 1000, 100);
  kb_engine_config c = zero_config();
  kb_engine *e = NULL;
  kb_handle hs[4];
  uint64_t id;
  size_t n, nt;
  uint32_t bytes;
  uint8_t ok[4] = {KB_OUTCOME_ACCEPTED, KB_OUTCOME_ACCEPTED, KB_OUTCOME_ACCEPTED,
                   KB_OUTCOME_ACCEPTED};
  kb_terminal_entry t[4];
  kb_handle k[3];
  c.max_in_flight = 4;
  CHECK_ST(kb_engine_new(&l, NULL, &c, 8, NULL, 0, &e, NULL), KB_OK);
  k[0] = push_ok(e, rec(1, "k"), 0);
  k[1] = push_ok(e, rec(2, "k"), 0);
  k[2] = push_ok(e, rec(3, "k"), 0);
  CHECK_ST(kb_engine_flush(e), KB_OK);
  CHECK_ST(kb_engine_next_request(e, 0, &id, hs, 4, &n, &bytes, NULL), KB_OK);
  CHECK_EQ(n, 1);
  CHECK_EQ(hs[0], k[0]);
  /* Room for 3 more requests, but every buffered record waits on its key. */
  CHECK_ST(kb_engine_next_request(e, 0, &id, hs, 4, &n, &bytes, NULL), KB_BUSY);
  CHECK_ST(kb_engine_settle(e, id, ok, 1, 1, 0, t, 4, &nt), KB_OK);
  CHECK_ST(kb_engine_next_request(e, 1, &id, hs, 4, &n, &bytes, NULL), KB_OK);
  CHECK_EQ(n, 1);
  CHECK_EQ(hs[0], k[1]);
  CHECK_ST(kb_engine_next_request(e, 1, &id, hs, 4, &n, &bytes, NULL), KB_BUSY);
  CHECK_ST(kb_engine_settle(e, id, ok, 1, 2, 0, t, 4, &nt), KB_OK);
  CHECK_ST(kb_engine_next_request(e, 2, &id, hs, 4, &n, &bytes, NULL), KB_OK);
  CHECK_EQ(n, 1);
  CHECK_EQ(hs[0], k[2]);
  CHECK_ST(kb_engine_settle(e, id, ok, 1, 3, 0, t, 4, &nt), KB_OK);
  CHECK_ST(kb_engine_next_request(e, 3, &id, hs, 4, &n, &bytes, NULL), KB_END);
  kb_engine_free(e);

  /* The same with reordering allowed: one request of three. */
  c.flags = KB_ENGINE_ALLOW_REORDERING;
  CHECK_ST(kb_engine_new(&l, NULL, &c, 8, NULL, 0, &e, NULL), KB_OK);
  push_ok(e, rec(1, "k"), 0);
  push_ok(e, rec(2, "k"), 0);
  push_ok(e, rec(3, "k"), 0);
  CHECK_ST(kb_engine_flush(e), KB_OK);
  CHECK_ST(kb_engine_next_request(e, 0, &id, hs, 4, &n, &bytes, NULL), KB_OK);
  CHECK_EQ(n, 3);
  CHECK_EQ(bytes, 1 + 2 + 3 + 3);
  CHECK_ST(kb_engine_settle(e, id, ok, 3, 1, 0, t, 4, &nt), KB_OK);
  kb_engine_free(e);
}

/* A credentials failure pauses the engine; the records wait, none is terminal. */
static void test_engine_credentials(void) {
  kb_limits l = kb_custom(KB_PROFILE_KDS, 4, 1000, 100);
  kb_engine_config c = zero_config();
  kb_engine *e = NULL;
  kb_handle hs[4];
  uint64_t id, until;
  size_t n, nt;
  uint32_t bytes;
  uint8_t out[2];
  kb_terminal_entry t[4];
  kb_engine_counters s;
  kb_handle a, b, c3;
  c.max_in_flight = 2;
  CHECK_ST(kb_engine_new(&l, NULL, &c, 8, NULL, 0, &e, NULL), KB_OK);
  a = push_ok(e, rec(5, "a"), 0);
  b = push_ok(e, rec(5, "b"), 0);
  CHECK_ST(kb_engine_flush(e), KB_OK);
  CHECK_ST(kb_engine_next_request(e, 0, &id, hs, 4, &n, &bytes, NULL), KB_OK);
  CHECK_EQ(n, 2);
  CHECK_EQ(hs[0], a);
  CHECK_EQ(hs[1], b);
  out[0] = KB_ERROR_KIND_CREDENTIALS;
  out[1] = KB_OUTCOME_ACCEPTED;
  CHECK_ST(kb_engine_settle(e, id, out, 2, 5, 0, t, 4, &nt), KB_OK);
  CHECK_EQ(nt, 0);
  CHECK_EQ(paused(e), 1);
  FILL(n);
  CHECK_ST(kb_engine_next_request(e, 5, &id, hs, 4, &n, &bytes, &until), KB_PAUSED);
  CHECK_EQ(n, 0);
  /* Pushes are still taken while paused. */
  c3 = push_ok(e, rec(5, "c"), 6);
  CHECK(c3 != a);
  CHECK_ST(kb_engine_next_request(e, 10000, &id, hs, 4, &n, &bytes, &until), KB_PAUSED);
  s = counters(e);
  CHECK_EQ(s.credential_failures, 1);
  CHECK_EQ(s.terminal, 0);
  CHECK_EQ(s.accepted_records, 1);
  CHECK_EQ(s.buffered_records, 2);
  CHECK_ST(kb_engine_resume(e), KB_OK);
  CHECK_EQ(paused(e), 0);
  /* The failed record goes first. */
  CHECK_ST(kb_engine_flush(e), KB_OK);
  CHECK_ST(kb_engine_next_request(e, 10000, &id, hs, 4, &n, &bytes, NULL), KB_OK);
  CHECK_EQ(n, 2);
  CHECK_EQ(hs[0], a);
  CHECK_EQ(hs[1], c3);
  /* settle_all with credentials pauses too. */
  CHECK_ST(kb_engine_settle_all(e, id, KB_ERROR_KIND_CREDENTIALS, 10001, 0, t, 4, &nt), KB_OK);
  CHECK_EQ(nt, 0);
  CHECK_EQ(paused(e), 1);
  CHECK_ST(kb_engine_reset(e), KB_OK); /* a reset ends the pause */
  CHECK_EQ(paused(e), 0);
  s = counters(e);
  CHECK_EQ(s.credential_failures + s.buffered_records + s.accepted_records, 0);
  kb_engine_free(e);
}

/* A throttled shard is counted against that shard only. */
static void test_engine_shards(void) {
  kb_limits l = kb_custom(KB_PROFILE_KDS, 4, 1000, 100);
  kb_shard_range ranges[2];
  kb_engine *e = NULL;
  kb_hash_key128 hk;
  kb_handle hs[4];
  uint64_t id, x, now = 1, until;
  size_t shard, n, nt, tries;
  uint32_t bytes;
  uint8_t out[1] = {KB_ERROR_KIND_THROUGHPUT_EXCEEDED};
  kb_terminal_entry t[4];
  kb_status st;
  two_shards(ranges);
  CHECK_ST(kb_engine_new(&l, NULL, NULL, 8, ranges, 2, &e, NULL), KB_OK);
  CHECK_ST(kb_hash_key_of(U8("k"), 1, NULL, KB_NO_HASH_KEY, &hk), KB_OK);
  CHECK_ST(kb_shard_index(ranges, 2, hk, &shard, NULL), KB_OK);
  push_ok(e, rec(1, "k"), 0);
  CHECK_ST(kb_engine_flush(e), KB_OK);
  CHECK_ST(kb_engine_next_request(e, 0, &id, hs, 4, &n, &bytes, NULL), KB_OK);
  CHECK_ST(kb_engine_settle(e, id, out, 1, 1, 0, t, 4, &nt), KB_OK);
  CHECK_EQ(nt, 0);
  CHECK_ST(kb_engine_shard_throttled(e, shard, &x), KB_OK);
  CHECK_EQ(x, 1);
  CHECK_ST(kb_engine_shard_throttled(e, 1 - shard, &x), KB_OK);
  CHECK_EQ(x, 0);
  CHECK_ST(kb_engine_shard_throttled(e, 2, &x), KB_OK);
  CHECK_EQ(x, 0);
  /* The record goes again once the shard's backoff is over. */
  for (tries = 0; tries < 100; tries++) {
    st = kb_engine_next_request(e, now, &id, hs, 4, &n, &bytes, &until);
    if (st != KB_WAIT) {
      break;
    }
    CHECK(until > now);
    now = until;
  }
  CHECK_ST(st, KB_OK);
  CHECK_EQ(n, 1);
  kb_engine_free(e);
}

/* ---- A simulated run: a fake service failing entries and answering out of order. ---- */

#define SIM_N 600
#define SIM_KEYS 7
#define SIM_CAP 40
#define SIM_MAX_RECORDS 6
#define SIM_IN_FLIGHT 4

struct sim_request {
  uint64_t id;
  size_t n;
  kb_handle h[SIM_MAX_RECORDS];
};

struct sim {
  kb_record recs[SIM_N];
  int key_of[SIM_N];
  int refused[SIM_N];
  int accepted[SIM_N];
  int terminal[SIM_N];
  long rec_of[SIM_CAP];
  int key_in_flight[SIM_KEYS];
  struct sim_request flight[SIM_IN_FLIGHT];
  size_t n_flight;
};

static char sim_keys[SIM_KEYS][4];

/* Settles flight[k] with random outcomes (or as a whole), checks what comes back. */
static void sim_settle(kb_engine *e, struct sim *s, size_t k, uint64_t now, uint64_t *seed,
                       int reorder, unsigned long *throttles, int *credentials_left,
                       int *transport_left) {
  struct sim_request rq = s->flight[k];
  uint8_t out[SIM_MAX_RECORDS];
  kb_terminal_entry t[SIM_MAX_RECORDS];
  size_t nt = 0, i, j;
  int failed[SIM_MAX_RECORDS];
  kb_status st;
  uint64_t r = KB_SUITE(rand_next)(seed);
  int whole = -1;
  if (*credentials_left > 0 && r % 40 == 0) {
    whole = KB_ERROR_KIND_CREDENTIALS;
    (*credentials_left)--;
  } else if (*transport_left > 0 && r % 40 == 1) {
    whole = KB_ERROR_KIND_TRANSPORT;
    (*transport_left)--;
  }
  for (i = 0; i < rq.n; i++) {
    uint64_t x = KB_SUITE(rand_next)(seed) % 100;
    if (whole >= 0) {
      out[i] = (uint8_t)whole;
    } else if (x < 12) {
      out[i] = KB_ERROR_KIND_THROUGHPUT_EXCEEDED;
      (*throttles)++;
    } else if (x < 16) {
      out[i] = KB_ERROR_KIND_INTERNAL_FAILURE;
    } else if (x < 18) {
      out[i] = KB_ERROR_KIND_VALIDATION;
    } else {
      out[i] = KB_OUTCOME_ACCEPTED;
    }
    failed[i] = out[i] != KB_OUTCOME_ACCEPTED;
  }
  if (whole >= 0) {
    st = kb_engine_settle_all(e, rq.id, (uint8_t)whole, now, KB_SUITE(rand_next)(seed), t,
                              SIM_MAX_RECORDS, &nt);
  } else {
    st = kb_engine_settle(e, rq.id, out, rq.n, now, KB_SUITE(rand_next)(seed), t, rq.n, &nt);
  }
  CHECK_ST(st, KB_OK);
  if (whole == KB_ERROR_KIND_CREDENTIALS) {
    CHECK_EQ(nt, 0);
    CHECK_EQ(paused(e), 1);
  }
  /* Terminal entries: failed ones of this request, each once. */
  for (j = 0; j < nt; j++) {
    long idx = -1;
    for (i = 0; i < rq.n; i++) {
      if (rq.h[i] == t[j].handle && failed[i]) {
        failed[i] = 2;
        idx = s->rec_of[t[j].handle];
      }
    }
    if (!CHECK(idx >= 0)) {
      continue;
    }
    CHECK_EQ(t[j].gave_up, kb_error_kind_is_retryable(t[j].kind));
    s->key_in_flight[s->key_of[idx]]--;
    s->terminal[idx]++;
    s->rec_of[t[j].handle] = -1;
  }
  for (i = 0; i < rq.n; i++) {
    long idx = s->rec_of[rq.h[i]];
    int key;
    if (failed[i] == 2) {
      continue; /* terminal, released above */
    }
    if (!CHECK(idx >= 0)) {
      continue;
    }
    key = s->key_of[idx];
    s->key_in_flight[key]--;
    if (failed[i]) {
      continue; /* to be sent again */
    }
    s->accepted[idx]++;
    s->rec_of[rq.h[i]] = -1;
    if (!reorder) {
      /* Every older record of its key is settled for good. */
      long older;
      for (older = 0; older < idx; older++) {
        if (s->key_of[older] == key && !s->refused[older] &&
            !CHECK(s->accepted[older] + s->terminal[older] == 1)) {
          fprintf(stderr, "[%s]   record %ld stored before %ld of the same key\n", KB_LANG,
                  idx, older);
          break;
        }
      }
    }
  }
  s->flight[k] = s->flight[s->n_flight - 1];
  s->n_flight--;
}

static void test_engine_simulation(int reorder, uint64_t seed) {
  static struct sim s; /* too large for a small stack under sanitizers */
  kb_limits l = kb_custom(KB_PROFILE_KDS, SIM_MAX_RECORDS, 300, 120);
  kb_retry_policy pol;
  kb_engine_config c = zero_config();
  kb_engine *e = NULL;
  kb_engine_counters st_end;
  size_t next = 0, i, steps;
  uint64_t now = 0, until = 0;
  unsigned long throttles = 0, requests = 0, n_refused = 0, n_accepted = 0, n_terminal = 0;
  int credentials_left = 2, transport_left = 3, flushed = 0;
  int seen_full = 0, seen_wait = 0, seen_paused = 0, seen_busy = 0;

  memset(&s, 0, sizeof s);
  for (i = 0; i < SIM_KEYS; i++) {
    sim_keys[i][0] = 'k';
    sim_keys[i][1] = (char)('0' + i);
    sim_keys[i][2] = '\0';
  }
  for (i = 0; i < SIM_CAP; i++) {
    s.rec_of[i] = -1;
  }
  for (i = 0; i < SIM_N; i++) {
    int key = (int)(KB_SUITE(rand_next)(&seed) % SIM_KEYS);
    size_t len = (size_t)(KB_SUITE(rand_next)(&seed) % 100);
    s.key_of[i] = key;
    s.recs[i] = rec(len, sim_keys[key]);
    if (i % 97 == 13) {
      s.recs[i] = rec(len, ""); /* refused: key empty */
    }
  }
  kb_retry_policy_default(&pol);
  pol.max_attempts = 3;
  pol.backoff_base_ms = 5;
  pol.backoff_cap_ms = 40;
  c.linger_ms = 10;
  c.max_in_flight = SIM_IN_FLIGHT;
  c.max_buffered_bytes = 2000;
  c.flags = reorder ? KB_ENGINE_ALLOW_REORDERING : 0;
  CHECK_ST(kb_engine_new(&l, &pol, &c, SIM_CAP, NULL, 0, &e, NULL), KB_OK);

  for (steps = 0; steps < 200000; steps++) {
    kb_status st = KB_OK;
    kb_handle h;
    kb_reason why;
    /* Read records until the engine is full. */
    while (next < SIM_N) {
      st = kb_engine_push(e, &s.recs[next], now, &h, &why);
      if (st == KB_FULL) {
        seen_full = 1;
        break;
      }
      if (st == KB_REFUSED) {
        CHECK_EQ(why, KB_REASON_KEY_EMPTY);
        s.refused[next] = 1;
        n_refused++;
        next++;
        continue;
      }
      if (!CHECK_ST(st, KB_OK)) {
        goto done;
      }
      if (!CHECK(h < SIM_CAP && s.rec_of[h] == -1)) {
        goto done;
      }
      s.rec_of[h] = (long)next;
      next++;
    }
    if (next == SIM_N && !flushed) {
      CHECK_ST(kb_engine_flush(e), KB_OK);
      flushed = 1;
    }
    /* Take every request that is due. */
    for (;;) {
      struct sim_request *rq;
      size_t n = 0, k;
      uint32_t bytes = 0, sum = 0;
      uint64_t id = 0;
      kb_handle hs[SIM_MAX_RECORDS];
      st = kb_engine_next_request(e, now, &id, hs, SIM_MAX_RECORDS, &n, &bytes, &until);
      if (st != KB_OK) {
        break;
      }
      requests++;
      if (!CHECK(s.n_flight < SIM_IN_FLIGHT && n >= 1 && n <= SIM_MAX_RECORDS)) {
        goto done;
      }
      rq = &s.flight[s.n_flight++];
      rq->id = id;
      rq->n = n;
      for (k = 0; k < n; k++) {
        long idx = s.rec_of[hs[k]];
        rq->h[k] = hs[k];
        if (!CHECK(idx >= 0)) {
          goto done;
        }
        sum += (uint32_t)(s.recs[idx].data_len + s.recs[idx].key_len);
        s.key_in_flight[s.key_of[idx]]++;
        if (!reorder) {
          CHECK_EQ(s.key_in_flight[s.key_of[idx]], 1);
        }
      }
      CHECK_EQ(bytes, sum);
      CHECK(bytes <= 300);
    }
    if (kb_status_is_error(st)) {
      CHECK_ST(st, KB_WAIT);
      goto done;
    }
    if (st == KB_WAIT) {
      seen_wait = 1;
      CHECK(until > now);
    } else if (st == KB_PAUSED) {
      seen_paused = 1;
    } else if (st == KB_BUSY) {
      seen_busy = 1;
    }
    if (s.n_flight > 0 &&
        (st != KB_WAIT || KB_SUITE(rand_next)(&seed) % 2 == 0)) {
      /* A response comes back: any request in flight, after 0 to 3 ms. */
      size_t k = (size_t)(KB_SUITE(rand_next)(&seed) % s.n_flight);
      now += KB_SUITE(rand_next)(&seed) % 4;
      sim_settle(e, &s, k, now, &seed, reorder, &throttles, &credentials_left,
                 &transport_left);
      continue;
    }
    if (st == KB_PAUSED) {
      /* Nothing in flight: "refresh the credentials" and resume. */
      CHECK_ST(kb_engine_resume(e), KB_OK);
      continue;
    }
    if (st == KB_WAIT) {
      now = until;
      continue;
    }
    if (st == KB_END && next == SIM_N && s.n_flight == 0) {
      break;
    }
    /* Busy or idle with nothing in flight, and not done: stuck. */
    CHECK_ST(st, KB_WAIT);
    goto done;
  }
done:
  CHECK(steps < 200000);
  CHECK_EQ(next, SIM_N);
  CHECK_EQ(s.n_flight, 0);
  for (i = 0; i < SIM_N; i++) {
    if (s.refused[i]) {
      CHECK_EQ(s.accepted[i] + s.terminal[i], 0);
      continue;
    }
    if (!CHECK_EQ(s.accepted[i] + s.terminal[i], 1)) {
      fprintf(stderr, "[%s]   record %lu: accepted %d, terminal %d\n", KB_LANG,
              (unsigned long)i, s.accepted[i], s.terminal[i]);
      break;
    }
    n_accepted += (unsigned long)s.accepted[i];
    n_terminal += (unsigned long)s.terminal[i];
  }
  st_end = counters(e);
  CHECK_EQ(st_end.accepted_records, n_accepted);
  CHECK_EQ(st_end.terminal, n_terminal);
  CHECK_EQ(st_end.requests, requests);
  CHECK_EQ(st_end.throttled, throttles);
  CHECK_EQ(st_end.credential_failures, (unsigned long)(2 - credentials_left));
  CHECK_EQ(st_end.refused[KB_REASON_KEY_EMPTY], n_refused);
  CHECK_EQ(st_end.buffered_records, 0);
  CHECK_EQ(st_end.buffered_bytes, 0);
  CHECK_EQ(st_end.in_flight_requests, 0);
  CHECK_EQ(st_end.in_flight_records, 0);
  CHECK(n_accepted > SIM_N / 2);
  CHECK(n_refused > 0);
  CHECK(seen_full);
  CHECK(seen_wait);
  CHECK(seen_paused == (credentials_left < 2));
  (void)seen_busy;
  CHECK_EQ(paused(e), 0);
  kb_engine_free(e);
}

void KB_SUITE(test_engine)(void) {
  uint64_t seed;
  test_engine_statuses();
  test_engine_new();
  test_engine_nulls();
  test_engine_push();
  test_engine_next();
  test_engine_settle();
  test_engine_key_order();
  test_engine_credentials();
  test_engine_shards();
  for (seed = 1; seed <= 6; seed++) {
    test_engine_simulation((int)(seed % 2), seed * 0x9E3779B97F4A7C15ull);
  }
}
