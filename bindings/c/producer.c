/*
 * kb-producer: sends NDJSON lines to an Amazon Kinesis data stream with PutRecords.
 *
 * A sample producer to start an ingestion agent from. The kinesis-batcher engine
 * (kb_engine_*) makes every decision: which record is refused, which records share a
 * request and when it is due (full, linger, flush), how many requests are in flight,
 * which entries are sent again and when, and when to pause for new credentials. This
 * file only moves bytes: it reads input while requests are in flight, copies each line
 * it pushes into a slot of its own (indexed by the engine's handle), builds the JSON
 * body, signs and POSTs it with libcurl's multi interface, and reports each response
 * back. With --format ndjson or --key-field, ndjson.c first checks each line as JSON and
 * finds its key, as the kinesis-batcher command-line tool does; a line it refuses is
 * reported here and never becomes a record.
 *
 *   input ──read──▶ buffer ──kb_lines_next──▶ [ndjson.c] ──kb_engine_push──▶ slot copy
 *   kb_engine_next_request ──JSON + base64──▶ curl multi (SigV4, N in flight)
 *   response ──kb_engine_settle──▶ slots freed, terminal records reported
 *
 * One thread, one loop: push what has been read, hand out what is due, wait
 * (curl_multi_poll) on the sockets, the input and the engine's next deadline, settle
 * what completed. See README.md for usage, design and limitations.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
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

#define KEY_MAX 21                /* a decimal uint64 line number and its NUL */
#define MAX_RESPONSE (8u << 20)   /* a larger response is a transport error */
#define READ_AHEAD (256u << 10)   /* read buffer beyond the longest record */
#define SLOT_KEEP 1024            /* a slot keeps its copy buffer up to this size */
#define BODY_KEEP (1u << 20)      /* a transfer keeps its body buffer up to this size */
#define MAX_IN_FLIGHT 1024        /* the engine's maximum */
#define CRED_FILE_CHECK_MS 1000   /* the credentials file is re-read this often... */
#define CRED_PAUSED_CHECK_MS 100  /* ...and this often while waiting for new ones */
#define CRED_RETRY_FIRST_MS 1000  /* unchanged credentials are tried again after this, */
#define CRED_RETRY_MAX_MS 30000   /* doubling up to this */
#define POLL_MAX_MS 1000          /* the longest wait, so signals are seen */

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
    "  --in-flight N         requests in flight at once, 1..1024 (default 1)\n"
    "  --linger-ms N         the longest a record waits for its request to fill, 1 or\n"
    "                        more (default 100)\n"
    "  --buffer-records N    records buffered at most (read, not yet stored); reading\n"
    "                        pauses when full (default 500 x (in-flight + 2), at least 5000)\n"
    "  --buffer-mib N        bytes buffered at most, in MiB, at least the request cap\n"
    "                        (default 64)\n"
    "  --allow-reordering    records of one key may be in several requests at once (the\n"
    "                        default, --per-key-order, stores each key's records in\n"
    "                        input order: one record per key per request)\n"
    "  --max-attempts N      sends of one record at most, 1 or more (default 10)\n"
    "  --backoff-base-ms N   first backoff ceiling, 1 or more (default 100; doubles up\n"
    "                        to 10 s)\n"
    "  --timeout-ms N        HTTP request timeout (default 30000; 0: none, as in libcurl)\n"
    "  --credentials-file PATH  read the credentials from PATH (the AWS shared\n"
    "                        credentials format), re-read when it changes and whenever\n"
    "                        the service rejects them\n"
    "  --credentials-profile NAME  the section of that file (default AWS_PROFILE, else\n"
    "                        default)\n"
    "  --credentials-wait-ms N  how long rejected credentials may go unreplaced before\n"
    "                        the waiting records fail (default 300000; 0: at once)\n"
    "  --dry-run             print each request body on stdout, one per line; no HTTP\n"
    "  --help                this text\n"
    "Credentials: --credentials-file, else AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,\n"
    "AWS_SESSION_TOKEN (optional).\n"
    "Exit: 0 all stored, 1 records refused or failed, 2 usage or setup, 3 stopped early.\n";

typedef struct {
    const char *stream, *region, *endpoint, *fixed_key, *key_field, *input;
    const char *format; /* "lines" or "ndjson" as given, or NULL */
    const char *credentials_file, *credentials_profile;
    unsigned long long max_record_kib, max_attempts, backoff_base_ms, timeout_ms;
    unsigned long long in_flight, linger_ms, buffer_records, buffer_mib, credentials_wait_ms;
    int profile;
    int max_record_kib_given;
    int ndjson; /* lines are checked as JSON (--format ndjson, or --key-field) */
    int dry_run;
    int per_key_order, allow_reordering;
} config;

/* Credentials, owned copies. */
typedef struct {
    char *access_key, *secret_key, *session_token; /* the token may be NULL */
} creds;

/* A record between its push and its settling: a copy of the line (and of a decoded
 * --key-field key), the kb_record pointing into it, the line number, and how many times
 * it was sent. Slot i is the engine's handle i. */
typedef struct {
    uint8_t *buf;
    size_t cap;
    kb_record rec;
    uint64_t line;
    uint32_t sends;
    char key[KEY_MAX]; /* the line-number key */
} slot;

/* One request slot: an easy handle with its body, response and the handles it carries.
 * There are --in-flight of them. */
typedef struct {
    CURL *easy;
    struct curl_slist *headers;
    unsigned long headers_gen; /* the credentials generation the headers were built for */
    unsigned long cred_gen;    /* the generation the request in flight is signed with */
    char *body;
    size_t body_cap;
    char *response;
    size_t response_len, response_cap;
    char error_type[128]; /* the X-Amzn-ErrorType header of the response */
    char curl_error[CURL_ERROR_SIZE];
    kb_handle *handles;
    const kb_record **recs;
    size_t n;
    uint64_t id;
    unsigned long long number; /* the request's number, to name it in messages */
    int busy;
} transfer;

