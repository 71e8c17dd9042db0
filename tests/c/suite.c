/*
 * suite.c: the assertion machinery, the suite's entry point, and the tests of the
 * functions that take no object: version, statuses, limits, sizes, keys, reasons.
 */
#include "kb_test.h"

struct kb_check_state KB_SUITE(state);

int KB_SUITE(check)(int ok, const char *what, const char *file, int line) {
  KB_SUITE(state).checks++;
  if (!ok) {
    KB_SUITE(state).failures++;
    fprintf(stderr, "[%s] %s:%d: check failed: %s\n", KB_LANG, file, line, what);
  }
  return ok;
}

int KB_SUITE(check_eq)(unsigned long long actual, unsigned long long expected, const char *a,
                       const char *b, const char *file, int line) {
  KB_SUITE(state).checks++;
  if (actual != expected) {
    KB_SUITE(state).failures++;
    fprintf(stderr, "[%s] %s:%d: %s == %s failed: %llu != %llu\n", KB_LANG, file, line, a, b,
            actual, expected);
    return 0;
  }
  return 1;
}

int KB_SUITE(check_status)(kb_status actual, kb_status expected, const char *call,
                           const char *file, int line) {
  KB_SUITE(state).checks++;
  if (actual < sizeof KB_SUITE(state).seen) {
    KB_SUITE(state).seen[actual] = 1;
  }
  if (actual != expected) {
    KB_SUITE(state).failures++;
    fprintf(stderr, "[%s] %s:%d: %s returned %u (%s), expected %u (%s)\n", KB_LANG, file, line,
            call, (unsigned)actual, kb_status_message(actual), (unsigned)expected,
            kb_status_message(expected));
    return 0;
  }
  return 1;
}

int KB_SUITE(check_str)(const char *actual, const char *expected, const char *a,
                        const char *file, int line) {
  int ok = actual != NULL && strcmp(actual, expected) == 0;
  KB_SUITE(state).checks++;
  if (!ok) {
    KB_SUITE(state).failures++;
    fprintf(stderr, "[%s] %s:%d: %s is \"%s\", expected \"%s\"\n", KB_LANG, file, line, a,
            actual ? actual : "(null)", expected);
  }
  return ok;
}

void KB_SUITE(fill)(void *p, size_t n) { memset(p, KB_SENTINEL, n); }

int KB_SUITE(untouched)(const void *p, size_t n) {
  const unsigned char *b = (const unsigned char *)p;
  size_t i;
  for (i = 0; i < n; i++) {
    if (b[i] != KB_SENTINEL) {
      return 0;
    }
  }
  return 1;
}

/* Whether `&name` (spaces allowed after the &) is in `call`, as a whole identifier. */
static int passes_address_of(const char *call, const char *name) {
  size_t len = strlen(name);
  const char *at = call;
  while ((at = strchr(at, '&')) != NULL) {
    char next;
    at++;
    while (*at == ' ') {
      at++;
    }
    if (strncmp(at, name, len) != 0) {
      continue;
    }
    /* Read only once the name matched: `at` may be closer than len to the end. */
    next = at[len];
    if (!((next >= 'a' && next <= 'z') || (next >= 'A' && next <= 'Z') ||
          (next >= '0' && next <= '9') || next == '_')) {
      return 1;
    }
  }
  return 0;
}

int KB_SUITE(check_count)(const char *call, const char *name, const void *p, size_t n,
                          const char *file, int line) {
  const unsigned char *b = (const unsigned char *)p;
  int passed = passes_address_of(call, name);
  unsigned char want = passed ? 0 : KB_SENTINEL;
  int ok = 1;
  size_t i;
  for (i = 0; i < n; i++) {
    ok &= b[i] == want;
  }
  KB_SUITE(state).checks++;
  if (!ok) {
    KB_SUITE(state).failures++;
    fprintf(stderr, "[%s] %s:%d: after the error of %s, %s is not %s\n", KB_LANG, file,
            line, call, name, passed ? "0 (a count passed is zeroed)" : "untouched");
  }
  return ok;
}

uint64_t KB_SUITE(rand_next)(uint64_t *state) {
  uint64_t x = *state ? *state : 0x9E3779B97F4A7C15ull;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  *state = x;
  return x * 0x2545F4914F6CDD1Dull;
}

/* ------------------------------------------------------------------------------------ */

/* Every status the header defines. */
static const kb_status all_statuses[] = {
    KB_OK,
    KB_BATCHES_FULL,
    KB_REFUSALS_FULL,
    KB_NEED_MORE,
    KB_END,
    KB_SEND_FIRST,
    KB_REFUSED,
    KB_ONLY_REFUSALS,
    KB_AGGREGATES_FULL,
    KB_FULL,
    KB_WAIT,
    KB_BUSY,
    KB_PAUSED,
    KB_NULL_POINTER,
    KB_NULL_ARRAY,
    KB_NULL_FIELD,
    KB_LENGTH_OVERFLOW,
    KB_ZERO_CAPACITY,
    KB_INVALID_ARGUMENT,
    KB_NOT_UTF8,
    KB_KEY_REFUSED,
    KB_NOTHING_IN_FLIGHT,
    KB_NOT_THE_REQUEST_IN_FLIGHT,
    KB_TERMINAL_ARRAY_TOO_SMALL,
    KB_OUT_OF_MEMORY,
    KB_REQUEST_IN_FLIGHT,
    KB_INPUT_CHANGED,
    KB_NOT_A_HASH_KEY,
    KB_HANDLE_ARRAY_TOO_SMALL,
    KB_LIMITS_BAD_PROFILE,
    KB_LIMITS_BAD_KEY_UNIT,
    KB_LIMITS_BAD_OPTIONS,
    KB_LIMITS_ZERO_RECORDS,
    KB_LIMITS_ZERO_REQUEST_BYTES,
    KB_LIMITS_ZERO_RECORD_BYTES,
    KB_LIMITS_RECORDS_ABOVE_SERVICE,
    KB_LIMITS_REQUEST_BYTES_ABOVE_SERVICE,
    KB_LIMITS_RECORD_BYTES_ABOVE_SERVICE,
    KB_LIMITS_RECORD_ABOVE_REQUEST,
    KB_LIMITS_STREAM_RECORD_SIZE_OUT_OF_RANGE,
    KB_LIMITS_RECORD_BYTES_ABOVE_PROFILE,
    KB_LIMITS_REQUEST_BYTES_ABOVE_PROFILE,
    KB_SHARD_MAP_EMPTY,
    KB_SHARD_MAP_REVERSED,
    KB_SHARD_MAP_NOT_CONTIGUOUS,
    KB_SHARD_MAP_INCOMPLETE,
    KB_AGGREGATION_BAD_MODE,
    KB_AGGREGATION_NEEDS_KEYS,
    KB_AGGREGATE_OUT_OF_RANGE,
    KB_BUFFER_TOO_SMALL,
    KB_AGGREGATE_DIGEST_MISMATCH,
    KB_AGGREGATE_MALFORMED,
    KB_PANIC,
};

