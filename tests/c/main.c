/*
 * main.c: the C suite as a standalone program, for scripts/c-memcheck.sh (AddressSanitizer,
 * UndefinedBehaviorSanitizer, valgrind). Runs the suite, then the thread worker on
 * several pthreads at once; exits non-zero on any failure.
 */
#include <pthread.h>

#include "kb_test.h"

#define THREADS 4

struct job {
  uint64_t seed;
  unsigned long failures;
};

static void *run_worker(void *arg) {
  struct job *job = (struct job *)arg;
  job->failures = KB_SUITE(thread_worker)(job->seed);
  return NULL;
}

int main(void) {
  pthread_t threads[THREADS];
  struct job jobs[THREADS];
  unsigned long failures = KB_SUITE(suite_run)();
  unsigned long checks = KB_SUITE(suite_checks)();
  int i;
  for (i = 0; i < THREADS; i++) {
    jobs[i].seed = 0x5eedu + (uint64_t)i;
    jobs[i].failures = 0;
    if (pthread_create(&threads[i], NULL, run_worker, &jobs[i]) != 0) {
      fprintf(stderr, "pthread_create failed\n");
      return 2;
    }
  }
  for (i = 0; i < THREADS; i++) {
    pthread_join(threads[i], NULL);
    failures += jobs[i].failures;
  }
  /* Then 8 threads planning one shared, read-only record array at once. */
  failures += KB_SUITE(threads_shared)(8);
  printf("C suite: %lu checks, %d threads, %lu failures\n", checks, THREADS, failures);
  return failures == 0 ? 0 : 1;
}