typedef struct {
    config cfg;
    kb_limits limits;
    kb_limits data_only; /* the limits without keys: is a line over the record cap alone */
    kb_retry_policy policy;
    kb_engine *engine;
    size_t capacity;
    slot *slots;
    transfer *xfers;
    size_t n_xfers, busy;
    uint8_t *outcomes;            /* one response's outcomes (+1: a response with too many) */
    kb_terminal_entry *terminal;  /* one settle's terminal records */
    ndj_scanner json;
    uint8_t *keybuf; /* a --key-field key with escapes, decoded */
    size_t keybuf_cap;
    /* Input: in[pos..fill) is read and not yet split; `pending` is a line the engine
     * had no room for (it points into `in`, which does not move until it is pushed). */
    int fd;
    uint8_t *in;
    size_t in_cap, in_fill, in_pos;
    kb_lines *splitter;
    kb_line pending;
    int have_pending, need_input, eof, lines_done, stop_input, flushed;
    int read_failed, interrupted;
    /* HTTP. */
    CURLM *multi;
    char url[1024], sigv4[160];
    /* Credentials: the current ones and their generation (bumped on every change). */
    creds cred;
    unsigned long cred_gen;
    uint64_t cred_checked_at;  /* when the file was last read */
    uint64_t cred_fail_since;  /* the first rejection of the current ones (0: none) */
    uint64_t cred_retry_at;    /* when to try unchanged credentials again */
    uint64_t cred_backoff;
    int cred_file_bad;         /* the last read of the file failed (said once) */
    int cred_gave_up;
    /* Totals. */
    unsigned long long lines, stored, refused, terminal_count, requests, retries, unsent;
    unsigned long long cred_errors;
    uint64_t rng;
} producer;

static volatile sig_atomic_t signals_seen;

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

static char *xstrdup(const char *s) {
    char *d = s ? strdup(s) : NULL;
    if (s && !d)
        fail("out of memory");
    return d;
}

static uint64_t now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
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