static void test_version(void) {
  char built[64];
  snprintf(built, sizeof built, "%d.%d.%d", KB_VERSION_MAJOR, KB_VERSION_MINOR,
           KB_VERSION_PATCH);
  CHECK(kb_version() != NULL);
  CHECK_STR(kb_version(), KB_VERSION);
  CHECK_STR(kb_version(), built);
  CHECK(kb_version() == kb_version()); /* static */
}

static void test_statuses(void) {
  size_t i, j;
  /* 5 was KB_IN_FLIGHT, retired: never reused. */
  static const kb_status unknown[] = {5, 14, 50, 99, 116, 119, 133, 139, 144, 149, 156, 198, 200, 1000, UINT32_MAX};
  for (i = 0; i < ARRAY_LEN(all_statuses); i++) {
    kb_status s = all_statuses[i];
    const char *m = kb_status_message(s);
    CHECK(m != NULL);
    CHECK(m != NULL && m[0] != '\0');
    CHECK(m != NULL && strcmp(m, "unknown status") != 0);
    CHECK_EQ(kb_status_is_error(s), s >= 100);
    for (j = 0; j < i; j++) { /* distinct sentences */
      CHECK(strcmp(kb_status_message(all_statuses[j]), m) != 0);
    }
  }
  CHECK_STR(kb_status_message(KB_OK), "ok");
  for (i = 0; i < ARRAY_LEN(unknown); i++) {
    CHECK_STR(kb_status_message(unknown[i]), "unknown status");
  }
  CHECK(!kb_status_is_error(99));
  CHECK(kb_status_is_error(100));
  CHECK(kb_status_is_error(UINT32_MAX));
  CHECK_EQ(KB_OK, 0);
  CHECK_EQ(KB_ONLY_REFUSALS, 8);
  CHECK_EQ(KB_REQUEST_IN_FLIGHT, 112);
  CHECK_EQ(KB_INPUT_CHANGED, 113);
  CHECK_EQ(KB_PANIC, 199);
  CHECK(!kb_status_is_error(KB_ONLY_REFUSALS));
  CHECK(kb_status_is_error(KB_REQUEST_IN_FLIGHT));
  CHECK(kb_status_is_error(KB_INPUT_CHANGED));
}

static void test_panic_guard(void) {
  CHECK_ST(kb_test_panic(), KB_PANIC);
  /* The library goes on working after a caught panic (no global state). */
  CHECK_STR(kb_version(), KB_VERSION);
  CHECK_ST(kb_test_panic(), KB_PANIC);
}

static void test_limits_profiles(void) {
  kb_limits l;
  CHECK_ST(kb_limits_profile(KB_PROFILE_KDS, &l), KB_OK);
  CHECK_EQ(l.profile, KB_PROFILE_KDS);
  CHECK_EQ(l.max_records, 500);
  CHECK_EQ(l.max_request_bytes, 10u << 20);
  CHECK_EQ(l.max_record_bytes, 1u << 20);
  CHECK_EQ(l.key_unit, KB_KEY_UNIT_CODE_POINTS);
  CHECK_EQ(l.options, 0); /* keys validated and counted, no spanning: the defaults */
  CHECK_ST(kb_limits_check(&l), KB_OK);

  CHECK_ST(kb_limits_profile(KB_PROFILE_KDS_5MIB, &l), KB_OK);
  CHECK_EQ(l.profile, KB_PROFILE_KDS_5MIB);
  CHECK_EQ(l.max_records, 500);
  CHECK_EQ(l.max_request_bytes, 5u << 20);
  CHECK_EQ(l.max_record_bytes, 1u << 20);
  CHECK_EQ(l.options, 0);
  CHECK_ST(kb_limits_check(&l), KB_OK);

  CHECK_ST(kb_limits_profile(KB_PROFILE_FIREHOSE, &l), KB_OK);
  CHECK_EQ(l.profile, KB_PROFILE_FIREHOSE);
  CHECK_EQ(l.max_records, 500);
  CHECK_EQ(l.max_request_bytes, 4u << 20);
  CHECK_EQ(l.max_record_bytes, 1024000);
  CHECK_EQ(l.options, 0);
  CHECK_ST(kb_limits_check(&l), KB_OK);

  FILL(l);
  CHECK_ST(kb_limits_profile(3, &l), KB_LIMITS_BAD_PROFILE);
  CHECK_UNTOUCHED(l);
  CHECK_ST(kb_limits_profile(UINT32_MAX, &l), KB_LIMITS_BAD_PROFILE);
  CHECK_UNTOUCHED(l);
  CHECK_ST(kb_limits_profile(KB_PROFILE_KDS, NULL), KB_NULL_POINTER);

  CHECK_ST(kb_limits_for_stream(1024, &l), KB_OK);
  CHECK_EQ(l.profile, KB_PROFILE_KDS);
  CHECK_EQ(l.options, 0);
  CHECK_EQ(l.key_unit, KB_KEY_UNIT_CODE_POINTS);
  CHECK_EQ(l.max_record_bytes, 1u << 20);
  CHECK_EQ(l.max_request_bytes, 10u << 20);
  CHECK_ST(kb_limits_for_stream(10240, &l), KB_OK);
  CHECK_EQ(l.max_record_bytes, 10u << 20);
  CHECK_ST(kb_limits_check(&l), KB_OK);
  CHECK_ST(kb_limits_for_stream(4096, &l), KB_OK);
  CHECK_EQ(l.max_record_bytes, 4u << 20);
  {
    static const uint32_t bad[] = {0, 1, 1023, 10241, UINT32_MAX};
    size_t i;
    for (i = 0; i < ARRAY_LEN(bad); i++) {
      FILL(l);
      CHECK_ST(kb_limits_for_stream(bad[i], &l), KB_LIMITS_STREAM_RECORD_SIZE_OUT_OF_RANGE);
      CHECK_UNTOUCHED(l);
    }
  }
  CHECK_ST(kb_limits_for_stream(1024, NULL), KB_NULL_POINTER);
  CHECK_ST(kb_limits_check(NULL), KB_NULL_POINTER);
}

/*
 * Zero means safe: a kb_limits written by hand, zeroed with memset and given its three
 * caps, is valid and is the KDS profile: partition keys validated and counted, and
 * batches that never hold a refused record. KB_LIMITS_NO_PARTITION_KEYS turns keys off
 * (KDS profiles only: Firehose never has them), KB_LIMITS_SPAN_REFUSALS asks for the
 * range form.
 */
