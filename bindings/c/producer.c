/*
 * kb-producer: sends NDJSON lines to an Amazon Kinesis data stream with PutRecords.
 *
 * A sample producer to start an ingestion agent from. The kinesis-batcher library makes
 * every decision (which line is a record, which record is refused, where a request ends,
 * which entries are sent again and when); this file only moves bytes: it reads input
 * into one buffer, describes lines as kb_record views into that buffer (no copy), builds
 * the JSON body, signs and POSTs it with libcurl, and reports the response back. With
 * --format ndjson or --key-field, ndjson.c first checks each line as JSON and finds its
 * key, as the kinesis-batcher command-line tool does; a line it refuses is reported here
 * and never becomes a record.
 *
 *   input ──read──▶ buffer ──kb_lines_next──▶ [ndjson.c] ──▶ kb_record[] (views)
 *   ──kb_delivery──▶ request entries ──JSON + base64──▶ libcurl (SigV4) ──response──▶
 *   kb_delivery_settle
 *
 * See README.md for usage, design and limitations.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <kinesis_batcher.h>

#include "kinesis_json.h"
#include "ndjson.h"

/* Exit statuses. */
enum { EXIT_ALL_STORED = 0, EXIT_NOT_ALL_STORED = 1, EXIT_USAGE = 2, EXIT_IO = 3 };

/* Records handed to one delivery: a multiple of 500, so small lines fill whole requests. */
#define SLICE_RECORDS 5000
#define KEY_MAX 21        /* a decimal uint64 line number and its NUL */
#define NO_DECODED SIZE_MAX /* decoded_at[i] of a record whose key is not in the arena */
#define REFUSALS_CAP 64   /* refusals reported per kb_delivery_next_request call */
#define MAX_RESPONSE (8u << 20)

static const char USAGE[] =
    "usage: kb-producer [options] [FILE]   (no FILE or '-': standard input)\n"
    "Sends NDJSON lines (one record per non-empty line) to a Kinesis data stream.\n"
    "  --stream NAME         stream name (or KINESIS_STREAM)\n"
    "  --region REGION       AWS region (or AWS_REGION, AWS_DEFAULT_REGION)\n"
    "  --endpoint URL        default https://kinesis.REGION.amazonaws.com (or KINESIS_ENDPOINT)\n"
    "  --partition-key KEY   one key for every record (default: the line number)\n"
    "  --key-field NAME      key = the line's JSON field NAME: a string's value, or a\n"
    "                        number's JSON text. Implies --format ndjson. A line that is\n"
    "                        not JSON is refused as invalid_json; one without the field,\n"
    "                        or whose field is not a string or number, as key_field_missing\n"
    "  --format lines|ndjson lines: any bytes (default); ndjson: lines that are not valid\n"
    "                        JSON are also refused, as invalid_json\n"
    "  --profile kds|kds-5mib  service limits (default kds: 500 records, 10 MiB)\n"
    "  --max-record-kib N    the stream's MaxRecordSizeInKiB, 1024..10240 (kds)\n"
    "  --max-attempts N      sends of one record at most, 1 or more (default 10)\n"
    "  --backoff-base-ms N   first backoff ceiling, 1 or more (default 100; doubles up\n"
    "                        to 10 s)\n"
    "  --per-key-order       store each key's records in input order (a request never\n"
    "                        holds two records of one key; smaller requests)\n"
    "  --timeout-ms N        HTTP request timeout (default 30000; 0: none, as in libcurl)\n"
    "  --dry-run             print each request body on stdout, one per line; no HTTP\n"
    "  --help                this text\n"
    "Credentials: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN (optional).\n"
    "Exit: 0 all stored, 1 records refused or failed, 2 usage or setup, 3 I/O error.\n";

typedef struct {
    const char *stream, *region, *endpoint, *fixed_key, *key_field, *input;
    const char *access_key, *secret_key, *session_token;
    const char *format; /* "lines" or "ndjson" as given, or NULL */
    unsigned long long max_record_kib, max_attempts, backoff_base_ms, timeout_ms;
    int profile;
    int max_record_kib_given;
    int ndjson; /* lines are checked as JSON (--format ndjson, or --key-field) */
    int dry_run;
    int per_key_order;
} config;

