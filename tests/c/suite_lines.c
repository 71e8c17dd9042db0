/*
 * suite_lines.c: the line splitter (kb_lines_*) and the line planner
 * (kb_line_planner_*): streaming across chunks, bad input, no partial success.
 */
#include "kb_test.h"

static int bytes_are(const kb_line *line, const char *s) {
  size_t n = strlen(s);
  return line->bytes_len == n && (n == 0 || memcmp(line->bytes, s, n) == 0);
}

static void test_lines_split(void) {
  kb_limits kds = kb_profile(KB_PROFILE_KDS);
  kb_lines *ln;
  kb_line line;
  size_t used;
  uint8_t buf[64];
  const char *input = "first\r\n\nsecond\nthi";
  size_t len = strlen(input), off = 0;

  CHECK_ST(kb_lines_new(&kds, 0, 0, &ln), KB_OK);
  CHECK_ST(kb_lines_next(ln, U8(input), len, false, &line, &used), KB_OK);
  CHECK(bytes_are(&line, "first"));
  CHECK_EQ(line.len, 5);
  CHECK_EQ(line.number, 1);
  CHECK_EQ(line.last_number, 1);
  CHECK_EQ(line.offset, 0);
  CHECK(line.whole);
  CHECK(line.bytes == U8(input));
  off += used;
  CHECK_ST(kb_lines_next(ln, U8(input) + off, len - off, false, &line, &used), KB_OK);
  CHECK(bytes_are(&line, "second")); /* the empty line 2 is skipped */
  CHECK_EQ(line.number, 3);
  CHECK_EQ(line.offset, 8);
  off += used;
  CHECK_ST(kb_lines_next(ln, U8(input) + off, len - off, false, &line, &used), KB_NEED_MORE);
  off += used;
  {
    uint64_t seen;
    CHECK_ST(kb_lines_seen(ln, &seen), KB_OK);
    CHECK(seen == 3 || seen == 4); /* "thi" may count as started */
    FILL(seen);
    CHECK_ST(kb_lines_seen(NULL, &seen), KB_NULL_POINTER);
    CHECK_ST(kb_lines_seen(ln, NULL), KB_NULL_POINTER);
    CHECK_UNTOUCHED(seen);
  }
  /* Keep what was not consumed, append the rest of the stream. */
  memcpy(buf, input + off, len - off);
  memcpy(buf + (len - off), "rd\n", 3);
  CHECK_ST(kb_lines_next(ln, buf, len - off + 3, true, &line, &used), KB_OK);
  CHECK(bytes_are(&line, "third"));
  CHECK_EQ(line.number, 4);
  CHECK_EQ(line.offset, 15);
  CHECK_EQ(used, len - off + 3);
  FILL(line);
  CHECK_ST(kb_lines_next(ln, NULL, 0, true, &line, &used), KB_END);
  CHECK_UNTOUCHED(line);
  CHECK_EQ(used, 0);
  {
    uint64_t seen;
    CHECK_ST(kb_lines_seen(ln, &seen), KB_OK);
    CHECK_EQ(seen, 4);
  }

  /* Errors: nothing written but the count (`used`, set to 0), and the splitter goes on. */
#define EXPECT_LINES_ERROR(call, status) \
  do {                                   \
    FILL(line);                          \
    FILL(used);                          \
    CHECK_ST(call, status);              \
    CHECK_UNTOUCHED(line);               \
    CHECK_COUNT(#call, used);            \
  } while (0)
  EXPECT_LINES_ERROR(kb_lines_next(NULL, U8("a\n"), 2, true, &line, &used), KB_NULL_POINTER);
  EXPECT_LINES_ERROR(kb_lines_next(ln, U8("a\n"), 2, true, NULL, &used), KB_NULL_POINTER);
  EXPECT_LINES_ERROR(kb_lines_next(ln, U8("a\n"), 2, true, &line, NULL), KB_NULL_POINTER);
  EXPECT_LINES_ERROR(kb_lines_next(ln, NULL, 2, true, &line, &used), KB_NULL_ARRAY);
  EXPECT_LINES_ERROR(kb_lines_next(ln, U8("a\n"), SIZE_MAX, true, &line, &used),
                     KB_LENGTH_OVERFLOW);
#undef EXPECT_LINES_ERROR
  kb_lines_free(ln);

  /* Empty lines kept; a last line without its newline. */
  CHECK_ST(kb_lines_new(&kds, KB_LINES_KEEP_EMPTY, 0, &ln), KB_OK);
  input = "a\n\r\nb";
  len = strlen(input);
  off = 0;
  CHECK_ST(kb_lines_next(ln, U8(input), len, true, &line, &used), KB_OK);
  CHECK(bytes_are(&line, "a"));
  off += used;
  CHECK_ST(kb_lines_next(ln, U8(input) + off, len - off, true, &line, &used), KB_OK);
  CHECK(bytes_are(&line, ""));
  CHECK_EQ(line.number, 2);
  off += used;
  CHECK_ST(kb_lines_next(ln, U8(input) + off, len - off, true, &line, &used), KB_OK);
  CHECK(bytes_are(&line, "b"));
  CHECK_EQ(line.number, 3);
  CHECK_EQ(line.offset, 4);
  off += used;
  CHECK_EQ(off, len);
  CHECK_ST(kb_lines_next(ln, NULL, 0, true, &line, &used), KB_END);
  kb_lines_free(ln);

  /* A line over the record cap is reported before its end, with what was seen. */
  {
    kb_limits l = kb_custom(KB_PROFILE_KDS, 500, 1000, 10);
    CHECK_ST(kb_lines_new(&l, 0, 0, &ln), KB_OK);
    input = "0123456789ABCDEFGHIJ";
    CHECK_ST(kb_lines_next(ln, U8(input), 20, false, &line, &used), KB_OK);
    CHECK(line.len > 10);
    CHECK(line.bytes_len < line.len);
    CHECK(!line.whole);
    CHECK(line.bytes_len > 10);
    CHECK_EQ(line.number, 1);
    off = used;
    CHECK(off <= 20);
    /* The rest of it is skipped as it arrives. */
    memcpy(buf, input + off, 20 - off);
    memcpy(buf + (20 - off), "KL\nok\n", 6);
    CHECK_ST(kb_lines_next(ln, buf, 20 - off + 6, true, &line, &used), KB_OK);
    CHECK(bytes_are(&line, "ok"));
    CHECK(line.whole);
    CHECK_EQ(line.number, 2);
    CHECK_EQ(line.offset, 23);
    kb_lines_free(ln);

    /* Packing: lines joined by \n up to the cap less the key (10 - 2). */
    CHECK_ST(kb_lines_new(&l, KB_LINES_PACK, 2, &ln), KB_OK);
    input = "aa\nbb\ncc\ndd\n";
    len = strlen(input);
    CHECK_ST(kb_lines_next(ln, U8(input), len, true, &line, &used), KB_OK);
    CHECK(bytes_are(&line, "aa\nbb\ncc"));
    CHECK_EQ(line.number, 1);
    CHECK_EQ(line.last_number, 3);
    CHECK(line.whole);
    off = used;
    CHECK_ST(kb_lines_next(ln, U8(input) + off, len - off, true, &line, &used), KB_OK);
    CHECK(bytes_are(&line, "dd"));
    CHECK_EQ(line.number, 4);
    CHECK_EQ(line.offset, 9);
    off += used;
    CHECK_ST(kb_lines_next(ln, U8(input) + off, len - off, true, &line, &used), KB_END);
    {
      uint64_t seen;
      CHECK_ST(kb_lines_seen(ln, &seen), KB_OK);
      CHECK_EQ(seen, 4);
    }
    kb_lines_free(ln);
  }

  /* Bad options. */
  FILL(ln);
  CHECK_ST(kb_lines_new(&kds, 4, 0, &ln), KB_INVALID_ARGUMENT);
  CHECK_ST(kb_lines_new(&kds, KB_LINES_PACK | KB_LINES_KEEP_EMPTY, 0, &ln),
           KB_INVALID_ARGUMENT);
  CHECK_ST(kb_lines_new(&kds, UINT32_MAX, 0, &ln), KB_INVALID_ARGUMENT);
  CHECK_UNTOUCHED(ln);
  CHECK_ST(kb_lines_new(&kds, 0, 0, NULL), KB_NULL_POINTER);
}

/* The line planner's whole plan of `input` in one call. */
struct whole_lines {
  kb_line_batch batches[256];
  size_t n_batches;
  kb_line_refusal refusals[256];
  size_t n_refusals;
};

static int same_lines(const struct whole_lines *a, const struct whole_lines *b) {
  size_t i;
  if (a->n_batches != b->n_batches || a->n_refusals != b->n_refusals) {
    return 0;
  }
  for (i = 0; i < a->n_batches; i++) {
    const kb_line_batch *x = &a->batches[i], *y = &b->batches[i];
    if (!kb_batch_eq(&x->batch, &y->batch) || x->offset != y->offset ||
        x->end_offset != y->end_offset || x->first_line != y->first_line ||
        x->last_line != y->last_line) {
      return 0;
    }
  }
  for (i = 0; i < a->n_refusals; i++) {
    const kb_line_refusal *x = &a->refusals[i], *y = &b->refusals[i];
    if (!kb_refusal_eq(&x->refusal, &y->refusal) || x->line != y->line ||
        x->offset != y->offset) {
      return 0;
    }
  }
  return 1;
}

static void test_line_planner(void) {
  kb_limits l = kb_custom(KB_PROFILE_KDS, 2, 1000, 100);
  kb_limits kds = kb_profile(KB_PROFILE_KDS);
  kb_line_planner *lp, *fresh;
  kb_line_batch b[4];
  kb_line_refusal f[4];
  size_t nb, nf, used;
  kb_reason why;
  uint64_t keep;
  kb_stats s;
  const char *input = "one\ntwo\nthree\n";

  CHECK_ST(kb_line_planner_new(&l, U8("logs"), 4, 0, &lp, &why), KB_OK);
  CHECK_ST(kb_line_planner_keep_from(lp, &keep), KB_END);
  CHECK_ST(kb_line_planner_plan(lp, U8(input), strlen(input), true, b, 4, &nb, f, 4, &nf,
                                &used),
           KB_OK);
  CHECK_EQ(used, strlen(input));
  CHECK_EQ(nb, 2);
  CHECK_EQ(nf, 0);
  CHECK_EQ(b[0].first_line, 1);
  CHECK_EQ(b[0].last_line, 2);
  CHECK_EQ(b[0].batch.records, 2);
  CHECK_EQ(b[0].batch.bytes, 3 + 4 + 3 + 4);
  CHECK_EQ(b[1].offset, 8);
  CHECK_EQ(b[1].end_offset, 13);
  CHECK_EQ(b[1].batch.start, 2);
  CHECK_EQ(b[1].first_line, 3);
  CHECK_ST(kb_line_planner_stats(lp, &s), KB_OK);
  CHECK_EQ(s.batches, 2);
  CHECK_EQ(s.records, 3);
  kb_line_planner_free(lp);

  /* keep_from while a batch is open; KB_NEED_MORE inside a line. */
  CHECK_ST(kb_line_planner_new(&l, U8("logs"), 4, 0, &lp, NULL), KB_OK);
  input = "one\ntwo\nthree\nfo";
  CHECK_ST(kb_line_planner_plan(lp, U8(input), strlen(input), false, b, 4, &nb, f, 4, &nf,
                                &used),
           KB_NEED_MORE);
  CHECK_EQ(used, 14);
  CHECK_EQ(nb, 1);
  CHECK_ST(kb_line_planner_keep_from(lp, &keep), KB_OK);
  CHECK_EQ(keep, 8);
  CHECK_ST(kb_line_planner_plan(lp, U8("four\n"), 5, true, b, 4, &nb, f, 4, &nf, &used),
           KB_OK);
  CHECK_EQ(nb, 1);
  CHECK_EQ(b[0].offset, 8);
  CHECK_EQ(b[0].end_offset, 18);
  CHECK_EQ(b[0].last_line, 4);
  CHECK_ST(kb_line_planner_keep_from(lp, &keep), KB_END);

  /* Errors on a planner part-way through a stream: nothing written, state unchanged. */
  kb_line_planner_free(lp);
  CHECK_ST(kb_line_planner_new(&l, U8("logs"), 4, 0, &lp, NULL), KB_OK);
  CHECK_ST(kb_line_planner_new(&l, U8("logs"), 4, 0, &fresh, NULL), KB_OK);
  input = "aaaa\nbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\ncc\ndd\nee\n";
  {
    size_t len = strlen(input);
    struct whole_lines w1, w2;
    kb_status st;
    CHECK_ST(kb_line_planner_plan(lp, U8(input), 5, false, b, 4, &nb, f, 4, &nf, &used),
             KB_NEED_MORE);
    CHECK_ST(kb_line_planner_plan(fresh, U8(input), 5, false, b, 4, &nb, f, 4, &nf, &used),
             KB_NEED_MORE);
#define EXPECT_LP_ERROR(call, status) \
  do {                                \
    FILL_N(b, 4);                     \
    FILL_N(f, 4);                     \
    FILL(nb);                         \
    FILL(nf);                         \
    FILL(used);                       \
    CHECK_ST(call, status);           \
    CHECK_UNTOUCHED_N(b, 4);          \
    CHECK_UNTOUCHED_N(f, 4);          \
    CHECK_COUNT(#call, nb);           \
    CHECK_COUNT(#call, nf);           \
    CHECK_COUNT(#call, used);         \
  } while (0)
    EXPECT_LP_ERROR(kb_line_planner_plan(NULL, U8(input), len, true, b, 4, &nb, f, 4, &nf,
                                         &used),
                    KB_NULL_POINTER);
    EXPECT_LP_ERROR(kb_line_planner_plan(lp, U8(input), len, true, b, 4, NULL, f, 4, &nf,
                                         &used),
                    KB_NULL_POINTER);
    EXPECT_LP_ERROR(kb_line_planner_plan(lp, U8(input), len, true, b, 4, &nb, f, 4, NULL,
                                         &used),
                    KB_NULL_POINTER);
    EXPECT_LP_ERROR(kb_line_planner_plan(lp, U8(input), len, true, b, 4, &nb, f, 4, &nf,
                                         NULL),
                    KB_NULL_POINTER);
    EXPECT_LP_ERROR(kb_line_planner_plan(lp, NULL, len, true, b, 4, &nb, f, 4, &nf, &used),
                    KB_NULL_ARRAY);
    EXPECT_LP_ERROR(kb_line_planner_plan(lp, U8(input), len, true, NULL, 4, &nb, f, 4, &nf,
                                         &used),
                    KB_NULL_ARRAY);
    EXPECT_LP_ERROR(kb_line_planner_plan(lp, U8(input), len, true, b, 4, &nb, NULL, 4, &nf,
                                         &used),
                    KB_NULL_ARRAY);
    EXPECT_LP_ERROR(kb_line_planner_plan(lp, U8(input), len, true, b, 0, &nb, f, 4, &nf,
                                         &used),
                    KB_ZERO_CAPACITY);
    EXPECT_LP_ERROR(kb_line_planner_plan(lp, U8(input), len, true, b, 4, &nb, f, 0, &nf,
                                         &used),
                    KB_ZERO_CAPACITY);
    EXPECT_LP_ERROR(kb_line_planner_plan(lp, U8(input), SIZE_MAX, true, b, 4, &nb, f, 4, &nf,
                                         &used),
                    KB_LENGTH_OVERFLOW);
#undef EXPECT_LP_ERROR
    FILL(keep);
    CHECK_ST(kb_line_planner_keep_from(NULL, &keep), KB_NULL_POINTER);
    CHECK_ST(kb_line_planner_keep_from(lp, NULL), KB_NULL_POINTER);
    CHECK_UNTOUCHED(keep);
    FILL(s);
    CHECK_ST(kb_line_planner_stats(NULL, &s), KB_NULL_POINTER);
    CHECK_ST(kb_line_planner_stats(lp, NULL), KB_NULL_POINTER);
    CHECK_UNTOUCHED(s);
    /* Both go on identically, with capacity 1 so the resume statuses show up. */
    w1.n_batches = w1.n_refusals = w2.n_batches = w2.n_refusals = 0;
    {
      size_t off = 5, k;
      int full_b = 0, full_f = 0;
      do {
        st = kb_line_planner_plan(lp, U8(input) + off, len - off, true, b, 1, &nb, f, 1, &nf,
                                  &used);
        full_b |= st == KB_BATCHES_FULL;
        full_f |= st == KB_REFUSALS_FULL;
        off += used;
        for (k = 0; k < nb; k++) w1.batches[w1.n_batches++] = b[k];
        for (k = 0; k < nf; k++) w1.refusals[w1.n_refusals++] = f[k];
      } while ((st == KB_BATCHES_FULL || st == KB_REFUSALS_FULL) && w1.n_batches < 200);
      CHECK_ST(st, KB_OK);
      CHECK(full_b);
      CHECK_ST(kb_line_planner_plan(fresh, U8(input) + 5, len - 5, true, w2.batches, 256,
                                    &w2.n_batches, w2.refusals, 256, &w2.n_refusals, &used),
               KB_OK);
      CHECK(same_lines(&w1, &w2));
      CHECK_EQ(w2.n_refusals, 1);
      CHECK_EQ(w2.refusals[0].refusal.index, 1);
      CHECK_EQ(w2.refusals[0].refusal.reason, KB_REASON_RECORD_TOO_LARGE);
      CHECK_EQ(w2.refusals[0].line, 2);
      CHECK_EQ(w2.refusals[0].offset, 5);
      (void)full_f;
    }
    {
      /* Two refusals with a refusal capacity of 1: KB_REFUSALS_FULL. */
      kb_line_planner *q;
      const char *two = "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n"
                        "yyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyyy\n";
      CHECK_ST(kb_line_planner_new(&l, U8("k"), 1, 0, &q, NULL), KB_OK);
      CHECK_ST(kb_line_planner_plan(q, U8(two), strlen(two), true, b, 1, &nb, f, 1, &nf,
                                    &used),
               KB_REFUSALS_FULL);
      CHECK_EQ(nf, 1);
      kb_line_planner_free(q);
    }
  }
  kb_line_planner_free(fresh);
  kb_line_planner_free(lp);

  /* Keys refused once, at creation. */
  {
    uint8_t long_key[257];
    kb_limits tiny = kb_custom(KB_PROFILE_KDS, 500, 1000, 2);
    kb_limits fh = kb_profile(KB_PROFILE_FIREHOSE);
    memset(long_key, 'k', sizeof long_key);
    FILL(lp);
    FILL(why);
    CHECK_ST(kb_line_planner_new(&kds, NULL, 0, 0, &lp, &why), KB_KEY_REFUSED);
    CHECK_EQ(why, KB_REASON_KEY_EMPTY);
    CHECK_ST(kb_line_planner_new(&kds, U8("\xff"), 1, 0, &lp, &why), KB_KEY_REFUSED);
    CHECK_EQ(why, KB_REASON_KEY_NOT_UTF8);
    CHECK_ST(kb_line_planner_new(&kds, long_key, 257, KB_LINES_PACK, &lp, &why),
             KB_KEY_REFUSED);
    CHECK_EQ(why, KB_REASON_KEY_TOO_LONG);
    CHECK_ST(kb_line_planner_new(&tiny, U8("abc"), 3, 0, &lp, &why), KB_KEY_REFUSED);
    CHECK_EQ(why, KB_REASON_RECORD_TOO_LARGE);
    CHECK_ST(kb_line_planner_new(&kds, NULL, 0, 0, &lp, NULL), KB_KEY_REFUSED);
    CHECK_UNTOUCHED(lp);
    FILL(why);
    CHECK_ST(kb_line_planner_new(&kds, NULL, 3, 0, &lp, &why), KB_NULL_ARRAY);
    CHECK_ST(kb_line_planner_new(&kds, U8("k"), 1, 4, &lp, &why), KB_INVALID_ARGUMENT);
    CHECK_ST(kb_line_planner_new(&kds, U8("k"), 1, KB_LINES_PACK | KB_LINES_KEEP_EMPTY, &lp,
                                 &why),
             KB_INVALID_ARGUMENT);
    CHECK_ST(kb_line_planner_new(&kds, U8("k"), 1, 0, NULL, &why), KB_NULL_POINTER);
    CHECK_UNTOUCHED(lp);
    CHECK_UNTOUCHED(why);
    /* Firehose has no keys: any key (even none) is fine. */
    CHECK_ST(kb_line_planner_new(&fh, NULL, 0, KB_LINES_PACK, &lp, &why), KB_OK);
    CHECK_UNTOUCHED(why);
    kb_line_planner_free(lp);
    CHECK_ST(kb_line_planner_new(&fh, U8("\xff"), 1, KB_LINES_KEEP_EMPTY, &lp, &why), KB_OK);
    kb_line_planner_free(lp);
  }
}

/* Input fed in small chunks plans as the whole buffer does, for each option. */
static void test_line_chunks(void) {
  static uint8_t input[6000];
  static struct whole_lines whole, got;
  size_t len = 0, i;
  uint64_t seed = 7;
  kb_limits l = kb_custom(KB_PROFILE_KDS, 3, 200, 40);
  uint32_t opts;
  while (len < sizeof input - 200) {
    uint64_t r = KB_SUITE(rand_next)(&seed);
    size_t n = (size_t)(r % 8 == 0 ? 30 + r % 40 : r % 20);
    for (i = 0; i < n; i++) {
      input[len++] = (uint8_t)('a' + (i % 26));
    }
    if (r % 5 == 0) {
      input[len++] = '\r';
    }
    input[len++] = '\n';
  }
  memcpy(input + len, "tail", 4);
  len += 4;
  for (opts = 0; opts <= 2; opts++) {
    kb_line_planner *lp;
    kb_reason why;
    uint64_t s;
    CHECK_ST(kb_line_planner_new(&l, U8("key"), 3, opts, &lp, NULL), KB_OK);
    CHECK_ST(kb_line_planner_plan(lp, input, len, true, whole.batches, 256, &whole.n_batches,
                                  whole.refusals, 256, &whole.n_refusals, &i),
             KB_OK);
    CHECK_EQ(i, len);
    kb_line_planner_free(lp);
    CHECK(whole.n_batches > 10);
    if (opts != KB_LINES_PACK) {
      CHECK(whole.n_refusals > 3);
    }
    for (s = 1; s <= 6; s++) {
      CHECK_ST(KB_SUITE(drive_lines)(&l, U8("key"), 3, opts, input, len, s, got.batches, 256,
                                     &got.n_batches, got.refusals, 256, &got.n_refusals,
                                     &why),
               KB_OK);
      CHECK(same_lines(&got, &whole));
    }
  }
}

/* Reused without a reset, a splitter or line planner goes on numbering lines, offsets
 * and records from the last stream; reset starts each over, as a fresh object. */
static void test_lines_reset(void) {
  kb_limits l = kb_custom(KB_PROFILE_KDS, 2, 1000, 100);
  const char *one = "alpha\nbeta\n";
  const char *two = "gamma\ndelta\nepsilon\n";
  kb_lines *ln;
  kb_line line;
  size_t used;
  uint64_t seen;
  uint32_t opts;
  for (opts = 0; opts <= KB_LINES_PACK; opts++) {
    size_t off = 0;
    CHECK_ST(kb_lines_new(&l, opts, 1, &ln), KB_OK);
    while (kb_lines_next(ln, U8(one) + off, strlen(one) - off, true, &line, &used) == KB_OK) {
      off += used;
    }
    /* Without a reset, the next stream's first line is numbered after the last one's. */
    CHECK_ST(kb_lines_next(ln, U8(two), strlen(two), true, &line, &used), KB_OK);
    CHECK(line.number > 1);
    CHECK(line.offset > 0);
    CHECK_ST(kb_lines_reset(ln), KB_OK);
    CHECK_ST(kb_lines_seen(ln, &seen), KB_OK);
    CHECK_EQ(seen, 0);
    CHECK_ST(kb_lines_next(ln, U8(two), strlen(two), true, &line, &used), KB_OK);
    CHECK_EQ(line.number, 1);
    CHECK_EQ(line.offset, 0);
    CHECK(line.bytes == U8(two));
    kb_lines_free(ln);
  }
  CHECK_ST(kb_lines_reset(NULL), KB_NULL_POINTER);

  for (opts = 0; opts <= KB_LINES_PACK; opts++) {
    kb_line_planner *lp, *fresh;
    struct whole_lines w1, w2;
    CHECK_ST(kb_line_planner_new(&l, U8("k"), 1, opts, &lp, NULL), KB_OK);
    CHECK_ST(kb_line_planner_new(&l, U8("k"), 1, opts, &fresh, NULL), KB_OK);
    CHECK_ST(kb_line_planner_plan(lp, U8(one), strlen(one), true, w1.batches, 256,
                                  &w1.n_batches, w1.refusals, 256, &w1.n_refusals, &used),
             KB_OK);
    CHECK_ST(kb_line_planner_plan(fresh, U8(two), strlen(two), true, w2.batches, 256,
                                  &w2.n_batches, w2.refusals, 256, &w2.n_refusals, &used),
             KB_OK);
    CHECK(w2.n_batches > 0);
    /* Without a reset: not the fresh plan (the records and lines go on counting). */
    CHECK_ST(kb_line_planner_plan(lp, U8(two), strlen(two), true, w1.batches, 256,
                                  &w1.n_batches, w1.refusals, 256, &w1.n_refusals, &used),
             KB_OK);
    CHECK(!same_lines(&w1, &w2));
    /* Reset: exactly the fresh plan, counters from 0. */
    CHECK_ST(kb_line_planner_reset(lp), KB_OK);
    {
      kb_stats s;
      uint64_t keep;
      CHECK_ST(kb_line_planner_stats(lp, &s), KB_OK);
      CHECK_EQ(s.batches, 0);
      CHECK_EQ(s.records, 0);
      CHECK_ST(kb_line_planner_keep_from(lp, &keep), KB_END);
    }
    CHECK_ST(kb_line_planner_plan(lp, U8(two), strlen(two), true, w1.batches, 256,
                                  &w1.n_batches, w1.refusals, 256, &w1.n_refusals, &used),
             KB_OK);
    CHECK(same_lines(&w1, &w2));
    CHECK_EQ(w1.batches[0].batch.start, 0);
    CHECK_EQ(w1.batches[0].first_line, 1);
    CHECK_EQ(w1.batches[0].offset, 0);
    /* A reset part-way through a stream drops the open batch. */
    CHECK_ST(kb_line_planner_plan(lp, U8(one), 3, false, w1.batches, 256, &w1.n_batches,
                                  w1.refusals, 256, &w1.n_refusals, &used),
             KB_NEED_MORE);
    CHECK_ST(kb_line_planner_reset(lp), KB_OK);
    CHECK_ST(kb_line_planner_plan(lp, U8(two), strlen(two), true, w1.batches, 256,
                                  &w1.n_batches, w1.refusals, 256, &w1.n_refusals, &used),
             KB_OK);
    CHECK(same_lines(&w1, &w2));
    kb_line_planner_free(fresh);
    kb_line_planner_free(lp);
  }
  CHECK_ST(kb_line_planner_reset(NULL), KB_NULL_POINTER);
}

void KB_SUITE(test_lines)(void) {
  test_lines_split();
  test_line_planner();
  test_line_chunks();
  test_lines_reset();
}