static void test_limits_zero_means_safe(void) {
  kb_limits l, kds = kb_profile(KB_PROFILE_KDS), fh = kb_profile(KB_PROFILE_FIREHOSE), v;
  kb_record r[3];
  uint32_t size;
  kb_reason reason;
  kb_planner *p;
  kb_batch b[4];
  kb_refusal f[4];
  size_t nb, nf;
  uint32_t bits;

  memset(&l, 0, sizeof l);
  l.max_records = 500;
  l.max_request_bytes = 10485760;
  l.max_record_bytes = 1048576;
  CHECK_ST(kb_limits_check(&l), KB_OK);
  CHECK(memcmp(&l, &kds, sizeof l) == 0);

  /* Keys are validated and counted. */
  r[0] = kb_rec(U8("data"), 4, NULL, 0);
  CHECK_ST(kb_record_measure(&l, &r[0], &size, &reason), KB_REFUSED);
  CHECK_EQ(reason, KB_REASON_KEY_EMPTY);
  r[0] = kb_rec(U8("data"), 4, U8("\xff"), 1);
  CHECK_ST(kb_record_measure(&l, &r[0], &size, &reason), KB_REFUSED);
  CHECK_EQ(reason, KB_REASON_KEY_NOT_UTF8);
  r[0] = kb_rec(U8("data"), 4, U8("user-1"), 6);
  CHECK_ST(kb_record_measure(&l, &r[0], &size, &reason), KB_OK);
  CHECK_EQ(size, 10);
  v = kb_profile(KB_PROFILE_KDS_5MIB);
  CHECK_ST(kb_record_measure(&v, &r[0], &size, &reason), KB_OK);
  CHECK_EQ(size, 10);

  /* KB_LIMITS_NO_PARTITION_KEYS: keys neither validated nor counted, on KDS. */
  v = l;
  v.options = KB_LIMITS_NO_PARTITION_KEYS;
  CHECK_ST(kb_record_measure(&v, &r[0], &size, &reason), KB_OK);
  CHECK_EQ(size, 4);
  r[1] = kb_rec(U8("data"), 4, U8("\xff"), 1);
  CHECK_ST(kb_record_measure(&v, &r[1], &size, &reason), KB_OK);
  CHECK_EQ(size, 4);
  /* Firehose never has keys, whatever the bits. */
  for (bits = 0; bits <= KB_LIMITS_NO_PARTITION_KEYS; bits++) {
    v = fh;
    v.options = bits;
    CHECK_ST(kb_record_measure(&v, &r[0], &size, &reason), KB_OK);
    CHECK_EQ(size, 4);
    r[1] = kb_rec(U8("data"), 4, NULL, 0);
    CHECK_ST(kb_record_measure(&v, &r[1], &size, &reason), KB_OK);
    CHECK_EQ(size, 4);
  }

  /* A refused record between two accepted ones: two requests by default, one range
   * spanning it with KB_LIMITS_SPAN_REFUSALS. */
  r[0] = kb_rec(U8("one"), 3, U8("k"), 1);
  r[1] = kb_rec(U8("two"), 3, NULL, 0);
  r[2] = kb_rec(U8("three"), 5, U8("k"), 1);
  CHECK_ST(kb_planner_new(&l, &p), KB_OK);
  CHECK_ST(kb_planner_plan(p, r, 3, b, 4, &nb, f, 4, &nf, NULL), KB_OK);
  CHECK_EQ(nb, 2);
  CHECK_EQ(nf, 1);
  CHECK_EQ(b[0].start, 0);
  CHECK_EQ(b[0].end, 1);
  CHECK_EQ(b[1].start, 2);
  CHECK_EQ(b[1].end, 3);
  CHECK_EQ(b[1].records, 1);
  kb_planner_free(p);
  v = l;
  v.options = KB_LIMITS_SPAN_REFUSALS;
  CHECK_ST(kb_planner_new(&v, &p), KB_OK);
  CHECK_ST(kb_planner_plan(p, r, 3, b, 4, &nb, f, 4, &nf, NULL), KB_OK);
  CHECK_EQ(nb, 1);
  CHECK_EQ(nf, 1);
  CHECK_EQ(b[0].start, 0);
  CHECK_EQ(b[0].end, 3);
  CHECK_EQ(b[0].records, 2);
  CHECK_EQ(f[0].index, 1);
  kb_planner_free(p);
}

/* An invalid set of limits and the status every function taking it must return. */
struct bad_limits {
  kb_limits limits;
  kb_status status;
};

static size_t bad_limits_table(struct bad_limits *t) {
  size_t n = 0;
  kb_limits kds = kb_profile(KB_PROFILE_KDS);
  kb_limits l;
#define BAD(expr, st)  \
  l = kds;             \
  expr;                \
  t[n].limits = l;     \
  t[n].status = (st);  \
  n++
  BAD(l.profile = 3, KB_LIMITS_BAD_PROFILE);
  BAD(l.profile = UINT32_MAX, KB_LIMITS_BAD_PROFILE);
  BAD(l.key_unit = 3, KB_LIMITS_BAD_KEY_UNIT);
  BAD(l.key_unit = UINT32_MAX, KB_LIMITS_BAD_KEY_UNIT);
  BAD(l.options = 8, KB_LIMITS_BAD_OPTIONS);
  BAD(l.options = KB_LIMITS_NO_PARTITION_KEYS | 0x80000000u, KB_LIMITS_BAD_OPTIONS);
  BAD(l.options = UINT32_MAX, KB_LIMITS_BAD_OPTIONS);
  BAD(l.max_records = 0, KB_LIMITS_ZERO_RECORDS);
  BAD(l.max_request_bytes = 0, KB_LIMITS_ZERO_REQUEST_BYTES);
  BAD(l.max_record_bytes = 0, KB_LIMITS_ZERO_RECORD_BYTES);
  BAD(l.max_records = 501, KB_LIMITS_RECORDS_ABOVE_SERVICE);
  BAD(l.max_request_bytes = (10u << 20) + 1, KB_LIMITS_REQUEST_BYTES_ABOVE_SERVICE);
  BAD(l.max_record_bytes = (10u << 20) + 1, KB_LIMITS_RECORD_BYTES_ABOVE_SERVICE);
  BAD((l.max_request_bytes = 1000, l.max_record_bytes = 1001), KB_LIMITS_RECORD_ABOVE_REQUEST);
  BAD((l.profile = KB_PROFILE_KDS_5MIB, l.max_request_bytes = 5u << 20,
       l.max_record_bytes = (1u << 20) + 1),
      KB_LIMITS_RECORD_BYTES_ABOVE_PROFILE);
  BAD((l.profile = KB_PROFILE_FIREHOSE, l.options = 0, l.max_request_bytes = 4u << 20,
       l.max_record_bytes = 1024001),
      KB_LIMITS_RECORD_BYTES_ABOVE_PROFILE);
  /* A profile's request ceiling: 5 MiB for KDS_5MIB, 4 MiB for Firehose. */
  BAD((l.profile = KB_PROFILE_KDS_5MIB, l.max_request_bytes = (5u << 20) + 1),
      KB_LIMITS_REQUEST_BYTES_ABOVE_PROFILE);
  BAD((l.profile = KB_PROFILE_FIREHOSE, l.max_request_bytes = (4u << 20) + 1,
       l.max_record_bytes = 1000),
      KB_LIMITS_REQUEST_BYTES_ABOVE_PROFILE);
#undef BAD
  return n;
}

