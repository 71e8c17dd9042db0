/*
 * drivers.c: plan through each C entry point with small random capacities, resuming
 * until done (compared with the Rust API by tests/c/tests/differential.rs), and the
 * worker the thread test runs on several threads at once.
 */
#include "kb_test.h"

#define APPEND(arr, count, cap, value) \
  do {                                 \
    if (*(count) >= (cap)) {           \
      status = KB_LENGTH_OVERFLOW;     \
      goto done;                       \
    }                                  \
    (arr)[(*(count))++] = (value);     \
  } while (0)

kb_status KB_SUITE(drive_plan)(const kb_limits *limits, const kb_record *records, size_t n,
                               uint64_t seed, kb_batch *batches, size_t *n_batches,
                               kb_refusal *refusals, size_t *n_refusals) {
  kb_planner *p = NULL;
  kb_status status = kb_planner_new(limits, &p);
  *n_batches = *n_refusals = 0;
  if (status != KB_OK) {
    return status;
  }
  do {
    kb_batch b[4];
    kb_refusal f[4];
    size_t bc = 1 + (size_t)(KB_SUITE(rand_next)(&seed) % 4);
    size_t fc = 1 + (size_t)(KB_SUITE(rand_next)(&seed) % 4);
    size_t nb = 0, nf = 0, i;
    status = kb_planner_plan(p, records, n, b, bc, &nb, f, fc, &nf, NULL);
    if (kb_status_is_error(status)) {
      goto done;
    }
    for (i = 0; i < nb; i++) APPEND(batches, n_batches, n + 1, b[i]);
    for (i = 0; i < nf; i++) APPEND(refusals, n_refusals, n + 1, f[i]);
  } while (status == KB_BATCHES_FULL || status == KB_REFUSALS_FULL);
done:
  kb_planner_free(p);
  return status;
}

kb_status KB_SUITE(drive_next)(const kb_limits *limits, const kb_record *records, size_t n,
                               uint64_t seed, kb_batch *batches, size_t *n_batches,
                               kb_refusal *refusals, size_t *n_refusals) {
  kb_planner *p = NULL;
  kb_status status = kb_planner_new(limits, &p);
  (void)seed;
  *n_batches = *n_refusals = 0;
  if (status != KB_OK) {
    return status;
  }
  for (;;) {
    kb_batch b;
    kb_refusal f;
    status = kb_planner_next(p, records, n, &b, &f, NULL);
    if (status == KB_OK) {
      APPEND(batches, n_batches, n + 1, b);
    } else if (status == KB_REFUSED) {
      APPEND(refusals, n_refusals, n + 1, f);
    } else {
      if (status == KB_END) {
        status = KB_OK;
      }
      break;
    }
  }
done:
  kb_planner_free(p);
  return status;
}

kb_status KB_SUITE(drive_accumulator)(const kb_limits *limits, const kb_record *records,
                                      size_t n, uint64_t seed, kb_batch *batches,
                                      size_t *n_batches, kb_refusal *refusals,
                                      size_t *n_refusals) {
  kb_accumulator *a = NULL;
  kb_status status = kb_accumulator_new(limits, &a);
  size_t i;
  kb_batch b;
  *n_batches = *n_refusals = 0;
  if (status != KB_OK) {
    return status;
  }
  for (i = 0; i < n; i++) {
    kb_reason why;
    size_t pushed = SIZE_MAX;
    status = kb_accumulator_push(a, &records[i], &b, &why);
    if (status == KB_SEND_FIRST) {
      APPEND(batches, n_batches, n + 1, b);
    } else if (status == KB_REFUSED) {
      kb_refusal f;
      f.index = i;
      f.reason = why;
      APPEND(refusals, n_refusals, n + 1, f);
    } else if (status != KB_OK) {
      goto done;
    }
    /* Now and then, the read-only calls must agree with what was pushed. */
    if (KB_SUITE(rand_next)(&seed) % 16 == 0) {
      kb_accumulator_pushed(a, &pushed);
      if (pushed != i + 1) {
        status = KB_INVALID_ARGUMENT;
        goto done;
      }
      if (kb_accumulator_pending(a, &b) == KB_OK && (b.end != i + 1 || b.records == 0)) {
        if (status != KB_REFUSED) {
          status = KB_INVALID_ARGUMENT;
          goto done;
        }
      }
    }
  }
  status = kb_accumulator_flush(a, &b);
  if (status == KB_OK) {
    APPEND(batches, n_batches, n + 1, b);
  } else if (status == KB_END) {
    status = KB_OK;
  }
done:
  kb_accumulator_free(a);
  return status;
}