static void on_signal(int sig) {
    (void)sig;
    signals_seen++;
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

/* A number of at least 1: `zero` says why 0 is refused. */
static int parse_positive(const char *opt, const char *s, unsigned long long max,
                          unsigned long long *out, const char *zero) {
    if (!parse_number(opt, s, max, out))
        return 0;
    if (*out == 0) {
        fail("%s: %s", opt, zero);
        return 0;
    }
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
                    .profile = KB_PROFILE_KDS, .in_flight = 1, .linger_ms = 100,
                    .buffer_mib = 64, .credentials_wait_ms = 300000};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = NULL;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0)
            return -1;
        if (strcmp(a, "--per-key-order") == 0) {
            cfg->per_key_order = 1;
            continue;
        }
        if (strcmp(a, "--allow-reordering") == 0) {
            cfg->allow_reordering = 1;
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
        else if (strcmp(name, "--credentials-file") == 0)
            cfg->credentials_file = v;
        else if (strcmp(name, "--credentials-profile") == 0)
            cfg->credentials_profile = v;
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
            /* The library reads a zero field as its default, never as "off": 0 would
             * silently mean 10, so it is refused. The same for the others below. */
            if (!parse_positive(name, v, 1000000, &cfg->max_attempts,
                                "0 would mean the library's default (10 sends); "
                                "use 1 to send each record once"))
                return 0;
        } else if (strcmp(name, "--backoff-base-ms") == 0) {
            if (!parse_positive(name, v, 3600000, &cfg->backoff_base_ms,
                                "0 would mean the library's default (100 ms); "
                                "1 is the shortest backoff"))
                return 0;
        } else if (strcmp(name, "--linger-ms") == 0) {
            if (!parse_positive(name, v, 3600000, &cfg->linger_ms,
                                "0 would mean the library's default (100 ms); "
                                "1 is the shortest linger"))
                return 0;
        } else if (strcmp(name, "--in-flight") == 0) {
            if (!parse_positive(name, v, MAX_IN_FLIGHT, &cfg->in_flight,
                                "at least one request must be in flight"))
                return 0;
        } else if (strcmp(name, "--buffer-records") == 0) {
            if (!parse_positive(name, v, 100000000, &cfg->buffer_records,
                                "the buffer must hold a record"))
                return 0;
        } else if (strcmp(name, "--buffer-mib") == 0) {
            if (!parse_positive(name, v, 1u << 20, &cfg->buffer_mib,
                                "the buffer must hold a request"))
                return 0;
        } else if (strcmp(name, "--credentials-wait-ms") == 0) {
            if (!parse_number(name, v, 1ull << 40, &cfg->credentials_wait_ms))
                return 0;
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
    if (!cfg->credentials_profile)
        cfg->credentials_profile = env("AWS_PROFILE") ? env("AWS_PROFILE") : "default";

    const char *missing =
        !cfg->stream                                        ? "a stream (--stream or KINESIS_STREAM)"
        : cfg->dry_run                                      ? NULL
        : !cfg->region                                      ? "a region (--region, AWS_REGION or AWS_DEFAULT_REGION)"
        : cfg->credentials_file                             ? NULL
        : !env("AWS_ACCESS_KEY_ID")                         ? "credentials (AWS_ACCESS_KEY_ID)"
        : !env("AWS_SECRET_ACCESS_KEY")                     ? "credentials (AWS_SECRET_ACCESS_KEY)"
                                                            : NULL;
    if (missing) {
        fail("missing %s", missing);
        return 0;
    }
    if (cfg->max_record_kib_given && cfg->profile != KB_PROFILE_KDS) {
        fail("--max-record-kib applies to --profile kds only");
        return 0;
    }
    if (cfg->per_key_order && cfg->allow_reordering) {
        fail("--per-key-order and --allow-reordering cannot be used together");
        return 0;
    }
    if (!cfg->buffer_records) {
        cfg->buffer_records = 500 * (cfg->in_flight + 2);
        if (cfg->buffer_records < 5000)
            cfg->buffer_records = 5000;
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

/* ---- Credentials ------------------------------------------------------------------- */

static void creds_free(creds *c) {
    free(c->access_key);
    free(c->secret_key);
    free(c->session_token);
    *c = (creds){0};
}

static int same(const char *a, const char *b) {
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int creds_equal(const creds *a, const creds *b) {
    return same(a->access_key, b->access_key) && same(a->secret_key, b->secret_key) &&
           same(a->session_token, b->session_token);
}

/* A credential goes into a header (the token) or the signature: printable ASCII only,
 * so that no value can add a header line. */
static int printable(const char *s) {
    for (; *s; s++)
        if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
            return 0;
    return 1;
}

static int creds_check(const creds *c, const char *where, char *why, size_t why_len) {
    const char *bad = !c->access_key || !*c->access_key   ? "no aws_access_key_id"
                      : !c->secret_key || !*c->secret_key ? "no aws_secret_access_key"
                      : !printable(c->access_key)         ? "aws_access_key_id is not printable ASCII"
                      : !printable(c->secret_key) ? "aws_secret_access_key is not printable ASCII"
                      : c->session_token && !printable(c->session_token)
                          ? "aws_session_token is not printable ASCII"
                          : NULL;
    if (bad)
        snprintf(why, why_len, "%s in %s", bad, where);
    return bad == NULL;
}

static int creds_from_env(creds *out, char *why, size_t why_len) {
    creds c = {0};
    c.access_key = xstrdup(env("AWS_ACCESS_KEY_ID"));
    c.secret_key = xstrdup(env("AWS_SECRET_ACCESS_KEY"));
    c.session_token = xstrdup(env("AWS_SESSION_TOKEN"));
    if (!creds_check(&c, "the environment", why, why_len)) {
        creds_free(&c);
        return 0;
    }
    *out = c;
    return 1;
}

static char *trim(char *s) {
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* Reads section [profile] of an AWS shared credentials file (INI: "[name]" sections,
 * "key = value" lines, '#' and ';' comments): aws_access_key_id, aws_secret_access_key
 * and aws_session_token (or aws_security_token). 1 with *out set, 0 with *why. */
static int creds_from_file(const char *path, const char *profile, creds *out, char *why,
                           size_t why_len) {
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, why_len, "%s: %s", path, strerror(errno));
        return 0;
    }
    creds c = {0};
    char line[8192], where[600];
    int in_section = 0, found = 0, ok = 1;
    while (ok && fgets(line, sizeof line, f)) {
        if (!strchr(line, '\n') && !feof(f)) {
            snprintf(why, why_len, "%s: a line longer than %zu bytes", path, sizeof line - 2);
            ok = 0;
            break;
        }
        line[strcspn(line, "\n")] = '\0';
        char *s = trim(line);
        if (!*s || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            char *end = strchr(s, ']');
            if (end)
                *end = '\0';
            in_section = strcmp(trim(s + 1), profile) == 0;
            found |= in_section;
            continue;
        }
        char *eq = strchr(s, '=');
        if (!in_section || !eq)
            continue;
        *eq = '\0';
        char *key = trim(s), *value = trim(eq + 1), **dst = NULL;
        if (strcasecmp(key, "aws_access_key_id") == 0)
            dst = &c.access_key;
        else if (strcasecmp(key, "aws_secret_access_key") == 0)
            dst = &c.secret_key;
        else if (strcasecmp(key, "aws_session_token") == 0 ||
                 strcasecmp(key, "aws_security_token") == 0)
            dst = &c.session_token;
        if (dst) {
            free(*dst);
            *dst = *value ? xstrdup(value) : NULL;
        }
    }
    if (ok && ferror(f)) {
        snprintf(why, why_len, "%s: %s", path, strerror(errno));
        ok = 0;
    }
    fclose(f);
    snprintf(where, sizeof where, "[%s] of %s", profile, path);
    if (ok && !found) {
        snprintf(why, why_len, "no section %s", where);
        ok = 0;
    }
    if (ok && !creds_check(&c, where, why, why_len))
        ok = 0;
    if (!ok) {
        creds_free(&c);
        return 0;
    }
    *out = c;
    return 1;
}

/* Reads the credentials again (the file; the environment cannot change under a running
 * process). 1 when they changed, and are now the current ones. */
static int creds_reload(producer *p, uint64_t now) {
    const config *c = &p->cfg;
    p->cred_checked_at = now;
    if (!c->credentials_file)
        return 0;
    creds fresh;
    char why[700];
    if (!creds_from_file(c->credentials_file, c->credentials_profile, &fresh, why, sizeof why)) {
        if (!p->cred_file_bad)
            fail("credentials: %s (keeping the current ones)", why);
        p->cred_file_bad = 1;
        return 0;
    }
    p->cred_file_bad = 0;
    if (creds_equal(&fresh, &p->cred)) {
        creds_free(&fresh);
        return 0;
    }
    creds_free(&p->cred);
    p->cred = fresh;
    p->cred_gen++;
    fail("credentials reloaded from %s", c->credentials_file);
    return 1;
}

/* ---- HTTP ------------------------------------------------------------------------- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *ctx) {
    transfer *t = ctx;
    size_t n = size * nmemb;
    if (n > MAX_RESPONSE - t->response_len)
        return 0; /* absurdly large: abort the transfer (a transport error) */
    if (t->response_len + n > t->response_cap) {
        size_t cap = t->response_cap ? t->response_cap : 16 * 1024;
        while (cap < t->response_len + n)
            cap *= 2;
        char *grown = realloc(t->response, cap);
        if (!grown)
            return 0;
        t->response = grown;
        t->response_cap = cap;
    }
    memcpy(t->response + t->response_len, data, n);
    t->response_len += n;
    return n;
}

/* Keeps the X-Amzn-ErrorType header: some errors carry their code only there. */
static size_t on_header(char *line, size_t size, size_t nmemb, void *ctx) {
    transfer *t = ctx;
    size_t n = size * nmemb;
    static const char NAME[] = "x-amzn-errortype:";
    if (n > sizeof NAME - 1 && strncasecmp(line, NAME, sizeof NAME - 1) == 0) {
        const char *v = line + sizeof NAME - 1;
        size_t len = n - (sizeof NAME - 1);
        while (len && (*v == ' ' || *v == '\t'))
            v++, len--;
        while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
            len--;
        if (len >= sizeof t->error_type)
            len = sizeof t->error_type - 1;
        memcpy(t->error_type, v, len);
        t->error_type[len] = '\0';
    }
    return n;
}

static int http_setup(producer *p) {
    const config *c = &p->cfg;
    int n = c->endpoint ? snprintf(p->url, sizeof p->url, "%s", c->endpoint)
                        : snprintf(p->url, sizeof p->url, "https://kinesis.%s.amazonaws.com/",
                                   c->region);
    if (n < 0 || (size_t)n >= sizeof p->url ||
        (size_t)snprintf(p->sigv4, sizeof p->sigv4, "aws:amz:%s:kinesis", c->region) >=
            sizeof p->sigv4) {
        fail("the endpoint or region is too long");
        return 0;
    }
    if (!(p->multi = curl_multi_init())) {
        fail("cannot initialise libcurl");
        return 0;
    }
    for (size_t i = 0; i < p->n_xfers; i++) {
        transfer *t = &p->xfers[i];
        CURL *h = t->easy = curl_easy_init();
        if (!h) {
            fail("cannot initialise libcurl");
            return 0;
        }
        CURLcode rc = CURLE_OK;
#define SET(opt, val) (rc = rc != CURLE_OK ? rc : curl_easy_setopt(h, opt, val))
        SET(CURLOPT_URL, p->url);
        SET(CURLOPT_AWS_SIGV4, p->sigv4); /* libcurl >= 7.75 signs each request itself */
        SET(CURLOPT_USERAGENT, "kb-producer/" KB_VERSION);
        SET(CURLOPT_WRITEFUNCTION, on_body);
        SET(CURLOPT_WRITEDATA, (void *)t);
        SET(CURLOPT_HEADERFUNCTION, on_header);
        SET(CURLOPT_HEADERDATA, (void *)t);
        SET(CURLOPT_ERRORBUFFER, t->curl_error);
        SET(CURLOPT_PRIVATE, (void *)t);
        SET(CURLOPT_CONNECTTIMEOUT_MS, 10000L);
        SET(CURLOPT_TIMEOUT_MS, (long)c->timeout_ms);
        SET(CURLOPT_NOSIGNAL, 1L);
#undef SET
        if (rc != CURLE_OK) {
            fail("libcurl setup: %s (libcurl 7.75 or later is needed for SigV4)",
                 curl_easy_strerror(rc));
            return 0;
        }
    }
    return 1;
}

/* The request headers of transfer t for the current credentials (the session token, when
 * there is one, travels in a header and is signed). */
static int headers_for(producer *p, transfer *t) {
    if (t->headers && t->headers_gen == p->cred_gen)
        return 1;
    curl_slist_free_all(t->headers);
    t->headers = NULL;
    const char *fixed[] = {"Content-Type: application/x-amz-json-1.1",
                           "X-Amz-Target: Kinesis_20131202.PutRecords",
                           "Expect:" /* no 100-continue round trip */};
    struct curl_slist *l = NULL, *grown;
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        if (!(grown = curl_slist_append(l, fixed[i])))
            goto oom;
        l = grown;
    }
    if (p->cred.session_token) {
        static const char NAME[] = "x-amz-security-token: ";
        size_t len = sizeof NAME + strlen(p->cred.session_token);
        char *h = malloc(len);
        if (!h)
            goto oom;
        snprintf(h, len, "%s%s", NAME, p->cred.session_token);
        grown = curl_slist_append(l, h); /* copies it */
        free(h);
        if (!grown)
            goto oom;
        l = grown;
    }
    t->headers = l;
    t->headers_gen = p->cred_gen;
    return 1;
oom:
    curl_slist_free_all(l);
    fail("out of memory (request headers)");
    return 0;
}

