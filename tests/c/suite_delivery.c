/*
 * suite_delivery.c: error kinds, backoff, and the delivery (requests, settling,
 * retries, terminal entries), with its bad input and settle errors.
 */
#include "kb_test.h"

static void test_error_kinds(void) {
  static const char *const names[] = {
      "throughput_exceeded", "internal_failure", "throttling", "server_error",
      "transport",           "bad_response",     "unknown",    "validation",
      "invalid_argument",    "resource_not_found", "access_denied", "kms",
      "client_error"};
  kb_error_kind kind;
  kb_error_kind k8;
  uint32_t i;
  for (i = 0; i < 13; i++) {
    CHECK_STR(kb_error_kind_name(i), names[i]);
    CHECK_EQ(kb_error_kind_is_retryable(i), i <= KB_ERROR_KIND_UNKNOWN);
  }
  CHECK_STR(kb_error_kind_name(13), "unknown");
  CHECK_STR(kb_error_kind_name(KB_ERROR_KIND_NONE), "unknown");
  CHECK_STR(kb_error_kind_name(UINT32_MAX), "unknown");
  CHECK(!kb_error_kind_is_retryable(13));
  CHECK(!kb_error_kind_is_retryable(KB_OUTCOME_ACCEPTED));
  CHECK(!kb_error_kind_is_retryable(UINT32_MAX));
  CHECK_EQ(KB_ERROR_KIND_CLIENT_ERROR, 12);

#define KIND(code, want)                                                          \
  CHECK_ST(kb_error_kind_from_code(U8(code), U8LEN(code), &kind), KB_OK); \
  CHECK_EQ(kind, want)
  KIND("ProvisionedThroughputExceededException", KB_ERROR_KIND_THROUGHPUT_EXCEEDED);
  KIND("InternalFailure", KB_ERROR_KIND_INTERNAL_FAILURE);
  KIND("ThrottlingException", KB_ERROR_KIND_THROTTLING);
  KIND("ServiceUnavailable", KB_ERROR_KIND_SERVER_ERROR);
  KIND("com.amazonaws.kinesis.v20131202#ResourceNotFoundException",
       KB_ERROR_KIND_RESOURCE_NOT_FOUND);
  KIND("ValidationException:http://internal.amazon.com/coral/", KB_ERROR_KIND_VALIDATION);
  KIND("InvalidArgumentException", KB_ERROR_KIND_INVALID_ARGUMENT);
  KIND("AccessDeniedException", KB_ERROR_KIND_ACCESS_DENIED);
  KIND("KMSDisabledException", KB_ERROR_KIND_KMS);
  KIND("SomethingNew", KB_ERROR_KIND_UNKNOWN);
#undef KIND
  CHECK_ST(kb_error_kind_from_code(NULL, 0, &kind), KB_OK);
  CHECK_EQ(kind, KB_ERROR_KIND_UNKNOWN);
  FILL(kind);
  CHECK_ST(kb_error_kind_from_code(NULL, 3, &kind), KB_NULL_ARRAY);
  CHECK_UNTOUCHED(kind);
  CHECK_ST(kb_error_kind_from_code(U8("x"), 1, NULL), KB_NULL_POINTER);

  CHECK_ST(kb_error_kind_from_http_status(429, &k8), KB_OK);
  CHECK_EQ(k8, KB_ERROR_KIND_THROTTLING);
  CHECK_ST(kb_error_kind_from_http_status(400, &k8), KB_OK);
  CHECK_EQ(k8, KB_ERROR_KIND_CLIENT_ERROR);
  CHECK_ST(kb_error_kind_from_http_status(503, &k8), KB_OK);
  CHECK_EQ(k8, KB_ERROR_KIND_SERVER_ERROR);
  CHECK_ST(kb_error_kind_from_http_status(200, &k8), KB_OK);
  CHECK_EQ(k8, KB_ERROR_KIND_NONE);
  CHECK_ST(kb_error_kind_from_http_status(65536 + 429, &k8), KB_OK);
  CHECK_EQ(k8, KB_ERROR_KIND_NONE);
  CHECK_ST(kb_error_kind_from_http_status(429, NULL), KB_NULL_POINTER);
}