static void test_limits_check(void) {
  struct bad_limits t[32];
  size_t n = bad_limits_table(t), i;
  kb_limits l = kb_profile(KB_PROFILE_KDS);
  /* The valid edges. */
  l.max_record_bytes = 10u << 20;
  CHECK_ST(kb_limits_check(&l), KB_OK);
  l = kb_profile(KB_PROFILE_KDS);
  l.max_records = 1;
  l.max_request_bytes = 1;
  l.max_record_bytes = 1;
  CHECK_ST(kb_limits_check(&l), KB_OK);
  l = kb_profile(KB_PROFILE_FIREHOSE);
  l.options = KB_LIMITS_NO_PARTITION_KEYS | KB_LIMITS_COUNT_HASH_KEY | KB_LIMITS_SPAN_REFUSALS;
  l.key_unit = KB_KEY_UNIT_UTF8_BYTES;
  CHECK_ST(kb_limits_check(&l), KB_OK);
  l = kb_profile(KB_PROFILE_KDS);
  l.options = KB_LIMITS_NO_PARTITION_KEYS | KB_LIMITS_COUNT_HASH_KEY | KB_LIMITS_SPAN_REFUSALS;
  CHECK_ST(kb_limits_check(&l), KB_OK);

  for (i = 0; i < n; i++) {
    const kb_limits *bad = &t[i].limits;
    kb_status want = t[i].status;
    kb_planner *p;
    kb_accumulator *a;
    kb_delivery *d;
    kb_lines *ln;
    kb_line_planner *lp;
    kb_retry_policy policy;
    kb_record r = kb_rec(U8("data"), 4, U8("key"), 3);
    kb_record_size rs;
    uint32_t size;
    kb_reason reason;
    uint64_t bytes;
    kb_stats stats;
    double f1, f2;
    memset(&rs, 0, sizeof rs);
    memset(&stats, 0, sizeof stats);
    rs.data_len = 4;
    rs.key_len = 3;
    rs.key_units = 3;
    kb_retry_policy_default(&policy);

    CHECK_ST(kb_limits_check(bad), want);
    FILL(p);
    CHECK_ST(kb_planner_new(bad, &p), want);
    CHECK_UNTOUCHED(p);
    FILL(a);
    CHECK_ST(kb_accumulator_new(bad, &a), want);
    CHECK_UNTOUCHED(a);
    FILL(d);
    CHECK_ST(kb_delivery_new(bad, &policy, &d), want);
    CHECK_UNTOUCHED(d);
    FILL(ln);
    CHECK_ST(kb_lines_new(bad, 0, 0, &ln), want);
    CHECK_UNTOUCHED(ln);
    FILL(lp);
    FILL(reason);
    CHECK_ST(kb_line_planner_new(bad, U8("k"), 1, 0, &lp, &reason), want);
    CHECK_UNTOUCHED(lp);
    CHECK_UNTOUCHED(reason);
    FILL(size);
    FILL(reason);
    CHECK_ST(kb_record_measure(bad, &r, &size, &reason), want);
    CHECK_UNTOUCHED(size);
    CHECK_UNTOUCHED(reason);
    CHECK_ST(kb_record_size_measure(bad, &rs, &size, &reason), want);
    CHECK_UNTOUCHED(size);
    CHECK_UNTOUCHED(reason);
    FILL(bytes);
    CHECK_ST(kb_record_bytes(bad, 1, 2, 3, &bytes), want);
    CHECK_UNTOUCHED(bytes);
    FILL(f1);
    FILL(f2);
    CHECK_ST(kb_stats_fill(&stats, bad, &f1, &f2), want);
    CHECK_UNTOUCHED(f1);
    CHECK_UNTOUCHED(f2);
  }
  {
    /* NULL limits is KB_NULL_POINTER everywhere. */
    kb_planner *p;
    kb_accumulator *a;
    kb_delivery *d;
    kb_lines *ln;
    kb_line_planner *lp;
    kb_retry_policy policy;
    kb_record r = kb_rec(U8("data"), 4, U8("key"), 3);
    uint32_t size;
    kb_reason reason;
    uint64_t bytes;
    kb_stats stats;
    double f1;
    memset(&stats, 0, sizeof stats);
    kb_retry_policy_default(&policy);
    FILL(p);
    CHECK_ST(kb_planner_new(NULL, &p), KB_NULL_POINTER);
    CHECK_UNTOUCHED(p);
    FILL(a);
    CHECK_ST(kb_accumulator_new(NULL, &a), KB_NULL_POINTER);
    CHECK_UNTOUCHED(a);
    FILL(d);
    CHECK_ST(kb_delivery_new(NULL, &policy, &d), KB_NULL_POINTER);
    CHECK_UNTOUCHED(d);
    FILL(ln);
    CHECK_ST(kb_lines_new(NULL, 0, 0, &ln), KB_NULL_POINTER);
    CHECK_UNTOUCHED(ln);
    FILL(lp);
    CHECK_ST(kb_line_planner_new(NULL, U8("k"), 1, 0, &lp, NULL), KB_NULL_POINTER);
    CHECK_UNTOUCHED(lp);
    FILL(size);
    CHECK_ST(kb_record_measure(NULL, &r, &size, &reason), KB_NULL_POINTER);
    CHECK_UNTOUCHED(size);
    FILL(bytes);
    CHECK_ST(kb_record_bytes(NULL, 1, 2, 3, &bytes), KB_NULL_POINTER);
    CHECK_UNTOUCHED(bytes);
    FILL(f1);
    CHECK_ST(kb_stats_fill(&stats, NULL, &f1, NULL), KB_NULL_POINTER);
    CHECK_UNTOUCHED(f1);
  }
}

/* A buffer that data pointers can point into: the data is never read, but the header
   asks that a record's data point to data_len bytes. */
static uint8_t *big_buffer(void) {
  static uint8_t *big;
  if (!big) {
    big = (uint8_t *)calloc((10u << 20) + 64, 1);
  }
  return big;
}