/* ---- Slots ------------------------------------------------------------------------ */

/* A record is settled (stored or terminal): its copy can go; a small buffer is kept for
 * the slot's next record. */
static void slot_release(slot *s) {
    if (s->cap > SLOT_KEEP) {
        free(s->buf);
        s->buf = NULL;
        s->cap = 0;
    }
    s->rec = (kb_record){0};
}

static uint64_t line_of(producer *p, kb_handle h) { return p->slots[h].line; }

static void report_terminal(producer *p, const kb_terminal_entry *e, size_t n,
                            const char *why) {
    for (size_t i = 0; i < n; i++) {
        if (why)
            fprintf(stderr, "kb-producer: line %llu failed: credentials (gave up: %s)\n",
                    (unsigned long long)line_of(p, e[i].handle), why);
        else
            fprintf(stderr, "kb-producer: line %llu failed: %s%s\n",
                    (unsigned long long)line_of(p, e[i].handle), kb_error_kind_name(e[i].kind),
                    e[i].gave_up ? " (gave up: attempt or age limit)" : "");
        slot_release(&p->slots[e[i].handle]);
    }
    p->terminal_count += n;
}

/* ---- Input ------------------------------------------------------------------------ */

/* Pushes one line. 1: consumed (pushed, or refused and reported); 0: the engine is full
 * (push it again after a settle); -1: a fatal error. */
static int push_line(producer *p, const kb_line *line) {
    const config *c = &p->cfg;
    kb_record r = {.data = line->bytes, .data_len = line->bytes_len};
    char number[KEY_MAX];
    int key_copied = 0; /* the key points into keybuf: copy it with the data */
    /* As the tool: a line over the record cap is refused as too large whatever it
     * holds, so it is not read as JSON. The library measures its data alone to say so
     * (a line cut short, !line->whole, is always over). */
    int over_cap = 0;
    if (c->ndjson) {
        uint32_t size;
        kb_reason reason;
        kb_status st = kb_record_measure(&p->data_only, &r, &size, &reason);
        if (!kb_ok(st, "kb_record_measure"))
            return -1;
        over_cap = !line->whole || st == KB_REFUSED;
    }
    ndj_refusal why;
    if (c->key_field && over_cap) {
        r.key = (const uint8_t *)"-"; /* a stand-in: the record is refused for its size */
        r.key_len = 1;
    } else if (c->key_field) {
        ndj_key key;
        if (!ndj_key_field(&p->json, line->bytes, line->bytes_len, c->key_field,
                           strlen(c->key_field), &key, &why)) {
            fprintf(stderr, "kb-producer: line %llu refused: %s: ",
                    (unsigned long long)line->number, ndj_reason_name(why.reason));
            ndj_print_detail(stderr, &why, c->key_field);
            fputc('\n', stderr);
            p->refused++;
            return 1;
        }
        r.key = key.bytes; /* a view into the line, as its data is */
        r.key_len = key.len;
        if (key.escaped) {
            /* Decoding only shortens: key.len bytes are enough. */
            if (key.len > p->keybuf_cap) {
                uint8_t *grown = realloc(p->keybuf, key.len);
                if (!grown) {
                    fail("out of memory (a %zu-byte key)", key.len);
                    return -1;
                }
                p->keybuf = grown;
                p->keybuf_cap = key.len;
            }
            r.key = p->keybuf;
            r.key_len = ndj_unescape(&key, p->keybuf);
        }
        key_copied = 1;
    } else {
        if (c->ndjson && !over_cap && !ndj_check(&p->json, line->bytes, line->bytes_len, &why)) {
            fprintf(stderr, "kb-producer: line %llu refused: %s: ",
                    (unsigned long long)line->number, ndj_reason_name(why.reason));
            ndj_print_detail(stderr, &why, NULL);
            fputc('\n', stderr);
            p->refused++;
            return 1;
        }
        if (c->fixed_key) {
            r.key = (const uint8_t *)c->fixed_key;
            r.key_len = strlen(c->fixed_key);
        } else {
            int k = snprintf(number, KEY_MAX, "%llu", (unsigned long long)line->number);
            r.key = (const uint8_t *)number;
            r.key_len = (size_t)k;
        }
    }
    kb_handle h;
    kb_reason reason;
    kb_status st = kb_engine_push(p->engine, &r, now_ms(), &h, &reason);
    if (st == KB_FULL)
        return 0;
    if (st == KB_REFUSED) {
        fprintf(stderr, "kb-producer: line %llu refused: %s: %s\n",
                (unsigned long long)line->number, kb_reason_name(reason),
                kb_reason_message(reason));
        p->refused++;
        return 1;
    }
    if (!kb_ok(st, "kb_engine_push"))
        return -1;
    if (h >= p->capacity) {
        fail("kb_engine_push: handle %u out of range (a library bug?)", (unsigned)h);
        return -1;
    }
    /* The engine keeps no pointer to the record: copy it into the handle's slot, where it
     * stays until the record is stored or terminal. */
    slot *s = &p->slots[h];
    size_t need = r.data_len + (key_copied ? r.key_len : 0);
    if (need > s->cap) {
        size_t cap = need < 64 ? 64 : need;
        uint8_t *grown = malloc(cap);
        if (!grown) {
            fail("out of memory (a %zu-byte record)", cap);
            return -1;
        }
        free(s->buf);
        s->buf = grown;
        s->cap = cap;
    }
    if (r.data_len)
        memcpy(s->buf, r.data, r.data_len);
    s->rec = (kb_record){.data = s->buf, .data_len = r.data_len};
    if (key_copied) {
        memcpy(s->buf + r.data_len, r.key, r.key_len);
        s->rec.key = s->buf + r.data_len;
    } else if (c->fixed_key) {
        s->rec.key = r.key; /* the option's string lives as long as the process */
    } else {
        memcpy(s->key, number, r.key_len + 1);
        s->rec.key = (const uint8_t *)s->key;
    }
    s->rec.key_len = r.key_len;
    s->line = line->number;
    s->sends = 0;
    return 1;
}

