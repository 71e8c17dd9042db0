/*
 * suite_plan.c: the planner (bulk and cursor, both record forms) and the accumulator:
 * results, the resume protocol, bad input and "no partial success".
 */
#include "kb_test.h"

#define MAXN 2100

/* The whole plan of `records` in one call with arrays big enough for anything. */
struct whole_plan {
  kb_batch batches[MAXN];
  size_t n_batches;
  kb_refusal refusals[MAXN];
  size_t n_refusals;
};

static kb_status plan_whole(const kb_limits *l, const kb_record *r, size_t n,
                            struct whole_plan *out) {
  kb_planner *p = NULL;
  kb_status st = kb_planner_new(l, &p);
  if (st != KB_OK) {
    return st;
  }
  st = kb_planner_plan(p, r, n, out->batches, MAXN, &out->n_batches, out->refusals, MAXN,
                       &out->n_refusals, NULL);
  kb_planner_free(p);
  return st;
}

static int same_plan(const struct whole_plan *a, const struct whole_plan *b) {
  size_t i;
  if (a->n_batches != b->n_batches || a->n_refusals != b->n_refusals) {
    return 0;
  }
  for (i = 0; i < a->n_batches; i++) {
    if (!kb_batch_eq(&a->batches[i], &b->batches[i])) {
      return 0;
    }
  }
  for (i = 0; i < a->n_refusals; i++) {
    if (!kb_refusal_eq(&a->refusals[i], &b->refusals[i])) {
      return 0;
    }
  }
  return 1;
}

/* A mixed input under small limits: accepted records of varied sizes and refusals. */
static const uint8_t filler[4096] = {0};
static size_t mixed_records(kb_record *r, size_t n) {
  static const char *const keys[] = {"a", "bb", "", "\xff", "ccc", "dddd"};
  size_t i;
  for (i = 0; i < n; i++) {
    const char *k = keys[(i * 7 + i / 3) % 6];
    size_t len = (i * 37) % 120;
    r[i] = kb_rec(filler, len, U8(k), strlen(k));
    if (i % 11 == 5) {
      r[i].hash_key = U8(i % 2 ? "12" : "012");
      r[i].hash_key_len = i % 2 ? 2 : 3;
    }
  }
  return n;
}

static void test_plan_basics(void) {
  kb_limits kds = kb_profile(KB_PROFILE_KDS);
  static uint8_t big[2u << 20];
  kb_record r[3];
  kb_batch b[4];
  kb_refusal f[4];
  size_t nb, nf, pos;
  kb_planner *p;
  kb_stats stats;
  r[0] = kb_rec(U8("one"), 3, U8("k1"), 2);
  r[1] = kb_rec(big, sizeof big, U8("k2"), 2);
  r[2] = kb_rec(U8("three"), 5, U8("k3"), 2);
  CHECK_ST(kb_planner_new(&kds, &p), KB_OK);
  CHECK_ST(kb_planner_plan(p, r, 3, b, 4, &nb, f, 4, &nf, NULL), KB_OK);
  /* The refused record closes the batch: each batch is records[start..end) as it is. */
  CHECK_EQ(nb, 2);
  CHECK_EQ(b[0].start, 0);
  CHECK_EQ(b[0].end, 1);
  CHECK_EQ(b[0].records, 1);
  CHECK_EQ(b[0].bytes, 5);
  CHECK_EQ(b[1].start, 2);
  CHECK_EQ(b[1].end, 3);
  CHECK_EQ(b[1].records, 1);
  CHECK_EQ(b[1].bytes, 7);
  CHECK_EQ(nf, 1);
  CHECK_EQ(f[0].index, 1);
  CHECK_EQ(f[0].reason, KB_REASON_RECORD_TOO_LARGE);
  CHECK_ST(kb_planner_position(p, &pos), KB_OK);
  CHECK_EQ(pos, 3);
  CHECK_ST(kb_planner_stats(p, &stats), KB_OK);
  CHECK_EQ(stats.batches, 2);
  CHECK_EQ(stats.records, 2);
  CHECK_EQ(stats.bytes, 12);
  CHECK_EQ(stats.refused[KB_REASON_RECORD_TOO_LARGE], 1);
  CHECK_EQ(stats.refused[KB_REASON_KEY_EMPTY], 0);
  /* Done: further calls write nothing. */
  FILL_N(b, 4);
  CHECK_ST(kb_planner_plan(p, r, 3, b, 4, &nb, f, 4, &nf, NULL), KB_OK);
  CHECK_EQ(nb, 0);
  CHECK_EQ(nf, 0);
  CHECK_UNTOUCHED_N(b, 4);
  CHECK_ST(kb_planner_next(p, r, 3, b, f, NULL), KB_END);
  kb_planner_free(p);

  /* (NULL, 0) is empty input. */
  CHECK_ST(kb_planner_new(&kds, &p), KB_OK);
  CHECK_ST(kb_planner_plan(p, NULL, 0, b, 4, &nb, f, 4, &nf, NULL), KB_OK);
  CHECK_EQ(nb, 0);
  CHECK_EQ(nf, 0);
  CHECK_ST(kb_planner_plan_sizes(p, NULL, 0, b, 4, &nb, f, 4, &nf), KB_OK);
  CHECK_ST(kb_planner_next(p, NULL, 0, b, f, NULL), KB_END);
  CHECK_ST(kb_planner_next_sizes(p, NULL, 0, b, f), KB_END);
  kb_planner_free(p);
  kb_planner_free(NULL);
  kb_accumulator_free(NULL);
  kb_delivery_free(NULL);
  kb_lines_free(NULL);
  kb_line_planner_free(NULL);
}