static void test_measure(void) {
  kb_limits kds = kb_profile(KB_PROFILE_KDS);
  kb_limits fh = kb_profile(KB_PROFILE_FIREHOSE);
  kb_limits l;
  const uint8_t *big = big_buffer();
  kb_record r;
  kb_record_size rs;
  uint32_t size;
  kb_reason reason;
  uint8_t key_e[512];   /* "é" x 256 */
  uint8_t key_g[4 * 129]; /* U+1D11E x 129 */
  uint8_t key_a[300];
  size_t i;
  for (i = 0; i < 256; i++) {
    key_e[2 * i] = 0xC3;
    key_e[2 * i + 1] = 0xA9;
  }
  for (i = 0; i < 129; i++) {
    key_g[4 * i] = 0xF0;
    key_g[4 * i + 1] = 0x9D;
    key_g[4 * i + 2] = 0x84;
    key_g[4 * i + 3] = 0x9E;
  }
  memset(key_a, 'a', sizeof key_a);

  r = kb_rec(U8("0123456789"), 10, U8("k"), 1);
  FILL(reason);
  CHECK_ST(kb_record_measure(&kds, &r, &size, &reason), KB_OK);
  CHECK_EQ(size, 11);
  CHECK_UNTOUCHED(reason);

  /* Exactly the record cap (data + key) is accepted; one byte more is refused. */
  r = kb_rec(big, (1u << 20) - 3, U8("key"), 3);
  CHECK_ST(kb_record_measure(&kds, &r, &size, &reason), KB_OK);
  CHECK_EQ(size, 1u << 20);
  r.data_len++;
  FILL(size);
  CHECK_ST(kb_record_measure(&kds, &r, &size, &reason), KB_REFUSED);
  CHECK_EQ(reason, KB_REASON_RECORD_TOO_LARGE);
  CHECK_UNTOUCHED(size);
  /* A 10 MiB stream takes a 10 MiB record. */
  CHECK_ST(kb_limits_for_stream(10240, &l), KB_OK);
  r = kb_rec(big, (10u << 20) - 1, U8("k"), 1);
  CHECK_ST(kb_record_measure(&l, &r, &size, &reason), KB_OK);
  CHECK_EQ(size, 10u << 20);
  r.data_len++;
  CHECK_ST(kb_record_measure(&l, &r, &size, &reason), KB_REFUSED);
  CHECK_EQ(reason, KB_REASON_RECORD_TOO_LARGE);
  /* Firehose: no key, the size is the data length, up to 1,024,000 bytes. */
  r = kb_rec(big, 1024000, NULL, 0);
  CHECK_ST(kb_record_measure(&fh, &r, &size, &reason), KB_OK);
  CHECK_EQ(size, 1024000);
  r.data_len++;
  CHECK_ST(kb_record_measure(&fh, &r, &size, &reason), KB_REFUSED);
  CHECK_EQ(reason, KB_REASON_RECORD_TOO_LARGE);

  /* Each reason. */
  r = kb_rec(U8("d"), 1, U8("\xff"), 1);
  CHECK_ST(kb_record_measure(&kds, &r, &size, &reason), KB_REFUSED);
  CHECK_EQ(reason, KB_REASON_KEY_NOT_UTF8);
  r = kb_rec(big, 2u << 20, U8("\xc3"), 1); /* not UTF-8 comes before too large */
  CHECK_ST(kb_record_measure(&kds, &r, &size, &reason), KB_REFUSED);
  CHECK_EQ(reason, KB_REASON_KEY_NOT_UTF8);
  r = kb_rec(U8("d"), 1, NULL, 0);
  CHECK_ST(kb_record_measure(&kds, &r, &size, &reason), KB_REFUSED);
  CHECK_EQ(reason, KB_REASON_KEY_EMPTY);
  r = kb_rec(U8("d"), 1, key_a, 257);
  CHECK_ST(kb_record_measure(&kds, &r, &size, &reason), KB_REFUSED);
  CHECK_EQ(reason, KB_REASON_KEY_TOO_LONG);
  r = kb_rec(U8("d"), 1, key_a, 256);
  CHECK_ST(kb_record_measure(&kds, &r, &size, &reason), KB_OK);
  CHECK_EQ(size, 257);
  r = kb_rec(U8("d"), 1, U8("k"), 1);
  r.hash_key = U8("01");
  r.hash_key_len = 2;
  CHECK_ST(kb_record_measure(&kds, &r, &size, &reason), KB_REFUSED);
  CHECK_EQ(reason, KB_REASON_HASH_KEY_INVALID);
  r.hash_key = U8("");
  r.hash_key_len = 0; /* non-NULL and empty: an empty, invalid hash key */
  CHECK_ST(kb_record_measure(&kds, &r, &size, &reason), KB_REFUSED);
  CHECK_EQ(reason, KB_REASON_HASH_KEY_INVALID);
  r.hash_key = U8("340282366920938463463374607431768211455");
  r.hash_key_len = 39;
  CHECK_ST(kb_record_measure(&kds, &r, &size, &reason), KB_OK);
  CHECK_EQ(size, 2); /* the hash key is not counted by default */
  l = kds;
  l.options |= KB_LIMITS_COUNT_HASH_KEY;
  CHECK_ST(kb_record_measure(&l, &r, &size, &reason), KB_OK);
  CHECK_EQ(size, 41);

  /* Key units: "é" x 256 is 256 code points and UTF-16 units but 512 bytes. */
  r = kb_rec(U8("d"), 1, key_e, 512);
  l = kds;
  l.key_unit = KB_KEY_UNIT_CODE_POINTS;
  CHECK_ST(kb_record_measure(&l, &r, &size, &reason), KB_OK);
  CHECK_EQ(size, 513);
  l.key_unit = KB_KEY_UNIT_UTF16_UNITS;
  CHECK_ST(kb_record_measure(&l, &r, &size, &reason), KB_OK);
  l.key_unit = KB_KEY_UNIT_UTF8_BYTES;
  CHECK_ST(kb_record_measure(&l, &r, &size, &reason), KB_REFUSED);
  CHECK_EQ(reason, KB_REASON_KEY_TOO_LONG);
  /* U+1D11E x 128: 128 code points, 256 UTF-16 units; x 129: 258 units. */
  r = kb_rec(U8("d"), 1, key_g, 4 * 128);
  l.key_unit = KB_KEY_UNIT_UTF16_UNITS;
  CHECK_ST(kb_record_measure(&l, &r, &size, &reason), KB_OK);
  r.key_len = 4 * 129;
  CHECK_ST(kb_record_measure(&l, &r, &size, &reason), KB_REFUSED);
  CHECK_EQ(reason, KB_REASON_KEY_TOO_LONG);
  l.key_unit = KB_KEY_UNIT_CODE_POINTS;
  CHECK_ST(kb_record_measure(&l, &r, &size, &reason), KB_OK);
  CHECK_EQ(size, 1 + 4 * 129);

  /* The size form agrees with the record form. */
  r = kb_rec(U8("d"), 1, key_e, 512);
  FILL(rs);
  CHECK_ST(kb_record_size_of(&r, KB_KEY_UNIT_CODE_POINTS, &rs), KB_OK);
  CHECK_EQ(rs.data_len, 1);
  CHECK_EQ(rs.key_len, 512);
  CHECK_EQ(rs.key_units, 256);
  CHECK_EQ(rs.hash_key_len, 0);
  CHECK_EQ(rs.flags, 0);
  CHECK_ST(kb_record_size_measure(&kds, &rs, &size, &reason), KB_OK);
  CHECK_EQ(size, 513);
  CHECK_ST(kb_record_size_of(&r, KB_KEY_UNIT_UTF8_BYTES, &rs), KB_OK);
  CHECK_EQ(rs.key_units, 512);
  CHECK_ST(kb_record_size_measure(&kds, &rs, &size, &reason), KB_REFUSED);
  CHECK_EQ(reason, KB_REASON_KEY_TOO_LONG);
  CHECK_ST(kb_record_size_of(&r, KB_KEY_UNIT_UTF16_UNITS, &rs), KB_OK);
  CHECK_EQ(rs.key_units, 256);
  r = kb_rec(big, 5000, U8("\xff\xfe"), 2);
  r.hash_key = U8("x");
  r.hash_key_len = 1;
  CHECK_ST(kb_record_size_of(&r, KB_KEY_UNIT_CODE_POINTS, &rs), KB_OK);
  CHECK_EQ(rs.data_len, 5000);
  CHECK_EQ(rs.flags, KB_RECORD_KEY_NOT_UTF8 | KB_RECORD_HASH_KEY_INVALID);
  CHECK_EQ(rs.hash_key_len, 1);
  CHECK_ST(kb_record_size_measure(&kds, &rs, &size, &reason), KB_REFUSED);
  CHECK_EQ(reason, KB_REASON_KEY_NOT_UTF8);
  rs.flags = KB_RECORD_HASH_KEY_INVALID;
  rs.key_units = 2;
  CHECK_ST(kb_record_size_measure(&kds, &rs, &size, &reason), KB_REFUSED);
  CHECK_EQ(reason, KB_REASON_HASH_KEY_INVALID);
  rs.flags = 0;
  CHECK_ST(kb_record_size_measure(&kds, &rs, &size, &reason), KB_OK);
  CHECK_EQ(size, 5002);
  rs.key_len = 0;
  CHECK_ST(kb_record_size_measure(&kds, &rs, &size, &reason), KB_REFUSED);
  CHECK_EQ(reason, KB_REASON_KEY_EMPTY);
  rs.flags = 0x100; /* other bits are ignored */
  rs.key_len = 2;
  CHECK_ST(kb_record_size_measure(&kds, &rs, &size, &reason), KB_OK);
  rs.data_len = UINT64_MAX;
  CHECK_ST(kb_record_size_measure(&kds, &rs, &size, &reason), KB_REFUSED);
  CHECK_EQ(reason, KB_REASON_RECORD_TOO_LARGE);
  r = kb_rec(U8("d"), 1, U8("k"), 1);
  r.hash_key = U8("");
  r.hash_key_len = 0;
  CHECK_ST(kb_record_size_of(&r, KB_KEY_UNIT_CODE_POINTS, &rs), KB_OK);
  CHECK_EQ(rs.flags, KB_RECORD_HASH_KEY_INVALID);

  /* Bad input: NULL pointers, NULL fields, overflowing lengths, bad key units. */
  r = kb_rec(U8("d"), 1, U8("k"), 1);
  FILL(size);
  FILL(reason);
  CHECK_ST(kb_record_measure(&kds, NULL, &size, &reason), KB_NULL_POINTER);
  CHECK_ST(kb_record_measure(&kds, &r, NULL, &reason), KB_NULL_POINTER);
  CHECK_ST(kb_record_measure(&kds, &r, &size, NULL), KB_NULL_POINTER);
  CHECK_UNTOUCHED(size);
  CHECK_UNTOUCHED(reason);
  memset(&rs, 0, sizeof rs);
  CHECK_ST(kb_record_size_measure(&kds, NULL, &size, &reason), KB_NULL_POINTER);
  CHECK_ST(kb_record_size_measure(&kds, &rs, NULL, &reason), KB_NULL_POINTER);
  CHECK_ST(kb_record_size_measure(&kds, &rs, &size, NULL), KB_NULL_POINTER);
  CHECK_ST(kb_record_size_measure(NULL, &rs, &size, &reason), KB_NULL_POINTER);
  CHECK_UNTOUCHED(size);
  CHECK_UNTOUCHED(reason);
  {
    kb_record bad[5];
    bad[0] = kb_rec(NULL, 3, U8("k"), 1);
    bad[1] = kb_rec(U8("d"), 1, NULL, 2);
    bad[2] = kb_rec(U8("d"), 1, U8("k"), 1);
    bad[2].hash_key_len = 1; /* NULL hash key with a length */
    bad[3] = kb_rec(big, SIZE_MAX, U8("kk"), 2);
    bad[4] = kb_rec(big, SIZE_MAX / 2, key_a, SIZE_MAX / 2);
    bad[4].hash_key = key_a;
    bad[4].hash_key_len = SIZE_MAX / 2; /* each fits an object, the sum does not fit */
    for (i = 0; i < 5; i++) {
      kb_status want = i < 3 ? KB_NULL_FIELD : KB_LENGTH_OVERFLOW;
      FILL(size);
      FILL(reason);
      FILL(rs);
      CHECK_ST(kb_record_measure(&kds, &bad[i], &size, &reason), want);
      CHECK_UNTOUCHED(size);
      CHECK_UNTOUCHED(reason);
      CHECK_ST(kb_record_size_of(&bad[i], KB_KEY_UNIT_CODE_POINTS, &rs), want);
      CHECK_UNTOUCHED(rs);
    }
  }
  FILL(rs);
  CHECK_ST(kb_record_size_of(&r, 3, &rs), KB_INVALID_ARGUMENT);
  CHECK_ST(kb_record_size_of(&r, UINT32_MAX, &rs), KB_INVALID_ARGUMENT);
  CHECK_ST(kb_record_size_of(NULL, KB_KEY_UNIT_CODE_POINTS, &rs), KB_NULL_POINTER);
  CHECK_UNTOUCHED(rs);
  CHECK_ST(kb_record_size_of(&r, KB_KEY_UNIT_CODE_POINTS, NULL), KB_NULL_POINTER);
  /* (NULL, 0) fields are empty. */
  r = kb_rec(NULL, 0, NULL, 0);
  CHECK_ST(kb_record_size_of(&r, KB_KEY_UNIT_CODE_POINTS, &rs), KB_OK);
  CHECK_EQ(rs.data_len, 0);
  CHECK_EQ(rs.key_len, 0);
  CHECK_ST(kb_record_measure(&fh, &r, &size, &reason), KB_OK);
  CHECK_EQ(size, 0);
}