static void test_backoff(void) {
  kb_retry_policy p;
  CHECK_ST(kb_retry_policy_default(&p), KB_OK);
  CHECK_EQ(p.backoff_base_ms, 100);
  CHECK_EQ(p.backoff_cap_ms, 10000);
  CHECK_EQ(p.max_age_ms, 300000);
  CHECK_EQ(p.max_attempts, 10);
  CHECK_EQ(p.per_key_order, 0);
  CHECK_ST(kb_retry_policy_default(NULL), KB_NULL_POINTER);
  CHECK_EQ(kb_backoff_delay_ms(100, 1000, 0, UINT64_MAX), 0);
  CHECK_EQ(kb_backoff_delay_ms(100, 1000, 1, UINT64_MAX), 100);
  CHECK_EQ(kb_backoff_delay_ms(100, 1000, 3, UINT64_MAX), 400);
  CHECK_EQ(kb_backoff_delay_ms(100, 1000, 30, UINT64_MAX), 1000);
  CHECK_EQ(kb_backoff_delay_ms(100, 1000, UINT32_MAX, UINT64_MAX), 1000);
  CHECK_EQ(kb_backoff_delay_ms(100, 1000, 30, 0), 0);
  CHECK_EQ(kb_backoff_delay_ms(100, 1000, 2, UINT64_MAX / 2), 100);
  CHECK(kb_backoff_delay_ms(100, 10000, 5, 0x123456789abcdefull) <= 1600);
  /* 0..=ceiling, inclusive: the largest random number draws the ceiling itself. */
  CHECK_EQ(kb_backoff_delay_ms(UINT64_MAX, UINT64_MAX, 64, UINT64_MAX), UINT64_MAX);
  CHECK_EQ(kb_backoff_delay_ms(UINT64_MAX, UINT64_MAX, 64, 0), 0);
}

static size_t waiting(kb_delivery *d, const kb_pending **w) {
  size_t n = 0;
  CHECK_ST(kb_delivery_waiting(d, w, &n), KB_OK);
  return n;
}

