/*
 * threads.c: many pthreads planning one shared, read-only record array at once, each with
 * its own objects, must each get the plan of a single-threaded run.
 *
 * threads_shared builds one const kb_record array (100,000 records over shared payload,
 * key and hash key buffers: multi-byte keys, every refusal reason, valid and invalid
 * explicit hash keys) and the columns kb_record_sizes_fill reads (also shared), plans it
 * once on the calling thread with kb_planner_plan under two limit sets, then starts the
 * threads. Thread i plans the same array under limit set (i / 5) % 2 in style i % 5:
 *   0  kb_planner_plan with capacities 1..4 drawn per call, resumed until done;
 *   1  kb_planner_plan with capacities 1..500;
 *   2  kb_planner_next until KB_END;
 *   3  kb_record_sizes_fill from the shared columns into the thread's own array, then
 *      kb_planner_plan_sizes with capacities 1..8 and kb_planner_next_sizes;
 *   4  kb_accumulator_push for each record, then kb_accumulator_flush;
 * and compares every batch and refusal with the single-threaded plan. Returns the number
 * of mismatches (0: every thread agreed), each described on stderr.
 */
#include <pthread.h>

#include "kb_test.h"


#define SHARED_N 100000
#define STYLES 5
#define LIMIT_SETS 2
/* The payload buffer: larger than the record cap below, so some records are refused. */
#define DATA_LEN 6000

struct plan {
  kb_batch *batches;
  size_t n_batches;
  kb_refusal *refusals;
  size_t n_refusals;
};

/* Everything the threads share, read-only while they run. */
struct shared {
  const kb_record *records;
  size_t n;
  kb_limits limits[LIMIT_SETS];
  struct plan want[LIMIT_SETS];
  /* The columns of kb_record_sizes_fill. */
  const uint64_t *data_lens;
  const uint8_t *keys;
  size_t keys_len;
  const size_t *key_lens;
  const uint8_t *hash_keys;
  size_t hash_keys_len;
  const size_t *hash_key_lens;
};

struct job {
  const struct shared *in;
  unsigned index;
  unsigned long mismatches;
};

static const char *const style_names[STYLES] = {
    "kb_planner_plan, capacities 1..4", "kb_planner_plan, capacities 1..500",
    "kb_planner_next", "kb_record_sizes_fill + kb_planner_plan_sizes",
    "kb_accumulator_push"};

static int plan_alloc(struct plan *p, size_t n) {
  p->batches = (kb_batch *)malloc((n + 1) * sizeof(kb_batch));
  p->refusals = (kb_refusal *)malloc((n + 1) * sizeof(kb_refusal));
  p->n_batches = p->n_refusals = 0;
  return p->batches != NULL && p->refusals != NULL;
}

static void plan_free(struct plan *p) {
  free(p->batches);
  free(p->refusals);
  p->batches = NULL;
  p->refusals = NULL;
}

/* Appends what one call wrote; 0 if that would overflow the n + 1 entries. */
static int append(struct plan *p, size_t n, const kb_batch *b, size_t nb, const kb_refusal *f,
                  size_t nf) {
  if (p->n_batches + nb > n + 1 || p->n_refusals + nf > n + 1) {
    return 0;
  }
  if (nb) memcpy(p->batches + p->n_batches, b, nb * sizeof(kb_batch));
  if (nf) memcpy(p->refusals + p->n_refusals, f, nf * sizeof(kb_refusal));
  p->n_batches += nb;
  p->n_refusals += nf;
  return 1;
}