/* Pushes every line read so far, until the engine is full or more input is needed.
 * Returns 0, or -1 on a fatal error. */
static int feed(producer *p) {
    p->need_input = 0;
    for (;;) {
        if (p->have_pending) {
            int r = push_line(p, &p->pending);
            if (r < 0)
                return -1;
            if (r == 0) {
                /* Full: requests will not grow by waiting, so send what is buffered. */
                if (!kb_ok(kb_engine_flush(p->engine), "kb_engine_flush"))
                    return -1;
                return 0;
            }
            p->have_pending = 0;
        }
        if (p->lines_done || p->stop_input)
            return 0;
        kb_line line;
        size_t used = 0;
        kb_status st = kb_lines_next(p->splitter, p->in + p->in_pos, p->in_fill - p->in_pos,
                                     p->eof, &line, &used);
        if (!kb_ok(st, "kb_lines_next"))
            return -1;
        p->in_pos += used;
        if (st == KB_OK) {
            /* A line over the record cap comes with only the bytes seen so far
             * (!line.whole); bytes_len alone is already over the cap, so the record made
             * of them is refused as record_too_large without reading past them. */
            p->lines++;
            p->pending = line;
            p->have_pending = 1;
            continue;
        }
        if (st == KB_END) {
            p->lines_done = 1;
            return 0;
        }
        /* KB_NEED_MORE: keep the unfinished line, read more behind it. */
        memmove(p->in, p->in + p->in_pos, p->in_fill - p->in_pos);
        p->in_fill -= p->in_pos;
        p->in_pos = 0;
        if (p->eof || p->in_fill == p->in_cap) {
            fail("kb_lines_next: no progress (a library bug?)");
            return -1;
        }
        p->need_input = 1;
        return 0;
    }
}