kb_status KB_SUITE(drive_sizes)(const kb_limits *limits, const kb_record *records, size_t n,
                                uint64_t seed, kb_batch *batches, size_t *n_batches,
                                kb_refusal *refusals, size_t *n_refusals) {
  kb_planner *p = NULL;
  kb_record_size *sizes = (kb_record_size *)malloc((n + 1) * sizeof(kb_record_size));
  kb_status status;
  size_t i;
  *n_batches = *n_refusals = 0;
  if (!sizes) {
    return KB_OUT_OF_MEMORY;
  }
  for (i = 0; i < n; i++) {
    status = kb_record_size_of(&records[i], limits->key_unit, &sizes[i]);
    if (status != KB_OK) {
      free(sizes);
      return status;
    }
  }
  status = kb_planner_new(limits, &p);
  if (status != KB_OK) {
    free(sizes);
    return status;
  }
  do {
    kb_batch b[3];
    kb_refusal f[3];
    size_t bc = 1 + (size_t)(KB_SUITE(rand_next)(&seed) % 3);
    size_t fc = 1 + (size_t)(KB_SUITE(rand_next)(&seed) % 3);
    size_t nb = 0, nf = 0, k;
    status = kb_planner_plan_sizes(p, sizes, n, b, bc, &nb, f, fc, &nf);
    if (kb_status_is_error(status)) {
      goto done;
    }
    for (k = 0; k < nb; k++) APPEND(batches, n_batches, n + 1, b[k]);
    for (k = 0; k < nf; k++) APPEND(refusals, n_refusals, n + 1, f[k]);
  } while (status == KB_BATCHES_FULL || status == KB_REFUSALS_FULL);
done:
  kb_planner_free(p);
  free(sizes);
  return status;
}

