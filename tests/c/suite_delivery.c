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
      "client_error",        "credentials"};
  kb_error_kind kind;
  kb_error_kind k8;
  uint32_t i;
  CHECK_EQ(sizeof names / sizeof names[0], 14);
  for (i = 0; i < 14; i++) {
    CHECK_STR(kb_error_kind_name(i), names[i]);
    CHECK_EQ(kb_error_kind_is_retryable(i), i <= KB_ERROR_KIND_UNKNOWN);
  }
  CHECK_STR(kb_error_kind_name(14), "unknown");
  CHECK_STR(kb_error_kind_name(KB_ERROR_KIND_NONE), "unknown");
  CHECK_STR(kb_error_kind_name(UINT32_MAX), "unknown");
  CHECK(!kb_error_kind_is_retryable(14));
  CHECK(!kb_error_kind_is_retryable(KB_OUTCOME_ACCEPTED));
  CHECK(!kb_error_kind_is_retryable(UINT32_MAX));
  CHECK_EQ(KB_ERROR_KIND_CLIENT_ERROR, 12);
  CHECK_EQ(KB_ERROR_KIND_CREDENTIALS, 13);

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
  KIND("NotAuthorized", KB_ERROR_KIND_ACCESS_DENIED);
  /* Expired or invalid credentials, bad signatures, clock skew: a class of their own. */
  KIND("ExpiredTokenException", KB_ERROR_KIND_CREDENTIALS);
  KIND("ExpiredToken", KB_ERROR_KIND_CREDENTIALS);
  KIND("InvalidSignatureException", KB_ERROR_KIND_CREDENTIALS);
  KIND("SignatureDoesNotMatch", KB_ERROR_KIND_CREDENTIALS);
  KIND("RequestExpired", KB_ERROR_KIND_CREDENTIALS);
  KIND("com.amazonaws.kinesis.v20131202#UnrecognizedClientException",
       KB_ERROR_KIND_CREDENTIALS);
  KIND("InvalidClientTokenId", KB_ERROR_KIND_CREDENTIALS);
  KIND("MissingAuthenticationToken", KB_ERROR_KIND_CREDENTIALS);
  KIND("MissingAuthenticationTokenException", KB_ERROR_KIND_CREDENTIALS);
  KIND("IncompleteSignatureException", KB_ERROR_KIND_CREDENTIALS);
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

  /* Nothing in flight yet: the settled counts are 0. */
  FILL(st);
  CHECK_ST(kb_delivery_settle(d, NULL, 0, NULL, 0, 0, NULL, 0, &st, NULL),
           KB_NOTHING_IN_FLIGHT);
  CHECK(st.accepted == 0 && st.retrying == 0 && st.terminal == 0);
  FILL(st);
  CHECK_ST(kb_delivery_settle_all(d, NULL, 0, KB_ERROR_KIND_TRANSPORT, 0, NULL, 0, &st),
           KB_NOTHING_IN_FLIGHT);
  CHECK(st.accepted == 0 && st.retrying == 0 && st.terminal == 0);

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

  /* Unsettled: the error KB_REQUEST_IN_FLIGHT, arrays untouched, counts 0. */
  {
    kb_pending req2[4];
    kb_refusal f2[4];
    FILL_N(req2, 4);
    FILL_N(f2, 4);
    FILL(ne);
    FILL(nf);
    FILL(bytes);
    CHECK_ST(kb_delivery_next_request(d, r, 10, req2, 4, &ne, &bytes, f2, 4, &nf, 1001, NULL),
             KB_REQUEST_IN_FLIGHT);
    CHECK_UNTOUCHED_N(req2, 4);
    CHECK_UNTOUCHED_N(f2, 4);
    CHECK_EQ(ne, 0);
    CHECK_EQ(nf, 0);
    CHECK_EQ(bytes, 0);
    CHECK_ST(kb_delivery_position(d, &pos), KB_OK);
    CHECK_EQ(pos, 4);
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
    CHECK_COUNT(#call, st);                    \
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
  EXPECT_SETTLE_ERROR(kb_delivery_settle_all(d, req, 4, 14, 1100, term, 8, &st),
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
  out[2] = 14; /* neither accepted nor a kind */
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
    CHECK_COUNT(#call, ne);                       \
    CHECK_COUNT(#call, nf);                       \
    CHECK_COUNT(#call, bytes);                    \
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
  CHECK_ST(kb_delivery_waiting(d, &w, NULL), KB_NULL_POINTER);
  CHECK_ST(kb_delivery_stats(NULL, &rst), KB_NULL_POINTER);
  CHECK_ST(kb_delivery_stats(d, NULL), KB_NULL_POINTER);
  CHECK_UNTOUCHED(delay);
  CHECK_UNTOUCHED(pos);
  CHECK_UNTOUCHED(w);
  CHECK_UNTOUCHED(rst);
  /* kb_delivery_waiting's count is a count: 0 after an error. */
  CHECK_ST(kb_delivery_waiting(NULL, &w, &ne), KB_NULL_POINTER);
  CHECK_EQ(ne, 0);
  CHECK_UNTOUCHED(w);
  FILL(ne);
  CHECK_ST(kb_delivery_waiting(d, NULL, &ne), KB_NULL_POINTER);
  CHECK_EQ(ne, 0);
  kb_delivery_free(d);

  /* Refusals that fill the array: KB_ONLY_REFUSALS (no request), then the call goes on. */
  {
    kb_record q[4];
    q[0] = kb_rec(U8("x"), 1, NULL, 0);
    q[1] = kb_rec(U8("x"), 1, U8("\xff"), 1);
    q[2] = kb_rec(U8("x"), 1, U8("k"), 1);
    q[3] = kb_rec(U8("x"), 1, U8("k"), 1);
    CHECK_ST(kb_delivery_new(&l, &pol, &d), KB_OK);
    CHECK_ST(kb_delivery_next_request(d, q, 4, req, 4, &ne, &bytes, f, 1, &nf, 0, NULL),
             KB_ONLY_REFUSALS);
    CHECK_EQ(ne, 0);
    CHECK_EQ(bytes, 0);
    CHECK_EQ(nf, 1);
    CHECK_EQ(f[0].index, 0);
    /* Nothing is in flight after KB_ONLY_REFUSALS. */
    CHECK_ST(kb_delivery_settle(d, NULL, 0, NULL, 0, 0, NULL, 0, &st, NULL),
             KB_NOTHING_IN_FLIGHT);
    CHECK_ST(kb_delivery_next_request(d, q, 4, req, 4, &ne, &bytes, f, 1, &nf, 0, NULL),
             KB_OK);
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
             KB_OK);
    CHECK_EQ(ne, 3);
    CHECK_EQ(bytes, 6);
    FILL(ne);
    FILL(nf);
    FILL(bytes);
    CHECK_ST(kb_delivery_next_request_sizes(d, qs, 3, req, 4, &ne, &bytes, f, 4, &nf, 0),
             KB_REQUEST_IN_FLIGHT);
    CHECK_EQ(ne, 0);
    CHECK_EQ(nf, 0);
    CHECK_EQ(bytes, 0);
    CHECK_ST(kb_delivery_settle_all(d, req, 3, KB_ERROR_KIND_VALIDATION, 0, term, 3, &st),
             KB_OK);
    CHECK_EQ(st.terminal, 3);
    CHECK_ST(kb_delivery_next_request_sizes(d, qs, 3, req, 4, &ne, &bytes, f, 4, &nf, 0),
             KB_END);
    CHECK_EQ(ne, 0);
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

/* ---- The loops a user writes from the header, and what a delivery refuses. ---- */

#define DLOG_N 2100

/* What a delivery loop did, per record and in total. */
struct delivery_log {
  unsigned char stored[DLOG_N];
  unsigned char terminal[DLOG_N];
  unsigned char refused[DLOG_N];
  size_t sent;     /* entries sent, retries included */
  size_t requests; /* requests sent */
  size_t stored_total, terminal_total, refused_total;
  uint64_t first_backoff; /* kb_delivery_backoff_ms(.., UINT64_MAX) after request 1 */
};

/* How the fake service answers an entry: KB_OUTCOME_ACCEPTED or an error kind. */
typedef uint8_t (*answer_fn)(const kb_pending *entry, size_t request);

static uint8_t accept_all(const kb_pending *entry, size_t request) {
  (void)entry;
  (void)request;
  return KB_OUTCOME_ACCEPTED;
}

/* Every entry fails once, throttled by its shard, then is stored. */
static uint8_t fail_first_send(const kb_pending *entry, size_t request) {
  (void)request;
  return entry->attempts == 0 ? (uint8_t)KB_ERROR_KIND_THROUGHPUT_EXCEEDED
                              : (uint8_t)KB_OUTCOME_ACCEPTED;
}

/* About a third of the entries fail (retryable), a different third each request. */
static uint8_t fail_some(const kb_pending *entry, size_t request) {
  return (entry->index + request) % 3 == 0 ? (uint8_t)KB_ERROR_KIND_INTERNAL_FAILURE
                                           : (uint8_t)KB_OUTCOME_ACCEPTED;
}

static uint8_t fail_always(const kb_pending *entry, size_t request) {
  (void)entry;
  (void)request;
  return KB_ERROR_KIND_THROTTLING;
}

static void settle_into_log(struct delivery_log *log, kb_delivery *d, const kb_pending *req,
                            size_t ne, answer_fn answer, size_t now) {
  static uint8_t out[500];
  static kb_terminal term[500];
  kb_settled st;
  size_t i;
  for (i = 0; i < ne; i++) {
    out[i] = answer(&req[i], log->requests);
  }
  log->sent += ne;
  log->requests++;
  if (!CHECK_ST(kb_delivery_settle(d, req, ne, out, ne, now, term, 500, &st, NULL), KB_OK)) {
    return;
  }
  for (i = 0; i < ne; i++) {
    if (out[i] == KB_OUTCOME_ACCEPTED && req[i].index < DLOG_N) {
      log->stored[req[i].index]++;
    }
  }
  for (i = 0; i < st.terminal; i++) {
    if (term[i].index < DLOG_N) {
      log->terminal[term[i].index]++;
    }
  }
  log->stored_total += st.accepted;
  log->terminal_total += st.terminal;
  if (log->requests == 1) {
    kb_delivery_backoff_ms(d, UINT64_MAX, &log->first_backoff);
  }
}

static void log_refusals(struct delivery_log *log, const kb_refusal *f, size_t nf) {
  size_t i;
  for (i = 0; i < nf; i++) {
    if (f[i].index < DLOG_N) {
      log->refused[f[i].index]++;
    }
  }
  log->refused_total += nf;
}

/* The loop the header documents: `!= KB_END`, errors break, refusals reported, an empty
 * request (KB_ONLY_REFUSALS) goes round again. */
static kb_status documented_loop(kb_delivery *d, const kb_record *r, size_t n,
                                 size_t refusals_cap, answer_fn answer,
                                 struct delivery_log *log) {
  static kb_pending request[500];
  static kb_refusal refusals[64];
  size_t n_entries = 0, n_refusals = 0, bad = 0, rounds = 0;
  uint32_t bytes = 0;
  kb_status st;
  memset(log, 0, sizeof *log);
  while ((st = kb_delivery_next_request(d, r, n, request, 500, &n_entries, &bytes, refusals,
                                        refusals_cap, &n_refusals, rounds * 1000, &bad)) !=
         KB_END) {
    if (kb_status_is_error(st) || ++rounds > 100000) {
      break;
    }
    log_refusals(log, refusals, n_refusals);
    if (n_entries == 0) {
      continue; /* KB_ONLY_REFUSALS */
    }
    settle_into_log(log, d, request, n_entries, answer, rounds * 1000);
  }
  return st;
}

/* The shortest loop: `while (next == KB_OK) { send; settle }`. */
static kb_status naive_loop(kb_delivery *d, const kb_record *r, size_t n, size_t refusals_cap,
                            answer_fn answer, struct delivery_log *log) {
  static kb_pending request[500];
  static kb_refusal refusals[64];
  size_t n_entries = 0, n_refusals = 0, bad = 0, rounds = 0;
  uint32_t bytes = 0;
  kb_status st;
  memset(log, 0, sizeof *log);
  while ((st = kb_delivery_next_request(d, r, n, request, 500, &n_entries, &bytes, refusals,
                                        refusals_cap, &n_refusals, 0, &bad)) == KB_OK &&
         ++rounds < 100000) {
    log_refusals(log, refusals, n_refusals);
    settle_into_log(log, d, request, n_entries, answer, 0);
  }
  log_refusals(log, refusals, n_refusals);
  return st;
}

static int every_record_once(const struct delivery_log *log, size_t n) {
  size_t i;
  for (i = 0; i < n && i < DLOG_N; i++) {
    if (log->stored[i] + log->terminal[i] + log->refused[i] != 1) {
      return 0;
    }
  }
  return 1;
}

static void test_delivery_loops(void) {
  static kb_record r[2000];
  static struct delivery_log log;
  kb_limits kds = kb_profile(KB_PROFILE_KDS);
  kb_limits small = kb_custom(KB_PROFILE_KDS, 50, 100000, 1000);
  kb_retry_policy pol;
  kb_delivery *d;
  size_t i, k;
  static const answer_fn answers[] = {accept_all, fail_first_send, fail_some};
  kb_retry_policy_default(&pol);
  pol.max_attempts = 50;
  for (i = 0; i < 2000; i++) {
    r[i] = kb_rec(U8("0123456789"), 10, U8("k"), 1);
  }

  /* The repro: 10 records, the naive loop. Every record is sent and stored. */
  for (k = 0; k < ARRAY_LEN(answers); k++) {
    CHECK_ST(kb_delivery_new(&kds, &pol, &d), KB_OK);
    CHECK_ST(naive_loop(d, r, 10, 64, answers[k], &log), KB_END);
    CHECK_EQ(log.stored_total, 10);
    CHECK_EQ(log.terminal_total, 0);
    CHECK(every_record_once(&log, 10));
    kb_delivery_free(d);
    /* The documented loop too. */
    CHECK_ST(kb_delivery_new(&kds, &pol, &d), KB_OK);
    CHECK_ST(documented_loop(d, r, 10, 64, answers[k], &log), KB_END);
    CHECK_EQ(log.stored_total, 10);
    CHECK(every_record_once(&log, 10));
    kb_delivery_free(d);
  }
  /* A larger input without refusals, many requests: both loops deliver everything. */
  for (k = 0; k < ARRAY_LEN(answers); k++) {
    CHECK_ST(kb_delivery_new(&small, &pol, &d), KB_OK);
    CHECK_ST(naive_loop(d, r, 2000, 64, answers[k], &log), KB_END);
    CHECK_EQ(log.stored_total, 2000);
    CHECK(every_record_once(&log, 2000));
    CHECK(log.requests >= 40);
    kb_delivery_free(d);
    CHECK_ST(kb_delivery_new(&small, &pol, &d), KB_OK);
    CHECK_ST(documented_loop(d, r, 2000, 64, answers[k], &log), KB_END);
    CHECK_EQ(log.stored_total, 2000);
    CHECK(every_record_once(&log, 2000));
    kb_delivery_free(d);
  }

  /* With refusals (10%, in runs), the documented loop: every record stored, terminal or
   * refused exactly once, also with a refusal array of 1. */
  for (i = 0; i < 2000; i++) {
    if (i % 10 == 3 || (i >= 500 && i < 520)) {
      r[i].key_len = 0;
    }
  }
  for (k = 0; k < ARRAY_LEN(answers); k++) {
    size_t cap;
    for (cap = 1; cap <= 64; cap *= 8) {
      CHECK_ST(kb_delivery_new(&small, &pol, &d), KB_OK);
      CHECK_ST(documented_loop(d, r, 2000, cap, answers[k], &log), KB_END);
      CHECK(every_record_once(&log, 2000));
      CHECK_EQ(log.refused_total, 200 + 18); /* 500..519 holds 2 of the tenths */
      CHECK_EQ(log.stored_total, 2000 - 218);
      kb_delivery_free(d);
    }
  }
  /* What the naive loop misses there: refusals only, it stops with records left. */
  {
    kb_record q[7];
    q[0] = kb_rec(U8("x"), 1, U8("k"), 1);
    for (i = 1; i < 6; i++) {
      q[i] = kb_rec(U8("x"), 1, NULL, 0);
    }
    q[6] = kb_rec(U8("x"), 1, U8("k"), 1);
    CHECK_ST(kb_delivery_new(&small, &pol, &d), KB_OK);
    CHECK_ST(naive_loop(d, q, 7, 1, accept_all, &log), KB_ONLY_REFUSALS);
    CHECK_EQ(log.stored_total, 1);
    kb_delivery_free(d);
    CHECK_ST(kb_delivery_new(&small, &pol, &d), KB_OK);
    CHECK_ST(documented_loop(d, q, 7, 1, accept_all, &log), KB_END);
    CHECK_EQ(log.stored_total, 2);
    CHECK_EQ(log.refused_total, 5);
    CHECK(every_record_once(&log, 7));
    kb_delivery_free(d);
  }
  for (i = 0; i < 2000; i++) {
    r[i].key_len = 1;
  }
}

/* Zero means the default in kb_retry_policy: a zeroed policy with only max_attempts set
 * retries and backs off as the defaults do. */
static void test_delivery_zero_policy(void) {
  static kb_record r[120];
  static struct delivery_log log;
  kb_limits small = kb_custom(KB_PROFILE_KDS, 50, 100000, 1000);
  kb_retry_policy pol;
  kb_delivery *d;
  size_t i;
  for (i = 0; i < 120; i++) {
    r[i] = kb_rec(U8("0123456789"), 10, U8("k"), 1);
  }
  memset(&pol, 0, sizeof pol);
  pol.max_attempts = 20;
  CHECK_ST(kb_delivery_new(&small, &pol, &d), KB_OK);
  CHECK_ST(documented_loop(d, r, 120, 64, fail_first_send, &log), KB_END);
  CHECK_EQ(log.stored_total, 120);
  CHECK_EQ(log.terminal_total, 0);
  CHECK_EQ(log.sent, 240);
  CHECK(every_record_once(&log, 120));
  /* The first request failed whole: the default backoff's first step, 100 ms. */
  CHECK_EQ(log.first_backoff, 100);
  kb_delivery_free(d);

  /* All zero: max_attempts 0 is the default 10, not "never send" nor "send once". */
  memset(&pol, 0, sizeof pol);
  CHECK_ST(kb_delivery_new(&small, &pol, &d), KB_OK);
  CHECK_ST(documented_loop(d, r, 3, 64, fail_always, &log), KB_END);
  CHECK_EQ(log.terminal_total, 3);
  CHECK_EQ(log.sent, 30);
  CHECK_EQ(log.requests, 10);
  CHECK_EQ(log.first_backoff, 100);
  kb_delivery_free(d);
}

/* kb_delivery has no pause: expired credentials end the records at once, reported as
   KB_ERROR_KIND_CREDENTIALS (not access denied, not a retryable kind that gave up). */
static void test_delivery_credentials_are_terminal(void) {
  kb_limits l = kb_custom(KB_PROFILE_KDS, 4, 10000, 1000);
  kb_retry_policy pol;
  kb_delivery *d;
  kb_record r[3];
  kb_pending req[4];
  kb_refusal f[1];
  kb_terminal term[4];
  kb_settled st;
  size_t ne, nf, i;
  uint32_t bytes;
  uint8_t out[3] = {KB_ERROR_KIND_CREDENTIALS, KB_OUTCOME_ACCEPTED, KB_ERROR_KIND_ACCESS_DENIED};

  r[0] = kb_rec(U8("x"), 1, U8("a"), 1);
  r[1] = kb_rec(U8("y"), 1, U8("b"), 1);
  r[2] = kb_rec(U8("z"), 1, U8("c"), 1);
  kb_retry_policy_default(&pol);
  pol.max_attempts = 1000;
  CHECK_ST(kb_delivery_new(&l, &pol, &d), KB_OK);
  CHECK_ST(kb_delivery_next_request(d, r, 3, req, 4, &ne, &bytes, f, 1, &nf, 0, NULL), KB_OK);
  CHECK_EQ(ne, 3);
  CHECK_ST(kb_delivery_settle(d, req, 3, out, 3, 0, term, 4, &st, NULL), KB_OK);
  CHECK_EQ(st.accepted, 1);
  CHECK_EQ(st.retrying, 0);
  CHECK_EQ(st.terminal, 2);
  CHECK_EQ(term[0].index, 0);
  CHECK_EQ(term[0].kind, KB_ERROR_KIND_CREDENTIALS);
  CHECK(!term[0].gave_up);
  CHECK_STR(kb_error_kind_name(term[0].kind), "credentials");
  CHECK_EQ(term[1].index, 2);
  CHECK_EQ(term[1].kind, KB_ERROR_KIND_ACCESS_DENIED);
  CHECK_ST(kb_delivery_next_request(d, r, 3, req, 4, &ne, &bytes, f, 1, &nf, 0, NULL),
           KB_END);

  /* A request that failed as a whole. */
  CHECK_ST(kb_delivery_reset(d), KB_OK);
  CHECK_ST(kb_delivery_next_request(d, r, 3, req, 4, &ne, &bytes, f, 1, &nf, 0, NULL), KB_OK);
  CHECK_EQ(ne, 3);
  CHECK_ST(kb_delivery_settle_all(d, req, 3, KB_ERROR_KIND_CREDENTIALS, 0, term, 4, &st), KB_OK);
  CHECK_EQ(st.retrying, 0);
  CHECK_EQ(st.terminal, 3);
  for (i = 0; i < 3; i++) {
    CHECK_EQ(term[i].index, i);
    CHECK_EQ(term[i].kind, KB_ERROR_KIND_CREDENTIALS);
    CHECK(!term[i].gave_up);
  }
  kb_delivery_free(d);
}

/* kb_delivery_settle(_all) compares `sent` with the request in flight entry by entry. */
static void test_delivery_settle_checks_entries(void) {
  kb_limits l = kb_custom(KB_PROFILE_KDS, 4, 10000, 1000);
  kb_retry_policy pol;
  kb_delivery *d;
  kb_record r[6];
  kb_pending req[8], copy[8];
  kb_refusal f[4];
  kb_terminal term[8];
  uint8_t out[4];
  kb_settled st;
  size_t ne, nf, i, pos;
  const kb_pending *w;
  for (i = 0; i < 6; i++) {
    r[i] = kb_rec(U8("data"), 4, U8("k"), 1);
  }
  memset(out, KB_OUTCOME_ACCEPTED, sizeof out);
  memset(req, 0, sizeof req);
  kb_retry_policy_default(&pol);
  CHECK_ST(kb_delivery_new(&l, &pol, &d), KB_OK);
  CHECK_ST(kb_delivery_next_request(d, r, 6, req, 8, &ne, NULL, f, 4, &nf, 500, NULL), KB_OK);
  CHECK_EQ(ne, 4);
#define EXPECT_WRONG_SENT(change)                                                        \
  do {                                                                                   \
    memcpy(copy, req, sizeof copy);                                                      \
    change;                                                                              \
    FILL(st);                                                                            \
    FILL_N(term, 8);                                                                     \
    CHECK_ST(kb_delivery_settle(d, copy, 4, out, 4, 600, term, 8, &st, NULL),            \
             KB_NOT_THE_REQUEST_IN_FLIGHT);                                              \
    CHECK(st.accepted == 0 && st.retrying == 0 && st.terminal == 0);                     \
    CHECK_UNTOUCHED_N(term, 8);                                                          \
    CHECK_ST(kb_delivery_settle_all(d, copy, 4, KB_ERROR_KIND_TRANSPORT, 600, term, 8, \
                                    &st),                                                \
             KB_NOT_THE_REQUEST_IN_FLIGHT);                                              \
    CHECK_UNTOUCHED_N(term, 8);                                                          \
  } while (0)
  EXPECT_WRONG_SENT(copy[0].index = 9);
  EXPECT_WRONG_SENT(copy[3].index = 4);
  EXPECT_WRONG_SENT((copy[0] = req[1], copy[1] = req[0])); /* reordered */
  EXPECT_WRONG_SENT(copy[2].attempts = 1);
  EXPECT_WRONG_SENT(copy[1].first_sent_ms = 501);
#undef EXPECT_WRONG_SENT
  /* Nothing changed: no entry waits, the position stands, and the request in flight
   * settles as it should, from a copy as well as from the array itself. */
  CHECK_EQ(waiting(d, &w), 0);
  CHECK_ST(kb_delivery_position(d, &pos), KB_OK);
  CHECK_EQ(pos, 4);
  memcpy(copy, req, sizeof copy);
  CHECK_ST(kb_delivery_settle(d, copy, 4, out, 4, 600, term, 8, &st, NULL), KB_OK);
  CHECK_EQ(st.accepted, 4);
  /* A settled request cannot be settled again. */
  CHECK_ST(kb_delivery_settle(d, req, 4, out, 4, 600, term, 8, &st, NULL),
           KB_NOTHING_IN_FLIGHT);
  kb_delivery_free(d);
}

/* A delivery given another input: KB_INPUT_CHANGED, never "OK, 0 entries" forever;
 * kb_delivery_reset starts it over. */
static void test_delivery_input_changed(void) {
  kb_limits l = kb_custom(KB_PROFILE_KDS, 4, 10000, 1000);
  kb_retry_policy pol;
  kb_delivery *d;
  static kb_record r[10], q[10], fresh[5];
  static struct delivery_log log;
  kb_pending req[8];
  kb_refusal f[4];
  kb_terminal term[8];
  uint8_t out[4];
  kb_settled st;
  size_t ne, nf, i, pos, bad;
  uint32_t bytes;
  const kb_pending *w;
  kb_retry_stats rst;
  for (i = 0; i < 10; i++) {
    r[i] = kb_rec(U8("data"), 4, U8("k"), 1);
  }
  for (i = 0; i < 5; i++) {
    fresh[i] = kb_rec(U8("new"), 3, U8("n"), 1);
  }
  kb_retry_policy_default(&pol);
  CHECK_ST(kb_delivery_new(&l, &pol, &d), KB_OK);
  CHECK_ST(kb_delivery_next_request(d, r, 10, req, 8, &ne, NULL, f, 4, &nf, 0, NULL), KB_OK);
  CHECK_EQ(ne, 4);
  memset(out, KB_OUTCOME_ACCEPTED, sizeof out);
  out[2] = KB_ERROR_KIND_THROTTLING; /* record 2 waits to be sent again */
  CHECK_ST(kb_delivery_settle(d, req, 4, out, 4, 0, term, 8, &st, NULL), KB_OK);
  CHECK_EQ(waiting(d, &w), 1);

#define EXPECT_CHANGED(call)                \
  do {                                      \
    FILL_N(req, 8);                         \
    FILL_N(f, 4);                           \
    FILL(ne);                               \
    FILL(nf);                               \
    FILL(bytes);                            \
    FILL(bad);                              \
    CHECK_ST(call, KB_INPUT_CHANGED);       \
    CHECK_UNTOUCHED_N(req, 8);              \
    CHECK_UNTOUCHED_N(f, 4);                \
    CHECK_UNTOUCHED(bad);                   \
    CHECK_COUNT(#call, ne);                 \
    CHECK_COUNT(#call, nf);                 \
    CHECK_COUNT(#call, bytes);              \
    CHECK_EQ(waiting(d, &w), 1);            \
    CHECK_ST(kb_delivery_position(d, &pos), KB_OK); \
    CHECK_EQ(pos, 4);                       \
  } while (0)
  /* Shorter: the waiting record 2 is gone; or record 3, already planned, is. */
  EXPECT_CHANGED(kb_delivery_next_request(d, r, 2, req, 8, &ne, &bytes, f, 4, &nf, 0, &bad));
  EXPECT_CHANGED(kb_delivery_next_request(d, r, 3, req, 8, &ne, &bytes, f, 4, &nf, 0, &bad));
  /* The waiting record, now refused. */
  memcpy(q, r, sizeof q);
  q[2].key_len = 0;
  EXPECT_CHANGED(kb_delivery_next_request(d, q, 10, req, 8, &ne, &bytes, f, 4, &nf, 0, &bad));
#undef EXPECT_CHANGED
  /* The right input goes on where it was: record 2 first, then 4.. */
  CHECK_ST(kb_delivery_next_request(d, r, 10, req, 8, &ne, NULL, f, 4, &nf, 0, NULL), KB_OK);
  CHECK_EQ(req[0].index, 2);
  CHECK_EQ(req[0].attempts, 1);
  CHECK_EQ(req[1].index, 4);
  memset(out, KB_OUTCOME_ACCEPTED, sizeof out);
  CHECK_ST(kb_delivery_settle(d, req, ne, out, ne, 0, term, 8, &st, NULL), KB_OK);
  CHECK_ST(documented_loop(d, r, 10, 4, accept_all, &log), KB_END);
  CHECK_ST(kb_delivery_stats(d, &rst), KB_OK);
  CHECK_EQ(rst.accepted, 10);

  /* Done with `r`, reused on a 5-record array without a reset: not KB_END with nothing
   * sent, but KB_INPUT_CHANGED. */
  FILL(ne);
  CHECK_ST(kb_delivery_next_request(d, fresh, 5, req, 8, &ne, NULL, f, 4, &nf, 0, NULL),
           KB_INPUT_CHANGED);
  CHECK_EQ(ne, 0);
  /* Reset: the whole new array is delivered, counters from 0. */
  CHECK_ST(kb_delivery_reset(d), KB_OK);
  CHECK_ST(kb_delivery_position(d, &pos), KB_OK);
  CHECK_EQ(pos, 0);
  CHECK_ST(kb_delivery_stats(d, &rst), KB_OK);
  CHECK_EQ(rst.requests, 0);
  CHECK_EQ(rst.accepted, 0);
  CHECK_ST(documented_loop(d, fresh, 5, 4, accept_all, &log), KB_END);
  CHECK_EQ(log.stored_total, 5);
  CHECK(every_record_once(&log, 5));

  /* Reset with a request in flight and an entry waiting: both dropped. */
  CHECK_ST(kb_delivery_reset(d), KB_OK);
  CHECK_ST(kb_delivery_next_request(d, r, 10, req, 8, &ne, NULL, f, 4, &nf, 0, NULL), KB_OK);
  CHECK_ST(kb_delivery_settle_all(d, req, ne, KB_ERROR_KIND_TRANSPORT, 0, term, 8, &st), KB_OK);
  CHECK_ST(kb_delivery_next_request(d, r, 10, req, 8, &ne, NULL, f, 4, &nf, 0, NULL), KB_OK);
  CHECK_ST(kb_delivery_reset(d), KB_OK);
  CHECK_EQ(waiting(d, &w), 0);
  CHECK_ST(kb_delivery_settle(d, req, ne, out, ne, 0, term, 8, &st, NULL),
           KB_NOTHING_IN_FLIGHT);
  CHECK_ST(kb_delivery_next_request(d, r, 10, req, 8, &ne, NULL, f, 4, &nf, 0, NULL), KB_OK);
  CHECK_EQ(req[0].index, 0);
  CHECK_EQ(req[0].attempts, 0);
  kb_delivery_free(d);
  CHECK_ST(kb_delivery_reset(NULL), KB_NULL_POINTER);
}

void KB_SUITE(test_delivery)(void) {
  test_error_kinds();
  test_backoff();
  test_delivery_flow();
  test_delivery_errors();
  test_delivery_loops();
  test_delivery_zero_policy();
  test_delivery_settle_checks_entries();
  test_delivery_credentials_are_terminal();
  test_delivery_input_changed();
}
