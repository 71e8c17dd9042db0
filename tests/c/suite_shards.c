/*
 * Shard prediction: hash keys (MD5 of the partition key, or the explicit hash key) and a
 * shard's index among the open shards, at every edge, with every bad input.
 */
#include "kb_test.h"

static kb_hash_key128 hk(uint64_t high, uint64_t low) {
  kb_hash_key128 k;
  k.high = high;
  k.low = low;
  return k;
}

static kb_shard_range range(kb_hash_key128 start, kb_hash_key128 end) {
  kb_shard_range r;
  r.start = start;
  r.end = end;
  return r;
}

static int hk_eq(kb_hash_key128 a, kb_hash_key128 b) { return a.high == b.high && a.low == b.low; }

static void test_hash_keys(void) {
  kb_hash_key128 out;
  size_t bad;
  /* RFC 1321: MD5("abc") = 900150983cd24fb0d6963f7d28e17f72, read big-endian. */
  CHECK_ST(kb_hash_key_of(U8("abc"), 3, NULL, KB_NO_HASH_KEY, &out), KB_OK);
  CHECK(hk_eq(out, hk(0x900150983cd24fb0ULL, 0xd6963f7d28e17f72ULL)));
  /* MD5("") = d41d8cd98f00b204e9800998ecf8427e; (NULL, 0) is the empty key. */
  CHECK_ST(kb_hash_key_of(NULL, 0, NULL, KB_NO_HASH_KEY, &out), KB_OK);
  CHECK(hk_eq(out, hk(0xd41d8cd98f00b204ULL, 0xe9800998ecf8427eULL)));
  /* The explicit hash key wins: 2^64 + 1, and 2^128 - 1. */
  CHECK_ST(kb_hash_key_of(U8("k"), 1, U8("18446744073709551617"), 20, &out), KB_OK);
  CHECK(hk_eq(out, hk(1, 1)));
  CHECK_ST(kb_hash_key_parse(U8("340282366920938463463374607431768211455"), 39, &out), KB_OK);
  CHECK(hk_eq(out, hk(UINT64_MAX, UINT64_MAX)));
  CHECK_ST(kb_hash_key_parse(U8("0"), 1, &out), KB_OK);
  CHECK(hk_eq(out, hk(0, 0)));

  /* Not hash keys: 2^128, a leading zero, empty, a sign. Nothing written. */
  FILL(out);
  CHECK_ST(kb_hash_key_parse(U8("340282366920938463463374607431768211456"), 39, &out),
           KB_NOT_A_HASH_KEY);
  CHECK_ST(kb_hash_key_parse(U8("01"), 2, &out), KB_NOT_A_HASH_KEY);
  CHECK_ST(kb_hash_key_parse(NULL, 0, &out), KB_NOT_A_HASH_KEY);
  CHECK_ST(kb_hash_key_of(U8("k"), 1, U8("-1"), 2, &out), KB_NOT_A_HASH_KEY);
  CHECK_ST(kb_hash_key_of(U8("k"), 1, U8(""), 0, &out), KB_NOT_A_HASH_KEY);
  CHECK_UNTOUCHED(out);
  /* NULLs and overflowing lengths. */
  CHECK_ST(kb_hash_key_of(U8("k"), 1, NULL, KB_NO_HASH_KEY, NULL), KB_NULL_POINTER);
  CHECK_ST(kb_hash_key_of(NULL, 3, NULL, KB_NO_HASH_KEY, &out), KB_NULL_ARRAY);
  CHECK_ST(kb_hash_key_of(U8("k"), 1, NULL, 4, &out), KB_NULL_ARRAY);
  CHECK_ST(kb_hash_key_parse(U8("1"), 1, NULL), KB_NULL_POINTER);
  CHECK_ST(kb_hash_key_parse(NULL, 5, &out), KB_NULL_ARRAY);
  CHECK_ST(kb_hash_key_of(U8("k"), SIZE_MAX, NULL, KB_NO_HASH_KEY, &out), KB_LENGTH_OVERFLOW);
  CHECK_ST(kb_hash_key_parse(U8("1"), SIZE_MAX, &out), KB_LENGTH_OVERFLOW);
  CHECK_UNTOUCHED(out);
  (void)bad;
}