/* kb_planner_plan with capacities 1..max_cap drawn per call, resumed until done. */
static kb_status plan_bulk(const struct shared *in, const kb_limits *limits, uint64_t seed,
                           size_t max_cap, struct plan *out) {
  kb_batch b[500];
  kb_refusal f[500];
  kb_planner *p = NULL;
  kb_status status = kb_planner_new(limits, &p);
  if (status != KB_OK) {
    return status;
  }
  do {
    size_t bc = 1 + (size_t)(KB_SUITE(rand_next)(&seed) % max_cap);
    size_t fc = 1 + (size_t)(KB_SUITE(rand_next)(&seed) % max_cap);
    size_t nb = 0, nf = 0, bad = SIZE_MAX;
    status = kb_planner_plan(p, in->records, in->n, b, bc, &nb, f, fc, &nf, &bad);
    if (kb_status_is_error(status)) {
      break;
    }
    if (!append(out, in->n, b, nb, f, nf)) {
      status = KB_LENGTH_OVERFLOW;
      break;
    }
  } while (status == KB_BATCHES_FULL || status == KB_REFUSALS_FULL);
  kb_planner_free(p);
  return status;
}

static kb_status plan_next(const struct shared *in, const kb_limits *limits, struct plan *out) {
  kb_planner *p = NULL;
  kb_status status = kb_planner_new(limits, &p);
  if (status != KB_OK) {
    return status;
  }
  for (;;) {
    kb_batch b;
    kb_refusal f;
    status = kb_planner_next(p, in->records, in->n, &b, &f, NULL);
    if (status == KB_OK || status == KB_REFUSED) {
      if (!append(out, in->n, &b, status == KB_OK ? 1 : 0, &f, status == KB_REFUSED ? 1 : 0)) {
        status = KB_LENGTH_OVERFLOW;
        break;
      }
    } else {
      if (status == KB_END) {
        status = KB_OK;
      }
      break;
    }
  }
  kb_planner_free(p);
  return status;
}

/*
 * The size form from the shared columns into this thread's own array, planned in bulk
 * (capacities 1..8) into `out`, then again with kb_planner_next_sizes into `check`.
 */
static kb_status plan_sizes(const struct shared *in, const kb_limits *limits, uint64_t seed,
                            struct plan *out, struct plan *check) {
  kb_record_size *sizes = (kb_record_size *)malloc((in->n + 1) * sizeof(kb_record_size));
  kb_planner *p = NULL;
  kb_status status;
  size_t bad = SIZE_MAX;
  if (!sizes) {
    return KB_OUT_OF_MEMORY;
  }
  status = kb_record_sizes_fill(in->n, in->data_lens, in->keys, in->keys_len, in->key_lens,
                                in->hash_keys, in->hash_keys_len, in->hash_key_lens,
                                limits->key_unit, sizes, &bad);
  if (status == KB_OK) status = kb_planner_new(limits, &p);
  if (status != KB_OK) {
    free(sizes);
    return status;
  }
  do {
    kb_batch b[8];
    kb_refusal f[8];
    size_t bc = 1 + (size_t)(KB_SUITE(rand_next)(&seed) % 8);
    size_t fc = 1 + (size_t)(KB_SUITE(rand_next)(&seed) % 8);
    size_t nb = 0, nf = 0;
    status = kb_planner_plan_sizes(p, sizes, in->n, b, bc, &nb, f, fc, &nf);
    if (kb_status_is_error(status)) {
      break;
    }
    if (!append(out, in->n, b, nb, f, nf)) {
      status = KB_LENGTH_OVERFLOW;
      break;
    }
  } while (status == KB_BATCHES_FULL || status == KB_REFUSALS_FULL);
  kb_planner_free(p);
  p = NULL;
  if (status == KB_OK) status = kb_planner_new(limits, &p);
  while (status == KB_OK) {
    kb_batch b;
    kb_refusal f;
    kb_status st = kb_planner_next_sizes(p, sizes, in->n, &b, &f);
    if (st == KB_END) {
      break;
    }
    if ((st != KB_OK && st != KB_REFUSED) ||
        !append(check, in->n, &b, st == KB_OK ? 1 : 0, &f, st == KB_REFUSED ? 1 : 0)) {
      status = kb_status_is_error(st) ? st : KB_LENGTH_OVERFLOW;
    }
  }
  kb_planner_free(p);
  free(sizes);
  return status;
}

