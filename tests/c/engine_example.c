/* The engine from C: records pushed as they come, requests sent when due. */
#include <stdio.h>
#include <string.h>

#include <kinesis_batcher.h>

/* Yours: send records[handles[i]] as PutRecords entry i and fill outcomes[i] from the
 * response (KB_OUTCOME_ACCEPTED, or kb_error_kind_from_code of the entry's ErrorCode).
 * Here a fake service that throttles the first entry of the first request. */
static int fake_send(const kb_record *records, const kb_handle *handles, size_t n,
                     uint8_t *outcomes) {
  static int calls = 0;
  size_t i;
  for (i = 0; i < n; i++) {
    (void)records[handles[i]];
    outcomes[i] = (calls == 0 && i == 0) ? KB_ERROR_KIND_THROUGHPUT_EXCEEDED
                                         : KB_OUTCOME_ACCEPTED;
  }
  calls++;
  return 1; /* 0: no response (a lost connection) */
}

/* Any uniformly random 64-bit numbers, for the backoff's jitter (xorshift64 here). */
static uint64_t random64(void) {
  static uint64_t x = 88172645463325252u;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return x;
}

int main(void) {
  static const char *const keys[] = {"alice", "bob", "", "carol"};
  kb_record records[64]; /* yours, by handle, until each is settled */
  kb_handle handles[500];
  uint8_t outcomes[500];
  kb_terminal_entry terminal[500];
  kb_engine_config config;
  kb_engine *engine;
  kb_engine_counters stats;
  uint64_t now = 0, id = 0, until = 0;
  size_t next = 0, n = 0, n_terminal = 0, i;
  uint32_t bytes = 0;
  kb_status st;

  memset(&config, 0, sizeof config); /* zeroed: the defaults */
  config.linger_ms = 50;
  config.max_in_flight = 4;
  if (kb_engine_new(NULL, NULL, &config, 64, NULL, 0, &engine, NULL) != KB_OK) return 1;
  for (;;) {
    while (next < 8) { /* read input while the engine takes it */
      kb_record r = {(const uint8_t *)"payload", 7, (const uint8_t *)keys[next % 4],
                     strlen(keys[next % 4]), NULL, 0};
      kb_handle h;
      kb_reason why;
      st = kb_engine_push(engine, &r, now, &h, &why);
      if (st == KB_FULL) break; /* backpressure: settle something, then push it again */
      if (st == KB_OK) records[h] = r;
      else if (st == KB_REFUSED) printf("record %zu refused: %s\n", next, kb_reason_message(why));
      next++;
    }
    if (next == 8) kb_engine_flush(engine); /* end of input: no more lingering */
    st = kb_engine_next_request(engine, now, &id, handles, 500, &n, &bytes, &until);
    if (st == KB_OK) {
      printf("request of %zu records, %u bytes\n", n, (unsigned)bytes);
      if (fake_send(records, handles, n, outcomes))
        st = kb_engine_settle(engine, id, outcomes, n, now, random64(), terminal, 500,
                              &n_terminal);
      else
        st = kb_engine_settle_all(engine, id, KB_ERROR_KIND_TRANSPORT, now, random64(),
                                  terminal, 500, &n_terminal);
      if (st != KB_OK) break;
      for (i = 0; i < n_terminal; i++)
        printf("record in slot %u failed: %s\n", (unsigned)terminal[i].handle,
               kb_error_kind_name(terminal[i].kind));
    } else if (st == KB_WAIT) {
      now = until; /* sleep until then (or until input or a response comes) */
    } else if (st == KB_PAUSED) {
      kb_engine_resume(engine); /* after refreshing the credentials */
    } else if (st == KB_END && next == 8) {
      break; /* nothing buffered; with sends in flight, wait for them first */
    } else if (st != KB_BUSY) {
      break;
    }
  }
  kb_engine_stats(engine, &stats);
  printf("%llu stored, %llu retried, %llu terminal, %llu refused: %s\n",
         (unsigned long long)stats.accepted_records, (unsigned long long)stats.retried,
         (unsigned long long)stats.terminal,
         (unsigned long long)stats.refused[KB_REASON_KEY_EMPTY], kb_status_message(st));
  kb_engine_free(engine);
  return st == KB_END ? 0 : 1;
}
