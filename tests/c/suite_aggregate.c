/*
 * Aggregation in the KPL's format: planning (resumable, the same plan whatever the
 * capacities), encoding, the outer keys, and decoding back to the input in every mode;
 * the worked example byte for byte; every bad argument; damaged and truncated records.
 */
#include "kb_test.h"

#define MAXN 300
#define DATA_MAX 600

static kb_hash_key128 hk(uint64_t high, uint64_t low) {
  kb_hash_key128 k;
  k.high = high;
  k.low = low;
  return k;
}

static kb_aggregation how(uint32_t mode, uint32_t max_bytes, const kb_shard_range *shards,
                          size_t n_shards) {
  kb_aggregation a;
  memset(&a, 0, sizeof a);
  a.mode = mode;
  a.max_bytes = max_bytes;
  a.shards = shards;
  a.n_shards = n_shards;
  return a;
}

/* Three shards split at 2^64 and 2^127. */
static void three_shards(kb_shard_range out[3]) {
  out[0].start = hk(0, 0);
  out[0].end = hk(0, UINT64_MAX);
  out[1].start = hk(1, 0);
  out[1].end = hk(0x7FFFFFFFFFFFFFFFULL, UINT64_MAX);
  out[2].start = hk(0x8000000000000000ULL, 0);
  out[2].end = hk(UINT64_MAX, UINT64_MAX);
}

/* The MD5 digest of `bytes`, through kb_hash_key_of (the hash key of a partition key is
   its MD5 digest read big-endian). */
static void md5(const uint8_t *bytes, size_t len, uint8_t out[16]) {
  kb_hash_key128 key;
  int i;
  key.high = key.low = 0;
  CHECK_ST(kb_hash_key_of(bytes, len, NULL, KB_NO_HASH_KEY, &key), KB_OK);
  for (i = 0; i < 8; i++) {
    out[i] = (uint8_t)(key.high >> (56 - 8 * i));
    out[8 + i] = (uint8_t)(key.low >> (56 - 8 * i));
  }
}

static const uint8_t MAGIC[4] = {0xF3, 0x89, 0x9A, 0xC2};

/* magic + protobuf + MD5(protobuf) into out; returns the length. */
static size_t frame(const uint8_t *protobuf, size_t len, uint8_t *out) {
  memcpy(out, MAGIC, 4);
  memcpy(out + 4, protobuf, len);
  md5(protobuf, len, out + 4 + len);
  return 4 + len + 16;
}

/* ---- Generated inputs ---- */

struct input {
  kb_record recs[MAXN];
  uint8_t data[MAXN][DATA_MAX];
  size_t n;
};

static const char *const KEYS[] = {"k0", "k1", "k2", "key-3", "\xc3\xa9t\xc3\xa9", "k5"};
static const char *const HASH_KEYS[] = {"12345", "340282366920938463463374607431768211455",
                                        "170141183460469231731687303715884105728", "x1"};

/* Records with runs of keys, a few explicit hash keys (one invalid), a few empty keys,
   and data lengths from 0 to DATA_MAX (some over a 300-byte cap). */
static void generate(struct input *in, size_t n, uint64_t seed) {
  size_t i, j;
  size_t key = 0;
  in->n = n;
  for (i = 0; i < n; i++) {
    uint64_t r = KB_SUITE(rand_next)(&seed);
    kb_record *rec = &in->recs[i];
    size_t len = (r >> 8) % 16 == 0 ? (size_t)((r >> 16) % DATA_MAX) : (size_t)((r >> 16) % 40);
    for (j = 0; j < len; j++) {
      in->data[i][j] = (uint8_t)((i * 7 + j * 3) & 0x7F); /* never the magic's 0xF3 */
    }
    if (r % 4 == 0) {
      key = (size_t)((r >> 40) % ARRAY_LEN(KEYS));
    }
    *rec = kb_rec(len ? in->data[i] : NULL, len, U8(KEYS[key]), strlen(KEYS[key]));
    if ((r >> 4) % 29 == 0) {
      rec->key_len = 0; /* refused: empty key */
    }
    if ((r >> 32) % 9 == 0) {
      const char *h = HASH_KEYS[(r >> 50) % ARRAY_LEN(HASH_KEYS)];
      rec->hash_key = U8(h);
      rec->hash_key_len = strlen(h);
    }
  }
}

/* ---- Planning ---- */

/* The whole plan: in one call (caps n + 1) when seed is 0, else in calls with random
   capacities of 1 to 3, each resumed from *next. Returns KB_OK or the first error. */
static kb_status plan_all(const kb_limits *l, const kb_aggregation *a, const kb_record *recs,
                          size_t n, uint64_t seed, kb_aggregate *aggs, size_t *na,
                          kb_refusal *refs, size_t *nr) {
  size_t from = 0, calls = 0;
  *na = *nr = 0;
  for (;;) {
    kb_aggregate small_a[3];
    kb_refusal small_r[3];
    size_t cap_a = seed ? 1 + (size_t)(KB_SUITE(rand_next)(&seed) % 3) : n + 1;
    size_t cap_r = seed ? 1 + (size_t)(KB_SUITE(rand_next)(&seed) % 3) : n + 1;
    kb_aggregate *out_a = seed ? small_a : aggs;
    kb_refusal *out_r = seed ? small_r : refs;
    size_t got_a = 99, got_r = 99, next = 99, bad = 99;
    kb_status st = kb_aggregate_plan(l, a, recs, n, from, out_a, cap_a, &got_a, out_r, cap_r,
                                     &got_r, &next, &bad);
    if (kb_status_is_error(st)) {
      return st;
    }
    if (!CHECK(got_a <= cap_a && got_r <= cap_r && next >= from && next <= n) ||
        !CHECK(++calls <= 4 * n + 4)) {
      return KB_PANIC;
    }
    if (seed) {
      memcpy(aggs + *na, small_a, got_a * sizeof *aggs);
      memcpy(refs + *nr, small_r, got_r * sizeof *refs);
    }
    *na += got_a;
    *nr += got_r;
    from = next;
    if (st == KB_OK) {
      CHECK_EQ(next, n);
      return KB_OK;
    }
    if (!CHECK(st == KB_AGGREGATES_FULL || st == KB_REFUSALS_FULL)) {
      return st;
    }
  }
}

static int agg_eq(const kb_aggregate *x, const kb_aggregate *y) {
  return x->start == y->start && x->end == y->end && x->data_len == y->data_len &&
         x->size == y->size && x->hash_key.high == y->hash_key.high &&
         x->hash_key.low == y->hash_key.low && x->layout == y->layout;
}

static int bytes_eq(const uint8_t *a, size_t a_len, const uint8_t *b, size_t b_len) {
  return a_len == b_len && (a_len == 0 || memcmp(a, b, a_len) == 0);
}

static size_t shard_of(const kb_record *r, const kb_shard_range *shards) {
  kb_hash_key128 key;
  size_t index = 99;
  key.high = key.low = 0;
  kb_hash_key_of(r->key, r->key_len, r->hash_key, r->hash_key ? r->hash_key_len : KB_NO_HASH_KEY,
                 &key);
  kb_shard_index(shards, 3, key, &index, NULL);
  return index;
}