static kb_status plan_accumulator(const struct shared *in, const kb_limits *limits,
                                  struct plan *out) {
  kb_accumulator *a = NULL;
  kb_status status = kb_accumulator_new(limits, &a);
  size_t i;
  kb_batch b;
  if (status != KB_OK) {
    return status;
  }
  for (i = 0; i < in->n; i++) {
    kb_refusal f;
    kb_reason why;
    status = kb_accumulator_push(a, &in->records[i], &b, &why);
    f.index = i;
    f.reason = why;
    if (status == KB_SEND_FIRST) {
      if (!append(out, in->n, &b, 1, &f, 0)) status = KB_LENGTH_OVERFLOW;
    } else if (status == KB_REFUSED) {
      if (!append(out, in->n, &b, 0, &f, 1)) status = KB_LENGTH_OVERFLOW;
    }
    if (status != KB_OK && status != KB_SEND_FIRST && status != KB_REFUSED) {
      kb_accumulator_free(a);
      return status;
    }
  }
  status = kb_accumulator_flush(a, &b);
  if (status == KB_OK) {
    if (!append(out, in->n, &b, 1, NULL, 0)) status = KB_LENGTH_OVERFLOW;
  } else if (status == KB_END) {
    status = KB_OK;
  }
  kb_accumulator_free(a);
  return status;
}

/* The number of differences between got and want; the first is described on stderr. */
static unsigned long compare(const struct plan *got, const struct plan *want, unsigned thread,
                             const char *style, unsigned set) {
  unsigned long diffs = 0;
  size_t i;
  if (got->n_batches != want->n_batches || got->n_refusals != want->n_refusals) {
    fprintf(stderr,
            "threads_shared (%s): thread %u, %s, limits %u: %zu batches and %zu refusals, "
            "want %zu and %zu\n",
            KB_LANG, thread, style, set, got->n_batches, got->n_refusals, want->n_batches,
            want->n_refusals);
    return 1;
  }
  for (i = 0; i < want->n_batches; i++) {
    if (!kb_batch_eq(&got->batches[i], &want->batches[i])) {
      if (diffs++ == 0) {
        fprintf(stderr,
                "threads_shared (%s): thread %u, %s, limits %u: batch %zu is %zu..%zu "
                "(%u records, %u bytes), want %zu..%zu (%u, %u)\n",
                KB_LANG, thread, style, set, i, got->batches[i].start, got->batches[i].end,
                (unsigned)got->batches[i].records, (unsigned)got->batches[i].bytes,
                want->batches[i].start, want->batches[i].end,
                (unsigned)want->batches[i].records, (unsigned)want->batches[i].bytes);
      }
    }
  }
  for (i = 0; i < want->n_refusals; i++) {
    if (!kb_refusal_eq(&got->refusals[i], &want->refusals[i])) {
      if (diffs++ == 0) {
        fprintf(stderr,
                "threads_shared (%s): thread %u, %s, limits %u: refusal %zu is %zu (%u), "
                "want %zu (%u)\n",
                KB_LANG, thread, style, set, i, got->refusals[i].index,
                (unsigned)got->refusals[i].reason, want->refusals[i].index,
                (unsigned)want->refusals[i].reason);
      }
    }
  }
  return diffs;
}