static void read_input(producer *p) {
    ssize_t got = read(p->fd, p->in + p->in_fill, p->in_cap - p->in_fill);
    if (got < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    if (got < 0) {
        fail("reading %s: %s; sending what was read", p->cfg.input ? p->cfg.input : "stdin",
             strerror(errno));
        p->read_failed = 1;
        p->stop_input = 1;
        return;
    }
    if (got == 0)
        p->eof = 1;
    p->in_fill += (size_t)got;
}

/* Reading stops for good (a signal, no credentials): a line read but not pushed is
 * counted as not sent. */
static void stop_reading(producer *p) {
    if (p->stop_input)
        return;
    p->stop_input = 1;
    if (p->have_pending) {
        p->have_pending = 0;
        p->unsent++;
    }
}

/* ---- Requests ------------------------------------------------------------------------ */

static int flush_stdout(void) {
    if (fflush(stdout) != 0) {
        fail("writing to stdout: %s", strerror(errno));
        return 0;
    }
    return 1;
}

/* Settles request t: per entry (outcomes[0..n), n == t->n) or as a whole (kind). */
static int settle(producer *p, transfer *t, const uint8_t *outcomes, uint8_t kind) {
    size_t n_terminal = 0;
    uint64_t now = now_ms();
    kb_status st =
        outcomes ? kb_engine_settle(p->engine, t->id, outcomes, t->n, now, next_random(p),
                                    p->terminal, p->limits.max_records, &n_terminal)
                 : kb_engine_settle_all(p->engine, t->id, kind, now, next_random(p),
                                        p->terminal, p->limits.max_records, &n_terminal);
    if (!kb_ok(st, outcomes ? "kb_engine_settle" : "kb_engine_settle_all"))
        return 0;
    if (outcomes) {
        for (size_t i = 0; i < t->n; i++)
            if (outcomes[i] == KB_OUTCOME_ACCEPTED) {
                p->stored++;
                slot_release(&p->slots[t->handles[i]]);
            }
    }
    report_terminal(p, p->terminal, n_terminal, NULL);
    return 1;
}

/* The service rejected the credentials request t was signed with. */
static void credentials_rejected(producer *p, transfer *t, uint64_t now) {
    p->cred_errors++;
    if (t->cred_gen != p->cred_gen) {
        /* Signed with credentials replaced since: the new ones may well work. */
        kb_ok(kb_engine_resume(p->engine), "kb_engine_resume");
        return;
    }
    if (!p->cred_fail_since) {
        p->cred_fail_since = now;
        p->cred_backoff = CRED_RETRY_FIRST_MS;
    }
    p->cred_retry_at = now + p->cred_backoff;
    p->cred_backoff = p->cred_backoff * 2 > CRED_RETRY_MAX_MS ? CRED_RETRY_MAX_MS
                                                                 : p->cred_backoff * 2;
}

/* The response of transfer t, settled: per entry for HTTP 2xx, else as a whole. */
static int complete(producer *p, transfer *t, CURLcode rc) {
    curl_multi_remove_handle(p->multi, t->easy);
    t->busy = 0;
    p->busy--;
    unsigned long long n = t->number;
    uint64_t now = now_ms();
    int ok, rejected = 0; /* rejected: the service refused the credentials */
    long status = 0;
    if (rc != CURLE_OK) {
        /* No response: the service may have stored the records anyway (at-least-once). */
        fail("request %llu: %s; will retry", n,
             t->curl_error[0] ? t->curl_error : curl_easy_strerror(rc));
        ok = settle(p, t, NULL, KB_ERROR_KIND_TRANSPORT);
        goto done;
    }
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status >= 200 && status < 300) {
        long long failed;
        size_t n_outcomes = 0;
        /* cap = n + 1: a response listing more entries than sent is detectable. */
        if (!kj_parse_response(t->response, t->response_len, p->outcomes, t->n + 1,
                               &n_outcomes, &failed)) {
            fail("request %llu: HTTP %ld with a body that is not a PutRecords response; "
                 "will retry", n, status);
            ok = settle(p, t, NULL, KB_ERROR_KIND_BAD_RESPONSE);
            goto done;
        }
        if (n_outcomes != t->n) {
            fail("request %llu: the response lists %s%zu entries for %zu sent; will retry",
                 n, n_outcomes > t->n ? "more than " : "", n_outcomes > t->n ? t->n : n_outcomes,
                 t->n);
            ok = settle(p, t, NULL, KB_ERROR_KIND_BAD_RESPONSE);
            goto done;
        }
        size_t n_failed = 0;
        for (size_t i = 0; i < n_outcomes; i++) {
            n_failed += p->outcomes[i] != KB_OUTCOME_ACCEPTED;
            rejected |= p->outcomes[i] == KB_ERROR_KIND_CREDENTIALS;
        }
        if (failed >= 0 && (size_t)failed != n_failed)
            fail("request %llu: FailedRecordCount %lld, but %zu entries failed", n, failed,
                 n_failed);
        ok = settle(p, t, p->outcomes, 0);
        goto done;
    }
    /* The whole request failed. The error code ("__type" in the body, else the
     * X-Amzn-ErrorType header) is more precise than the status; an unknown code falls
     * back to the status (a 400 we cannot name is a client error, not a retry). */
    kb_error_kind by_status = (kb_error_kind)KB_ERROR_KIND_NONE, by_code = KB_ERROR_KIND_UNKNOWN;
    kb_error_kind_from_http_status((uint32_t)status, &by_status);
    const char *code = t->error_type, *msg = "";
    size_t code_len = strlen(t->error_type), msg_len = 0;
    kj_top_string(t->response, t->response_len, "__type", &code, &code_len);
    if (!kj_top_string(t->response, t->response_len, "message", &msg, &msg_len))
        kj_top_string(t->response, t->response_len, "Message", &msg, &msg_len);
    if (code_len)
        kb_error_kind_from_code((const uint8_t *)code, code_len, &by_code);
    uint8_t kind = by_code != KB_ERROR_KIND_UNKNOWN || by_status == KB_ERROR_KIND_NONE
                       ? by_code
                       : by_status;
    rejected = kind == KB_ERROR_KIND_CREDENTIALS;
    const char *then = rejected ? p->cfg.credentials_file
                                      ? ", waiting for new credentials"
                                      : ", will retry with the same credentials"
                       : kb_error_kind_is_retryable(kind) ? ", will retry"
                                                          : "";
    fail("request %llu: HTTP %ld %.*s: %.*s (%s%s)", n, status, (int)code_len, code,
         (int)(msg_len > 300 ? 300 : msg_len), msg, kb_error_kind_name(kind), then);
    ok = settle(p, t, NULL, kind);
done:
    if (rejected)
        credentials_rejected(p, t, now);
    else if (rc == CURLE_OK && t->cred_gen == p->cred_gen)
        p->cred_fail_since = 0; /* an answer, not a rejection: these credentials work */
    if (t->body_cap > BODY_KEEP) {
        free(t->body);
        t->body = NULL;
        t->body_cap = 0;
    }
    return ok;
}

/* Sends the request the engine handed out in t (or, in a dry run, prints it and settles
 * it as stored). */
static int send_request(producer *p, transfer *t) {
    const config *c = &p->cfg;
    for (size_t i = 0; i < t->n; i++) {
        slot *s = &p->slots[t->handles[i]];
        if (s->sends++)
            p->retries++;
        t->recs[i] = &s->rec;
    }
    t->number = ++p->requests;
    size_t need = kj_body_bound(c->stream, t->recs, t->n);
    if (need > t->body_cap) {
        free(t->body);
        if (!(t->body = malloc(need))) {
            t->body_cap = 0;
            fail("out of memory (a %zu-byte request body)", need);
            return 0;
        }
        t->body_cap = need;
    }
    size_t len = kj_body_write(t->body, c->stream, t->recs, t->n);
    if (c->dry_run) {
        if (fwrite(t->body, 1, len, stdout) != len || putchar('\n') == EOF) {
            fail("writing to stdout: %s", strerror(errno));
            return 0;
        }
        memset(p->outcomes, KB_OUTCOME_ACCEPTED, t->n);
        return settle(p, t, p->outcomes, 0);
    }
    if (!headers_for(p, t))
        return 0;
    t->response_len = 0;
    t->error_type[0] = t->curl_error[0] = '\0';
    t->cred_gen = p->cred_gen;
    CURL *h = t->easy;
    CURLcode rc = CURLE_OK;
#define SET(opt, val) (rc = rc != CURLE_OK ? rc : curl_easy_setopt(h, opt, val))
    SET(CURLOPT_HTTPHEADER, t->headers);
    /* The same as CURLOPT_USERPWD "key:secret", without splitting on ':'. */
    SET(CURLOPT_USERNAME, p->cred.access_key);
    SET(CURLOPT_PASSWORD, p->cred.secret_key);
    SET(CURLOPT_POSTFIELDS, t->body);
    SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
#undef SET
    if (rc != CURLE_OK) {
        fail("libcurl: %s", curl_easy_strerror(rc));
        return 0;
    }
    CURLMcode mc = curl_multi_add_handle(p->multi, h);
    if (mc != CURLM_OK) {
        fail("libcurl: %s", curl_multi_strerror(mc));
        return 0;
    }
    t->busy = 1;
    p->busy++;
    return 1;
}

/* No valid credentials came in time: every record the engine hands out from now on fails
 * without being sent, and reading stops. */