typedef struct {
    config cfg;
    kb_limits limits;
    kb_limits data_only; /* the limits without keys: is a line over the record cap alone */
    kb_retry_policy policy;
    /* The current slice: records are views into the read buffer; line numbers and keys
     * (when derived) live in small side arrays indexed like the records. */
    kb_record *records;
    uint64_t *line_of;
    char (*keys)[KEY_MAX];
    /* --key-field: a key string with escapes is decoded into the arena, at decoded_at[i]
     * for record i (NO_DECODED for the others), the slice's keys one after another. The
     * arena may move as it grows, so records get their pointers once the slice is cut. */
    size_t *decoded_at;
    uint8_t *arena;
    size_t arena_len, arena_cap;
    ndj_scanner json;
    /* One request: entries, their outcomes (+1 to detect a response with too many),
     * the terminal entries settling returns, refusals, and the body. */
    kb_pending *request;
    uint8_t *outcomes;
    kb_terminal *terminal;
    kb_refusal refusals[REFUSALS_CAP];
    char *body;
    size_t body_cap;
    /* HTTP. */
    CURL *curl;
    struct curl_slist *headers;
    char *response;
    size_t response_len, response_cap;
    char error_type[128]; /* the X-Amzn-ErrorType header of the last response */
    char curl_error[CURL_ERROR_SIZE];
    /* Totals and the backoff random state. */
    unsigned long long lines, stored, refused, terminal_count, requests, retries;
    unsigned long long posted; /* requests POSTed so far, to name them in messages */
    uint64_t rng;
} producer;

/* ---- Small helpers ---------------------------------------------------------------- */