/* 500 records make one request, 501 two; request bytes exactly at the cap fit. */
static void test_plan_boundaries(void) {
  kb_limits kds = kb_profile(KB_PROFILE_KDS);
  static kb_record r[1001];
  kb_batch b[8];
  kb_refusal f[8];
  size_t nb, nf, i;
  kb_planner *p;
  for (i = 0; i < 1001; i++) {
    r[i] = kb_rec(U8("x"), 1, U8("k"), 1);
  }
  CHECK_ST(kb_planner_new(&kds, &p), KB_OK);
  CHECK_ST(kb_planner_plan(p, r, 500, b, 8, &nb, f, 8, &nf, NULL), KB_OK);
  CHECK_EQ(nb, 1);
  CHECK_EQ(b[0].records, 500);
  CHECK_EQ(b[0].bytes, 1000);
  kb_planner_free(p);
  CHECK_ST(kb_planner_new(&kds, &p), KB_OK);
  CHECK_ST(kb_planner_plan(p, r, 501, b, 8, &nb, f, 8, &nf, NULL), KB_OK);
  CHECK_EQ(nb, 2);
  CHECK_EQ(b[0].records, 500);
  CHECK_EQ(b[1].start, 500);
  CHECK_EQ(b[1].end, 501);
  CHECK_EQ(b[1].records, 1);
  kb_planner_free(p);
  CHECK_ST(kb_planner_new(&kds, &p), KB_OK);
  CHECK_ST(kb_planner_plan(p, r, 1001, b, 8, &nb, f, 8, &nf, NULL), KB_OK);
  CHECK_EQ(nb, 3);
  kb_planner_free(p);

  {
    /* 1000-byte requests of 100-byte records: 10 fit exactly, the 11th opens another. */
    kb_limits l = kb_custom(KB_PROFILE_KDS, 500, 1000, 100);
    kb_record q[12];
    for (i = 0; i < 12; i++) {
      q[i] = kb_rec(filler, 99, U8("k"), 1);
    }
    q[11].data_len = 98;
    CHECK_ST(kb_planner_new(&l, &p), KB_OK);
    CHECK_ST(kb_planner_plan(p, q, 12, b, 8, &nb, f, 8, &nf, NULL), KB_OK);
    CHECK_EQ(nb, 2);
    CHECK_EQ(b[0].records, 10);
    CHECK_EQ(b[0].bytes, 1000);
    CHECK_EQ(b[1].start, 10);
    CHECK_EQ(b[1].records, 2);
    CHECK_EQ(b[1].bytes, 199);
    CHECK_EQ(nf, 0);
    kb_planner_free(p);
    /* A record of exactly max_record_bytes is accepted; one byte more is refused. */
    q[0].data_len = 99;
    q[1].data_len = 100;
    CHECK_ST(kb_planner_new(&l, &p), KB_OK);
    CHECK_ST(kb_planner_plan(p, q, 2, b, 8, &nb, f, 8, &nf, NULL), KB_OK);
    CHECK_EQ(nb, 1);
    CHECK_EQ(b[0].bytes, 100);
    CHECK_EQ(nf, 1);
    CHECK_EQ(f[0].index, 1);
    CHECK_EQ(f[0].reason, KB_REASON_RECORD_TOO_LARGE);
    kb_planner_free(p);
  }
  {
    /* The key-unit boundary through the planner: "é" x 256. */
    uint8_t key[512];
    kb_limits l = kds;
    kb_record q[1];
    for (i = 0; i < 256; i++) {
      key[2 * i] = 0xC3;
      key[2 * i + 1] = 0xA9;
    }
    q[0] = kb_rec(U8("d"), 1, key, 512);
    CHECK_ST(kb_planner_new(&l, &p), KB_OK);
    CHECK_ST(kb_planner_plan(p, q, 1, b, 8, &nb, f, 8, &nf, NULL), KB_OK);
    CHECK_EQ(nb, 1);
    CHECK_EQ(nf, 0);
    kb_planner_free(p);
    l.key_unit = KB_KEY_UNIT_UTF8_BYTES;
    CHECK_ST(kb_planner_new(&l, &p), KB_OK);
    CHECK_ST(kb_planner_plan(p, q, 1, b, 8, &nb, f, 8, &nf, NULL), KB_OK);
    CHECK_EQ(nb, 0);
    CHECK_EQ(nf, 1);
    CHECK_EQ(f[0].reason, KB_REASON_KEY_TOO_LONG);
    kb_planner_free(p);
  }
}

/* Bulk with every small pair of capacities, resumed until KB_OK, is the one-call plan;
   so is the cursor, and any mix of the two, and the size form. */
static void test_resume(void) {
  static kb_record r[700];
  static kb_record_size rs[700];
  static struct whole_plan whole, got;
  kb_limits l = kb_custom(KB_PROFILE_KDS, 7, 400, 100);
  size_t n = mixed_records(r, 700), i;
  size_t bc, fc;
  kb_planner *p;
  CHECK_ST(plan_whole(&l, r, n, &whole), KB_OK);
  CHECK(whole.n_batches > 50);
  CHECK(whole.n_refusals > 50);
  for (i = 0; i < n; i++) {
    CHECK_ST(kb_record_size_of(&r[i], l.key_unit, &rs[i]), KB_OK);
  }
  for (bc = 1; bc <= 3; bc++) {
    for (fc = 1; fc <= 3; fc++) {
      kb_status st;
      int sizes;
      for (sizes = 0; sizes < 2; sizes++) {
        size_t calls = 0;
        got.n_batches = got.n_refusals = 0;
        CHECK_ST(kb_planner_new(&l, &p), KB_OK);
        do {
          kb_batch b[3];
          kb_refusal f[3];
          size_t nb = 99, nf = 99, k;
          st = sizes ? kb_planner_plan_sizes(p, rs, n, b, bc, &nb, f, fc, &nf)
                     : kb_planner_plan(p, r, n, b, bc, &nb, f, fc, &nf, NULL);
          calls++;
          if (st != KB_OK && st != KB_BATCHES_FULL && st != KB_REFUSALS_FULL) {
            CHECK_ST(st, KB_OK);
            break;
          }
          CHECK(nb <= bc && nf <= fc);
          if (st == KB_BATCHES_FULL) {
            CHECK_EQ(nb, bc);
          }
          if (st == KB_REFUSALS_FULL) {
            CHECK_EQ(nf, fc);
          }
          for (k = 0; k < nb && got.n_batches < MAXN; k++) {
            got.batches[got.n_batches++] = b[k];
          }
          for (k = 0; k < nf && got.n_refusals < MAXN; k++) {
            got.refusals[got.n_refusals++] = f[k];
          }
        } while (st != KB_OK && calls < 10000);
        CHECK(same_plan(&got, &whole));
        CHECK(calls > 1);
        kb_planner_free(p);
      }
    }
  }
  /* The cursor alone, both forms, and mixed with bulk calls. */
  {
    int mode;
    for (mode = 0; mode < 3; mode++) {
      kb_status st;
      size_t calls = 0;
      got.n_batches = got.n_refusals = 0;
      CHECK_ST(kb_planner_new(&l, &p), KB_OK);
      for (;;) {
        kb_batch b[2];
        kb_refusal f[2];
        size_t nb = 0, nf = 0, k;
        if (mode == 2 && calls % 3 == 1) {
          st = kb_planner_plan(p, r, n, b, 2, &nb, f, 1, &nf, NULL);
          if (st != KB_OK && st != KB_BATCHES_FULL && st != KB_REFUSALS_FULL) {
            CHECK_ST(st, KB_OK);
            break;
          }
          for (k = 0; k < nb; k++) {
            got.batches[got.n_batches++] = b[k];
          }
          for (k = 0; k < nf; k++) {
            got.refusals[got.n_refusals++] = f[k];
          }
          calls++;
          continue; /* a KB_OK here still leaves kb_planner_next to say KB_END */
        }
        FILL_N(b, 1);
        FILL_N(f, 1);
        st = mode == 1 ? kb_planner_next_sizes(p, rs, n, b, f)
                       : kb_planner_next(p, r, n, b, f, NULL);
        calls++;
        if (st == KB_END) {
          CHECK_UNTOUCHED_N(b, 1);
          CHECK_UNTOUCHED_N(f, 1);
          break;
        }
        if (st == KB_OK) {
          CHECK_UNTOUCHED_N(f, 1);
          got.batches[got.n_batches++] = b[0];
        } else if (st == KB_REFUSED) {
          CHECK_UNTOUCHED_N(b, 1);
          got.refusals[got.n_refusals++] = f[0];
        } else {
          CHECK_ST(st, KB_OK);
          break;
        }
        if (got.n_batches >= MAXN - 2 || got.n_refusals >= MAXN - 2) {
          CHECK(0);
          break;
        }
      }
      CHECK(same_plan(&got, &whole));
      {
        size_t pos;
        kb_stats s;
        CHECK_ST(kb_planner_position(p, &pos), KB_OK);
        CHECK_EQ(pos, n);
        CHECK_ST(kb_planner_stats(p, &s), KB_OK);
        CHECK_EQ(s.batches, whole.n_batches);
        CHECK_EQ(s.refused[0] + s.refused[1] + s.refused[2] + s.refused[3] + s.refused[4],
                 whole.n_refusals);
      }
      kb_planner_free(p);
    }
  }
}