static void *run_job(void *arg) {
  struct job *job = (struct job *)arg;
  const struct shared *in = job->in;
  unsigned style = job->index % STYLES, set = (job->index / STYLES) % LIMIT_SETS;
  const kb_limits *limits = &in->limits[set];
  uint64_t seed = 0x7417eadull + job->index;
  struct plan got, check;
  kb_status status = KB_OK;
  check.batches = NULL;
  check.refusals = NULL;
  if (!plan_alloc(&got, in->n) || (style == 3 && !plan_alloc(&check, in->n))) {
    job->mismatches = 1;
    plan_free(&got);
    plan_free(&check);
    return NULL;
  }
  switch (style) {
    case 0:
      status = plan_bulk(in, limits, seed, 4, &got);
      break;
    case 1:
      status = plan_bulk(in, limits, seed, 500, &got);
      break;
    case 2:
      status = plan_next(in, limits, &got);
      break;
    case 3:
      status = plan_sizes(in, limits, seed, &got, &check);
      break;
    default:
      status = plan_accumulator(in, limits, &got);
      break;
  }
  if (status != KB_OK) {
    fprintf(stderr, "threads_shared (%s): thread %u, %s: status %u (%s)\n", KB_LANG,
            job->index, style_names[style], (unsigned)status, kb_status_message(status));
    job->mismatches = 1;
  } else {
    job->mismatches = compare(&got, &in->want[set], job->index, style_names[style], set);
    if (style == 3) {
      job->mismatches += compare(&check, &in->want[set], job->index,
                                 "kb_record_sizes_fill + kb_planner_next_sizes", set);
    }
  }
  plan_free(&got);
  plan_free(&check);
  return NULL;
}