static void test_shard_map(void) {
  const kb_hash_key128 zero = hk(0, 0), max = hk(UINT64_MAX, UINT64_MAX);
  /* Three shards split at 2^64 and 2^127. */
  const kb_hash_key128 cut1 = hk(1, 0), cut2 = hk(0x8000000000000000ULL, 0);
  kb_shard_range three[3];
  size_t index, bad;
  three[0] = range(zero, hk(0, UINT64_MAX));
  three[1] = range(cut1, hk(0x7FFFFFFFFFFFFFFFULL, UINT64_MAX));
  three[2] = range(cut2, max);
  CHECK_ST(kb_shard_map_check(three, 3, &bad), KB_OK);
  CHECK_ST(kb_shard_map_check(three, 3, NULL), KB_OK);

  /* Every edge: a range's start and end are its own, end + 1 is the next's. */
  CHECK_ST(kb_shard_index(three, 3, zero, &index, NULL), KB_OK);
  CHECK_EQ(index, 0);
  CHECK_ST(kb_shard_index(three, 3, hk(0, UINT64_MAX), &index, NULL), KB_OK);
  CHECK_EQ(index, 0);
  CHECK_ST(kb_shard_index(three, 3, cut1, &index, NULL), KB_OK);
  CHECK_EQ(index, 1);
  CHECK_ST(kb_shard_index(three, 3, hk(0x7FFFFFFFFFFFFFFFULL, UINT64_MAX), &index, NULL), KB_OK);
  CHECK_EQ(index, 1);
  CHECK_ST(kb_shard_index(three, 3, cut2, &index, NULL), KB_OK);
  CHECK_EQ(index, 2);
  CHECK_ST(kb_shard_index(three, 3, max, &index, NULL), KB_OK);
  CHECK_EQ(index, 2);
  {
    /* A partition key's shard: MD5("pk1") = f7cf..., above 2^127. */
    kb_hash_key128 key;
    CHECK_ST(kb_hash_key_of(U8("pk1"), 3, NULL, KB_NO_HASH_KEY, &key), KB_OK);
    CHECK_ST(kb_shard_index(three, 3, key, &index, &bad), KB_OK);
    CHECK_EQ(index, 2);
  }

  /* Maps that are not the open shards: each named, with the culprit. */
  {
    kb_shard_range bad_map[3];
    FILL(bad);
    CHECK_ST(kb_shard_map_check(NULL, 0, &bad), KB_SHARD_MAP_EMPTY);
    CHECK_ST(kb_shard_index(NULL, 0, zero, &index, &bad), KB_SHARD_MAP_EMPTY);
    /* An overlap: the second starts inside the first. */
    memcpy(bad_map, three, sizeof three);
    bad_map[1].start = hk(0, 5);
    CHECK_ST(kb_shard_map_check(bad_map, 3, &bad), KB_SHARD_MAP_NOT_CONTIGUOUS);
    CHECK_EQ(bad, 1);
    /* A gap, then unsorted. */
    memcpy(bad_map, three, sizeof three);
    bad_map[2].start = hk(0x8000000000000000ULL, 1);
    CHECK_ST(kb_shard_map_check(bad_map, 3, &bad), KB_SHARD_MAP_NOT_CONTIGUOUS);
    CHECK_EQ(bad, 2);
    /* The key 2^127 falls in the gap: the search never answers a range that lacks it. */
    FILL(index);
    CHECK_ST(kb_shard_index(bad_map, 3, cut2, &index, &bad), KB_SHARD_MAP_NOT_CONTIGUOUS);
    CHECK_UNTOUCHED(index);
    bad_map[0] = three[2];
    bad_map[2] = three[0];
    bad_map[1] = three[1];
    CHECK_ST(kb_shard_map_check(bad_map, 3, &bad), KB_SHARD_MAP_NOT_CONTIGUOUS);
    CHECK_EQ(bad, 0);
    /* Reversed, and incomplete. */
    memcpy(bad_map, three, sizeof three);
    bad_map[1].end = hk(0, 1);
    CHECK_ST(kb_shard_map_check(bad_map, 3, &bad), KB_SHARD_MAP_REVERSED);
    CHECK_EQ(bad, 1);
    CHECK_ST(kb_shard_map_check(three, 2, &bad), KB_SHARD_MAP_INCOMPLETE);
    /* NULLs and overflowing lengths. */
    CHECK_ST(kb_shard_map_check(NULL, 3, &bad), KB_NULL_ARRAY);
    CHECK_ST(kb_shard_map_check(three, SIZE_MAX, &bad), KB_LENGTH_OVERFLOW);
    CHECK_ST(kb_shard_index(three, 3, zero, NULL, &bad), KB_NULL_POINTER);
    CHECK_ST(kb_shard_index(NULL, 3, zero, &index, &bad), KB_NULL_ARRAY);
    CHECK_ST(kb_shard_index(three, SIZE_MAX, zero, &index, &bad), KB_LENGTH_OVERFLOW);
  }

  /* Many shards, split evenly: each shard's start, end and middle are its own. */
  {
    enum { N = 1000 };
    static kb_shard_range even[N];
    const uint64_t step = UINT64_MAX / N; /* of the upper half; the lower half is 0 */
    size_t i;
    for (i = 0; i < N; i++) {
      even[i].start = hk(i * step, 0);
      even[i].end = i == N - 1 ? max : hk((i + 1) * step - 1, UINT64_MAX);
    }
    CHECK_ST(kb_shard_map_check(even, N, &bad), KB_OK);
    for (i = 0; i < N; i++) {
      size_t a = SIZE_MAX, b = SIZE_MAX, c = SIZE_MAX;
      kb_shard_index(even, N, even[i].start, &a, NULL);
      kb_shard_index(even, N, even[i].end, &b, NULL);
      kb_shard_index(even, N, hk(even[i].start.high + step / 2, 7), &c, NULL);
      if (!CHECK(a == i && b == i && (i == N - 1 || c == i))) {
        break;
      }
    }
  }
}

void KB_SUITE(test_shards)(void) {
  test_hash_keys();
  test_shard_map();
}