static void test_sizes_keys_reasons(void) {
  kb_limits kds = kb_profile(KB_PROFILE_KDS);
  kb_limits fh = kb_profile(KB_PROFILE_FIREHOSE);
  kb_limits l = kds;
  uint64_t out;
  size_t units;
  bool valid;
  size_t i;
  static const char *const names[] = {"key_not_utf8", "key_empty", "key_too_long",
                                      "hash_key_invalid", "record_too_large"};

  CHECK_ST(kb_record_bytes(&kds, 1000, 10, 39, &out), KB_OK);
  CHECK_EQ(out, 1010);
  l.options |= KB_LIMITS_COUNT_HASH_KEY;
  CHECK_ST(kb_record_bytes(&l, 1000, 10, 39, &out), KB_OK);
  CHECK_EQ(out, 1049);
  CHECK_ST(kb_record_bytes(&fh, 1000, 10, 39, &out), KB_OK);
  CHECK_EQ(out, 1000);
  CHECK_ST(kb_record_bytes(&l, UINT64_MAX, 5, 5, &out), KB_OK);
  CHECK_EQ(out, UINT64_MAX);
  CHECK_ST(kb_record_bytes(&kds, 1, 1, 1, NULL), KB_NULL_POINTER);

  CHECK_EQ(kb_base64_len(0), 0);
  CHECK_EQ(kb_base64_len(1), 4);
  CHECK_EQ(kb_base64_len(3), 4);
  CHECK_EQ(kb_base64_len(4), 8);
  CHECK_EQ(kb_base64_len(1u << 20), 1398104);
  CHECK_EQ(kb_base64_len(UINT64_MAX), UINT64_MAX);

  CHECK_ST(kb_key_units(U8("cl\xc3\xa9"), 4, KB_KEY_UNIT_CODE_POINTS, &units), KB_OK);
  CHECK_EQ(units, 3);
  CHECK_ST(kb_key_units(U8("cl\xc3\xa9"), 4, KB_KEY_UNIT_UTF16_UNITS, &units), KB_OK);
  CHECK_EQ(units, 3);
  CHECK_ST(kb_key_units(U8("cl\xc3\xa9"), 4, KB_KEY_UNIT_UTF8_BYTES, &units), KB_OK);
  CHECK_EQ(units, 4);
  CHECK_ST(kb_key_units(U8("\xf0\x9d\x84\x9e"), 4, KB_KEY_UNIT_CODE_POINTS, &units), KB_OK);
  CHECK_EQ(units, 1);
  CHECK_ST(kb_key_units(U8("\xf0\x9d\x84\x9e"), 4, KB_KEY_UNIT_UTF16_UNITS, &units), KB_OK);
  CHECK_EQ(units, 2);
  CHECK_ST(kb_key_units(NULL, 0, KB_KEY_UNIT_CODE_POINTS, &units), KB_OK);
  CHECK_EQ(units, 0);
  FILL(units);
  CHECK_ST(kb_key_units(U8("\xff"), 1, KB_KEY_UNIT_CODE_POINTS, &units), KB_NOT_UTF8);
  CHECK_UNTOUCHED(units);
  CHECK_ST(kb_key_units(NULL, 3, KB_KEY_UNIT_CODE_POINTS, &units), KB_NULL_ARRAY);
  CHECK_UNTOUCHED(units);
  CHECK_ST(kb_key_units(U8("a"), 1, 3, &units), KB_INVALID_ARGUMENT);
  CHECK_UNTOUCHED(units);
  CHECK_ST(kb_key_units(U8("a"), 1, KB_KEY_UNIT_CODE_POINTS, NULL), KB_NULL_POINTER);
  CHECK_ST(kb_key_units(U8("a"), SIZE_MAX, KB_KEY_UNIT_CODE_POINTS, &units),
           KB_LENGTH_OVERFLOW);
  CHECK_UNTOUCHED(units);

  CHECK_ST(kb_hash_key_is_valid(U8("340282366920938463463374607431768211455"), 39, &valid),
           KB_OK);
  CHECK(valid);
  CHECK_ST(kb_hash_key_is_valid(U8("340282366920938463463374607431768211456"), 39, &valid),
           KB_OK);
  CHECK(!valid);
  CHECK_ST(kb_hash_key_is_valid(U8("0"), 1, &valid), KB_OK);
  CHECK(valid);
  CHECK_ST(kb_hash_key_is_valid(U8("01"), 2, &valid), KB_OK);
  CHECK(!valid);
  CHECK_ST(kb_hash_key_is_valid(U8("12a"), 3, &valid), KB_OK);
  CHECK(!valid);
  CHECK_ST(kb_hash_key_is_valid(NULL, 0, &valid), KB_OK);
  CHECK(!valid);
  FILL(valid);
  CHECK_ST(kb_hash_key_is_valid(NULL, 2, &valid), KB_NULL_ARRAY);
  CHECK_UNTOUCHED(valid);
  CHECK_ST(kb_hash_key_is_valid(U8("1"), 1, NULL), KB_NULL_POINTER);

  CHECK_ST(kb_fnv1a(NULL, 0, &out), KB_OK);
  CHECK_EQ(out, 0xcbf29ce484222325ull);
  CHECK_ST(kb_fnv1a(U8("a"), 1, &out), KB_OK);
  CHECK_EQ(out, 0xaf63dc4c8601ec8cull);
  CHECK_ST(kb_fnv1a(U8("foobar"), 6, &out), KB_OK);
  CHECK_EQ(out, 0x85944171f73967e8ull);
  FILL(out);
  CHECK_ST(kb_fnv1a(NULL, 1, &out), KB_NULL_ARRAY);
  CHECK_UNTOUCHED(out);
  CHECK_ST(kb_fnv1a(U8("a"), 1, NULL), KB_NULL_POINTER);

  for (i = 0; i < 5; i++) {
    const char *m = kb_reason_message((uint32_t)i);
    CHECK_STR(kb_reason_name((uint32_t)i), names[i]);
    CHECK(m != NULL && strcmp(m, "unknown reason") != 0 && m[0] != '\0');
  }
  CHECK_EQ(KB_REASON_KEY_NOT_UTF8, 0);
  CHECK_EQ(KB_REASON_RECORD_TOO_LARGE, 4);
  CHECK_STR(kb_reason_name(5), "unknown");
  CHECK_STR(kb_reason_name(UINT32_MAX), "unknown");
  CHECK_STR(kb_reason_message(5), "unknown reason");
  CHECK_STR(kb_reason_message(UINT32_MAX), "unknown reason");

  {
    kb_stats s;
    double bf, rf;
    memset(&s, 0, sizeof s);
    CHECK_ST(kb_stats_fill(&s, &kds, &bf, &rf), KB_OK);
    CHECK(bf == 0.0 && rf == 0.0);
    s.batches = 2;
    s.records = 500;
    s.bytes = 10u << 20;
    CHECK_ST(kb_stats_fill(&s, &kds, &bf, &rf), KB_OK);
    CHECK(bf == 0.5);
    CHECK(rf == 0.5);
    CHECK_ST(kb_stats_fill(&s, &kds, NULL, &rf), KB_OK);
    CHECK_ST(kb_stats_fill(&s, &kds, &bf, NULL), KB_OK);
    CHECK_ST(kb_stats_fill(&s, &kds, NULL, NULL), KB_OK);
    FILL(bf);
    CHECK_ST(kb_stats_fill(NULL, &kds, &bf, NULL), KB_NULL_POINTER);
    CHECK_UNTOUCHED(bf);
  }
}