unsigned long KB_SUITE(threads_shared)(unsigned n_threads) {
  /* Keys: ASCII, multi-byte (some too long in UTF-8 bytes or UTF-16 units only), empty,
   * invalid UTF-8, and 257 characters. The last two are filled in below. */
  char long_ascii[258], long_e[401], long_crab[801];
  const char *keys_pool[] = {"a",
                                    "user-42",
                                    "device-7",
                                    "cl\xc3\xa9",
                                    "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",
                                    "\xf0\x9f\xa6\x80-crab",
                                    "",
                                    "\xff",
                                    "ok\xc3",
                                    long_ascii,
                                    long_e,
                                    long_crab};
  static const char *hash_pool[] = {"0", "340282366920938463463374607431768211455",
                                    "340282366920938463463374607431768211456", "0123",
                                    "12ab", ""};
  static const uint8_t data[DATA_LEN] = {0};
  const size_t n = SHARED_N;
  const size_t n_keys = ARRAY_LEN(keys_pool), n_hashes = ARRAY_LEN(hash_pool);
  kb_record *records = (kb_record *)malloc(n * sizeof(kb_record));
  uint64_t *data_lens = (uint64_t *)malloc(n * sizeof(uint64_t));
  size_t *key_lens = (size_t *)malloc(n * sizeof(size_t));
  size_t *hash_key_lens = (size_t *)malloc(n * sizeof(size_t));
  uint8_t *keys = NULL, *hash_keys = NULL;
  pthread_t *threads = (pthread_t *)malloc((n_threads + 1) * sizeof(pthread_t));
  struct job *jobs = (struct job *)malloc((n_threads + 1) * sizeof(struct job));
  struct shared in;
  unsigned long mismatches = 0;
  size_t i, keys_len = 0, hashes_len = 0, at;
  unsigned t, started = 0, set;
  uint64_t seed = 0x5ab1e5eedull;
  memset(&in, 0, sizeof in);
  memset(long_ascii, 'k', 257);
  long_ascii[257] = '\0';
  for (i = 0; i < 200; i++) memcpy(long_e + 2 * i, "\xc3\xa9", 2); /* 200 points, 400 B */
  long_e[400] = '\0';
  for (i = 0; i < 200; i++) memcpy(long_crab + 4 * i, "\xf0\x9f\xa6\x80", 4); /* 400 units */
  long_crab[800] = '\0';
  if (!records || !data_lens || !key_lens || !hash_key_lens || !threads || !jobs) {
    mismatches = 1;
    goto out;
  }
  /* The records: mostly short with frequent keys, some near and over the record cap. */
  for (i = 0; i < n; i++) {
    uint64_t r = KB_SUITE(rand_next)(&seed);
    uint64_t k = (r >> 20) % 100;
    const char *key = keys_pool[k < 90 ? k % 3 : 3 + k % (n_keys - 3)];
    size_t len = (size_t)((r >> 8) % 100 < 3 ? 4800 + (r >> 32) % (DATA_LEN - 4800)
                                             : (r >> 32) % 1200);
    records[i] = kb_rec(data, len, U8(key), strlen(key));
    if (records[i].key_len == 0) records[i].key = NULL; /* (NULL, 0) is empty too */
    if ((r >> 40) % 5 == 0) {
      const char *h = hash_pool[(r >> 44) % n_hashes];
      records[i].hash_key = U8(h);
      records[i].hash_key_len = strlen(h);
    }
    data_lens[i] = len;
    key_lens[i] = records[i].key_len;
    hash_key_lens[i] = records[i].hash_key ? records[i].hash_key_len : KB_NO_HASH_KEY;
    keys_len += records[i].key_len;
    hashes_len += records[i].hash_key ? records[i].hash_key_len : 0;
  }
  /* The columns: keys and hash keys back to back. */
  keys = (uint8_t *)malloc(keys_len + 1);
  hash_keys = (uint8_t *)malloc(hashes_len + 1);
  if (!keys || !hash_keys) {
    mismatches = 1;
    goto out;
  }
  for (i = 0, at = 0; i < n; i++) {
    if (records[i].key_len) memcpy(keys + at, records[i].key, records[i].key_len);
    at += records[i].key_len;
  }
  for (i = 0, at = 0; i < n; i++) {
    if (records[i].hash_key && records[i].hash_key_len) {
      memcpy(hash_keys + at, records[i].hash_key, records[i].hash_key_len);
      at += records[i].hash_key_len;
    }
  }
  in.records = records;
  in.n = n;
  in.data_lens = data_lens;
  in.keys = keys;
  in.keys_len = keys_len;
  in.key_lens = key_lens;
  in.hash_keys = hash_keys;
  in.hash_keys_len = hashes_len;
  in.hash_key_lens = hash_key_lens;
  /* Two limit sets: count-bound and byte-bound requests, the record cap inside the
   * payload range; the second counts UTF-16 units and hash key bytes. */
  in.limits[0] = kb_custom(KB_PROFILE_KDS, 500, 200000, 5000);
  in.limits[1] = kb_custom(KB_PROFILE_KDS, 300, 100000, 5100);
  in.limits[1].key_unit = KB_KEY_UNIT_UTF16_UNITS;
  in.limits[1].options |= KB_LIMITS_COUNT_HASH_KEY;
  /* The single-threaded plans, in one call each. */
  for (set = 0; set < LIMIT_SETS; set++) {
    kb_planner *p = NULL;
    kb_status status;
    if (!plan_alloc(&in.want[set], n) || kb_planner_new(&in.limits[set], &p) != KB_OK) {
      mismatches = 1;
      goto out;
    }
    status = kb_planner_plan(p, records, n, in.want[set].batches, n + 1, &in.want[set].n_batches,
                             in.want[set].refusals, n + 1, &in.want[set].n_refusals, NULL);
    kb_planner_free(p);
    if (status != KB_OK || in.want[set].n_batches < 100 || in.want[set].n_refusals < 100) {
      fprintf(stderr, "threads_shared (%s): the single-threaded plan: status %u, %zu batches\n",
              KB_LANG, (unsigned)status, in.want[set].n_batches);
      mismatches = 1;
      goto out;
    }
  }
  for (t = 0; t < n_threads; t++) {
    jobs[t].in = &in;
    jobs[t].index = t;
    jobs[t].mismatches = 0;
    if (pthread_create(&threads[t], NULL, run_job, &jobs[t]) != 0) {
      fprintf(stderr, "threads_shared (%s): pthread_create failed\n", KB_LANG);
      mismatches++;
      break;
    }
    started++;
  }
  for (t = 0; t < started; t++) {
    pthread_join(threads[t], NULL);
    mismatches += jobs[t].mismatches;
  }
out:
  for (set = 0; set < LIMIT_SETS; set++) plan_free(&in.want[set]);
  free(records);
  free(data_lens);
  free(key_lens);
  free(hash_key_lens);
  free(keys);
  free(hash_keys);
  free(threads);
  free(jobs);
  return mismatches;
}