static void give_up_credentials(producer *p) {
    p->cred_gave_up = 1;
    fail("no valid credentials for %llu ms (--credentials-wait-ms): the records waiting "
         "for them fail, and reading stops",
         p->cfg.credentials_wait_ms);
    stop_reading(p);
}

/* The engine is paused on a credentials failure. Returns 1 when it was resumed (call
 * next_request again), 0 with *until set to when to look again. */
static int paused(producer *p, uint64_t now, uint64_t *until) {
    const config *c = &p->cfg;
    if (!p->cred_gave_up && p->cred_fail_since &&
        now - p->cred_fail_since >= c->credentials_wait_ms)
        give_up_credentials(p);
    int resume = p->cred_gave_up || !p->cred_fail_since;
    if (!resume && c->credentials_file && now - p->cred_checked_at >= CRED_PAUSED_CHECK_MS)
        resume = creds_reload(p, now);
    if (!resume && now >= p->cred_retry_at) {
        /* Unchanged: try them again now and then (a clock skew may have been fixed). */
        fail("trying the same credentials again");
        resume = 1;
    }
    if (resume)
        return kb_ok(kb_engine_resume(p->engine), "kb_engine_resume") ? 1 : -1;
    uint64_t next = p->cred_retry_at;
    if (c->credentials_file && p->cred_checked_at + CRED_PAUSED_CHECK_MS < next)
        next = p->cred_checked_at + CRED_PAUSED_CHECK_MS;
    if (p->cred_fail_since + c->credentials_wait_ms < next)
        next = p->cred_fail_since + c->credentials_wait_ms;
    *until = next;
    return 0;
}

static transfer *free_transfer(producer *p) {
    for (size_t i = 0; i < p->n_xfers; i++)
        if (!p->xfers[i].busy)
            return &p->xfers[i];
    return NULL;
}

/* Sends every request that is due. Returns the engine's last status (KB_END: nothing
 * buffered), with *until set when it should be asked again at a given time (0: when
 * something happens), or 0xFFFF on a fatal error. *sent says whether a request was
 * handed out. */
#define FATAL 0xFFFFu
static unsigned dispatch(producer *p, uint64_t *until, int *sent) {
    *until = 0;
    for (;;) {
        transfer *t = free_transfer(p);
        if (!t)
            return KB_BUSY;
        uint64_t now = now_ms(), wait = 0;
        uint32_t bytes = 0;
        kb_status st = kb_engine_next_request(p->engine, now, &t->id, t->handles,
                                              p->limits.max_records, &t->n, &bytes, &wait);
        switch (st) {
        case KB_OK:
            *sent = 1;
            if (p->cred_gave_up) {
                char why[64];
                size_t n_terminal = 0;
                snprintf(why, sizeof why, "no valid credentials for %llu ms",
                         p->cfg.credentials_wait_ms);
                if (!kb_ok(kb_engine_settle_all(p->engine, t->id, KB_ERROR_KIND_ACCESS_DENIED,
                                                now, next_random(p), p->terminal,
                                                p->limits.max_records, &n_terminal),
                           "kb_engine_settle_all"))
                    return FATAL;
                report_terminal(p, p->terminal, n_terminal, why);
                continue;
            }
            if (!send_request(p, t))
                return FATAL;
            continue;
        case KB_WAIT:
            *until = wait;
            return st;
        case KB_PAUSED: {
            int r = paused(p, now, until);
            if (r < 0)
                return FATAL;
            if (r)
                continue;
            return st;
        }
        case KB_BUSY:
        case KB_END:
            return st;
        default:
            kb_ok(st, "kb_engine_next_request");
            if (!kb_status_is_error(st))
                fail("kb_engine_next_request: unexpected status %u", (unsigned)st);
            return FATAL;
        }
    }
}

/* ---- The loop --------------------------------------------------------------------- */

/* Reads, pushes, sends and settles until the input has ended and every record is
 * stored, refused or terminal. 0 on a fatal error. */