/* Encodes, keys and decodes every aggregate, and compares the user records with the
   input; checks that the plan covers the input in order, and each mode's grouping. */
static void check_round_trip(const kb_limits *l, const kb_aggregation *a,
                             const struct input *in, const kb_aggregate *aggs, size_t na,
                             const kb_refusal *refs, size_t nr) {
  size_t p = 0, ia = 0, ir = 0, i, j;
  uint32_t cap = a->max_bytes == 0 || a->max_bytes > l->max_record_bytes ? l->max_record_bytes
                                                                         : a->max_bytes;
  while (p < in->n) {
    if (ia < na && aggs[ia].start == p) {
      p = aggs[ia++].end;
    } else if (ir < nr && refs[ir].index == p) {
      p = refs[ir++].index + 1;
    } else {
      CHECK(!"the plan covers the input in order");
      return;
    }
  }
  CHECK(p == in->n && ia == na && ir == nr);

  for (i = 0; i < na; i++) {
    const kb_aggregate *g = &aggs[i];
    uint8_t *buf = (uint8_t *)malloc(g->data_len ? g->data_len : 1);
    size_t written = 99, key_len = 99, hk_len = 99, count = 99, off = 99;
    const uint8_t *key = NULL;
    uint8_t digits[KB_HASH_KEY_DIGITS_MAX];
    kb_record outer, user;
    kb_deaggregator it;
    uint32_t size = 0;
    kb_reason why;
    int plain = g->layout == KB_LAYOUT_PLAIN;
    if (!CHECK(buf != NULL)) {
      return;
    }
    CHECK(g->start < g->end && g->end <= in->n);
    CHECK(plain ? g->end - g->start == 1 : g->end - g->start >= 2);
    CHECK(g->size <= l->max_record_bytes);
    CHECK(plain || g->size <= cap);
    if (a->mode == KB_AGGREGATE_SHARED_HASH_KEY) CHECK(plain || g->layout == KB_LAYOUT_SHARED_HASH_KEY);
    if (a->mode == KB_AGGREGATE_ONE_KEY) CHECK(plain || g->layout == KB_LAYOUT_ONE_KEY);
    if (a->mode == KB_AGGREGATE_PER_SHARD) CHECK(plain || g->layout == KB_LAYOUT_OWN_KEYS);
    if (!CHECK_ST(kb_aggregate_encode(in->recs, in->n, g, buf, g->data_len, &written), KB_OK)) {
      free(buf);
      continue;
    }
    CHECK_EQ(written, g->data_len);
    CHECK_ST(kb_aggregate_keys(in->recs, in->n, g, &key, &key_len, digits, &hk_len), KB_OK);
    CHECK(hk_len <= KB_HASH_KEY_DIGITS_MAX);
    outer = kb_rec(buf, written, key, key_len);
    if (hk_len) {
      outer.hash_key = digits;
      outer.hash_key_len = hk_len;
    }
    /* The encoded record measures what the plan said. */
    CHECK_ST(kb_record_measure(l, &outer, &size, &why), KB_OK);
    CHECK_EQ(size, g->size);
    if (plain || g->layout == KB_LAYOUT_ONE_KEY) {
      CHECK(key == in->recs[g->start].key);
    } else {
      CHECK(bytes_eq(key, key_len, U8("a"), 1));
      CHECK(hk_len > 0);
    }
    CHECK_ST(kb_deaggregate(&it, outer.data, outer.data_len, outer.key, outer.key_len,
                            outer.hash_key, outer.hash_key_len, &count, &off),
             KB_OK);
    CHECK_EQ(count, g->end - g->start);
    for (j = g->start; j < g->end; j++) {
      const kb_record *want = &in->recs[j];
      if (!CHECK_ST(kb_deaggregate_next(&it, &user), KB_OK)) {
        break;
      }
      CHECK(bytes_eq(user.data, user.data_len, want->data, want->data_len));
      CHECK(bytes_eq(user.key, user.key_len, want->key, want->key_len));
      if (g->layout == KB_LAYOUT_SHARED_HASH_KEY) {
        /* Every user record points to the aggregate's hash key. */
        CHECK(user.hash_key != NULL && bytes_eq(user.hash_key, user.hash_key_len, digits, hk_len));
      } else if (want->hash_key) {
        CHECK(user.hash_key != NULL &&
              bytes_eq(user.hash_key, user.hash_key_len, want->hash_key, want->hash_key_len));
      } else {
        CHECK(user.hash_key == NULL && user.hash_key_len == 0);
      }
      /* The grouping each mode promises. */
      if (a->mode == KB_AGGREGATE_ONE_KEY) {
        CHECK(bytes_eq(want->key, want->key_len, in->recs[g->start].key,
                       in->recs[g->start].key_len));
      }
      if (a->mode == KB_AGGREGATE_PER_SHARD) {
        CHECK_EQ(shard_of(want, a->shards), shard_of(&in->recs[g->start], a->shards));
      }
    }
    CHECK_ST(kb_deaggregate_next(&it, &user), KB_END);
    CHECK_ST(kb_deaggregate_next(&it, &user), KB_END);
    free(buf);
  }
}

static void test_plan_round_trips(void) {
  static struct input in;
  static kb_aggregate one_a[MAXN + 1], many_a[MAXN + 1];
  static kb_refusal one_r[MAXN + 1], many_r[MAXN + 1];
  kb_shard_range shards[3];
  kb_limits limits[2];
  uint32_t max_bytes[3] = {0, 120, 51200};
  uint32_t mode;
  size_t li, mi, i;
  uint64_t seed;
  three_shards(shards);
  limits[0] = kb_profile(KB_PROFILE_KDS);
  limits[1] = kb_custom(KB_PROFILE_KDS, 500, 1 << 20, 300);
  limits[1].options = KB_LIMITS_COUNT_HASH_KEY;
  for (seed = 1; seed <= 6; seed++) {
    generate(&in, seed == 1 ? 3 : seed == 2 ? 1 : MAXN, seed * 0x9E37u);
    for (li = 0; li < ARRAY_LEN(limits); li++) {
      for (mode = 0; mode < 3; mode++) {
        for (mi = 0; mi < ARRAY_LEN(max_bytes); mi++) {
          kb_aggregation a = how(mode, max_bytes[mi], shards, 3);
          size_t n1a, n1r, n2a, n2r;
          if (!CHECK_ST(plan_all(&limits[li], &a, in.recs, in.n, 0, one_a, &n1a, one_r, &n1r),
                        KB_OK)) {
            continue;
          }
          /* Small arrays, resumed from *next: exactly the plan of one big call. */
          if (!CHECK_ST(plan_all(&limits[li], &a, in.recs, in.n, seed * 31 + mode + mi,
                                 many_a, &n2a, many_r, &n2r),
                        KB_OK)) {
            continue;
          }
          CHECK_EQ(n2a, n1a);
          CHECK_EQ(n2r, n1r);
          for (i = 0; i < n1a && i < n2a; i++) {
            if (!CHECK(agg_eq(&one_a[i], &many_a[i]))) {
              break;
            }
          }
          for (i = 0; i < n1r && i < n2r; i++) {
            if (!CHECK(kb_refusal_eq(&one_r[i], &many_r[i]))) {
              break;
            }
          }
          check_round_trip(&limits[li], &a, &in, one_a, n1a, one_r, n1r);
        }
      }
    }
  }
  /* Many small records of one key: far fewer aggregates than records, in each mode. */
  {
    kb_limits kds = kb_profile(KB_PROFILE_KDS);
    for (i = 0; i < MAXN; i++) {
      in.recs[i] = kb_rec(U8("a small log line"), 16, U8("host-1"), 6);
    }
    in.n = MAXN;
    for (mode = 0; mode < 3; mode++) {
      kb_aggregation a = how(mode, 0, shards, 3);
      size_t na, nr;
      CHECK_ST(plan_all(&kds, &a, in.recs, in.n, 0, one_a, &na, one_r, &nr), KB_OK);
      CHECK_EQ(na, 1);
      CHECK_EQ(nr, 0);
      check_round_trip(&kds, &a, &in, one_a, na, one_r, nr);
    }
  }
}

