/*
 * A C program built against the installed library with nothing but pkg-config
 * (scripts/install-test.sh): it plans six records and checks every batch and refusal.
 * Exits 0 and prints one line when all is as expected, 1 otherwise.
 */
#include <kinesis_batcher.h>

#include <stdio.h>
#include <string.h>

static int failures = 0;

#define EXPECT(cond)                                                             \
    do {                                                                         \
        if (!(cond)) {                                                           \
            fprintf(stderr, "consumer.c:%d: expected %s\n", __LINE__, #cond);    \
            failures++;                                                          \
        }                                                                        \
    } while (0)

#define N_RECORDS 6

static kb_record record(const char *data, const char *key, size_t key_len) {
    kb_record r;
    memset(&r, 0, sizeof r);
    r.data = (const uint8_t *)data;
    r.data_len = strlen(data);
    r.key = (const uint8_t *)key;
    r.key_len = key_len;
    return r;
}

int main(void) {
    static const char not_utf8[] = {'u', 's', 'e', 'r', '\xff'};
    const kb_record records[N_RECORDS] = {
        record("{\"n\":0}", "user-1", 6),
        record("{\"n\":1,\"x\":true}", "user-2", 6),
        record("{\"n\":2}", "", 0), /* refused: empty key */
        record("{\"n\":3}", "user-3", 6),
        record("{\"n\":4}", not_utf8, sizeof not_utf8), /* refused: not UTF-8 */
        record("{\"n\":5}", "user-4", 6),
    };

    EXPECT(strcmp(kb_version(), KB_VERSION) == 0);

    kb_limits limits;
    EXPECT(kb_limits_profile(KB_PROFILE_KDS, &limits) == KB_OK);
    EXPECT(limits.max_records == 500);
    limits.max_records = 2; /* so that six records make more than one batch */

    kb_planner *planner = NULL;
    EXPECT(kb_planner_new(&limits, &planner) == KB_OK);
    if (planner == NULL) {
        return 1;
    }

    /* One batch per call (capacity 1), so the resumable protocol is exercised too. */
    kb_batch batches[N_RECORDS];
    kb_refusal refusals[N_RECORDS];
    size_t n_batches = 0, n_refusals = 0, calls = 0;
    kb_status status;
    do {
        size_t nb = 0, nr = 0, bad = (size_t)-1;
        status = kb_planner_plan(planner, records, N_RECORDS, &batches[n_batches], 1, &nb,
                                 &refusals[n_refusals], N_RECORDS - n_refusals, &nr, &bad);
        EXPECT(!kb_status_is_error(status));
        if (kb_status_is_error(status)) {
            fprintf(stderr, "kb_planner_plan: %s (record %zu)\n", kb_status_message(status),
                    bad);
            break;
        }
        n_batches += nb;
        n_refusals += nr;
        calls++;
    } while (status == KB_BATCHES_FULL && calls < N_RECORDS);
    EXPECT(status == KB_OK);

    kb_stats stats;
    EXPECT(kb_planner_stats(planner, &stats) == KB_OK);
    kb_planner_free(planner);

    size_t size[N_RECORDS];
    for (size_t i = 0; i < N_RECORDS; i++) {
        size[i] = records[i].data_len + records[i].key_len;
    }

    EXPECT(n_batches == 3);
    EXPECT(n_refusals == 2);
    if (n_batches == 3) {
        EXPECT(batches[0].start == 0 && batches[0].end == 2 && batches[0].records == 2);
        EXPECT(batches[0].bytes == size[0] + size[1]);
        /* The refused record 4 closes the batch of record 3: records[start..end) is
         * always the request as it stands. */
        EXPECT(batches[1].start == 3 && batches[1].end == 4 && batches[1].records == 1);
        EXPECT(batches[1].bytes == size[3]);
        EXPECT(batches[2].start == 5 && batches[2].end == 6 && batches[2].records == 1);
        EXPECT(batches[2].bytes == size[5]);
    }
    if (n_refusals == 2) {
        EXPECT(refusals[0].index == 2 && refusals[0].reason == KB_REASON_KEY_EMPTY);
        EXPECT(refusals[1].index == 4 && refusals[1].reason == KB_REASON_KEY_NOT_UTF8);
    }
    EXPECT(stats.batches == 3 && stats.records == 4);
    EXPECT(stats.refused[KB_REASON_KEY_EMPTY] == 1 && stats.refused[KB_REASON_KEY_NOT_UTF8] == 1);

    if (failures != 0) {
        fprintf(stderr, "consumer: %d check(s) failed\n", failures);
        return 1;
    }
    printf("consumer: kinesis_batcher %s planned %d records into %zu batches and %zu refusals "
           "in %zu calls\n",
           kb_version(), N_RECORDS, n_batches, n_refusals, calls);
    return 0;
}