static void test_delivery_flow(void) {
  kb_limits l = kb_custom(KB_PROFILE_KDS, 4, 10000, 1000);
  kb_retry_policy pol;
  kb_delivery *d;
  kb_record r[10];
  kb_pending req[8];
  kb_refusal f[4];
  kb_terminal term[8];
  kb_settled st;
  kb_retry_stats rst;
  size_t ne, nf, i, pos, bad;
  uint32_t bytes;
  uint64_t delay;
  const kb_pending *w;
  uint8_t out[8];

  for (i = 0; i < 10; i++) {
    r[i] = kb_rec(U8("0123456789"), 10, U8("k"), 1);
  }
  r[5].key = NULL;
  r[5].key_len = 0;
  kb_retry_policy_default(&pol);
  pol.max_attempts = 3;
  CHECK_ST(kb_delivery_new(&l, &pol, &d), KB_OK);
  CHECK_ST(kb_delivery_backoff_ms(d, UINT64_MAX, &delay), KB_OK);
  CHECK_EQ(delay, 0);

  /* Nothing in flight yet. */
  FILL(st);
  CHECK_ST(kb_delivery_settle(d, NULL, 0, NULL, 0, 0, NULL, 0, &st, NULL),
           KB_NOTHING_IN_FLIGHT);
  CHECK_ST(kb_delivery_settle_all(d, NULL, 0, KB_ERROR_KIND_TRANSPORT, 0, NULL, 0, &st),
           KB_NOTHING_IN_FLIGHT);
  CHECK_UNTOUCHED(st);

  CHECK_ST(kb_delivery_next_request(d, r, 10, req, 4, &ne, &bytes, f, 4, &nf, 1000, NULL),
           KB_OK);
  CHECK_EQ(ne, 4);
  CHECK_EQ(nf, 0);
  CHECK_EQ(bytes, 44);
  for (i = 0; i < 4; i++) {
    CHECK_EQ(req[i].index, i);
    CHECK_EQ(req[i].attempts, 0);
    CHECK_EQ(req[i].first_sent_ms, 1000);
  }
  CHECK_ST(kb_delivery_position(d, &pos), KB_OK);
  CHECK_EQ(pos, 4);

  /* Unsettled: KB_IN_FLIGHT, the request array untouched. */
  {
    kb_pending req2[4];
    kb_refusal f2[4];
    FILL_N(req2, 4);
    FILL_N(f2, 4);
    CHECK_ST(kb_delivery_next_request(d, r, 10, req2, 4, &ne, NULL, f2, 4, &nf, 1001, NULL),
             KB_IN_FLIGHT);
    CHECK_UNTOUCHED_N(req2, 4);
    CHECK_UNTOUCHED_N(f2, 4);
    CHECK_EQ(ne, 0);
    CHECK_EQ(nf, 0);
  }

  /* Settle errors: nothing written, nothing changed. */
  out[0] = KB_OUTCOME_ACCEPTED;
  out[1] = KB_ERROR_KIND_THROTTLING;
  out[2] = KB_ERROR_KIND_VALIDATION;
  out[3] = KB_OUTCOME_ACCEPTED;
#define EXPECT_SETTLE_ERROR(call, status)      \
  do {                                         \
    FILL(st);                                  \
    FILL_N(term, 8);                           \
    CHECK_ST(call, status);                    \
    CHECK_UNTOUCHED(st);                       \
    CHECK_UNTOUCHED_N(term, 8);                \
    CHECK_EQ(waiting(d, &w), 0);               \
  } while (0)
  EXPECT_SETTLE_ERROR(kb_delivery_settle(d, req, 3, out, 3, 1100, term, 8, &st, NULL),
                      KB_NOT_THE_REQUEST_IN_FLIGHT);
  EXPECT_SETTLE_ERROR(kb_delivery_settle(d, req, 5, out, 4, 1100, term, 8, &st, NULL),
                      KB_NOT_THE_REQUEST_IN_FLIGHT);
  EXPECT_SETTLE_ERROR(kb_delivery_settle(d, req, 4, out, 4, 1100, term, 3, &st, NULL),
                      KB_TERMINAL_ARRAY_TOO_SMALL);
  EXPECT_SETTLE_ERROR(kb_delivery_settle(d, req, 4, out, 4, 1100, NULL, 0, &st, NULL),
                      KB_TERMINAL_ARRAY_TOO_SMALL);
  EXPECT_SETTLE_ERROR(kb_delivery_settle(NULL, req, 4, out, 4, 1100, term, 8, &st, NULL),
                      KB_NULL_POINTER);
  EXPECT_SETTLE_ERROR(kb_delivery_settle(d, req, 4, out, 4, 1100, term, 8, NULL, NULL),
                      KB_NULL_POINTER);
  EXPECT_SETTLE_ERROR(kb_delivery_settle(d, NULL, 4, out, 4, 1100, term, 8, &st, NULL),
                      KB_NULL_ARRAY);
  EXPECT_SETTLE_ERROR(kb_delivery_settle(d, req, 4, NULL, 4, 1100, term, 8, &st, NULL),
                      KB_NULL_ARRAY);
  EXPECT_SETTLE_ERROR(kb_delivery_settle(d, req, 4, out, 4, 1100, NULL, 8, &st, NULL),
                      KB_NULL_ARRAY);
  EXPECT_SETTLE_ERROR(kb_delivery_settle_all(d, req, 4, 13, 1100, term, 8, &st),
                      KB_INVALID_ARGUMENT);
  EXPECT_SETTLE_ERROR(kb_delivery_settle_all(d, req, 4, KB_OUTCOME_ACCEPTED, 1100, term, 8,
                                             &st),
                      KB_INVALID_ARGUMENT);
  EXPECT_SETTLE_ERROR(kb_delivery_settle_all(d, req, 3, KB_ERROR_KIND_TRANSPORT, 1100, term,
                                             8, &st),
                      KB_NOT_THE_REQUEST_IN_FLIGHT);
  EXPECT_SETTLE_ERROR(kb_delivery_settle_all(d, req, 4, KB_ERROR_KIND_TRANSPORT, 1100, term,
                                             2, &st),
                      KB_TERMINAL_ARRAY_TOO_SMALL);
  EXPECT_SETTLE_ERROR(kb_delivery_settle_all(NULL, req, 4, KB_ERROR_KIND_TRANSPORT, 1100,
                                             term, 8, &st),
                      KB_NULL_POINTER);
  EXPECT_SETTLE_ERROR(kb_delivery_settle_all(d, req, 4, KB_ERROR_KIND_TRANSPORT, 1100, term,
                                             8, NULL),
                      KB_NULL_POINTER);
  EXPECT_SETTLE_ERROR(kb_delivery_settle_all(d, NULL, 4, KB_ERROR_KIND_TRANSPORT, 1100, term,
                                             8, &st),
                      KB_NULL_ARRAY);
  out[2] = 13; /* neither accepted nor a kind */
  FILL(bad);
  EXPECT_SETTLE_ERROR(kb_delivery_settle(d, req, 4, out, 4, 1100, term, 8, &st, &bad),
                      KB_INVALID_ARGUMENT);
  CHECK_EQ(bad, 2);
  out[2] = 200;
  EXPECT_SETTLE_ERROR(kb_delivery_settle(d, req, 4, out, 4, 1100, term, 8, &st, NULL),
                      KB_INVALID_ARGUMENT);
#undef EXPECT_SETTLE_ERROR
  out[2] = KB_ERROR_KIND_VALIDATION;
  CHECK_ST(kb_delivery_stats(d, &rst), KB_OK);
  CHECK_EQ(rst.requests, 1);
  CHECK_EQ(rst.accepted, 0);

  /* Accepted, a retryable failure and a terminal one. */
  FILL_N(term, 8);
  CHECK_ST(kb_delivery_settle(d, req, 4, out, 4, 1100, term, 8, &st, NULL), KB_OK);
  CHECK_EQ(st.accepted, 2);
  CHECK_EQ(st.retrying, 1);
  CHECK_EQ(st.terminal, 1);
  CHECK_EQ(term[0].index, 2);
  CHECK_EQ(term[0].kind, KB_ERROR_KIND_VALIDATION);
  CHECK(!term[0].gave_up);
  CHECK_UNTOUCHED_N(term + 1, 7);
  CHECK_EQ(waiting(d, &w), 1);
  CHECK_EQ(w[0].index, 1);
  CHECK_EQ(w[0].attempts, 1);
  CHECK_EQ(w[0].first_sent_ms, 1000);
  CHECK_ST(kb_delivery_backoff_ms(d, UINT64_MAX, &delay), KB_OK);
  CHECK_EQ(delay, 100);
  CHECK_ST(kb_delivery_backoff_ms(d, 0, &delay), KB_OK);
  CHECK_EQ(delay, 0);

  /* The failed retryable entry comes first; refused record 5 is met on the way. */
  CHECK_ST(kb_delivery_next_request(d, r, 10, req, 8, &ne, &bytes, f, 4, &nf, 1200, NULL),
           KB_OK);
  CHECK_EQ(ne, 4);
  CHECK_EQ(req[0].index, 1);
  CHECK_EQ(req[0].attempts, 1);
  CHECK_EQ(req[0].first_sent_ms, 1000);
  CHECK_EQ(req[1].index, 4);
  CHECK_EQ(req[2].index, 6);
  CHECK_EQ(req[3].index, 7);
  CHECK_EQ(req[3].first_sent_ms, 1200);
  CHECK_EQ(nf, 1);
  CHECK_EQ(f[0].index, 5);
  CHECK_EQ(f[0].reason, KB_REASON_KEY_EMPTY);

  /* The whole request fails in transport: all retried, backoff grows. */
  CHECK_ST(kb_delivery_settle_all(d, req, 4, KB_ERROR_KIND_TRANSPORT, 1300, term, 4, &st),
           KB_OK);
  CHECK_EQ(st.retrying, 4);
  CHECK_EQ(st.accepted, 0);
  CHECK_EQ(st.terminal, 0);
  CHECK_ST(kb_delivery_backoff_ms(d, UINT64_MAX, &delay), KB_OK);
  CHECK_EQ(delay, 200);
  CHECK_EQ(waiting(d, &w), 4);

  /* Again: record 1 reaches its third attempt and gives up. */
  CHECK_ST(kb_delivery_next_request(d, r, 10, req, 8, &ne, &bytes, f, 4, &nf, 1400, NULL),
           KB_OK);
  CHECK_EQ(ne, 4);
  CHECK_EQ(req[0].index, 1);
  CHECK_EQ(req[0].attempts, 2);
  CHECK_EQ(nf, 0);
  /* A response with the wrong entry count fails every entry as a bad response. */
  CHECK_ST(kb_delivery_settle(d, req, 4, out, 2, 1500, term, 4, &st, NULL), KB_OK);
  CHECK_EQ(st.retrying, 3);
  CHECK_EQ(st.terminal, 1);
  CHECK_EQ(term[0].index, 1);
  CHECK_EQ(term[0].kind, KB_ERROR_KIND_BAD_RESPONSE);
  CHECK(term[0].gave_up);

  /* Then everything is accepted until the end. */
  {
    size_t rounds = 0, accepted = 0;
    kb_status s;
    for (;;) {
      s = kb_delivery_next_request(d, r, 10, req, 8, &ne, NULL, f, 4, &nf, 1600, NULL);
      if (s != KB_OK && s != KB_END) {
        CHECK_ST(s, KB_OK);
        break;
      }
      if (ne == 0) {
        CHECK_ST(s, KB_END);
        break;
      }
      memset(out, KB_OUTCOME_ACCEPTED, sizeof out);
      CHECK_ST(kb_delivery_settle(d, req, ne, out, ne, 1700, term, 8, &st, NULL), KB_OK);
      accepted += st.accepted;
      if (++rounds > 10) {
        CHECK(0);
        break;
      }
    }
    CHECK_EQ(accepted, 5); /* 3 retried + 8, 9 */
    CHECK_EQ(waiting(d, &w), 0);
  }
  CHECK_ST(kb_delivery_stats(d, &rst), KB_OK);
  CHECK_EQ(rst.accepted, 7);
  CHECK_EQ(rst.terminal, 2);
  CHECK_EQ(rst.refused[KB_REASON_KEY_EMPTY], 1);
  CHECK_EQ(rst.retried, 1 + 4 + 3);
  CHECK(rst.requests >= 5);
  CHECK_ST(kb_delivery_backoff_ms(d, UINT64_MAX, &delay), KB_OK);
  CHECK_EQ(delay, 0);
  CHECK_ST(kb_delivery_position(d, &pos), KB_OK);
  CHECK_EQ(pos, 10);
  kb_delivery_free(d);
}