kb_status KB_SUITE(drive_lines)(const kb_limits *limits, const uint8_t *key, size_t key_len,
                                uint32_t options, const uint8_t *input, size_t len,
                                uint64_t seed, kb_line_batch *batches, size_t batches_cap,
                                size_t *n_batches, kb_line_refusal *refusals,
                                size_t refusals_cap, size_t *n_refusals,
                                kb_reason *key_reason) {
  kb_line_planner *lp = NULL;
  kb_status status = kb_line_planner_new(limits, key, key_len, options, &lp, key_reason);
  uint8_t *buf;
  size_t have = 0, fed = 0, calls = 0;
  *n_batches = *n_refusals = 0;
  if (status != KB_OK) {
    return status;
  }
  buf = (uint8_t *)malloc(len + 1);
  if (!buf) {
    kb_line_planner_free(lp);
    return KB_OUT_OF_MEMORY;
  }
  for (;;) {
    kb_line_batch b[3];
    kb_line_refusal f[3];
    size_t bc = 1 + (size_t)(KB_SUITE(rand_next)(&seed) % 3);
    size_t fc = 1 + (size_t)(KB_SUITE(rand_next)(&seed) % 3);
    size_t nb = 0, nf = 0, used = 0, k;
    int more = 0;
    status = kb_line_planner_plan(lp, have ? buf : NULL, have, fed == len, b, bc, &nb, f, fc,
                                  &nf, &used);
    if (kb_status_is_error(status)) {
      goto done;
    }
    if (used > have || ++calls > 10 * len + 100) {
      status = KB_LENGTH_OVERFLOW; /* a broken protocol: consumed too much, or no end */
      goto done;
    }
    for (k = 0; k < nb; k++) APPEND(batches, n_batches, batches_cap, b[k]);
    for (k = 0; k < nf; k++) APPEND(refusals, n_refusals, refusals_cap, f[k]);
    /* Drop what was consumed, keep the rest. */
    memmove(buf, buf + used, have - used);
    have -= used;
    if (status == KB_OK) {
      break;
    }
    if (status == KB_NEED_MORE) {
      if (fed == len) {
        status = KB_INVALID_ARGUMENT; /* KB_NEED_MORE after eof */
        goto done;
      }
      more = 1;
    } else if (fed < len && KB_SUITE(rand_next)(&seed) % 2 == 0) {
      more = 1; /* appending more after a full array is allowed too */
    }
    if (more) {
      uint64_t r = KB_SUITE(rand_next)(&seed);
      size_t chunk = 1 + (size_t)(r % 8 == 0 ? (r >> 8) % 200 : (r >> 8) % 9);
      if (chunk > len - fed) {
        chunk = len - fed;
      }
      memcpy(buf + have, input + fed, chunk);
      have += chunk;
      fed += chunk;
    }
  }
done:
  free(buf);
  kb_line_planner_free(lp);
  return status;
}

/* ------------------------------------------------------------------------------------ */

unsigned long KB_SUITE(thread_worker)(uint64_t seed) {
  unsigned long failures = 0;
  size_t n = 3000 + (size_t)(seed % 500), i, round;
  kb_record *records = (kb_record *)malloc(n * sizeof(kb_record));
  kb_batch *b1 = (kb_batch *)malloc((n + 1) * sizeof(kb_batch));
  kb_batch *b2 = (kb_batch *)malloc((n + 1) * sizeof(kb_batch));
  kb_refusal *f1 = (kb_refusal *)malloc((n + 1) * sizeof(kb_refusal));
  kb_refusal *f2 = (kb_refusal *)malloc((n + 1) * sizeof(kb_refusal));
  static const uint8_t data[2048] = {0};
  static const char *const keys[] = {"a", "user-42", "", "\xff", "cl\xc3\xa9"};
  kb_limits l = kb_custom(KB_PROFILE_KDS, 50, 20000, 2000);
  if (!records || !b1 || !b2 || !f1 || !f2) {
    failures++;
    goto out;
  }
  for (i = 0; i < n; i++) {
    uint64_t r = KB_SUITE(rand_next)(&seed);
    const char *k = keys[r % 5];
    records[i] = kb_rec(data, (size_t)((r >> 8) % 2048), U8(k), strlen(k));
  }
  for (round = 0; round < 20; round++) {
    size_t nb1, nf1, nb2, nf2;
    if (KB_SUITE(drive_plan)(&l, records, n, seed + round, b1, &nb1, f1, &nf1) != KB_OK) {
      failures++;
    }
    if (round % 2 == 0) {
      if (KB_SUITE(drive_next)(&l, records, n, seed, b2, &nb2, f2, &nf2) != KB_OK) failures++;
    } else {
      if (KB_SUITE(drive_accumulator)(&l, records, n, seed, b2, &nb2, f2, &nf2) != KB_OK) {
        failures++;
      }
    }
    if (nb1 != nb2 || nf1 != nf2) {
      failures++;
      continue;
    }
    for (i = 0; i < nb1; i++) failures += !kb_batch_eq(&b1[i], &b2[i]);
    for (i = 0; i < nf1; i++) failures += !kb_refusal_eq(&f1[i], &f2[i]);
  }
out:
  free(records);
  free(b1);
  free(b2);
  free(f1);
  free(f2);
  return failures;
}