/* kb_record_sizes_fill: the column form gives what kb_record_size_of gives per record. */
static void test_sizes_fill(void) {
  /* Keys "k1", "" (empty), "\xC3\xA9t\xC3\xA9" (2 code points' worth of bytes: 5),
   * "\xFF" (not UTF-8); hash keys: none, "42", none, "01" (invalid). */
  static const uint8_t keys[] = {'k', '1', 0xC3, 0xA9, 't', 0xC3, 0xA9, 0xFF};
  static const size_t key_lens[] = {2, 0, 5, 1};
  static const uint64_t data_lens[] = {10, 20, 30, 40};
  static const uint8_t hash_keys[] = {'4', '2', '0', '1'};
  static const size_t hash_key_lens[] = {KB_NO_HASH_KEY, 2, KB_NO_HASH_KEY, 2};
  kb_record_size out[4], one;
  size_t i, at = 0, hat = 0, bad;
  CHECK_ST(kb_record_sizes_fill(4, data_lens, keys, sizeof keys, key_lens, hash_keys,
                                sizeof hash_keys, hash_key_lens, KB_KEY_UNIT_CODE_POINTS, out,
                                &bad),
           KB_OK);
  for (i = 0; i < 4; i++) {
    kb_record r;
    memset(&r, 0, sizeof r);
    r.data = keys; /* any non-NULL pointer: data is never read */
    r.data_len = (size_t)data_lens[i];
    r.key = key_lens[i] ? keys + at : NULL;
    r.key_len = key_lens[i];
    at += key_lens[i];
    if (hash_key_lens[i] != KB_NO_HASH_KEY) {
      r.hash_key = hash_keys + hat;
      r.hash_key_len = hash_key_lens[i];
      hat += hash_key_lens[i];
    }
    CHECK_ST(kb_record_size_of(&r, KB_KEY_UNIT_CODE_POINTS, &one), KB_OK);
    CHECK(memcmp(&one, &out[i], sizeof one) == 0);
  }
  CHECK_EQ(out[2].key_units, 3);
  CHECK(out[3].flags & KB_RECORD_KEY_NOT_UTF8);
  /* No hash keys at all, and an empty call. */
  CHECK_ST(kb_record_sizes_fill(4, data_lens, keys, sizeof keys, key_lens, NULL, 0, NULL,
                                KB_KEY_UNIT_UTF8_BYTES, out, &bad),
           KB_OK);
  CHECK_EQ(out[1].hash_key_len, 0);
  CHECK_EQ(out[2].key_units, 5);
  CHECK_ST(kb_record_sizes_fill(0, NULL, NULL, 0, NULL, NULL, 0, NULL, 0, NULL, &bad), KB_OK);
  /* Errors write nothing but bad_index. */
  FILL_N(out, 4);
  FILL(bad);
  CHECK_ST(kb_record_sizes_fill(4, data_lens, keys, 7, key_lens, NULL, 0, NULL, 0, out, &bad),
           KB_LENGTH_OVERFLOW);
  CHECK_EQ(bad, 3);
  CHECK_UNTOUCHED_N(out, 4);
  CHECK_ST(kb_record_sizes_fill(4, data_lens, keys, sizeof keys, key_lens, hash_keys, 3,
                                hash_key_lens, 0, out, &bad),
           KB_LENGTH_OVERFLOW);
  CHECK_EQ(bad, 3);
  CHECK_UNTOUCHED_N(out, 4);
  CHECK_ST(kb_record_sizes_fill(4, NULL, keys, sizeof keys, key_lens, NULL, 0, NULL, 0, out,
                                &bad),
           KB_NULL_ARRAY);
  CHECK_ST(kb_record_sizes_fill(4, data_lens, keys, sizeof keys, key_lens, NULL, 0, NULL, 0,
                                NULL, &bad),
           KB_NULL_ARRAY);
  CHECK_ST(kb_record_sizes_fill(4, data_lens, keys, sizeof keys, key_lens, NULL, 0, NULL, 9, out,
                                &bad),
           KB_INVALID_ARGUMENT);
  CHECK_UNTOUCHED_N(out, 4);
}