static void test_delivery_errors(void) {
  kb_limits l = kb_custom(KB_PROFILE_KDS, 4, 10000, 1000);
  kb_limits kds = kb_profile(KB_PROFILE_KDS);
  kb_retry_policy pol;
  kb_delivery *d;
  static kb_record r[2001];
  kb_record_size rs[6];
  kb_pending req[500];
  kb_refusal f[4];
  kb_terminal term[500];
  kb_settled st;
  size_t ne, nf, i, pos, bad;
  uint32_t bytes;
  uint64_t delay;
  const kb_pending *w;
  kb_retry_stats rst;

  for (i = 0; i < 2001; i++) {
    r[i] = kb_rec(U8("x"), 1, U8("k"), 1);
  }
  kb_retry_policy_default(&pol);
  {
    kb_delivery *q;
    FILL(q);
    CHECK_ST(kb_delivery_new(&l, NULL, &q), KB_NULL_POINTER);
    CHECK_ST(kb_delivery_new(&l, &pol, NULL), KB_NULL_POINTER);
    CHECK_UNTOUCHED(q);
  }
  CHECK_ST(kb_delivery_new(&l, &pol, &d), KB_OK);
#define EXPECT_NEXT_ERROR(call, status, want_bad) \
  do {                                            \
    FILL_N(req, 8);                               \
    FILL_N(f, 4);                                 \
    FILL(ne);                                     \
    FILL(nf);                                     \
    FILL(bytes);                                  \
    FILL(bad);                                    \
    CHECK_ST(call, status);                       \
    CHECK_UNTOUCHED_N(req, 8);                    \
    CHECK_UNTOUCHED_N(f, 4);                      \
    CHECK_UNTOUCHED(ne);                          \
    CHECK_UNTOUCHED(nf);                          \
    CHECK_UNTOUCHED(bytes);                       \
    if ((want_bad) == SIZE_MAX) {                 \
      CHECK_UNTOUCHED(bad);                       \
    } else {                                      \
      CHECK_EQ(bad, (want_bad));                  \
    }                                             \
    CHECK_ST(kb_delivery_position(d, &pos), KB_OK); \
    CHECK_EQ(pos, 0);                             \
  } while (0)
  EXPECT_NEXT_ERROR(kb_delivery_next_request(NULL, r, 10, req, 8, &ne, &bytes, f, 4, &nf, 0,
                                             &bad),
                    KB_NULL_POINTER, SIZE_MAX);
  EXPECT_NEXT_ERROR(kb_delivery_next_request(d, r, 10, req, 8, NULL, &bytes, f, 4, &nf, 0,
                                             &bad),
                    KB_NULL_POINTER, SIZE_MAX);
  EXPECT_NEXT_ERROR(kb_delivery_next_request(d, r, 10, req, 8, &ne, &bytes, f, 4, NULL, 0,
                                             &bad),
                    KB_NULL_POINTER, SIZE_MAX);
  EXPECT_NEXT_ERROR(kb_delivery_next_request(d, NULL, 10, req, 8, &ne, &bytes, f, 4, &nf, 0,
                                             &bad),
                    KB_NULL_ARRAY, SIZE_MAX);
  EXPECT_NEXT_ERROR(kb_delivery_next_request(d, r, 10, NULL, 8, &ne, &bytes, f, 4, &nf, 0,
                                             &bad),
                    KB_NULL_ARRAY, SIZE_MAX);
  EXPECT_NEXT_ERROR(kb_delivery_next_request(d, r, 10, req, 8, &ne, &bytes, NULL, 4, &nf, 0,
                                             &bad),
                    KB_NULL_ARRAY, SIZE_MAX);
  EXPECT_NEXT_ERROR(kb_delivery_next_request(d, r, 10, req, 0, &ne, &bytes, f, 4, &nf, 0,
                                             &bad),
                    KB_ZERO_CAPACITY, SIZE_MAX);
  EXPECT_NEXT_ERROR(kb_delivery_next_request(d, r, 10, req, 8, &ne, &bytes, f, 0, &nf, 0,
                                             &bad),
                    KB_ZERO_CAPACITY, SIZE_MAX);
  r[6].key = NULL;
  r[6].key_len = 3;
  EXPECT_NEXT_ERROR(kb_delivery_next_request(d, r, 10, req, 8, &ne, &bytes, f, 4, &nf, 0,
                                             &bad),
                    KB_NULL_FIELD, 6);
  r[6] = kb_rec(U8("x"), SIZE_MAX, U8("k"), 1);
  EXPECT_NEXT_ERROR(kb_delivery_next_request(d, r, 10, req, 8, &ne, &bytes, f, 4, &nf, 0,
                                             &bad),
                    KB_LENGTH_OVERFLOW, 6);
  EXPECT_NEXT_ERROR(kb_delivery_next_request(d, r, 10, req, 8, &ne, &bytes, f, 4, &nf, 0,
                                             NULL),
                    KB_LENGTH_OVERFLOW, SIZE_MAX);
  memset(rs, 0, sizeof rs);
  EXPECT_NEXT_ERROR(kb_delivery_next_request_sizes(NULL, rs, 6, req, 8, &ne, &bytes, f, 4,
                                                   &nf, 0),
                    KB_NULL_POINTER, SIZE_MAX);
  EXPECT_NEXT_ERROR(kb_delivery_next_request_sizes(d, rs, 6, req, 8, NULL, &bytes, f, 4, &nf,
                                                   0),
                    KB_NULL_POINTER, SIZE_MAX);
  EXPECT_NEXT_ERROR(kb_delivery_next_request_sizes(d, NULL, 6, req, 8, &ne, &bytes, f, 4,
                                                   &nf, 0),
                    KB_NULL_ARRAY, SIZE_MAX);
  EXPECT_NEXT_ERROR(kb_delivery_next_request_sizes(d, rs, 6, req, 0, &ne, &bytes, f, 4, &nf,
                                                   0),
                    KB_ZERO_CAPACITY, SIZE_MAX);
  EXPECT_NEXT_ERROR(kb_delivery_next_request_sizes(d, rs, 6, req, 8, &ne, &bytes, f, 0, &nf,
                                                   0),
                    KB_ZERO_CAPACITY, SIZE_MAX);
#undef EXPECT_NEXT_ERROR
  CHECK_EQ(waiting(d, &w), 0);
  {
    kb_retry_stats s0;
    memset(&s0, 0, sizeof s0);
    CHECK_ST(kb_delivery_stats(d, &rst), KB_OK);
    CHECK(memcmp(&rst, &s0, sizeof s0) == 0);
  }
  FILL(delay);
  FILL(pos);
  FILL(w);
  FILL(ne);
  FILL(rst);
  CHECK_ST(kb_delivery_backoff_ms(NULL, 1, &delay), KB_NULL_POINTER);
  CHECK_ST(kb_delivery_backoff_ms(d, 1, NULL), KB_NULL_POINTER);
  CHECK_ST(kb_delivery_position(NULL, &pos), KB_NULL_POINTER);
  CHECK_ST(kb_delivery_position(d, NULL), KB_NULL_POINTER);
  CHECK_ST(kb_delivery_waiting(NULL, &w, &ne), KB_NULL_POINTER);
  CHECK_ST(kb_delivery_waiting(d, NULL, &ne), KB_NULL_POINTER);
  CHECK_ST(kb_delivery_waiting(d, &w, NULL), KB_NULL_POINTER);
  CHECK_ST(kb_delivery_stats(NULL, &rst), KB_NULL_POINTER);
  CHECK_ST(kb_delivery_stats(d, NULL), KB_NULL_POINTER);
  CHECK_UNTOUCHED(delay);
  CHECK_UNTOUCHED(pos);
  CHECK_UNTOUCHED(w);
  CHECK_UNTOUCHED(ne);
  CHECK_UNTOUCHED(rst);
  kb_delivery_free(d);

  /* Refusals that fill the array: KB_REFUSALS_FULL, then the call goes on. */
  {
    kb_record q[4];
    q[0] = kb_rec(U8("x"), 1, NULL, 0);
    q[1] = kb_rec(U8("x"), 1, U8("\xff"), 1);
    q[2] = kb_rec(U8("x"), 1, U8("k"), 1);
    q[3] = kb_rec(U8("x"), 1, U8("k"), 1);
    CHECK_ST(kb_delivery_new(&l, &pol, &d), KB_OK);
    CHECK_ST(kb_delivery_next_request(d, q, 4, req, 4, &ne, &bytes, f, 1, &nf, 0, NULL),
             KB_REFUSALS_FULL);
    CHECK_EQ(ne, 0);
    CHECK_EQ(nf, 1);
    CHECK_EQ(f[0].index, 0);
    CHECK_ST(kb_delivery_next_request(d, q, 4, req, 4, &ne, &bytes, f, 1, &nf, 0, NULL),
             KB_END);
    CHECK_EQ(nf, 1);
    CHECK_EQ(f[0].index, 1);
    CHECK_EQ(f[0].reason, KB_REASON_KEY_NOT_UTF8);
    CHECK_EQ(ne, 2);
    CHECK_EQ(bytes, 4);
    CHECK_ST(kb_delivery_settle_all(d, req, 2, KB_ERROR_KIND_ACCESS_DENIED, 0, term, 2, &st),
             KB_OK);
    CHECK_EQ(st.terminal, 2);
    CHECK_EQ(term[1].index, 3);
    CHECK_EQ(term[1].kind, KB_ERROR_KIND_ACCESS_DENIED);
    CHECK(!term[1].gave_up);
    CHECK_ST(kb_delivery_next_request(d, q, 4, req, 4, &ne, &bytes, f, 1, &nf, 0, NULL),
             KB_END);
    CHECK_EQ(ne, 0);
    /* The (NULL, 0) settle of an empty request is nothing in flight. */
    CHECK_ST(kb_delivery_settle(d, NULL, 0, NULL, 0, 0, NULL, 0, &st, NULL),
             KB_NOTHING_IN_FLIGHT);
    kb_delivery_free(d);
  }

  /* Reach: 2000 good records then a bad one; the first requests do not see it. */
  r[6] = kb_rec(U8("x"), 1, U8("k"), 1);
  r[2000] = kb_rec(U8("x"), 1, NULL, 1);
  CHECK_ST(kb_delivery_new(&kds, &pol, &d), KB_OK);
  {
    kb_status s = KB_OK;
    size_t sent = 0;
    for (i = 0; i < 6; i++) {
      FILL(bad);
      s = kb_delivery_next_request(d, r, 2001, req, 500, &ne, NULL, f, 1, &nf, 0, &bad);
      if (s != KB_OK) {
        break;
      }
      sent += ne;
      CHECK_ST(kb_delivery_settle_all(d, req, ne, KB_ERROR_KIND_VALIDATION, 0, term, 500, &st),
               KB_OK);
    }
    CHECK(sent >= 1500);
    CHECK_ST(s, KB_NULL_FIELD);
    CHECK_EQ(bad, 2000);
  }
  kb_delivery_free(d);

  /* Size-form records, and per-key ordering with record keys. */
  {
    kb_record q[3];
    kb_record_size qs[3];
    q[0] = kb_rec(U8("x"), 1, U8("a"), 1);
    q[1] = kb_rec(U8("x"), 1, U8("a"), 1);
    q[2] = kb_rec(U8("x"), 1, U8("b"), 1);
    for (i = 0; i < 3; i++) {
      CHECK_ST(kb_record_size_of(&q[i], KB_KEY_UNIT_CODE_POINTS, &qs[i]), KB_OK);
    }
    CHECK_ST(kb_delivery_new(&l, &pol, &d), KB_OK);
    CHECK_ST(kb_delivery_next_request_sizes(d, qs, 3, req, 4, &ne, &bytes, f, 4, &nf, 0),
             KB_END);
    CHECK_EQ(ne, 3);
    CHECK_EQ(bytes, 6);
    CHECK_ST(kb_delivery_next_request_sizes(d, qs, 3, req, 4, &ne, &bytes, f, 4, &nf, 0),
             KB_IN_FLIGHT);
    kb_delivery_free(d);
    pol.per_key_order = 1;
    CHECK_ST(kb_delivery_new(&l, &pol, &d), KB_OK);
    CHECK_ST(kb_delivery_next_request(d, q, 3, req, 4, &ne, &bytes, f, 4, &nf, 0, NULL),
             KB_OK);
    CHECK_EQ(ne, 1); /* closes before the second "a" */
    CHECK_ST(kb_delivery_settle_all(d, req, 1, KB_ERROR_KIND_THROTTLING, 0, term, 1, &st),
             KB_OK);
    CHECK_ST(kb_delivery_next_request(d, q, 3, req, 4, &ne, &bytes, f, 4, &nf, 0, NULL),
             KB_OK);
    CHECK_EQ(ne, 1); /* the retried "a" only: the next one is "a" again */
    CHECK_EQ(req[0].index, 0);
    kb_delivery_free(d);
  }
}

void KB_SUITE(test_delivery)(void) {
  test_error_kinds();
  test_backoff();
  test_delivery_flow();
  test_delivery_errors();
}