static int run(producer *p) {
    for (;;) {
        if (signals_seen > 1) {
            fail("second signal: stopping now, %zu requests in flight", p->busy);
            return 0;
        }
        if (signals_seen && !p->interrupted) {
            p->interrupted = 1;
            fail("interrupted: sending the records read so far (signal again to stop now)");
            stop_reading(p);
        }
        if (feed(p) < 0)
            return 0;
        int input_done = (p->lines_done || p->stop_input) && !p->have_pending;
        if (input_done && !p->flushed) {
            /* Nothing more will come: what is buffered need not linger. */
            if (!kb_ok(kb_engine_flush(p->engine), "kb_engine_flush"))
                return 0;
            p->flushed = 1;
        }
        uint64_t now = now_ms();
        if (p->cfg.credentials_file && !p->cfg.dry_run &&
            now - p->cred_checked_at >= CRED_FILE_CHECK_MS)
            creds_reload(p, now);

        uint64_t until;
        int sent = 0;
        unsigned st = dispatch(p, &until, &sent);
        if (st == FATAL)
            return 0;
        if (input_done && st == KB_END && p->busy == 0)
            return 1;

        /* Wait for the sockets, the input, or the engine's next deadline. A dry run
         * settles as it sends, which may have made room: no waiting then. */
        now = now_ms();
        long timeout = POLL_MAX_MS;
        if (until)
            timeout = until <= now ? 0 : until - now < POLL_MAX_MS ? (long)(until - now)
                                                                  : POLL_MAX_MS;
        if (sent && p->cfg.dry_run)
            timeout = 0;
        int want_read = p->need_input && !p->eof && !p->stop_input;
        struct pollfd in = {.fd = p->fd, .events = POLLIN};
        if (p->multi) {
            struct curl_waitfd w = {.fd = p->fd, .events = CURL_WAIT_POLLIN};
            CURLMcode mc = curl_multi_poll(p->multi, want_read ? &w : NULL, want_read ? 1 : 0,
                                           (int)timeout, NULL);
            if (mc != CURLM_OK) {
                fail("libcurl: %s", curl_multi_strerror(mc));
                return 0;
            }
            in.revents = w.revents;
        } else if (poll(&in, want_read ? 1 : 0, (int)timeout) < 0 && errno != EINTR) {
            fail("poll: %s", strerror(errno));
            return 0;
        }
        if (want_read && in.revents)
            read_input(p);
        if (p->multi) {
            int running;
            CURLMcode mc = curl_multi_perform(p->multi, &running);
            if (mc != CURLM_OK) {
                fail("libcurl: %s", curl_multi_strerror(mc));
                return 0;
            }
            CURLMsg *m;
            int left;
            while ((m = curl_multi_info_read(p->multi, &left))) {
                if (m->msg != CURLMSG_DONE)
                    continue;
                CURLcode rc = m->data.result;
                char *priv = NULL;
                curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
                if (!priv || !complete(p, (transfer *)priv, rc))
                    return 0;
            }
        }
    }
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
    p.fd = STDIN_FILENO;
    int code = EXIT_USAGE, curl_ready = 0;

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
    if (p.policy.backoff_cap_ms < c->backoff_base_ms)
        p.policy.backoff_cap_ms = c->backoff_base_ms;
    uint64_t buffer_bytes = (uint64_t)c->buffer_mib << 20;
    if (buffer_bytes < p.limits.max_request_bytes) {
        fail("--buffer-mib: %llu MiB cannot hold a request of %u bytes", c->buffer_mib,
             (unsigned)p.limits.max_request_bytes);
        return EXIT_USAGE;
    }

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
    if (!c->dry_run) {
        char why[700];
        int ok = c->credentials_file
                     ? creds_from_file(c->credentials_file, c->credentials_profile, &p.cred,
                                       why, sizeof why)
                     : creds_from_env(&p.cred, why, sizeof why);
        if (!ok) {
            fail("credentials: %s", why);
            return EXIT_USAGE;
        }
        p.cred_checked_at = now_ms();
    }
    if (c->input && strcmp(c->input, "-") != 0 && (p.fd = open(c->input, O_RDONLY)) < 0) {
        fail("%s: %s", c->input, strerror(errno));
        creds_free(&p.cred);
        return EXIT_USAGE;
    }

    /* The engine and the memory it indexes: a slot per record of capacity, a transfer
     * per request in flight. */
    kb_engine_config ec = {
        .linger_ms = c->linger_ms,
        .max_buffered_bytes = buffer_bytes,
        .max_in_flight = c->dry_run ? 1 : (uint32_t)c->in_flight,
        .flags = c->allow_reordering ? KB_ENGINE_ALLOW_REORDERING : 0,
    };
    p.capacity = (size_t)c->buffer_records;
    st = kb_engine_new(&p.limits, &p.policy, &ec, p.capacity, NULL, 0, &p.engine, NULL);
    if (!kb_ok(st, "kb_engine_new"))
        goto done;
    code = EXIT_IO;
    seed_random(&p);
    size_t max = p.limits.max_records;
    p.n_xfers = ec.max_in_flight;
    p.in_cap = (size_t)p.limits.max_record_bytes + 2 + READ_AHEAD;
    p.slots = xcalloc(p.capacity, sizeof *p.slots);
    p.xfers = xcalloc(p.n_xfers, sizeof *p.xfers);
    p.outcomes = xcalloc(max + 1, 1);
    p.terminal = xcalloc(max, sizeof *p.terminal);
    p.in = xcalloc(p.in_cap, 1);
    if (!p.slots || !p.xfers || !p.outcomes || !p.terminal || !p.in)
        goto done;
    for (size_t i = 0; i < p.n_xfers; i++) {
        p.xfers[i].handles = xcalloc(max, sizeof *p.xfers[i].handles);
        p.xfers[i].recs = xcalloc(max, sizeof *p.xfers[i].recs);
        if (!p.xfers[i].handles || !p.xfers[i].recs)
            goto done;
    }
    if (!kb_ok(kb_lines_new(&p.limits, 0, 0, &p.splitter), "kb_lines_new"))
        goto done;
    /* Only lines within the record cap are read as JSON. */
    if (c->ndjson && !ndj_init(&p.json, p.limits.max_record_bytes)) {
        fail("out of memory (the JSON scanner)");
        goto done;
    }
    if (!c->dry_run) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            fail("cannot initialise libcurl");
            code = EXIT_USAGE;
            goto done;
        }
        curl_ready = 1;
        if (!http_setup(&p)) {
            code = EXIT_USAGE;
            goto done;
        }
    }
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: reads return */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    int finished = run(&p);
    if (!flush_stdout())
        finished = 0;
    kb_engine_counters k = {0};
    if (!kb_ok(kb_engine_stats(p.engine, &k), "kb_engine_stats"))
        finished = 0;
    else if (finished && (k.accepted_records != p.stored || k.terminal != p.terminal_count ||
                          k.buffered_records != 0)) {
        fail("the engine counts %llu stored, %llu failed and %llu buffered; this producer "
             "%llu, %llu and 0 (a library bug?)",
             (unsigned long long)k.accepted_records, (unsigned long long)k.terminal,
             (unsigned long long)k.buffered_records, p.stored, p.terminal_count);
        finished = 0;
    }
    /* Every line was read (or, interrupted, every line read was sent): the exit status
     * says whether each was stored. */
    int complete_input = finished && !p.read_failed && (!p.cred_gave_up || p.lines_done);
    if (finished && p.unsent)
        fail("%llu line(s) read were not sent", p.unsent);
    if (complete_input && p.interrupted)
        fail("interrupted after line %llu: every record read was sent", p.lines);
    fprintf(stderr,
            "kb-producer: %s: %llu lines, %llu stored, %llu refused, %llu failed, "
            "%llu requests, %llu retries, %llu throttled, %llu credential errors\n",
            !complete_input ? "stopped" : p.interrupted ? "interrupted" : "done", p.lines,
            p.stored, p.refused, p.terminal_count, p.requests, p.retries,
            (unsigned long long)k.throttled, p.cred_errors);
    if (complete_input)
        code = p.refused || p.terminal_count || p.unsent ? EXIT_NOT_ALL_STORED
                                                          : EXIT_ALL_STORED;
done:
    if (p.fd != STDIN_FILENO)
        close(p.fd);
    for (size_t i = 0; p.xfers && i < p.n_xfers; i++) {
        transfer *t = &p.xfers[i];
        if (t->easy) {
            if (t->busy)
                curl_multi_remove_handle(p.multi, t->easy);
            curl_easy_cleanup(t->easy);
        }
        curl_slist_free_all(t->headers);
        free(t->body);
        free(t->response);
        free(t->handles);
        free(t->recs);
    }
    if (p.multi)
        curl_multi_cleanup(p.multi);
    if (curl_ready)
        curl_global_cleanup();
    for (size_t i = 0; p.slots && i < p.capacity; i++)
        free(p.slots[i].buf);
    free(p.slots);
    free(p.xfers);
    free(p.outcomes);
    free(p.terminal);
    free(p.in);
    free(p.keybuf);
    kb_lines_free(p.splitter);
    ndj_free(&p.json);
    kb_engine_free(p.engine);
    creds_free(&p.cred);
    return code;
}