/* Every error of the planner: the status, *bad_index, and nothing else written. */
static void test_plan_errors(void) {
  kb_limits l = kb_custom(KB_PROFILE_KDS, 7, 400, 100);
  static kb_record r[64];
  static struct whole_plan whole, after;
  size_t n = mixed_records(r, 64), i;
  kb_planner *p, *fresh;
  kb_batch b[4];
  kb_refusal f[4];
  size_t nb, nf, bad, pos0, pos1;
  kb_batch one;
  kb_refusal onef;
  kb_record_size rs[4];
  kb_status st0, st;
  memset(rs, 0, sizeof rs);
  CHECK_ST(plan_whole(&l, r, n, &whole), KB_OK);

  CHECK_ST(kb_planner_new(&l, &p), KB_OK);
  /* Advance a little first, so "unchanged" is not just "still at 0". */
  st0 = kb_planner_plan(p, r, n, b, 1, &nb, f, 1, &nf, NULL);
  CHECK(st0 == KB_BATCHES_FULL || st0 == KB_REFUSALS_FULL);
  CHECK_ST(kb_planner_position(p, &pos0), KB_OK);
  CHECK(pos0 > 0);

#define EXPECT_PLAN_ERROR(call, status, want_bad)  \
  do {                                             \
    FILL_N(b, 4);                                  \
    FILL_N(f, 4);                                  \
    FILL(nb);                                      \
    FILL(nf);                                      \
    FILL(bad);                                     \
    CHECK_ST(call, status);                        \
    CHECK_UNTOUCHED_N(b, 4);                       \
    CHECK_UNTOUCHED_N(f, 4);                       \
    CHECK_COUNT(#call, nb);                        \
    CHECK_COUNT(#call, nf);                        \
    if ((want_bad) == SIZE_MAX) {                  \
      CHECK_UNTOUCHED(bad);                        \
    } else {                                       \
      CHECK_EQ(bad, (want_bad));                   \
    }                                              \
    CHECK_ST(kb_planner_position(p, &pos1), KB_OK); \
    CHECK_EQ(pos1, pos0);                          \
  } while (0)

  EXPECT_PLAN_ERROR(kb_planner_plan(NULL, r, n, b, 4, &nb, f, 4, &nf, &bad), KB_NULL_POINTER,
                    SIZE_MAX);
  EXPECT_PLAN_ERROR(kb_planner_plan(p, r, n, b, 4, NULL, f, 4, &nf, &bad), KB_NULL_POINTER,
                    SIZE_MAX);
  EXPECT_PLAN_ERROR(kb_planner_plan(p, r, n, b, 4, &nb, f, 4, NULL, &bad), KB_NULL_POINTER,
                    SIZE_MAX);
  EXPECT_PLAN_ERROR(kb_planner_plan(p, NULL, n, b, 4, &nb, f, 4, &nf, &bad), KB_NULL_ARRAY,
                    SIZE_MAX);
  EXPECT_PLAN_ERROR(kb_planner_plan(p, r, n, NULL, 4, &nb, f, 4, &nf, &bad), KB_NULL_ARRAY,
                    SIZE_MAX);
  EXPECT_PLAN_ERROR(kb_planner_plan(p, r, n, b, 4, &nb, NULL, 4, &nf, &bad), KB_NULL_ARRAY,
                    SIZE_MAX);
  EXPECT_PLAN_ERROR(kb_planner_plan(p, r, n, b, 0, &nb, f, 4, &nf, &bad), KB_ZERO_CAPACITY,
                    SIZE_MAX);
  EXPECT_PLAN_ERROR(kb_planner_plan(p, r, n, b, 4, &nb, f, 0, &nf, &bad), KB_ZERO_CAPACITY,
                    SIZE_MAX);
  EXPECT_PLAN_ERROR(kb_planner_plan(p, r, n, NULL, 0, &nb, f, 4, &nf, &bad), KB_ZERO_CAPACITY,
                    SIZE_MAX);
  EXPECT_PLAN_ERROR(kb_planner_plan(p, r, SIZE_MAX, b, 4, &nb, f, 4, &nf, &bad),
                    KB_LENGTH_OVERFLOW, SIZE_MAX);
  EXPECT_PLAN_ERROR(kb_planner_plan_sizes(NULL, rs, 4, b, 4, &nb, f, 4, &nf), KB_NULL_POINTER,
                    SIZE_MAX);
  EXPECT_PLAN_ERROR(kb_planner_plan_sizes(p, rs, 4, b, 4, NULL, f, 4, &nf), KB_NULL_POINTER,
                    SIZE_MAX);
  EXPECT_PLAN_ERROR(kb_planner_plan_sizes(p, rs, 4, b, 4, &nb, f, 4, NULL), KB_NULL_POINTER,
                    SIZE_MAX);
  EXPECT_PLAN_ERROR(kb_planner_plan_sizes(p, NULL, 4, b, 4, &nb, f, 4, &nf), KB_NULL_ARRAY,
                    SIZE_MAX);
  EXPECT_PLAN_ERROR(kb_planner_plan_sizes(p, rs, 4, NULL, 4, &nb, f, 4, &nf), KB_NULL_ARRAY,
                    SIZE_MAX);
  EXPECT_PLAN_ERROR(kb_planner_plan_sizes(p, rs, 4, b, 0, &nb, f, 4, &nf), KB_ZERO_CAPACITY,
                    SIZE_MAX);
  EXPECT_PLAN_ERROR(kb_planner_plan_sizes(p, rs, 4, b, 4, &nb, f, 0, &nf), KB_ZERO_CAPACITY,
                    SIZE_MAX);

  /* Cursor: the out-pointers are required. */
  FILL(one);
  FILL(onef);
  FILL(bad);
  CHECK_ST(kb_planner_next(NULL, r, n, &one, &onef, &bad), KB_NULL_POINTER);
  CHECK_ST(kb_planner_next(p, r, n, NULL, &onef, &bad), KB_NULL_POINTER);
  CHECK_ST(kb_planner_next(p, r, n, &one, NULL, &bad), KB_NULL_POINTER);
  CHECK_ST(kb_planner_next(p, NULL, n, &one, &onef, &bad), KB_NULL_ARRAY);
  CHECK_ST(kb_planner_next_sizes(NULL, rs, 4, &one, &onef), KB_NULL_POINTER);
  CHECK_ST(kb_planner_next_sizes(p, rs, 4, NULL, &onef), KB_NULL_POINTER);
  CHECK_ST(kb_planner_next_sizes(p, rs, 4, &one, NULL), KB_NULL_POINTER);
  CHECK_ST(kb_planner_next_sizes(p, NULL, 4, &one, &onef), KB_NULL_ARRAY);
  CHECK_UNTOUCHED(one);
  CHECK_UNTOUCHED(onef);
  CHECK_UNTOUCHED(bad);
  CHECK_ST(kb_planner_position(p, &pos1), KB_OK);
  CHECK_EQ(pos1, pos0);
  FILL(pos1);
  CHECK_ST(kb_planner_position(NULL, &pos1), KB_NULL_POINTER);
  CHECK_ST(kb_planner_position(p, NULL), KB_NULL_POINTER);
  CHECK_UNTOUCHED(pos1);
  {
    kb_stats s;
    FILL(s);
    CHECK_ST(kb_planner_stats(NULL, &s), KB_NULL_POINTER);
    CHECK_ST(kb_planner_stats(p, NULL), KB_NULL_POINTER);
    CHECK_UNTOUCHED(s);
  }
  {
    kb_planner *q;
    FILL(q);
    CHECK_ST(kb_planner_new(&l, NULL), KB_NULL_POINTER);
    CHECK_UNTOUCHED(q);
  }

  /* Bad records, each at its index past the position, in every field. */
  for (i = 0; i < 5; i++) {
    static kb_record bad_r[64];
    size_t at = pos0 + 3 + i;
    memcpy(bad_r, r, sizeof r);
    switch (i) {
      case 0: bad_r[at].data = NULL; bad_r[at].data_len = 5; break;
      case 1: bad_r[at].key = NULL; bad_r[at].key_len = 2; break;
      case 2: bad_r[at].hash_key = NULL; bad_r[at].hash_key_len = 1; break;
      case 3: bad_r[at].data_len = SIZE_MAX; bad_r[at].key_len = 2; break;
      default:
        bad_r[at].data_len = SIZE_MAX / 2 + 1;
        bad_r[at].key_len = SIZE_MAX / 2;
        bad_r[at].key = filler;
        break;
    }
    {
      kb_status want = i < 3 ? KB_NULL_FIELD : KB_LENGTH_OVERFLOW;
      /* The bulk call checks records in its planning pass: one that meets the bad record
       * after writing something returns that with KB_BATCHES_FULL, stopped just before
       * it; the next call, which can make no progress, fails and changes nothing. A
       * separate planner, advanced as p was, so that p stays at pos0. */
      kb_planner *q;
      size_t pos_q;
      CHECK_ST(kb_planner_new(&l, &q), KB_OK);
      CHECK_ST(kb_planner_plan(q, r, n, b, 1, &nb, f, 1, &nf, NULL), st0);
      FILL(bad);
      st = kb_planner_plan(q, bad_r, n, b, 4, &nb, f, 4, &nf, &bad);
      if (st == KB_BATCHES_FULL) {
        CHECK(nb + nf > 0);
        CHECK_UNTOUCHED(bad);
        CHECK_ST(kb_planner_position(q, &pos_q), KB_OK);
        CHECK_EQ(pos_q, at);
        FILL_N(b, 4);
        FILL_N(f, 4);
        FILL(nb);
        FILL(nf);
        st = kb_planner_plan(q, bad_r, n, b, 4, &nb, f, 4, &nf, &bad);
        CHECK_UNTOUCHED_N(b, 4);
        CHECK_UNTOUCHED_N(f, 4);
        CHECK_EQ(nb, 0); /* counts are 0 after an error, arrays untouched */
        CHECK_EQ(nf, 0);
      } else {
        pos_q = pos0;
      }
      CHECK_ST(st, want);
      CHECK_EQ(bad, at);
      CHECK_ST(kb_planner_position(q, &pos1), KB_OK);
      CHECK_EQ(pos1, pos_q);
      FILL(bad);
      CHECK_ST(kb_planner_plan(q, bad_r, n, b, 4, &nb, f, 4, &nf, NULL), want);
      CHECK_UNTOUCHED(bad);
      kb_planner_free(q);
      FILL(one);
      FILL(onef);
      FILL(bad);
      CHECK_ST(kb_planner_next(p, bad_r, n, &one, &onef, &bad), want);
      CHECK_EQ(bad, at);
      CHECK_UNTOUCHED(one);
      CHECK_UNTOUCHED(onef);
      CHECK_ST(kb_planner_position(p, &pos1), KB_OK);
      CHECK_EQ(pos1, pos0);
    }
  }
#undef EXPECT_PLAN_ERROR

  /* After all those errors, the planner goes on exactly as an untouched one would. */
  CHECK_ST(kb_planner_new(&l, &fresh), KB_OK);
  CHECK_ST(kb_planner_plan(fresh, r, n, b, 1, &nb, f, 1, &nf, NULL), st0);
  CHECK_ST(kb_planner_plan(p, r, n, after.batches, MAXN, &after.n_batches, after.refusals,
                           MAXN, &after.n_refusals, NULL),
           KB_OK);
  CHECK_ST(kb_planner_plan(fresh, r, n, whole.batches, MAXN, &whole.n_batches,
                           whole.refusals, MAXN, &whole.n_refusals, NULL),
           KB_OK);
  CHECK(same_plan(&after, &whole));
  {
    kb_stats s1, s2;
    CHECK_ST(kb_planner_stats(p, &s1), KB_OK);
    CHECK_ST(kb_planner_stats(fresh, &s2), KB_OK);
    CHECK(memcmp(&s1, &s2, sizeof s1) == 0);
  }
  kb_planner_free(fresh);
  kb_planner_free(p);
}

/* A bad record beyond what a call can read does not fail it; the call reaching it does. */
static void test_reach(void) {
  kb_limits kds = kb_profile(KB_PROFILE_KDS);
  static kb_record r[2001];
  kb_planner *p;
  kb_batch b[1];
  kb_refusal f[1];
  size_t nb, nf, bad, i, batches = 0, pos_before = 0, pos_after = 0;
  kb_status st;
  for (i = 0; i < 2000; i++) {
    r[i] = kb_rec(U8("x"), 1, U8("k"), 1);
  }
  r[2000] = kb_rec(U8("x"), 1, NULL, 3);

  CHECK_ST(kb_planner_new(&kds, &p), KB_OK);
  st = kb_planner_plan(p, r, 2001, b, 1, &nb, f, 1, &nf, &bad);
  CHECK_ST(st, KB_BATCHES_FULL);
  CHECK_EQ(nb, 1);
  CHECK_EQ(b[0].start, 0);
  CHECK_EQ(b[0].end, 500);
  batches = nb;
  for (i = 0; i < 10 && st == KB_BATCHES_FULL; i++) {
    kb_planner_position(p, &pos_before);
    FILL(bad);
    st = kb_planner_plan(p, r, 2001, b, 1, &nb, f, 1, &nf, &bad);
    kb_planner_position(p, &pos_after);
    if (st == KB_BATCHES_FULL) {
      CHECK_EQ(b[0].start, batches * 500);
      batches += nb;
    }
  }
  /* Some call reaches index 2000 and fails there, having written nothing. */
  CHECK_ST(st, KB_NULL_FIELD);
  CHECK_EQ(bad, 2000);
  CHECK_EQ(pos_after, pos_before);
  CHECK(batches >= 1 && batches <= 4);
  kb_planner_free(p);

  /* The cursor too: its first event comes from records far before the bad one. */
  CHECK_ST(kb_planner_new(&kds, &p), KB_OK);
  CHECK_ST(kb_planner_next(p, r, 2001, b, f, &bad), KB_OK);
  CHECK_EQ(b[0].end, 500);
  for (i = 0; i < 10; i++) {
    FILL(bad);
    st = kb_planner_next(p, r, 2001, b, f, &bad);
    if (st != KB_OK) {
      break;
    }
  }
  CHECK_ST(st, KB_NULL_FIELD);
  CHECK_EQ(bad, 2000);
  kb_planner_free(p);

  /* The bulk call checks records in its planning pass. Records before the bad one that
   * only fill the open batch: nothing is written, so the call fails at once and the
   * planner is as it was. */
  {
    kb_record few[4];
    size_t pos = 99;
    few[0] = kb_rec(U8("a"), 1, U8("k"), 1);
    few[1] = kb_rec(U8("b"), 1, U8("k"), 1);
    few[2] = kb_rec(U8("c"), 1, NULL, 1); /* NULL key with a length */
    few[3] = kb_rec(U8("d"), 1, U8("k"), 1);
    CHECK_ST(kb_planner_new(&kds, &p), KB_OK);
    FILL_N(b, 1);
    FILL(nb);
    FILL(nf);
    st = kb_planner_plan(p, few, 4, b, 1, &nb, f, 1, &nf, &bad);
    CHECK_ST(st, KB_NULL_FIELD);
    CHECK_EQ(bad, 2);
    CHECK_UNTOUCHED_N(b, 1);
    CHECK_EQ(nb, 0);
    CHECK_EQ(nf, 0);
    CHECK_ST(kb_planner_position(p, &pos), KB_OK);
    CHECK_EQ(pos, 0);
    /* Mended, the same planner plans the whole array. */
    few[2].key = U8("k");
    CHECK_ST(kb_planner_plan(p, few, 4, b, 1, &nb, f, 1, &nf, &bad), KB_OK);
    CHECK_EQ(nb, 1);
    CHECK_EQ(b[0].end, 4);
    kb_planner_free(p);

    /* A refusal written before the bad record: the call returns it with
     * KB_BATCHES_FULL, stopped before the bad record; the next call fails there. */
    few[1] = kb_rec(U8("b"), 1, U8("k"), 0); /* empty key: refused */
    few[2] = kb_rec(NULL, 5, U8("k"), 1);    /* NULL data with a length */
    CHECK_ST(kb_planner_new(&kds, &p), KB_OK);
    FILL(bad);
    CHECK_ST(kb_planner_plan(p, few, 4, b, 1, &nb, f, 1, &nf, &bad), KB_BATCHES_FULL);
    CHECK_EQ(nb, 0);
    CHECK_EQ(nf, 1);
    CHECK_EQ(f[0].index, 1);
    CHECK_UNTOUCHED(bad);
    CHECK_ST(kb_planner_position(p, &pos), KB_OK);
    CHECK_EQ(pos, 2);
    FILL_N(f, 1);
    FILL(nf);
    CHECK_ST(kb_planner_plan(p, few, 4, b, 1, &nb, f, 1, &nf, &bad), KB_NULL_FIELD);
    CHECK_EQ(bad, 2);
    CHECK_UNTOUCHED_N(f, 1);
    CHECK_EQ(nf, 0);
    CHECK_ST(kb_planner_position(p, &pos), KB_OK);
    CHECK_EQ(pos, 2);
    kb_planner_free(p);
  }
}

static void test_accumulator(void) {
  kb_limits l = kb_custom(KB_PROFILE_KDS, 2, 1024, 1024);
  kb_limits kds = kb_profile(KB_PROFILE_KDS);
  kb_accumulator *a, *fresh;
  kb_record r;
  kb_record_size rs;
  kb_batch b;
  kb_reason why;
  size_t n, idx;
  kb_stats s;

  CHECK_ST(kb_accumulator_new(&l, &a), KB_OK);
  CHECK_ST(kb_accumulator_pending(a, &b), KB_END);
  CHECK_ST(kb_accumulator_flush(a, &b), KB_END);
  CHECK_ST(kb_accumulator_pushed(a, &n), KB_OK);
  CHECK_EQ(n, 0);
  r = kb_rec(U8("a"), 1, U8("k"), 1);
  FILL(b);
  FILL(why);
  CHECK_ST(kb_accumulator_push(a, &r, &b, &why), KB_OK);
  CHECK_UNTOUCHED(b);
  CHECK_UNTOUCHED(why);
  r = kb_rec(U8("b"), 1, NULL, 0);
  CHECK_ST(kb_accumulator_push(a, &r, &b, &why), KB_REFUSED);
  CHECK_EQ(why, KB_REASON_KEY_EMPTY);
  CHECK_UNTOUCHED(b);
  CHECK_ST(kb_accumulator_pending(a, &b), KB_OK);
  CHECK_EQ(b.start, 0);
  CHECK_EQ(b.end, 1);
  CHECK_EQ(b.records, 1);
  CHECK_EQ(b.bytes, 2);
  CHECK_ST(kb_accumulator_skip(a, &idx), KB_OK);
  CHECK_EQ(idx, 2);
  /* The refusal closed the open batch: the next accepted record sends it first. */
  r = kb_rec(U8("c"), 1, U8("k"), 1);
  CHECK_ST(kb_accumulator_push(a, &r, &b, &why), KB_SEND_FIRST);
  CHECK_EQ(b.start, 0);
  CHECK_EQ(b.end, 1);
  CHECK_EQ(b.records, 1);
  CHECK_EQ(b.bytes, 2);
  CHECK_ST(kb_accumulator_pushed(a, &n), KB_OK);
  CHECK_EQ(n, 4);

  /* Errors: nothing written, no index taken. */
  {
    kb_record bad = kb_rec(U8("d"), 1, NULL, 4);
    kb_record over = kb_rec(U8("d"), SIZE_MAX, U8("k"), 2);
    FILL(b);
    FILL(why);
    CHECK_ST(kb_accumulator_push(a, &bad, &b, &why), KB_NULL_FIELD);
    CHECK_ST(kb_accumulator_push(a, &over, &b, &why), KB_LENGTH_OVERFLOW);
    CHECK_ST(kb_accumulator_push(NULL, &r, &b, &why), KB_NULL_POINTER);
    CHECK_ST(kb_accumulator_push(a, NULL, &b, &why), KB_NULL_POINTER);
    CHECK_ST(kb_accumulator_push(a, &r, NULL, &why), KB_NULL_POINTER);
    CHECK_ST(kb_accumulator_push(a, &r, &b, NULL), KB_NULL_POINTER);
    memset(&rs, 0, sizeof rs);
    CHECK_ST(kb_accumulator_push_size(NULL, &rs, &b, &why), KB_NULL_POINTER);
    CHECK_ST(kb_accumulator_push_size(a, NULL, &b, &why), KB_NULL_POINTER);
    CHECK_ST(kb_accumulator_push_size(a, &rs, NULL, &why), KB_NULL_POINTER);
    CHECK_ST(kb_accumulator_push_size(a, &rs, &b, NULL), KB_NULL_POINTER);
    CHECK_UNTOUCHED(b);
    CHECK_UNTOUCHED(why);
    FILL(idx);
    CHECK_ST(kb_accumulator_skip(NULL, &idx), KB_NULL_POINTER);
    CHECK_ST(kb_accumulator_skip(a, NULL), KB_NULL_POINTER);
    CHECK_ST(kb_accumulator_flush(NULL, &b), KB_NULL_POINTER);
    CHECK_ST(kb_accumulator_flush(a, NULL), KB_NULL_POINTER);
    CHECK_ST(kb_accumulator_pending(NULL, &b), KB_NULL_POINTER);
    CHECK_ST(kb_accumulator_pending(a, NULL), KB_NULL_POINTER);
    CHECK_ST(kb_accumulator_pushed(NULL, &idx), KB_NULL_POINTER);
    CHECK_ST(kb_accumulator_pushed(a, NULL), KB_NULL_POINTER);
    FILL(s);
    CHECK_ST(kb_accumulator_stats(NULL, &s), KB_NULL_POINTER);
    CHECK_ST(kb_accumulator_stats(a, NULL), KB_NULL_POINTER);
    CHECK_UNTOUCHED(s);
    CHECK_UNTOUCHED(b);
    CHECK_UNTOUCHED(idx);
    CHECK_ST(kb_accumulator_pushed(a, &n), KB_OK);
    CHECK_EQ(n, 4);
    {
      kb_accumulator *q;
      FILL(q);
      CHECK_ST(kb_accumulator_new(&l, NULL), KB_NULL_POINTER);
      CHECK_UNTOUCHED(q);
    }
  }

  /* Two per request: "e" joins "c"; the next record does not fit and sends them. */
  r = kb_rec(U8("e"), 1, U8("k"), 1);
  CHECK_ST(kb_accumulator_push(a, &r, &b, &why), KB_OK);
  CHECK_ST(kb_accumulator_pending(a, &b), KB_OK);
  CHECK_EQ(b.start, 3);
  CHECK_EQ(b.end, 5);
  CHECK_EQ(b.records, 2);
  memset(&rs, 0, sizeof rs);
  rs.data_len = 10;
  rs.key_len = 2;
  rs.key_units = 2;
  CHECK_ST(kb_accumulator_push_size(a, &rs, &b, &why), KB_SEND_FIRST);
  CHECK_EQ(b.start, 3);
  CHECK_EQ(b.end, 5);
  CHECK_EQ(b.records, 2);
  CHECK_EQ(b.bytes, 4);
  rs.flags = KB_RECORD_KEY_NOT_UTF8;
  CHECK_ST(kb_accumulator_push_size(a, &rs, &b, &why), KB_REFUSED);
  CHECK_EQ(why, KB_REASON_KEY_NOT_UTF8);
  rs.flags = 0;
  CHECK_ST(kb_accumulator_push_size(a, &rs, &b, &why), KB_SEND_FIRST);
  CHECK_EQ(b.start, 5);
  CHECK_EQ(b.end, 6);
  CHECK_EQ(b.records, 1);
  CHECK_EQ(b.bytes, 12);
  CHECK_ST(kb_accumulator_stats(a, &s), KB_OK);
  CHECK_EQ(s.batches, 3);
  CHECK_EQ(s.records, 4);
  CHECK_EQ(s.bytes, 18);
  CHECK_EQ(s.refused[KB_REASON_KEY_EMPTY], 1);
  CHECK_EQ(s.refused[KB_REASON_KEY_NOT_UTF8], 1);
  CHECK_ST(kb_accumulator_flush(a, &b), KB_OK);
  CHECK_EQ(b.start, 7);
  CHECK_EQ(b.end, 8);
  CHECK_EQ(b.records, 1);
  CHECK_EQ(b.bytes, 12);
  FILL(b);
  CHECK_ST(kb_accumulator_flush(a, &b), KB_END);
  CHECK_UNTOUCHED(b);
  CHECK_ST(kb_accumulator_pending(a, &b), KB_END);
  CHECK_UNTOUCHED(b);
  CHECK_ST(kb_accumulator_pushed(a, &n), KB_OK);
  CHECK_EQ(n, 8);
  kb_accumulator_free(a);

  /* Pushing an array and flushing is the planner's plan. */
  {
    static kb_record q[300];
    static struct whole_plan whole;
    kb_limits m = kb_custom(KB_PROFILE_KDS, 7, 400, 100);
    size_t k, nb = 0, nr = 0, ok = 1;
    mixed_records(q, 300);
    CHECK_ST(plan_whole(&m, q, 300, &whole), KB_OK);
    CHECK_ST(kb_accumulator_new(&m, &a), KB_OK);
    CHECK_ST(kb_accumulator_new(&kds, &fresh), KB_OK);
    for (k = 0; k < 300; k++) {
      kb_status st = kb_accumulator_push(a, &q[k], &b, &why);
      if (st == KB_SEND_FIRST) {
        ok &= nb < whole.n_batches && kb_batch_eq(&b, &whole.batches[nb]);
        nb++;
      } else if (st == KB_REFUSED) {
        ok &= nr < whole.n_refusals && whole.refusals[nr].index == k &&
              (unsigned)whole.refusals[nr].reason == (unsigned)why;
        nr++;
      } else {
        ok &= st == KB_OK;
      }
    }
    if (kb_accumulator_flush(a, &b) == KB_OK) {
      ok &= nb < whole.n_batches && kb_batch_eq(&b, &whole.batches[nb]);
      nb++;
    }
    CHECK(ok);
    CHECK_EQ(nb, whole.n_batches);
    CHECK_EQ(nr, whole.n_refusals);
    kb_accumulator_free(a);
    kb_accumulator_free(fresh);
  }
}

/* ---- The shortest correct-looking code never sends a refused record. ---- */

#define NAIVE_N 3000

/* What a "send" saw: each index's sends, refused records sent, requests. */
struct sent_log {
  unsigned char sends[NAIVE_N];
  size_t refused_sent;
  size_t requests;
  size_t too_big;
};

/* Records of which about `per_mille` in 1000 are refused (an empty key, a key that is not
 * UTF-8, or data over the record cap), marked in `refused`. */
static void random_refusals(kb_record *r, unsigned char *refused, size_t n, unsigned per_mille,
                            uint64_t seed) {
  static const uint8_t data[3000] = {0};
  size_t i;
  for (i = 0; i < n; i++) {
    uint64_t x = KB_SUITE(rand_next)(&seed);
    r[i] = kb_rec(data, (size_t)(x >> 20) % 1200, U8("user-7"), 6);
    refused[i] = (x % 1000) < per_mille;
    if (refused[i]) {
      switch ((x >> 10) % 3) {
        case 0: r[i].key_len = 0; break;
        case 1: r[i].key = U8("\xff"); r[i].key_len = 1; break;
        default: r[i].data_len = 2500; break; /* over the 2000-byte cap below */
      }
    }
  }
}

/* Logs one request `records[start..start+count)`, checking it against the limits. */
static void log_request(struct sent_log *log, const unsigned char *refused, const kb_limits *l,
                        const kb_record *records, size_t start, size_t count) {
  size_t i, bytes = 0;
  log->requests++;
  for (i = start; i < start + count && i < NAIVE_N; i++) {
    log->sends[i]++;
    log->refused_sent += refused[i];
    bytes += records[i].data_len + records[i].key_len;
  }
  log->too_big += count > l->max_records || bytes > l->max_request_bytes;
}

/* Every accepted record sent exactly once, no refused one, nothing over the limits. */
static int log_is_exact(const struct sent_log *log, const unsigned char *refused, size_t n) {
  size_t i;
  for (i = 0; i < n; i++) {
    if (log->sends[i] != (refused[i] ? 0 : 1)) {
      return 0;
    }
  }
  return log->refused_sent == 0 && log->too_big == 0;
}

/* The README's bulk loop, written as a user would: `send(records + start, end - start)`
 * for each batch; refusals reported. With `skip_refused`, the range form's loop: refused
 * indices reported so far are left out. Returns the status that ended it. */
static kb_status readme_bulk_loop(const kb_limits *l, const kb_record *records, size_t n,
                                  const unsigned char *refused, struct sent_log *log,
                                  size_t *reported, int skip_refused) {
  static unsigned char marked[NAIVE_N];
  kb_planner *planner = NULL;
  kb_batch batches[16];
  kb_refusal refusals[16];
  size_t n_batches = 0, n_refusals = 0, bad = 0, i, k;
  kb_status status = kb_planner_new(l, &planner);
  memset(marked, 0, sizeof marked);
  if (status != KB_OK) {
    return status;
  }
  do {
    status = kb_planner_plan(planner, records, n, batches, 16, &n_batches, refusals, 16,
                             &n_refusals, &bad);
    if (kb_status_is_error(status)) {
      break;
    }
    for (i = 0; i < n_refusals; i++) {
      (*reported)++;
      marked[refusals[i].index] = 1;
    }
    for (i = 0; i < n_batches; i++) {
      if (!skip_refused) {
        log_request(log, refused, l, records, batches[i].start,
                    batches[i].end - batches[i].start);
        continue;
      }
      log->requests++;
      for (k = batches[i].start; k < batches[i].end; k++) {
        if (!marked[k]) {
          log->sends[k]++;
          log->refused_sent += refused[k];
        }
      }
    }
  } while (status == KB_BATCHES_FULL || status == KB_REFUSALS_FULL);
  kb_planner_free(planner);
  return status;
}

/* The cursor loop as a user would write it. */
static kb_status cursor_loop(const kb_limits *l, const kb_record *records, size_t n,
                             const unsigned char *refused, struct sent_log *log,
                             size_t *reported) {
  kb_planner *p = NULL;
  kb_batch batch;
  kb_refusal refusal;
  size_t bad = 0;
  kb_status status = kb_planner_new(l, &p);
  if (status != KB_OK) {
    return status;
  }
  while ((status = kb_planner_next(p, records, n, &batch, &refusal, &bad)) != KB_END) {
    if (kb_status_is_error(status)) {
      break;
    }
    if (status == KB_REFUSED) {
      (*reported)++;
    } else {
      log_request(log, refused, l, records, batch.start, batch.end - batch.start);
    }
  }
  kb_planner_free(p);
  return status == KB_END ? KB_OK : status;
}

/* The accumulator as a user would drive it: send on KB_SEND_FIRST, flush at the end. */
static kb_status accumulator_loop(const kb_limits *l, const kb_record *records, size_t n,
                                  const unsigned char *refused, struct sent_log *log,
                                  size_t *reported) {
  kb_accumulator *a = NULL;
  kb_batch b;
  kb_reason why;
  size_t i;
  kb_status status = kb_accumulator_new(l, &a);
  if (status != KB_OK) {
    return status;
  }
  for (i = 0; i < n; i++) {
    status = kb_accumulator_push(a, &records[i], &b, &why);
    if (status == KB_SEND_FIRST) {
      log_request(log, refused, l, records, b.start, b.end - b.start);
    } else if (status == KB_REFUSED) {
      (*reported)++;
    } else if (status != KB_OK) {
      break;
    }
  }
  if (kb_accumulator_flush(a, &b) == KB_OK) {
    log_request(log, refused, l, records, b.start, b.end - b.start);
  }
  kb_accumulator_free(a);
  return kb_status_is_error(status) ? status : KB_OK;
}

static void test_no_refused_record_in_a_request(void) {
  static kb_record r[NAIVE_N];
  static unsigned char refused[NAIVE_N];
  static struct sent_log log, fewest;
  static const unsigned rates[] = {1, 10, 50, 100}; /* per mille: 0.1% .. 10% */
  kb_limits zeroed, span;
  size_t k, n_refused, i, reported, default_requests;
  /* Limits written by hand from memset 0, small enough for many requests. */
  memset(&zeroed, 0, sizeof zeroed);
  zeroed.max_records = 50;
  zeroed.max_request_bytes = 30000;
  zeroed.max_record_bytes = 2000;
  CHECK_ST(kb_limits_check(&zeroed), KB_OK);
  span = zeroed;
  span.options = KB_LIMITS_SPAN_REFUSALS;
  for (k = 0; k < ARRAY_LEN(rates); k++) {
    random_refusals(r, refused, NAIVE_N, rates[k], 0xfeed + k);
    n_refused = 0;
    for (i = 0; i < NAIVE_N; i++) {
      n_refused += refused[i];
    }
    CHECK(n_refused > 0);

    /* Default limits: every naive loop sends exactly the accepted records. */
    memset(&log, 0, sizeof log);
    reported = 0;
    CHECK_ST(readme_bulk_loop(&zeroed, r, NAIVE_N, refused, &log, &reported, 0), KB_OK);
    CHECK(log_is_exact(&log, refused, NAIVE_N));
    CHECK_EQ(log.refused_sent, 0);
    CHECK_EQ(reported, n_refused);
    default_requests = log.requests;

    memset(&log, 0, sizeof log);
    reported = 0;
    CHECK_ST(cursor_loop(&zeroed, r, NAIVE_N, refused, &log, &reported), KB_OK);
    CHECK(log_is_exact(&log, refused, NAIVE_N));
    CHECK_EQ(log.refused_sent, 0);
    CHECK_EQ(reported, n_refused);
    CHECK_EQ(log.requests, default_requests);

    memset(&log, 0, sizeof log);
    reported = 0;
    CHECK_ST(accumulator_loop(&zeroed, r, NAIVE_N, refused, &log, &reported), KB_OK);
    CHECK(log_is_exact(&log, refused, NAIVE_N));
    CHECK_EQ(log.refused_sent, 0);
    CHECK_EQ(reported, n_refused);
    CHECK_EQ(log.requests, default_requests);

    /* KB_LIMITS_SPAN_REFUSALS: ranges may hold refused records (the naive loop sends
     * some), the range form's loop that skips reported refusals sends exactly the
     * accepted ones, in no more requests. */
    memset(&log, 0, sizeof log);
    reported = 0;
    CHECK_ST(readme_bulk_loop(&span, r, NAIVE_N, refused, &log, &reported, 0), KB_OK);
    CHECK(log.refused_sent > 0);
    memset(&fewest, 0, sizeof fewest);
    reported = 0;
    CHECK_ST(readme_bulk_loop(&span, r, NAIVE_N, refused, &fewest, &reported, 1), KB_OK);
    CHECK(log_is_exact(&fewest, refused, NAIVE_N));
    CHECK_EQ(reported, n_refused);
    CHECK(fewest.requests <= default_requests);
    memset(&log, 0, sizeof log);
    reported = 0;
    CHECK_ST(cursor_loop(&span, r, NAIVE_N, refused, &log, &reported), KB_OK);
    CHECK(log.refused_sent > 0);
  }
  /* The KDS profile as kb_limits_profile fills it: the same. */
  {
    kb_limits kds = kb_profile(KB_PROFILE_KDS);
    random_refusals(r, refused, NAIVE_N, 10, 0xabc);
    for (i = 0; i < NAIVE_N; i++) {
      if (refused[i] && r[i].data_len > 2000) {
        r[i].key_len = 0; /* 2500 bytes fit KDS's 1 MiB: refuse it by its key */
      }
    }
    memset(&log, 0, sizeof log);
    reported = 0;
    CHECK_ST(readme_bulk_loop(&kds, r, NAIVE_N, refused, &log, &reported, 0), KB_OK);
    CHECK(log_is_exact(&log, refused, NAIVE_N));
    CHECK(log.requests > 1);
  }
}

/* ---- Reuse: another array is KB_INPUT_CHANGED; reset starts over. ---- */

static void test_planner_reuse(void) {
  kb_limits l = kb_custom(KB_PROFILE_KDS, 7, 400, 100);
  static kb_record a[300], other[120];
  static kb_record_size as[300], os[120];
  static struct whole_plan whole_other, got;
  kb_planner *p, *q;
  kb_batch b[4], one;
  kb_refusal f[4], onef;
  size_t nb, nf, bad, pos, i;
  kb_status st;
  mixed_records(a, 300);
  mixed_records(other, 120);
  for (i = 0; i < 120; i++) {
    other[i].data_len = (i * 13) % 90; /* not a prefix of `a` */
  }
  for (i = 0; i < 300; i++) {
    CHECK_ST(kb_record_size_of(&a[i], l.key_unit, &as[i]), KB_OK);
  }
  for (i = 0; i < 120; i++) {
    CHECK_ST(kb_record_size_of(&other[i], l.key_unit, &os[i]), KB_OK);
  }
  CHECK_ST(plan_whole(&l, other, 120, &whole_other), KB_OK);
  CHECK(whole_other.n_batches > 5);

  /* A planner that planned `a` to the end, given `other`. */
  CHECK_ST(kb_planner_new(&l, &p), KB_OK);
  CHECK_ST(kb_planner_plan(p, a, 300, got.batches, MAXN, &got.n_batches, got.refusals, MAXN,
                           &got.n_refusals, NULL),
           KB_OK);
#define EXPECT_CHANGED(call)                         \
  do {                                               \
    FILL_N(b, 4);                                    \
    FILL_N(f, 4);                                    \
    FILL(nb);                                        \
    FILL(nf);                                        \
    FILL(one);                                       \
    FILL(onef);                                      \
    FILL(bad);                                       \
    CHECK_ST(call, KB_INPUT_CHANGED);                \
    CHECK_UNTOUCHED_N(b, 4);                         \
    CHECK_UNTOUCHED_N(f, 4);                         \
    CHECK_UNTOUCHED(one);                            \
    CHECK_UNTOUCHED(onef);                           \
    CHECK_UNTOUCHED(bad);                            \
    CHECK_COUNT(#call, nb);                          \
    CHECK_COUNT(#call, nf);                          \
  } while (0)
  EXPECT_CHANGED(kb_planner_plan(p, other, 120, b, 4, &nb, f, 4, &nf, &bad));
  EXPECT_CHANGED(kb_planner_plan_sizes(p, os, 120, b, 4, &nb, f, 4, &nf));
  EXPECT_CHANGED(kb_planner_next(p, other, 120, &one, &onef, &bad));
  EXPECT_CHANGED(kb_planner_next_sizes(p, os, 120, &one, &onef));
  EXPECT_CHANGED(kb_planner_next(p, a, 301, &one, &onef, &bad)); /* longer too */
  EXPECT_CHANGED(kb_planner_plan(p, NULL, 0, b, 4, &nb, f, 4, &nf, &bad));
  CHECK_ST(kb_planner_position(p, &pos), KB_OK);
  CHECK_EQ(pos, 300);
  /* The same array again is still "done". */
  CHECK_ST(kb_planner_plan(p, a, 300, b, 4, &nb, f, 4, &nf, NULL), KB_OK);
  CHECK_EQ(nb + nf, 0);
  CHECK_ST(kb_planner_next(p, a, 300, &one, &onef, NULL), KB_END);

  /* Reset: the full plan of the new array, as a fresh planner makes it. */
  CHECK_ST(kb_planner_reset(p), KB_OK);
  CHECK_ST(kb_planner_position(p, &pos), KB_OK);
  CHECK_EQ(pos, 0);
  {
    kb_stats s;
    CHECK_ST(kb_planner_stats(p, &s), KB_OK);
    CHECK_EQ(s.batches, 0);
    CHECK_EQ(s.records, 0);
  }
  got.n_batches = got.n_refusals = 0;
  CHECK_ST(kb_planner_plan(p, other, 120, got.batches, MAXN, &got.n_batches, got.refusals,
                           MAXN, &got.n_refusals, NULL),
           KB_OK);
  CHECK(same_plan(&got, &whole_other));
  /* And the cursor over the size form after another reset. */
  CHECK_ST(kb_planner_reset(p), KB_OK);
  got.n_batches = got.n_refusals = 0;
  while ((st = kb_planner_next_sizes(p, os, 120, &one, &onef)) != KB_END) {
    if (st == KB_OK) {
      got.batches[got.n_batches++] = one;
    } else if (st == KB_REFUSED) {
      got.refusals[got.n_refusals++] = onef;
    } else {
      CHECK_ST(st, KB_OK);
      break;
    }
  }
  CHECK(same_plan(&got, &whole_other));
  kb_planner_free(p);

  /* Part-way through: another length is refused at once, the plan goes on unharmed. */
  CHECK_ST(kb_planner_new(&l, &q), KB_OK);
  got.n_batches = got.n_refusals = 0;
  st = kb_planner_next(q, other, 120, &one, &onef, NULL);
  if (st == KB_OK) {
    got.batches[got.n_batches++] = one;
  } else {
    CHECK_ST(st, KB_REFUSED);
    got.refusals[got.n_refusals++] = onef;
  }
  CHECK_ST(kb_planner_position(q, &pos), KB_OK);
  EXPECT_CHANGED(kb_planner_plan(q, a, 300, b, 4, &nb, f, 4, &nf, &bad));
  EXPECT_CHANGED(kb_planner_next(q, a, 300, &one, &onef, &bad));
  {
    size_t pos2;
    CHECK_ST(kb_planner_position(q, &pos2), KB_OK);
    CHECK_EQ(pos2, pos);
  }
  CHECK_ST(kb_planner_plan(q, other, 120, got.batches + got.n_batches, MAXN - 1, &nb,
                           got.refusals + got.n_refusals, MAXN - 1, &nf, NULL),
           KB_OK);
  got.n_batches += nb;
  got.n_refusals += nf;
  CHECK(same_plan(&got, &whole_other));
  kb_planner_free(q);
#undef EXPECT_CHANGED

  CHECK_ST(kb_planner_reset(NULL), KB_NULL_POINTER);
}

static void test_accumulator_reset(void) {
  kb_limits m = kb_custom(KB_PROFILE_KDS, 7, 400, 100);
  static kb_record q[300];
  static struct whole_plan whole;
  kb_accumulator *a;
  kb_batch b;
  kb_reason why;
  size_t k, n, nb, first_start = SIZE_MAX;
  kb_stats s;
  int ok = 1;
  mixed_records(q, 300);
  CHECK_ST(plan_whole(&m, q, 300, &whole), KB_OK);
  CHECK_ST(kb_accumulator_new(&m, &a), KB_OK);
  for (k = 0; k < 300; k++) {
    kb_accumulator_push(a, &q[k], &b, &why);
  }
  /* Reused without a reset, it goes on numbering: the array's records are 300.. */
  for (k = 0; k < 300 && first_start == SIZE_MAX; k++) {
    if (kb_accumulator_push(a, &q[k], &b, &why) == KB_SEND_FIRST && b.start >= 300) {
      first_start = b.start;
    }
  }
  CHECK(first_start != SIZE_MAX);
  /* Reset: numbering, the open batch and the counters start over. */
  CHECK_ST(kb_accumulator_reset(a), KB_OK);
  CHECK_ST(kb_accumulator_pushed(a, &n), KB_OK);
  CHECK_EQ(n, 0);
  CHECK_ST(kb_accumulator_pending(a, &b), KB_END);
  CHECK_ST(kb_accumulator_stats(a, &s), KB_OK);
  CHECK_EQ(s.batches, 0);
  CHECK_EQ(s.records, 0);
  nb = 0;
  for (k = 0; k < 300; k++) {
    kb_status st = kb_accumulator_push(a, &q[k], &b, &why);
    if (st == KB_SEND_FIRST) {
      ok &= nb < whole.n_batches && kb_batch_eq(&b, &whole.batches[nb]);
      nb++;
    }
  }
  if (kb_accumulator_flush(a, &b) == KB_OK) {
    ok &= nb < whole.n_batches && kb_batch_eq(&b, &whole.batches[nb]);
    nb++;
  }
  CHECK(ok);
  CHECK_EQ(nb, whole.n_batches);
  kb_accumulator_free(a);
  CHECK_ST(kb_accumulator_reset(NULL), KB_NULL_POINTER);

  /* A skip closes the open batch as a refused push does: the record after it sends the
   * batch before it first, so every batch is exactly records[start..end). With
   * KB_LIMITS_SPAN_REFUSALS a batch may span the skipped index. */
  {
    kb_record one = kb_rec(U8("x"), 1, U8("k"), 1);
    CHECK_ST(kb_accumulator_new(&m, &a), KB_OK);
    CHECK_ST(kb_accumulator_push(a, &one, &b, &why), KB_OK);
    CHECK_ST(kb_accumulator_skip(a, &n), KB_OK);
    CHECK_EQ(n, 1);
    CHECK_ST(kb_accumulator_push(a, &one, &b, &why), KB_SEND_FIRST);
    CHECK_EQ(b.start, 0);
    CHECK_EQ(b.end, 1);
    CHECK_ST(kb_accumulator_pending(a, &b), KB_OK);
    CHECK_EQ(b.start, 2);
    CHECK_EQ(b.end, 3);
    kb_accumulator_free(a);

    kb_limits spanning = m;
    spanning.options |= KB_LIMITS_SPAN_REFUSALS;
    CHECK_ST(kb_accumulator_new(&spanning, &a), KB_OK);
    CHECK_ST(kb_accumulator_push(a, &one, &b, &why), KB_OK);
    CHECK_ST(kb_accumulator_skip(a, &n), KB_OK);
    CHECK_ST(kb_accumulator_push(a, &one, &b, &why), KB_OK);
    CHECK_ST(kb_accumulator_pending(a, &b), KB_OK);
    CHECK_EQ(b.start, 0);
    CHECK_EQ(b.end, 3);
    CHECK_EQ(b.records, 2);
    kb_accumulator_free(a);
  }
}

void KB_SUITE(test_planner)(void) {
  test_plan_basics();
  test_plan_boundaries();
  test_resume();
  test_plan_errors();
  test_reach();
  test_accumulator();
  test_no_refused_record_in_a_request();
  test_planner_reuse();
  test_accumulator_reset();
}