static void fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("kb-producer: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* Every kb_ call goes through here: an unexpected status is a bug or misuse, reported
 * with the library's own sentence. */
static int kb_ok(kb_status st, const char *call) {
    if (!kb_status_is_error(st))
        return 1;
    fail("%s: %s (status %u)", call, kb_status_message(st), (unsigned)st);
    return 0;
}

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n, size);
    if (!p)
        fail("out of memory (%zu x %zu bytes)", n, size);
    return p;
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(uint64_t ms) {
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* Backoff jitter: splitmix64 seeded once from /dev/urandom (the clock if that fails).
 * Jitter needs to be uncorrelated between producers, not secret. */
static uint64_t next_random(producer *p) {
    uint64_t z = (p->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void seed_random(producer *p) {
    int fd = open("/dev/urandom", O_RDONLY);
    if (fd < 0 || read(fd, &p->rng, sizeof p->rng) != (ssize_t)sizeof p->rng)
        p->rng = now_ms() ^ ((uint64_t)getpid() << 32);
    if (fd >= 0)
        close(fd);
}

/* ---- Options ---------------------------------------------------------------------- */

static int parse_number(const char *opt, const char *s, unsigned long long max,
                        unsigned long long *out) {
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s < '0' || *s > '9' || *end || errno || v > max) {
        fail("%s: expected a number up to %llu, got '%s'", opt, max, s);
        return 0;
    }
    *out = v;
    return 1;
}

static const char *env(const char *name) {
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

/* Fills cfg from argv and the environment; returns 0 (and has said why) on a usage
 * error, -1 for --help. */
static int parse_args(int argc, char **argv, config *cfg) {
    *cfg = (config){.max_attempts = 10, .backoff_base_ms = 100, .timeout_ms = 30000,
                    .profile = KB_PROFILE_KDS};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return -1;
        if (strcmp(a, "--per-key-order") == 0) {
            cfg->per_key_order = 1;
            continue;
        }
        if (strcmp(a, "--dry-run") == 0) {
            cfg->dry_run = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0 || strcmp(a, "-") == 0) {
            if (cfg->input) {
                fail("one input file at most ('%s' and '%s')", cfg->input, a);
                return 0;
            }
            cfg->input = a;
            continue;
        }
        /* Options with a value: "--opt VALUE" or "--opt=VALUE". */
        char name[32];
        const char *eq = strchr(a, '=');
        size_t n = eq ? (size_t)(eq - a) : strlen(a);
        if (n >= sizeof name) {
            fail("unknown option '%s' (see --help)", a);
            return 0;
        }
        memcpy(name, a, n);
        name[n] = '\0';
        if (eq)
            v = eq + 1;
        else if (i + 1 < argc)
            v = argv[++i];
        else {
            fail("%s needs a value", a);
            return 0;
        }
        if (strcmp(name, "--stream") == 0)
            cfg->stream = v;
        else if (strcmp(name, "--region") == 0)
            cfg->region = v;
        else if (strcmp(name, "--endpoint") == 0)
            cfg->endpoint = v;
        else if (strcmp(name, "--partition-key") == 0)
            cfg->fixed_key = v;
        else if (strcmp(name, "--key-field") == 0)
            cfg->key_field = v;
        else if (strcmp(name, "--format") == 0)
            cfg->format = v;
        else if (strcmp(name, "--profile") == 0) {
            if (strcmp(v, "kds") == 0)
                cfg->profile = KB_PROFILE_KDS;
            else if (strcmp(v, "kds-5mib") == 0)
                cfg->profile = KB_PROFILE_KDS_5MIB;
            else {
                fail("--profile: expected kds or kds-5mib, got '%s'", v);
                return 0;
            }
        } else if (strcmp(name, "--max-record-kib") == 0) {
            /* Any number: the library says which are valid (0 is not). */
            if (!parse_number(name, v, 1000000, &cfg->max_record_kib))
                return 0;
            cfg->max_record_kib_given = 1;
        } else if (strcmp(name, "--max-attempts") == 0) {
            /* The library reads a zero policy field as its default, never as "off": 0
             * would silently mean 10, so it is refused. */
            if (!parse_number(name, v, 1000000, &cfg->max_attempts))
                return 0;
            if (cfg->max_attempts == 0) {
                fail("--max-attempts: 0 would mean the library's default (10 sends); "
                     "use 1 to send each record once");
                return 0;
            }
        } else if (strcmp(name, "--backoff-base-ms") == 0) {
            if (!parse_number(name, v, 3600000, &cfg->backoff_base_ms))
                return 0;
            if (cfg->backoff_base_ms == 0) {
                fail("--backoff-base-ms: 0 would mean the library's default (100 ms); "
                     "1 is the shortest backoff");
                return 0;
            }
        } else if (strcmp(name, "--timeout-ms") == 0) {
            if (!parse_number(name, v, 3600000, &cfg->timeout_ms))
                return 0;
        } else {
            fail("unknown option '%s' (see --help)", a);
            return 0;
        }
    }
    /* The environment fills what the options left out. */
    if (!cfg->stream)
        cfg->stream = env("KINESIS_STREAM");
    if (!cfg->region)
        cfg->region = env("AWS_REGION") ? env("AWS_REGION") : env("AWS_DEFAULT_REGION");
    if (!cfg->endpoint)
        cfg->endpoint = env("KINESIS_ENDPOINT");
    cfg->access_key = env("AWS_ACCESS_KEY_ID");
    cfg->secret_key = env("AWS_SECRET_ACCESS_KEY");
    cfg->session_token = env("AWS_SESSION_TOKEN");

    const char *missing = !cfg->stream ? "a stream (--stream or KINESIS_STREAM)"
                          : cfg->dry_run ? NULL
                          : !cfg->region ? "a region (--region, AWS_REGION or AWS_DEFAULT_REGION)"
                          : !cfg->access_key ? "credentials (AWS_ACCESS_KEY_ID)"
                          : !cfg->secret_key ? "credentials (AWS_SECRET_ACCESS_KEY)"
                                             : NULL;
    if (missing) {
        fail("missing %s", missing);
        return 0;
    }
    if (cfg->max_record_kib_given && cfg->profile != KB_PROFILE_KDS) {
        fail("--max-record-kib applies to --profile kds only");
        return 0;
    }
    /* Keys and formats, with the command-line tool's rules and words. */
    if (cfg->fixed_key && cfg->key_field) {
        fail("--partition-key and --key-field cannot be used together");
        return 0;
    }
    if (cfg->key_field && !*cfg->key_field) {
        fail("--key-field needs a field name");
        return 0;
    }
    if (cfg->key_field &&
        !ndj_utf8_valid((const uint8_t *)cfg->key_field, strlen(cfg->key_field))) {
        fail("--key-field: the name is not UTF-8");
        return 0;
    }
    if (!cfg->format) {
        cfg->ndjson = cfg->key_field != NULL;
    } else if (strcmp(cfg->format, "ndjson") == 0) {
        cfg->ndjson = 1;
    } else if (strcmp(cfg->format, "lines") != 0) {
        fail("--format: expected lines or ndjson, got '%s'", cfg->format);
        return 0;
    } else if (cfg->key_field) {
        fail("--key-field reads each line as JSON: it cannot be used with --format lines");
        return 0;
    }
    return 1;
}

/* ---- HTTP ------------------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx) {
    producer *p = ctx;
    size_t n = size * nmemb;
    if (n > MAX_RESPONSE - p->response_len)
        return 0; /* absurdly large: abort the transfer (a transport error) */
    if (p->response_len + n > p->response_cap) {
        size_t cap = p->response_cap ? p->response_cap : 64 * 1024;
        while (cap < p->response_len + n)
            cap *= 2;
        char *grown = realloc(p->response, cap);
        if (!grown)
            return 0;
        p->response = grown;
        p->response_cap = cap;
    }
    memcpy(p->response + p->response_len, data, n);
    p->response_len += n;
    return n;
}

/* Keeps the X-Amzn-ErrorType header: some errors carry their code only there. */
static size_t on_header(char *line, size_t size, size_t nmemb, void *ctx) {
    producer *p = ctx;
    size_t n = size * nmemb;
    static const char NAME[] = "x-amzn-errortype:";
    if (n > sizeof NAME - 1 && strncasecmp(line, NAME, sizeof NAME - 1) == 0) {
        const char *v = line + sizeof NAME - 1;
        size_t len = n - (sizeof NAME - 1);
        while (len && (*v == ' ' || *v == '\t'))
            v++, len--;
        while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
            len--;
        if (len >= sizeof p->error_type)
            len = sizeof p->error_type - 1;
        memcpy(p->error_type, v, len);
        p->error_type[len] = '\0';
    }
    return n;
}

static int http_setup(producer *p) {
    const config *c = &p->cfg;
    char url[1024], sigv4[160], token[4096]; /* libcurl copies every string it is given */
    int n = c->endpoint ? snprintf(url, sizeof url, "%s", c->endpoint)
                        : snprintf(url, sizeof url, "https://kinesis.%s.amazonaws.com/", c->region);
    if (n < 0 || (size_t)n >= sizeof url ||
        (size_t)snprintf(sigv4, sizeof sigv4, "aws:amz:%s:kinesis", c->region) >= sizeof sigv4) {
        fail("the endpoint or region is too long");
        return 0;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(p->curl = curl_easy_init())) {
        fail("cannot initialise libcurl");
        return 0;
    }
    const char *fixed[] = {"Content-Type: application/x-amz-json-1.1",
                           "X-Amz-Target: Kinesis_20131202.PutRecords",
                           "Expect:" /* no 100-continue round trip */};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        struct curl_slist *l = curl_slist_append(p->headers, fixed[i]);
        if (!l)
            return fail("out of memory"), 0;
        p->headers = l;
    }
    if (c->session_token) {
        /* Temporary credentials: the token travels in a header, and is signed. */
        if ((size_t)snprintf(token, sizeof token, "x-amz-security-token: %s",
                             c->session_token) >= sizeof token)
            return fail("AWS_SESSION_TOKEN is too long"), 0;
        struct curl_slist *l = curl_slist_append(p->headers, token);
        if (!l)
            return fail("out of memory"), 0;
        p->headers = l;
    }
    CURL *h = p->curl;
    CURLcode rc = CURLE_OK;
#define SET(opt, val) (rc = rc != CURLE_OK ? rc : curl_easy_setopt(h, opt, val))
    SET(CURLOPT_URL, url);
    SET(CURLOPT_HTTPHEADER, p->headers);
    SET(CURLOPT_AWS_SIGV4, sigv4); /* libcurl >= 7.75 signs each request itself */
    /* The same as CURLOPT_USERPWD "key:secret", without splitting on ':'. */
    SET(CURLOPT_USERNAME, c->access_key);
    SET(CURLOPT_PASSWORD, c->secret_key);
    SET(CURLOPT_USERAGENT, "kb-producer/" KB_VERSION);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, (void *)p);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, (void *)p);
    SET(CURLOPT_ERRORBUFFER, p->curl_error);
    SET(CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    SET(CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
    SET(CURLOPT_NOSIGNAL, 1L);
#undef SET
    if (rc != CURLE_OK) {
        fail("libcurl setup: %s (libcurl 7.75 or later is needed for SigV4)",
             curl_easy_strerror(rc));
        return 0;
    }
    return 1;
}

/* Sends body[0..len]. Returns 1 with per-entry outcomes (HTTP 2xx, parsed), or 0 with
 * *whole_kind, the kb_error_kind of a request that failed as a whole. */
static int post(producer *p, size_t len, size_t n_sent, size_t *n_outcomes,
                uint32_t *whole_kind) {
    unsigned long long n = ++p->posted;
    p->response_len = 0;
    p->error_type[0] = p->curl_error[0] = '\0';
    curl_easy_setopt(p->curl, CURLOPT_POSTFIELDS, p->body);
    curl_easy_setopt(p->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    CURLcode rc = curl_easy_perform(p->curl);
    if (rc != CURLE_OK) {
        /* No response: the service may have stored the records anyway (at-least-once). */
        fail("request %llu: %s; will retry", n,
             p->curl_error[0] ? p->curl_error : curl_easy_strerror(rc));
        *whole_kind = KB_ERROR_KIND_TRANSPORT;
        return 0;
    }
    long status = 0;
    curl_easy_getinfo(p->curl, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) {
        long long failed;
        /* cap = n_sent + 1: a response listing more entries than sent is detectable. */
        if (kj_parse_response(p->response, p->response_len, p->outcomes, n_sent + 1,
                              n_outcomes, &failed)) {
            size_t n_failed = 0;
            for (size_t i = 0; i < *n_outcomes; i++)
                n_failed += p->outcomes[i] != KB_OUTCOME_ACCEPTED;
            if (failed >= 0 && (size_t)failed != n_failed)
                fail("request %llu: FailedRecordCount %lld, but %zu entries failed",
                     n, failed, n_failed);
            return 1;
        }
        fail("request %llu: HTTP %ld with a body that is not a PutRecords response",
             n, status);
        *whole_kind = KB_ERROR_KIND_BAD_RESPONSE;
        return 0;
    }
    /* The whole request failed. The error code ("__type" in the body, else the
     * X-Amzn-ErrorType header) is more precise than the status; an unknown code falls
     * back to the status (a 400 we cannot name is a client error, not a retry). */
    kb_error_kind kind = (kb_error_kind)KB_ERROR_KIND_NONE, by_code = KB_ERROR_KIND_UNKNOWN;
    kb_error_kind_from_http_status((uint32_t)status, &kind);
    const char *code = p->error_type, *msg = "";
    size_t code_len = strlen(p->error_type), msg_len = 0;
    kj_top_string(p->response, p->response_len, "__type", &code, &code_len);
    if (!kj_top_string(p->response, p->response_len, "message", &msg, &msg_len))
        kj_top_string(p->response, p->response_len, "Message", &msg, &msg_len);
    if (code_len)
        kb_error_kind_from_code((const uint8_t *)code, code_len, &by_code);
    if (by_code != KB_ERROR_KIND_UNKNOWN || kind == KB_ERROR_KIND_NONE)
        kind = by_code;
    fail("request %llu: HTTP %ld %.*s: %.*s (%s%s)", n, status,
         (int)code_len, code, (int)(msg_len > 300 ? 300 : msg_len), msg,
         kb_error_kind_name(kind), kb_error_kind_is_retryable(kind) ? ", will retry" : "");
    *whole_kind = kind;
    return 0;
}

/* ---- Delivery --------------------------------------------------------------------- */

/* Delivers records[0..n] (one slice of the buffer) to the end: every record is stored,
 * refused or terminal when this returns 1. Returns 0 on a fatal error. */
static int deliver(producer *p, size_t n) {
    kb_delivery *d = NULL;
    kb_retry_stats rs;
    int ok = 0;
    uint64_t delay = 0; /* the backoff the library asked for after the last request */
    if (!kb_ok(kb_delivery_new(&p->limits, &p->policy, &d), "kb_delivery_new"))
        return 0;
    size_t n_entries = 0, n_refusals = 0, bad = 0;
    uint32_t bytes = 0;
    kb_status st;
    /* KB_END is the only status that says stop (everything is stored, refused or
     * terminal), and it never comes with work; KB_OK always comes with a request. */
    while ((st = kb_delivery_next_request(d, p->records, n, p->request, p->limits.max_records,
                                          &n_entries, &bytes, p->refusals, REFUSALS_CAP,
                                          &n_refusals, now_ms(), &bad)) != KB_END) {
        /* An error (KB_REQUEST_IN_FLIGHT cannot happen: every request is settled below). */
        if (!kb_ok(st, "kb_delivery_next_request"))
            goto out;
        for (size_t i = 0; i < n_refusals; i++) {
            const kb_refusal *r = &p->refusals[i];
            fprintf(stderr, "kb-producer: line %llu refused: %s: %s\n",
                    (unsigned long long)p->line_of[r->index], kb_reason_name(r->reason),
                    kb_reason_message(r->reason));
        }
        if (n_entries == 0)
            continue; /* KB_ONLY_REFUSALS: the refusal array filled before any entry */

        /* Wait only when something is sent next (not after a slice's last request). */
        if (delay)
            sleep_ms(delay);

        /* Build the body: size it for these entries, then write it in one pass. */
        size_t need = kj_body_bound(p->cfg.stream, p->records, p->request, n_entries);
        if (need > p->body_cap) {
            char *grown = realloc(p->body, need);
            if (!grown) {
                fail("out of memory (a %zu-byte request body)", need);
                goto out;
            }
            p->body = grown;
            p->body_cap = need;
        }
        size_t len = kj_body_write(p->body, p->cfg.stream, p->records, p->request, n_entries);

        /* Send it, and settle: per entry, or the whole request with one error kind. */
        size_t n_outcomes = n_entries;
        uint32_t whole_kind = 0;
        int per_entry = 1;
        if (p->cfg.dry_run) {
            memset(p->outcomes, KB_OUTCOME_ACCEPTED, n_entries);
            if (fwrite(p->body, 1, len, stdout) != len || putchar('\n') == EOF) {
                fail("writing to stdout: %s", strerror(errno));
                goto out;
            }
        } else {
            per_entry = post(p, len, n_entries, &n_outcomes, &whole_kind);
        }
        kb_settled settled;
        uint64_t t = now_ms();
        st = per_entry ? kb_delivery_settle(d, p->request, n_entries, p->outcomes, n_outcomes,
                                            t, p->terminal, n_entries, &settled, &bad)
                       : kb_delivery_settle_all(d, p->request, n_entries, whole_kind, t,
                                                p->terminal, n_entries, &settled);
        if (!kb_ok(st, per_entry ? "kb_delivery_settle" : "kb_delivery_settle_all"))
            goto out;
        for (size_t i = 0; i < settled.terminal; i++) {
            const kb_terminal *e = &p->terminal[i];
            fprintf(stderr, "kb-producer: line %llu failed: %s%s\n",
                    (unsigned long long)p->line_of[e->index], kb_error_kind_name(e->kind),
                    e->gave_up ? " (gave up: attempt or age limit)" : "");
        }
        /* The backoff before the next request: 0 after a request without failures. */
        if (!kb_ok(kb_delivery_backoff_ms(d, next_random(p), &delay), "kb_delivery_backoff_ms"))
            goto out;
    }
    ok = 1;
out:
    if (kb_ok(kb_delivery_stats(d, &rs), "kb_delivery_stats")) {
        p->requests += rs.requests;
        p->stored += rs.accepted;
        p->retries += rs.retried;
        p->terminal_count += rs.terminal;
        for (size_t i = 0; i < sizeof rs.refused / sizeof *rs.refused; i++)
            p->refused += rs.refused[i];
    }
    kb_delivery_free(d);
    return ok;
}

/* ---- Input ------------------------------------------------------------------------ */

/* Reports a line refused before the library sees it, in the library's refusals' form. */
static void refuse_line(producer *p, uint64_t number, const ndj_refusal *why) {
    fprintf(stderr, "kb-producer: line %llu refused: %s: ", (unsigned long long)number,
            ndj_reason_name(why->reason));
    ndj_print_detail(stderr, why, p->cfg.key_field);
    fputc('\n', stderr);
    p->refused++;
}

/* Makes records[n] of a line: 1 when it is a record, 0 when it is refused here (not JSON,
 * no key field), -1 on a fatal error. A refused line takes no index, so record i is
 * still line line_of[i]; unlike an index the library refuses, it is never planned. */
static int make_record(producer *p, size_t n, const kb_line *line) {
    const config *c = &p->cfg;
    kb_record *r = &p->records[n];
    *r = (kb_record){.data = line->bytes, .data_len = line->bytes_len};
    p->decoded_at[n] = NO_DECODED;
    /* As the tool: a line over the record cap is refused as too large whatever it
     * holds, so it is not read as JSON. The library measures its data alone to say so
     * (a line cut short, !line->whole, is always over). */
    int over_cap = 0;
    if (c->ndjson) {
        uint32_t size;
        kb_reason reason;
        kb_status st = kb_record_measure(&p->data_only, r, &size, &reason);
        if (!kb_ok(st, "kb_record_measure"))
            return -1;
        over_cap = !line->whole || st == KB_REFUSED;
    }
    ndj_refusal why;
    if (c->key_field && over_cap) {
        r->key = (const uint8_t *)"-"; /* a stand-in: the record is refused for its size */
        r->key_len = 1;
    } else if (c->key_field) {
        ndj_key key;
        if (!ndj_key_field(&p->json, line->bytes, line->bytes_len, c->key_field,
                           strlen(c->key_field), &key, &why)) {
            refuse_line(p, line->number, &why);
            return 0;
        }
        if (!key.escaped) {
            r->key = key.bytes; /* a view into the line, as its data is */
            r->key_len = key.len;
        } else {
            /* Decoding only shortens: key.len bytes are enough. */
            if (key.len > p->arena_cap - p->arena_len) {
                size_t cap = p->arena_cap ? p->arena_cap : 4096;
                while (cap - p->arena_len < key.len)
                    cap *= 2;
                uint8_t *grown = realloc(p->arena, cap);
                if (!grown) {
                    fail("out of memory (a %zu-byte key arena)", cap);
                    return -1;
                }
                p->arena = grown;
                p->arena_cap = cap;
            }
            p->decoded_at[n] = p->arena_len;
            r->key = NULL; /* set once the slice is cut (the arena may still move) */
            r->key_len = ndj_unescape(&key, p->arena + p->arena_len);
            p->arena_len += r->key_len;
        }
    } else {
        if (c->ndjson && !over_cap &&
            !ndj_check(&p->json, line->bytes, line->bytes_len, &why)) {
            refuse_line(p, line->number, &why);
            return 0;
        }
        if (c->fixed_key) {
            r->key = (const uint8_t *)c->fixed_key;
            r->key_len = strlen(c->fixed_key);
        } else {
            int k = snprintf(p->keys[n], KEY_MAX, "%llu", (unsigned long long)line->number);
            r->key = (const uint8_t *)p->keys[n];
            r->key_len = (size_t)k;
        }
    }
    p->line_of[n] = line->number;
    return 1;
}

/* Reads the input in buffer-sized chunks, cuts each into a slice of kb_record views of
 * its whole lines, delivers the slice, and carries the unfinished last line over. */
static int run(producer *p, int fd) {
    /* A buffer of max_record_bytes + 2 always holds a whole line (or enough of one to
     * know it is too long); a request's worth more keeps requests full between slices. */
    size_t cap = (size_t)p->limits.max_request_bytes + p->limits.max_record_bytes + 2;
    uint8_t *buf = malloc(cap);
    kb_lines *lines = NULL;
    size_t fill = 0;
    int eof = 0, ok = 0;
    if (!buf) {
        fail("out of memory (a %zu-byte read buffer)", cap);
        return 0;
    }
    if (!kb_ok(kb_lines_new(&p->limits, 0, 0, &lines), "kb_lines_new"))
        goto out;
    for (;;) {
        while (!eof && fill < cap) { /* top the buffer up */
            ssize_t got = read(fd, buf + fill, cap - fill);
            if (got < 0 && errno == EINTR)
                continue;
            if (got < 0) {
                fail("reading %s: %s", p->cfg.input ? p->cfg.input : "stdin", strerror(errno));
                goto out;
            }
            eof = got == 0;
            fill += (size_t)got;
        }
        /* Cut whole lines into the slice: records point into buf, nothing is copied. */
        size_t pos = 0, n = 0;
        kb_status st = KB_OK;
        while (n < SLICE_RECORDS) {
            kb_line line;
            size_t used = 0;
            st = kb_lines_next(lines, buf + pos, fill - pos, eof, &line, &used);
            if (!kb_ok(st, "kb_lines_next"))
                goto out;
            pos += used;
            if (st != KB_OK)
                break; /* KB_NEED_MORE: read on; KB_END: the input is done */
            /* A line over the record cap comes with only the bytes seen so far
             * (!line.whole); bytes_len alone is already over the cap (the header
             * promises it), so the record made of them is refused as record_too_large
             * without us reading past them. */
            p->lines++;
            int added = make_record(p, n, &line);
            if (added < 0)
                goto out;
            n += (size_t)added;
        }
        /* Keys decoded into the arena get their pointers now that it has stopped moving. */
        for (size_t i = 0; p->arena_len && i < n; i++)
            if (p->decoded_at[i] != NO_DECODED)
                p->records[i].key = p->arena + p->decoded_at[i];
        if (n > 0 && !deliver(p, n))
            goto out;
        p->arena_len = 0;
        if (st == KB_END)
            break;
        if (st == KB_NEED_MORE && (eof || (n == 0 && pos == 0 && fill == cap))) {
            fail("kb_lines_next: no progress (a library bug?)");
            goto out;
        }
        /* The slice is delivered: its bytes can go. Keep the unconsumed tail. */
        memmove(buf, buf + pos, fill - pos);
        fill -= pos;
    }
    ok = 1;
out:
    kb_lines_free(lines);
    free(buf);
    return ok;
}

/* ---- Main ------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    producer p = {0};
    int setup = parse_args(argc, argv, &p.cfg);
    if (setup < 0) {
        fputs(USAGE, stdout);
        return EXIT_ALL_STORED;
    }
    if (setup == 0)
        return EXIT_USAGE;
    config *c = &p.cfg;

    /* Limits: a profile, or the stream's record size; the retry policy's defaults with
     * the options' attempts and backoff. */
    kb_status st = c->max_record_kib_given
                       ? kb_limits_for_stream((uint32_t)c->max_record_kib, &p.limits)
                       : kb_limits_profile((uint32_t)c->profile, &p.limits);
    if (kb_status_is_error(st)) {
        fail("invalid limits: %s", kb_status_message(st));
        return EXIT_USAGE;
    }
    p.data_only = p.limits;
    p.data_only.options |= KB_LIMITS_NO_PARTITION_KEYS;
    if (!kb_ok(kb_retry_policy_default(&p.policy), "kb_retry_policy_default"))
        return EXIT_USAGE;
    p.policy.max_attempts = (uint32_t)c->max_attempts;
    p.policy.backoff_base_ms = c->backoff_base_ms;
    /* The library keeps one record per key in each request, and failures go first. */
    p.policy.per_key_order = c->per_key_order ? 1 : 0;
    if (p.policy.backoff_cap_ms < c->backoff_base_ms)
        p.policy.backoff_cap_ms = c->backoff_base_ms;

    /* A fixed key that every record would be refused for is a usage error, not a
     * million refusals: measure an empty record with it. */
    if (c->fixed_key) {
        kb_record probe = {.key = (const uint8_t *)c->fixed_key, .key_len = strlen(c->fixed_key)};
        uint32_t size;
        kb_reason reason;
        st = kb_record_measure(&p.limits, &probe, &size, &reason);
        if (!kb_ok(st, "kb_record_measure"))
            return EXIT_USAGE;
        if (st == KB_REFUSED) {
            fail("--partition-key: %s: %s", kb_reason_name(reason), kb_reason_message(reason));
            return EXIT_USAGE;
        }
    }

    int fd = STDIN_FILENO, code = EXIT_IO;
    if (c->input && strcmp(c->input, "-") != 0 && (fd = open(c->input, O_RDONLY)) < 0) {
        fail("%s: %s", c->input, strerror(errno));
        return EXIT_USAGE;
    }
    seed_random(&p);
    size_t max = p.limits.max_records;
    p.records = xcalloc(SLICE_RECORDS, sizeof *p.records);
    p.line_of = xcalloc(SLICE_RECORDS, sizeof *p.line_of);
    p.keys = xcalloc(SLICE_RECORDS, sizeof *p.keys);
    p.decoded_at = xcalloc(SLICE_RECORDS, sizeof *p.decoded_at);
    p.request = xcalloc(max, sizeof *p.request);
    p.outcomes = xcalloc(max + 1, 1);
    p.terminal = xcalloc(max, sizeof *p.terminal);
    if (!p.records || !p.line_of || !p.keys || !p.decoded_at || !p.request || !p.outcomes ||
        !p.terminal)
        goto done;
    /* Only lines within the record cap are read as JSON. */
    if (c->ndjson && !ndj_init(&p.json, p.limits.max_record_bytes)) {
        fail("out of memory (the JSON scanner)");
        goto done;
    }
    if (!c->dry_run && !http_setup(&p)) {
        code = EXIT_USAGE;
        goto done;
    }
    int finished = run(&p, fd);
    if (fflush(stdout) != 0) {
        fail("writing to stdout: %s", strerror(errno));
        finished = 0;
    }
    fprintf(stderr,
            "kb-producer: %s: %llu lines, %llu stored, %llu refused, %llu failed, "
            "%llu requests, %llu retries\n",
            finished ? "done" : "stopped", p.lines, p.stored, p.refused, p.terminal_count,
            p.requests, p.retries);
    if (finished)
        code = p.refused || p.terminal_count ? EXIT_NOT_ALL_STORED : EXIT_ALL_STORED;
done:
    if (fd != STDIN_FILENO)
        close(fd);
    curl_slist_free_all(p.headers);
    if (p.curl) {
        curl_easy_cleanup(p.curl);
        curl_global_cleanup();
    }
    free(p.records);
    free(p.line_of);
    free(p.keys);
    free(p.decoded_at);
    free(p.arena);
    ndj_free(&p.json);
    free(p.request);
    free(p.outcomes);
    free(p.terminal);
    free(p.body);
    free(p.response);
    return code;
}