void KB_SUITE(test_basics)(void) {
  test_version();
  test_statuses();
  test_panic_guard();
  test_limits_profiles();
  test_limits_check();
  test_limits_zero_means_safe();
  test_measure();
  test_sizes_keys_reasons();
  test_sizes_fill();
}

/* The engine's tests (suite_engine.c). */
void KB_SUITE(test_engine)(void);

unsigned long KB_SUITE(suite_run)(void) {
  size_t i;
  memset(&KB_SUITE(state), 0, sizeof KB_SUITE(state));
  KB_SUITE(test_basics)();
  KB_SUITE(test_planner)();
  KB_SUITE(test_lines)();
  KB_SUITE(test_delivery)();
  KB_SUITE(test_shards)();
  KB_SUITE(test_aggregate)();
  KB_SUITE(test_engine)();
  /* Every status was returned by some call, but the one no test can provoke. */
  for (i = 0; i < ARRAY_LEN(all_statuses); i++) {
    kb_status s = all_statuses[i];
    if (s == KB_OUT_OF_MEMORY) {
      continue;
    }
    if (!CHECK(KB_SUITE(state).seen[s])) {
      fprintf(stderr, "[%s]   status %u (%s) was never returned\n", KB_LANG, (unsigned)s,
              kb_status_message(s));
    }
  }
  fprintf(stderr, "[%s] C suite: %lu checks, %lu failed\n", KB_LANG, KB_SUITE(state).checks,
          KB_SUITE(state).failures);
  return KB_SUITE(state).failures;
}

unsigned long KB_SUITE(suite_checks)(void) { return KB_SUITE(state).checks; }