static void test_plan_arguments(void) {
  kb_limits kds = kb_profile(KB_PROFILE_KDS);
  kb_aggregation a = how(KB_AGGREGATE_SHARED_HASH_KEY, 0, NULL, 0);
  kb_record recs[4];
  kb_aggregate aggs[4];
  kb_refusal refs[4];
  size_t na, nr, next, bad;
  kb_shard_range shards[3], bad_map[3];
  three_shards(shards);
  recs[0] = kb_rec(U8("one"), 3, U8("k"), 1);
  recs[1] = kb_rec(U8("two"), 3, U8("k"), 1);
  recs[2] = kb_rec(U8("three"), 5, U8("k"), 1);
  recs[3] = kb_rec(U8("four"), 4, U8("k"), 1);

#define PLAN_FAILS(call, status)                                        \
  do {                                                                  \
    FILL(aggs);                                                         \
    FILL(refs);                                                         \
    FILL(na);                                                           \
    FILL(nr);                                                           \
    FILL(next);                                                         \
    CHECK_ST(call, status);                                             \
    CHECK_COUNT(#call, na);                                             \
    CHECK_COUNT(#call, nr);                                             \
    CHECK_COUNT(#call, next);                                           \
    CHECK_UNTOUCHED(aggs);                                              \
    CHECK_UNTOUCHED(refs);                                              \
  } while (0)

  /* NULLs, NULL arrays with a length, zero capacities, overflowing lengths. */
  PLAN_FAILS(kb_aggregate_plan(NULL, &a, recs, 4, 0, aggs, 4, &na, refs, 4, &nr, &next, &bad),
             KB_NULL_POINTER);
  PLAN_FAILS(kb_aggregate_plan(&kds, NULL, recs, 4, 0, aggs, 4, &na, refs, 4, &nr, &next, &bad),
             KB_NULL_POINTER);
  PLAN_FAILS(kb_aggregate_plan(&kds, &a, recs, 4, 0, aggs, 4, NULL, refs, 4, &nr, &next, &bad),
             KB_NULL_POINTER);
  PLAN_FAILS(kb_aggregate_plan(&kds, &a, recs, 4, 0, aggs, 4, &na, refs, 4, NULL, &next, &bad),
             KB_NULL_POINTER);
  PLAN_FAILS(kb_aggregate_plan(&kds, &a, recs, 4, 0, aggs, 4, &na, refs, 4, &nr, NULL, &bad),
             KB_NULL_POINTER);
  PLAN_FAILS(kb_aggregate_plan(&kds, &a, NULL, 4, 0, aggs, 4, &na, refs, 4, &nr, &next, &bad),
             KB_NULL_ARRAY);
  PLAN_FAILS(kb_aggregate_plan(&kds, &a, recs, 4, 0, NULL, 4, &na, refs, 4, &nr, &next, &bad),
             KB_NULL_ARRAY);
  PLAN_FAILS(kb_aggregate_plan(&kds, &a, recs, 4, 0, aggs, 4, &na, NULL, 4, &nr, &next, &bad),
             KB_NULL_ARRAY);
  PLAN_FAILS(kb_aggregate_plan(&kds, &a, recs, 4, 0, aggs, 0, &na, refs, 4, &nr, &next, &bad),
             KB_ZERO_CAPACITY);
  PLAN_FAILS(kb_aggregate_plan(&kds, &a, recs, 4, 0, aggs, 4, &na, refs, 0, &nr, &next, &bad),
             KB_ZERO_CAPACITY);
  PLAN_FAILS(kb_aggregate_plan(&kds, &a, recs, SIZE_MAX, 0, aggs, 4, &na, refs, 4, &nr, &next,
                               &bad),
             KB_LENGTH_OVERFLOW);
  PLAN_FAILS(kb_aggregate_plan(&kds, &a, recs, 4, 0, aggs, SIZE_MAX, &na, refs, 4, &nr, &next,
                               &bad),
             KB_LENGTH_OVERFLOW);
  /* from past the end. */
  PLAN_FAILS(kb_aggregate_plan(&kds, &a, recs, 4, 5, aggs, 4, &na, refs, 4, &nr, &next, &bad),
             KB_INVALID_ARGUMENT);
  PLAN_FAILS(kb_aggregate_plan(&kds, &a, NULL, 0, 1, aggs, 4, &na, refs, 4, &nr, &next, &bad),
             KB_INVALID_ARGUMENT);
  /* Invalid limits, limits without keys, an unknown mode. */
  {
    kb_limits l = kds;
    l.max_records = 0;
    PLAN_FAILS(kb_aggregate_plan(&l, &a, recs, 4, 0, aggs, 4, &na, refs, 4, &nr, &next, &bad),
               KB_LIMITS_ZERO_RECORDS);
    l = kds;
    l.profile = 7;
    PLAN_FAILS(kb_aggregate_plan(&l, &a, recs, 4, 0, aggs, 4, &na, refs, 4, &nr, &next, &bad),
               KB_LIMITS_BAD_PROFILE);
    l = kb_profile(KB_PROFILE_FIREHOSE);
    PLAN_FAILS(kb_aggregate_plan(&l, &a, recs, 4, 0, aggs, 4, &na, refs, 4, &nr, &next, &bad),
               KB_AGGREGATION_NEEDS_KEYS);
    l = kds;
    l.options = KB_LIMITS_NO_PARTITION_KEYS;
    PLAN_FAILS(kb_aggregate_plan(&l, &a, recs, 4, 0, aggs, 4, &na, refs, 4, &nr, &next, &bad),
               KB_AGGREGATION_NEEDS_KEYS);
  }
  {
    kb_aggregation m = how(3, 0, NULL, 0);
    PLAN_FAILS(kb_aggregate_plan(&kds, &m, recs, 4, 0, aggs, 4, &na, refs, 4, &nr, &next, &bad),
               KB_AGGREGATION_BAD_MODE);
    m.mode = UINT32_MAX;
    PLAN_FAILS(kb_aggregate_plan(&kds, &m, recs, 4, 0, aggs, 4, &na, refs, 4, &nr, &next, &bad),
               KB_AGGREGATION_BAD_MODE);
  }
  /* PER_SHARD with bad maps: each named, with the range; other modes ignore the map. */
  {
    kb_aggregation m = how(KB_AGGREGATE_PER_SHARD, 0, NULL, 0);
    PLAN_FAILS(kb_aggregate_plan(&kds, &m, recs, 4, 0, aggs, 4, &na, refs, 4, &nr, &next, &bad),
               KB_SHARD_MAP_EMPTY);
    m.n_shards = 3;
    PLAN_FAILS(kb_aggregate_plan(&kds, &m, recs, 4, 0, aggs, 4, &na, refs, 4, &nr, &next, &bad),
               KB_NULL_ARRAY);
    m.shards = bad_map;
    memcpy(bad_map, shards, sizeof shards);
    bad_map[1].end = hk(0, 1);
    FILL(bad);
    PLAN_FAILS(kb_aggregate_plan(&kds, &m, recs, 4, 0, aggs, 4, &na, refs, 4, &nr, &next, &bad),
               KB_SHARD_MAP_REVERSED);
    CHECK_EQ(bad, 1);
    memcpy(bad_map, shards, sizeof shards);
    bad_map[2].start = hk(0x8000000000000000ULL, 1);
    PLAN_FAILS(kb_aggregate_plan(&kds, &m, recs, 4, 0, aggs, 4, &na, refs, 4, &nr, &next, &bad),
               KB_SHARD_MAP_NOT_CONTIGUOUS);
    CHECK_EQ(bad, 2);
    m.shards = shards;
    m.n_shards = 2;
    PLAN_FAILS(kb_aggregate_plan(&kds, &m, recs, 4, 0, aggs, 4, &na, refs, 4, &nr, &next, &bad),
               KB_SHARD_MAP_INCOMPLETE);
    m.n_shards = SIZE_MAX;
    PLAN_FAILS(kb_aggregate_plan(&kds, &m, recs, 4, 0, aggs, 4, &na, refs, 4, &nr, &next, &bad),
               KB_LENGTH_OVERFLOW);
    m.shards = NULL;
    m.n_shards = 5;
    m.mode = KB_AGGREGATE_ONE_KEY;
    CHECK_ST(kb_aggregate_plan(&kds, &m, recs, 4, 0, aggs, 4, &na, refs, 4, &nr, &next, &bad),
             KB_OK);
    CHECK_EQ(na, 1);
  }

  /* The zeroed kb_aggregation is the shared hash key, up to the record cap. */
  {
    kb_aggregation zero;
    memset(&zero, 0, sizeof zero);
    CHECK_ST(kb_aggregate_plan(&kds, &zero, recs, 4, 0, aggs, 4, &na, refs, 4, &nr, &next, NULL),
             KB_OK);
    CHECK(na == 1 && nr == 0 && next == 4);
    CHECK(aggs[0].start == 0 && aggs[0].end == 4 && aggs[0].layout == KB_LAYOUT_SHARED_HASH_KEY);
    /* from == n: nothing more, KB_OK. */
    FILL(aggs);
    CHECK_ST(kb_aggregate_plan(&kds, &zero, recs, 4, 4, aggs, 4, &na, refs, 4, &nr, &next, NULL),
             KB_OK);
    CHECK(na == 0 && nr == 0 && next == 4);
    CHECK_UNTOUCHED(aggs);
    CHECK_ST(kb_aggregate_plan(&kds, &zero, NULL, 0, 0, aggs, 4, &na, refs, 4, &nr, &next, NULL),
             KB_OK);
    CHECK(na == 0 && nr == 0 && next == 0);
    /* One-entry arrays: KB_AGGREGATES_FULL, then KB_REFUSALS_FULL. Under a 30-byte cap
       no two of these records share an aggregate (the framing alone is 20 bytes). */
    {
      kb_limits small = kb_custom(KB_PROFILE_KDS, 500, 1 << 20, 30);
      kb_record r[5];
      r[0] = kb_rec(U8("0123456789"), 10, U8("k"), 1);
      r[1] = kb_rec(U8("0123456789"), 10, U8("k"), 1);
      r[2] = kb_rec(U8("0123456789"), 10, U8("k"), 1);
      r[3] = kb_rec(U8("x"), 1, U8(""), 0); /* empty key: refused */
      r[4] = kb_rec(U8("x"), 1, U8(""), 0);
      CHECK_ST(kb_aggregate_plan(&small, &zero, r, 5, 0, aggs, 1, &na, refs, 1, &nr, &next, NULL),
               KB_AGGREGATES_FULL);
      CHECK(na == 1 && nr == 0 && next == 1);
      CHECK(aggs[0].start == 0 && aggs[0].end == 1 && aggs[0].layout == KB_LAYOUT_PLAIN);
      CHECK(aggs[0].data_len == 10 && aggs[0].size == 11);
      CHECK_ST(kb_aggregate_plan(&small, &zero, r, 5, 1, aggs, 1, &na, refs, 1, &nr, &next, NULL),
               KB_AGGREGATES_FULL);
      CHECK(na == 1 && nr == 0 && next == 2 && aggs[0].start == 1);
      CHECK_ST(kb_aggregate_plan(&small, &zero, r, 5, 2, aggs, 1, &na, refs, 1, &nr, &next, NULL),
               KB_REFUSALS_FULL);
      CHECK(na == 1 && nr == 1 && next == 4 && aggs[0].start == 2 && refs[0].index == 3);
      CHECK_EQ(refs[0].reason, KB_REASON_KEY_EMPTY);
      CHECK_ST(kb_aggregate_plan(&small, &zero, r, 5, 4, aggs, 1, &na, refs, 1, &nr, &next, NULL),
               KB_OK);
      CHECK(na == 0 && nr == 1 && next == 5 && refs[0].index == 4);
    }
  }

  /* Unreadable records: never refused as too large. A call stops before one after
     writing what came before (KB_AGGREGATES_FULL); the next call reports it. */
  {
    kb_record r[4];
    memcpy(r, recs, sizeof r);
    r[2].data = NULL; /* with data_len 5 */
    CHECK_ST(kb_aggregate_plan(&kds, &a, r, 4, 0, aggs, 4, &na, refs, 4, &nr, &next, &bad),
             KB_AGGREGATES_FULL);
    CHECK(na == 1 && nr == 0 && next == 2 && aggs[0].start == 0 && aggs[0].end == 2);
    FILL(bad);
    PLAN_FAILS(kb_aggregate_plan(&kds, &a, r, 4, 2, aggs, 4, &na, refs, 4, &nr, &next, &bad),
               KB_NULL_FIELD);
    CHECK_EQ(bad, 2);
    /* A record after it: planned once the caller starts past it. */
    CHECK_ST(kb_aggregate_plan(&kds, &a, r, 4, 3, aggs, 4, &na, refs, 4, &nr, &next, &bad),
             KB_OK);
    CHECK(na == 1 && aggs[0].start == 3 && aggs[0].layout == KB_LAYOUT_PLAIN);
    r[2] = recs[2];
    r[0].key_len = SIZE_MAX;
    PLAN_FAILS(kb_aggregate_plan(&kds, &a, r, 4, 0, aggs, 4, &na, refs, 4, &nr, &next, &bad),
               KB_LENGTH_OVERFLOW);
    CHECK_EQ(bad, 0);
    /* bad_index may be NULL. */
    PLAN_FAILS(kb_aggregate_plan(&kds, &a, r, 4, 0, aggs, 4, &na, refs, 4, &nr, &next, NULL),
               KB_LENGTH_OVERFLOW);
    /* In every mode. */
    {
      uint32_t mode;
      r[0] = recs[0];
      r[1].hash_key_len = 3; /* NULL hash key with a length */
      for (mode = 0; mode < 3; mode++) {
        kb_aggregation m = how(mode, 0, shards, 3);
        CHECK_ST(kb_aggregate_plan(&kds, &m, r, 4, 0, aggs, 4, &na, refs, 4, &nr, &next, &bad),
                 KB_AGGREGATES_FULL);
        CHECK(na == 1 && next == 1 && aggs[0].layout == KB_LAYOUT_PLAIN);
        FILL(bad);
        PLAN_FAILS(kb_aggregate_plan(&kds, &m, r, 4, 1, aggs, 4, &na, refs, 4, &nr, &next, &bad),
                   KB_NULL_FIELD);
        CHECK_EQ(bad, 1);
      }
    }
  }
#undef PLAN_FAILS
}

/* The worked example: one user record, key "pk1", data "hi", in an OWN_KEYS aggregate
   made by hand: 33 bytes. */
static void test_worked_example(void) {
  static const uint8_t protobuf[13] = {0x0A, 0x03, 0x70, 0x6B, 0x31, 0x1A, 0x06,
                                       0x08, 0x00, 0x1A, 0x02, 0x68, 0x69};
  static const uint8_t digest[16] = {0xe7, 0x79, 0x9b, 0x81, 0xbb, 0xf6, 0x23, 0x66,
                                     0x71, 0xb4, 0x26, 0xda, 0x55, 0x6e, 0x52, 0xf8};
  kb_record rec = kb_rec(U8("hi"), 2, U8("pk1"), 3);
  kb_aggregate g;
  uint8_t out[40], digits[KB_HASH_KEY_DIGITS_MAX];
  size_t written = 99, key_len = 99, hk_len = 99, count = 99, off = 99;
  const uint8_t *key = NULL;
  kb_hash_key128 parsed;
  kb_deaggregator it;
  kb_record user;
  memset(&g, 0, sizeof g);
  g.start = 0;
  g.end = 1;
  g.layout = KB_LAYOUT_OWN_KEYS;
  g.data_len = 33;
  CHECK_ST(kb_hash_key_of(U8("pk1"), 3, NULL, KB_NO_HASH_KEY, &g.hash_key), KB_OK);
  memset(out, 0x5A, sizeof out);
  CHECK_ST(kb_aggregate_encode(&rec, 1, &g, out, sizeof out, &written), KB_OK);
  CHECK_EQ(written, 33);
  CHECK(memcmp(out, MAGIC, 4) == 0);
  CHECK(memcmp(out + 4, protobuf, sizeof protobuf) == 0);
  CHECK(memcmp(out + 17, digest, sizeof digest) == 0);
  CHECK(out[33] == 0x5A); /* nothing past data_len */
  /* The outer keys: "a", and the aggregate's hash key in decimal. */
  CHECK_ST(kb_aggregate_keys(&rec, 1, &g, &key, &key_len, digits, &hk_len), KB_OK);
  CHECK(bytes_eq(key, key_len, U8("a"), 1));
  CHECK_ST(kb_hash_key_parse(digits, hk_len, &parsed), KB_OK);
  CHECK(parsed.high == g.hash_key.high && parsed.low == g.hash_key.low);
  CHECK(hk_len == KB_HASH_KEY_DIGITS_MAX || digits[0] != '0');
  /* And back. */
  CHECK_ST(kb_deaggregate(&it, out, written, key, key_len, digits, hk_len, &count, &off), KB_OK);
  CHECK_EQ(count, 1);
  CHECK_ST(kb_deaggregate_next(&it, &user), KB_OK);
  CHECK(bytes_eq(user.data, user.data_len, U8("hi"), 2));
  CHECK(bytes_eq(user.key, user.key_len, U8("pk1"), 3));
  CHECK(user.hash_key == NULL && user.hash_key_len == 0);
  CHECK(user.data >= out && user.data + user.data_len <= out + written);
  CHECK_ST(kb_deaggregate_next(&it, &user), KB_END);
  /* The same bytes from the framing helper (its MD5 is kb_hash_key_of's). */
  {
    uint8_t again[40];
    CHECK_EQ(frame(protobuf, sizeof protobuf, again), 33);
    CHECK(memcmp(again, out, 33) == 0);
  }
  /* ONE_KEY of the same record: the record's own keys, no explicit hash key. */
  g.layout = KB_LAYOUT_ONE_KEY;
  CHECK_ST(kb_aggregate_keys(&rec, 1, &g, &key, &key_len, digits, &hk_len), KB_OK);
  CHECK(key == rec.key && key_len == 3 && hk_len == 0);
  /* PLAIN: the data as it is; (NULL, 0) for an empty record. */
  g.layout = KB_LAYOUT_PLAIN;
  g.data_len = 2;
  CHECK_ST(kb_aggregate_encode(&rec, 1, &g, out, 2, &written), KB_OK);
  CHECK(written == 2 && memcmp(out, "hi", 2) == 0);
  {
    kb_record empty = kb_rec(NULL, 0, U8("k"), 1);
    g.data_len = 0;
    CHECK_ST(kb_aggregate_encode(&empty, 1, &g, NULL, 0, &written), KB_OK);
    CHECK_EQ(written, 0);
  }
}

static void test_encode_and_keys_arguments(void) {
  kb_record recs[3];
  kb_aggregate g, bad_g;
  uint8_t out[64], digits[KB_HASH_KEY_DIGITS_MAX];
  size_t written, key_len, hk_len;
  const uint8_t *key;
  recs[0] = kb_rec(U8("hi"), 2, U8("pk1"), 3);
  recs[1] = kb_rec(U8("yo"), 2, U8("pk2"), 3);
  recs[2] = kb_rec(U8("ho"), 2, U8("pk1"), 3);
  memset(&g, 0, sizeof g);
  g.start = 0;
  g.end = 3;
  g.layout = KB_LAYOUT_OWN_KEYS;
  /* 4 + (5 + 5) + 3 * 8 + 16: two keys, three sub-records. */
  g.data_len = 4 + 10 + 24 + 16;
  CHECK_ST(kb_aggregate_encode(recs, 3, &g, out, sizeof out, &written), KB_OK);
  CHECK_EQ(written, g.data_len);

#define ENCODE_FAILS(call, status) \
  do {                             \
    FILL(out);                     \
    FILL(written);                 \
    CHECK_ST(call, status);        \
    CHECK_COUNT(#call, written);   \
    CHECK_UNTOUCHED(out);          \
  } while (0)
#define KEYS_FAIL(call, status)    \
  do {                             \
    FILL(key);                     \
    FILL(key_len);                 \
    FILL(hk_len);                  \
    FILL(digits);                  \
    CHECK_ST(call, status);        \
    CHECK_COUNT(#call, key_len);   \
    CHECK_COUNT(#call, hk_len);    \
    CHECK_UNTOUCHED(key);          \
    CHECK_UNTOUCHED(digits);       \
  } while (0)

  ENCODE_FAILS(kb_aggregate_encode(recs, 3, NULL, out, sizeof out, &written), KB_NULL_POINTER);
  ENCODE_FAILS(kb_aggregate_encode(recs, 3, &g, out, sizeof out, NULL), KB_NULL_POINTER);
  ENCODE_FAILS(kb_aggregate_encode(NULL, 3, &g, out, sizeof out, &written), KB_NULL_ARRAY);
  ENCODE_FAILS(kb_aggregate_encode(recs, 3, &g, NULL, sizeof out, &written), KB_NULL_ARRAY);
  ENCODE_FAILS(kb_aggregate_encode(recs, SIZE_MAX, &g, out, sizeof out, &written),
               KB_LENGTH_OVERFLOW);
  ENCODE_FAILS(kb_aggregate_encode(recs, 3, &g, out, SIZE_MAX, &written), KB_LENGTH_OVERFLOW);
  /* A buffer one byte short, or none. */
  ENCODE_FAILS(kb_aggregate_encode(recs, 3, &g, out, g.data_len - 1, &written),
               KB_BUFFER_TOO_SMALL);
  ENCODE_FAILS(kb_aggregate_encode(recs, 3, &g, NULL, 0, &written), KB_BUFFER_TOO_SMALL);
  /* Ranges: empty, reversed, past the end, a plain one of two records. */
  bad_g = g;
  bad_g.end = 0;
  ENCODE_FAILS(kb_aggregate_encode(recs, 3, &bad_g, out, sizeof out, &written),
               KB_AGGREGATE_OUT_OF_RANGE);
  KEYS_FAIL(kb_aggregate_keys(recs, 3, &bad_g, &key, &key_len, digits, &hk_len),
            KB_AGGREGATE_OUT_OF_RANGE);
  bad_g.start = 2;
  bad_g.end = 1;
  ENCODE_FAILS(kb_aggregate_encode(recs, 3, &bad_g, out, sizeof out, &written),
               KB_AGGREGATE_OUT_OF_RANGE);
  bad_g = g;
  bad_g.end = 4;
  ENCODE_FAILS(kb_aggregate_encode(recs, 3, &bad_g, out, sizeof out, &written),
               KB_AGGREGATE_OUT_OF_RANGE);
  KEYS_FAIL(kb_aggregate_keys(recs, 3, &bad_g, &key, &key_len, digits, &hk_len),
            KB_AGGREGATE_OUT_OF_RANGE);
  bad_g.start = SIZE_MAX;
  bad_g.end = SIZE_MAX;
  ENCODE_FAILS(kb_aggregate_encode(recs, 3, &bad_g, out, sizeof out, &written),
               KB_AGGREGATE_OUT_OF_RANGE);
  bad_g = g;
  bad_g.layout = KB_LAYOUT_PLAIN;
  bad_g.end = 2;
  ENCODE_FAILS(kb_aggregate_encode(recs, 3, &bad_g, out, sizeof out, &written),
               KB_AGGREGATE_OUT_OF_RANGE);
  KEYS_FAIL(kb_aggregate_keys(recs, 3, &bad_g, &key, &key_len, digits, &hk_len),
            KB_AGGREGATE_OUT_OF_RANGE);
  /* A layout that is no KB_LAYOUT_* value. */
  bad_g = g;
  bad_g.layout = 4;
  ENCODE_FAILS(kb_aggregate_encode(recs, 3, &bad_g, out, sizeof out, &written),
               KB_INVALID_ARGUMENT);
  KEYS_FAIL(kb_aggregate_keys(recs, 3, &bad_g, &key, &key_len, digits, &hk_len),
            KB_INVALID_ARGUMENT);
  bad_g.layout = 255;
  ENCODE_FAILS(kb_aggregate_encode(recs, 3, &bad_g, out, sizeof out, &written),
               KB_INVALID_ARGUMENT);
  /* The input changed: another length, or a key ONE_KEY cannot share. */
  bad_g = g;
  bad_g.data_len += 1;
  ENCODE_FAILS(kb_aggregate_encode(recs, 3, &bad_g, out, sizeof out, &written),
               KB_INPUT_CHANGED);
  bad_g = g;
  bad_g.layout = KB_LAYOUT_ONE_KEY;
  ENCODE_FAILS(kb_aggregate_encode(recs, 3, &bad_g, out, sizeof out, &written),
               KB_INPUT_CHANGED);
  /* Unreadable records: their check's status. */
  {
    kb_record r[3];
    memcpy(r, recs, sizeof r);
    r[1].data = NULL;
    ENCODE_FAILS(kb_aggregate_encode(r, 3, &g, out, sizeof out, &written), KB_NULL_FIELD);
    r[1] = recs[1];
    r[2].hash_key_len = SIZE_MAX;
    r[2].hash_key = U8("1");
    ENCODE_FAILS(kb_aggregate_encode(r, 3, &g, out, sizeof out, &written), KB_LENGTH_OVERFLOW);
    /* keys reads only the first record. */
    CHECK_ST(kb_aggregate_keys(r, 3, &g, &key, &key_len, digits, &hk_len), KB_OK);
    r[0].key = NULL;
    KEYS_FAIL(kb_aggregate_keys(r, 3, &g, &key, &key_len, digits, &hk_len), KB_NULL_FIELD);
    /* A plain record whose hash key is not a valid one was not planned from these. */
    bad_g = g;
    bad_g.layout = KB_LAYOUT_PLAIN;
    bad_g.end = 1;
    r[0] = recs[0];
    r[0].hash_key = U8("0123");
    r[0].hash_key_len = 4;
    KEYS_FAIL(kb_aggregate_keys(r, 3, &bad_g, &key, &key_len, digits, &hk_len),
              KB_INPUT_CHANGED);
    r[0].hash_key = U8("340282366920938463463374607431768211455123");
    r[0].hash_key_len = 42;
    KEYS_FAIL(kb_aggregate_keys(r, 3, &bad_g, &key, &key_len, digits, &hk_len),
              KB_INPUT_CHANGED);
    /* A valid one is copied out. */
    r[0].hash_key = U8("340282366920938463463374607431768211455");
    r[0].hash_key_len = 39;
    CHECK_ST(kb_aggregate_keys(r, 3, &bad_g, &key, &key_len, digits, &hk_len), KB_OK);
    CHECK(bytes_eq(digits, hk_len, r[0].hash_key, 39) && key == r[0].key && key_len == 3);
  }
  /* NULLs. */
  KEYS_FAIL(kb_aggregate_keys(recs, 3, NULL, &key, &key_len, digits, &hk_len), KB_NULL_POINTER);
  KEYS_FAIL(kb_aggregate_keys(recs, 3, &g, NULL, &key_len, digits, &hk_len), KB_NULL_POINTER);
  KEYS_FAIL(kb_aggregate_keys(recs, 3, &g, &key, NULL, digits, &hk_len), KB_NULL_POINTER);
  KEYS_FAIL(kb_aggregate_keys(recs, 3, &g, &key, &key_len, NULL, &hk_len), KB_NULL_POINTER);
  KEYS_FAIL(kb_aggregate_keys(recs, 3, &g, &key, &key_len, digits, NULL), KB_NULL_POINTER);
  KEYS_FAIL(kb_aggregate_keys(NULL, 3, &g, &key, &key_len, digits, &hk_len), KB_NULL_ARRAY);
  KEYS_FAIL(kb_aggregate_keys(recs, SIZE_MAX, &g, &key, &key_len, digits, &hk_len),
            KB_LENGTH_OVERFLOW);
#undef ENCODE_FAILS
#undef KEYS_FAIL
}

/* Whether every view of `user` lies within [base, base + len). */
static int within(const kb_record *user, const uint8_t *base, size_t len) {
  const uint8_t *end = base + len;
  return (user->data_len == 0 || (user->data >= base && user->data + user->data_len <= end)) &&
         (user->key_len == 0 || (user->key >= base && user->key + user->key_len <= end)) &&
         (user->hash_key == NULL || user->hash_key_len == 0 ||
          (user->hash_key >= base && user->hash_key + user->hash_key_len <= end));
}

/* Drains `it`: the number of user records given, each checked to lie within `data`
   (when `aggregate`), or -1 when the count is off. */
static long drain(kb_deaggregator *it, const uint8_t *data, size_t len, size_t count,
                  int aggregate) {
  kb_record user;
  size_t got = 0;
  kb_status st;
  while ((st = kb_deaggregate_next(it, &user)) == KB_OK) {
    if (aggregate && !CHECK(within(&user, data, len))) {
      return -1;
    }
    if (++got > count) {
      return -1;
    }
  }
  CHECK_ST(st, KB_END);
  return got == count ? (long)got : -1;
}

static void test_deaggregate(void) {
  static const char *const keys[6] = {"alpha", "beta", "alpha", "gamma", "beta", "delta"};
  kb_limits kds = kb_profile(KB_PROFILE_KDS);
  kb_aggregation a = how(KB_AGGREGATE_SHARED_HASH_KEY, 0, NULL, 0);
  kb_record recs[6], user;
  kb_aggregate g;
  kb_refusal refs[2];
  size_t na = 0, nr = 0, next = 0, written = 0, key_len = 0, hk_len = 0, count, off, i;
  const uint8_t *key = NULL;
  uint8_t digits[KB_HASH_KEY_DIGITS_MAX], buf[256], copy[256];
  kb_deaggregator it;
  uint64_t seed = 0xD1CE;
  for (i = 0; i < 6; i++) {
    recs[i] = kb_rec(U8("payload-0123456789"), 8 + i, U8(keys[i]), strlen(keys[i]));
  }
  recs[3].hash_key = U8("42");
  recs[3].hash_key_len = 2; /* another hash key: ends the shared aggregate */
  CHECK_ST(kb_aggregate_plan(&kds, &a, recs, 3, 0, &g, 1, &na, refs, 2, &nr, &next, NULL),
           KB_OK);
  CHECK(na == 1 && g.end == 3 && g.data_len <= sizeof buf);
  CHECK_ST(kb_aggregate_encode(recs, 6, &g, buf, sizeof buf, &written), KB_OK);
  CHECK_ST(kb_aggregate_keys(recs, 6, &g, &key, &key_len, digits, &hk_len), KB_OK);

  /* A zeroed iterator gives KB_END, and NULLs are errors. */
  memset(&it, 0, sizeof it);
  CHECK_ST(kb_deaggregate_next(&it, &user), KB_END);
  CHECK_ST(kb_deaggregate_next(&it, &user), KB_END);
  CHECK_ST(kb_deaggregate_next(NULL, &user), KB_NULL_POINTER);
  CHECK_ST(kb_deaggregate_next(&it, NULL), KB_NULL_POINTER);

  /* Bad arguments: *n_records is 0 and the iterator is zeroed (it gives KB_END). */
#define DEAGG_FAILS(call, status)                                                   \
  do {                                                                              \
    CHECK_ST(kb_deaggregate(&it, buf, written, key, key_len, digits, hk_len, &count, \
                            NULL),                                                  \
             KB_OK);                                                                \
    FILL(count);                                                                    \
    CHECK_ST(call, status);                                                         \
    CHECK_COUNT(#call, count);                                                      \
    CHECK_ST(kb_deaggregate_next(&it, &user), KB_END);                              \
  } while (0)
  DEAGG_FAILS(kb_deaggregate(&it, buf, written, key, key_len, digits, hk_len, NULL, &off),
              KB_NULL_POINTER);
  DEAGG_FAILS(kb_deaggregate(&it, NULL, written, key, key_len, digits, hk_len, &count, &off),
              KB_NULL_ARRAY);
  DEAGG_FAILS(kb_deaggregate(&it, buf, written, NULL, key_len, digits, hk_len, &count, &off),
              KB_NULL_ARRAY);
  DEAGG_FAILS(kb_deaggregate(&it, buf, written, key, key_len, NULL, hk_len, &count, &off),
              KB_NULL_ARRAY);
  DEAGG_FAILS(kb_deaggregate(&it, buf, SIZE_MAX, key, key_len, digits, hk_len, &count, &off),
              KB_LENGTH_OVERFLOW);
  DEAGG_FAILS(kb_deaggregate(&it, buf, written, key, SIZE_MAX, digits, hk_len, &count, &off),
              KB_LENGTH_OVERFLOW);
  CHECK_ST(kb_deaggregate(NULL, buf, written, key, key_len, digits, hk_len, &count, &off),
           KB_NULL_POINTER);

  /* Plain records: no magic, 20 bytes or fewer, (NULL, 0): themselves, with the keys
     given, pointers as they were given. */
  CHECK_ST(kb_deaggregate(&it, U8("hello"), 5, U8("k"), 1, U8("123"), 3, &count, NULL), KB_OK);
  CHECK_EQ(count, 1);
  CHECK_ST(kb_deaggregate_next(&it, &user), KB_OK);
  CHECK(bytes_eq(user.data, user.data_len, U8("hello"), 5));
  CHECK(bytes_eq(user.key, user.key_len, U8("k"), 1));
  CHECK(bytes_eq(user.hash_key, user.hash_key_len, U8("123"), 3));
  CHECK_ST(kb_deaggregate_next(&it, &user), KB_END);
  CHECK_ST(kb_deaggregate(&it, NULL, 0, NULL, 0, NULL, 0, &count, NULL), KB_OK);
  CHECK_EQ(count, 1);
  CHECK_ST(kb_deaggregate_next(&it, &user), KB_OK);
  CHECK(user.data == NULL && user.data_len == 0 && user.key == NULL && user.hash_key == NULL);
  CHECK_ST(kb_deaggregate_next(&it, &user), KB_END);

  /* Every byte changed: the magic's make a plain record, any other a digest mismatch
     (the KCL passes such a record through as plain: one record, its data as it is). */
  for (i = 0; i < written; i++) {
    uint8_t flips[2] = {0x01, 0xFF};
    int f;
    for (f = 0; f < 2; f++) {
      kb_status st;
      memcpy(copy, buf, written);
      copy[i] ^= flips[f];
      count = 99;
      st = kb_deaggregate(&it, copy, written, key, key_len, digits, hk_len, &count, &off);
      if (i < 4) {
        CHECK_ST(st, KB_OK);
        CHECK_EQ(drain(&it, copy, written, count, 0), 1);
      } else if (!CHECK_ST(st, KB_AGGREGATE_DIGEST_MISMATCH)) {
        fprintf(stderr, "  byte %u flipped by %u\n", (unsigned)i, (unsigned)flips[f]);
      } else {
        CHECK_EQ(count, 0);
        CHECK_ST(kb_deaggregate_next(&it, &user), KB_END);
      }
    }
  }
  /* Truncated: 20 bytes or fewer are plain; longer ones do not match their digest. */
  for (i = 0; i < written; i++) {
    kb_status st = kb_deaggregate(&it, buf, i, key, key_len, digits, hk_len, &count, &off);
    if (i <= 20) {
      CHECK_ST(st, KB_OK);
      CHECK_EQ(drain(&it, buf, i, count, 0), 1);
    } else {
      CHECK_ST(st, KB_AGGREGATE_DIGEST_MISMATCH);
    }
  }

  /* Malformed protobufs with a matching digest: *bad_offset says where. */
  {
    /* A sub-record without its data field, at offset 4 + 2. */
    static const uint8_t no_data[4] = {0x1A, 0x02, 0x08, 0x00};
    /* A sub-record naming key 5 of a one-key table: the sub-record, at 4 + 3. */
    static const uint8_t bad_index[9] = {0x0A, 0x01, 0x6B, 0x1A, 0x04, 0x08, 0x05, 0x1A, 0x00};
    /* A truncated field. */
    static const uint8_t truncated[3] = {0x0A, 0x05, 0x6B};
    /* No sub-record, an unknown field: an aggregate of nothing. */
    static const uint8_t empty[2] = {0x20, 0x01};
    uint8_t framed[64];
    size_t len = frame(no_data, sizeof no_data, framed);
    FILL(off);
    CHECK_ST(kb_deaggregate(&it, framed, len, U8("a"), 1, NULL, 0, &count, &off),
             KB_AGGREGATE_MALFORMED);
    CHECK_EQ(off, 6);
    CHECK_EQ(count, 0);
    CHECK_ST(kb_deaggregate(&it, framed, len, U8("a"), 1, NULL, 0, &count, NULL),
             KB_AGGREGATE_MALFORMED);
    len = frame(bad_index, sizeof bad_index, framed);
    CHECK_ST(kb_deaggregate(&it, framed, len, U8("a"), 1, NULL, 0, &count, &off),
             KB_AGGREGATE_MALFORMED);
    CHECK_EQ(off, 7);
    len = frame(truncated, sizeof truncated, framed);
    CHECK_ST(kb_deaggregate(&it, framed, len, U8("a"), 1, NULL, 0, &count, &off),
             KB_AGGREGATE_MALFORMED);
    CHECK_EQ(off, 4);
    len = frame(empty, sizeof empty, framed);
    CHECK_ST(kb_deaggregate(&it, framed, len, U8("a"), 1, NULL, 0, &count, &off), KB_OK);
    CHECK_EQ(count, 0);
    CHECK_ST(kb_deaggregate_next(&it, &user), KB_END);
  }

  /* A tampered iterator gives KB_END or views within the data, never a read outside. */
  for (i = 0; i < 200; i++) {
    size_t calls = 0;
    CHECK_ST(kb_deaggregate(&it, buf, written, key, key_len, digits, hk_len, &count, &off),
             KB_OK);
    switch (i % 5) {
    case 0: it.at = (size_t)(KB_SUITE(rand_next)(&seed) % (written + 4)); break;
    case 1: it.key_offset = (size_t)KB_SUITE(rand_next)(&seed); break;
    case 2: it.hash_key_offset = (size_t)(KB_SUITE(rand_next)(&seed) % written); break;
    case 3: it.key_index = KB_SUITE(rand_next)(&seed) % 8; break;
    default: it.remaining = (size_t)KB_SUITE(rand_next)(&seed); break;
    }
    while (kb_deaggregate_next(&it, &user) == KB_OK && ++calls < 1000) {
      if (!CHECK(within(&user, buf, written))) {
        break;
      }
    }
  }
#undef DEAGG_FAILS
}

static void test_values(void) {
  /* Fixed numbers: the ABI. */
  CHECK_EQ(KB_AGGREGATES_FULL, 9);
  CHECK(!kb_status_is_error(KB_AGGREGATES_FULL));
  CHECK_EQ(KB_AGGREGATION_BAD_MODE, 150);
  CHECK_EQ(KB_AGGREGATION_NEEDS_KEYS, 151);
  CHECK_EQ(KB_AGGREGATE_OUT_OF_RANGE, 152);
  CHECK_EQ(KB_BUFFER_TOO_SMALL, 153);
  CHECK_EQ(KB_AGGREGATE_DIGEST_MISMATCH, 154);
  CHECK_EQ(KB_AGGREGATE_MALFORMED, 155);
  CHECK_EQ(KB_AGGREGATE_SHARED_HASH_KEY, 0);
  CHECK_EQ(KB_AGGREGATE_ONE_KEY, 1);
  CHECK_EQ(KB_AGGREGATE_PER_SHARD, 2);
  CHECK_EQ(KB_LAYOUT_PLAIN, 0);
  CHECK_EQ(KB_LAYOUT_SHARED_HASH_KEY, 1);
  CHECK_EQ(KB_LAYOUT_ONE_KEY, 2);
  CHECK_EQ(KB_LAYOUT_OWN_KEYS, 3);
  CHECK_EQ(KB_HASH_KEY_DIGITS_MAX, 39);
  CHECK_EQ(sizeof(kb_layout), 1);
}

void KB_SUITE(test_aggregate)(void) {
  test_values();
  test_worked_example();
  test_plan_arguments();
  test_encode_and_keys_arguments();
  test_plan_round_trips();
  test_deaggregate();
}
