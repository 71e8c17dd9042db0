/*
 * kinesis_json.c: the PutRecords request body and a bounded scanner for its response.
 *
 * The scanner is deliberately small: it validates just enough structure to find the
 * members a producer needs, never reads outside [body, body + len), and limits nesting
 * so a hostile response cannot exhaust the stack. Anything it does not understand makes
 * the response "bad", which the library turns into a retry.
 */
#include "kinesis_json.h"

#include <string.h>

/* ---- Writing ---------------------------------------------------------------------- */

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static size_t base64_write(char *out, const uint8_t *in, size_t n) {
    size_t o = 0, i = 0;
    for (; n - i >= 3; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = B64[v >> 18];
        out[o++] = B64[(v >> 12) & 63];
        out[o++] = B64[(v >> 6) & 63];
        out[o++] = B64[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = B64[v >> 18];
        out[o++] = B64[(v >> 12) & 63];
        out[o++] = '=';
        out[o++] = '=';
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = B64[v >> 18];
        out[o++] = B64[(v >> 12) & 63];
        out[o++] = B64[(v >> 6) & 63];
        out[o++] = '=';
    }
    return o;
}

/* JSON string escaping: '"' and '\' get a backslash, control characters \u00XX; every
 * other byte (the library has already checked keys are valid UTF-8) goes as it is. */
static size_t escaped_len(const uint8_t *s, size_t n) {
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += s[i] < 0x20 ? 6 : (s[i] == '"' || s[i] == '\\') ? 2 : 1;
    return len;
}

static size_t escape_write(char *out, const uint8_t *s, size_t n) {
    static const char HEX[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x20) {
            memcpy(out + o, "\\u00", 4);
            out[o + 4] = HEX[s[i] >> 4];
            out[o + 5] = HEX[s[i] & 15];
            o += 6;
        } else {
            if (s[i] == '"' || s[i] == '\\')
                out[o++] = '\\';
            out[o++] = (char)s[i];
        }
    }
    return o;
}

#define BODY_HEAD "{\"StreamName\":\""
#define BODY_RECORDS "\",\"Records\":["
#define ENTRY_DATA "{\"Data\":\""
#define ENTRY_KEY "\",\"PartitionKey\":\""
#define ENTRY_END "\"}"
#define BODY_END "]}"
#define LIT(s) (sizeof(s) - 1)

size_t kj_body_bound(const char *stream, const kb_record *const *records, size_t n) {
    size_t len = LIT(BODY_HEAD) + escaped_len((const uint8_t *)stream, strlen(stream)) +
                 LIT(BODY_RECORDS) + LIT(BODY_END);
    for (size_t i = 0; i < n; i++) {
        const kb_record *r = records[i];
        /* Sizes are bounded by the limits (10 MiB a request), so no overflow here. */
        len += LIT(ENTRY_DATA) + (size_t)kb_base64_len(r->data_len) + LIT(ENTRY_KEY) +
               escaped_len(r->key, r->key_len) + LIT(ENTRY_END) + 1 /* comma */;
    }
    return len;
}

size_t kj_body_write(char *out, const char *stream, const kb_record *const *records,
                     size_t n) {
    size_t o = 0;
#define PUT(lit) (memcpy(out + o, lit, LIT(lit)), o += LIT(lit))
    PUT(BODY_HEAD);
    o += escape_write(out + o, (const uint8_t *)stream, strlen(stream));
    PUT(BODY_RECORDS);
    for (size_t i = 0; i < n; i++) {
        const kb_record *r = records[i];
        if (i > 0)
            out[o++] = ',';
        PUT(ENTRY_DATA);
        o += base64_write(out + o, r->data, r->data_len);
        PUT(ENTRY_KEY);
        o += escape_write(out + o, r->key, r->key_len);
        PUT(ENTRY_END);
    }
    PUT(BODY_END);
#undef PUT
    return o;
}

/* ---- Scanning --------------------------------------------------------------------- */

typedef struct {
    const char *p, *end;
} scan;

#define MAX_DEPTH 32

static void ws(scan *s) {
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

static bool eat(scan *s, char c) {
    ws(s);
    if (s->p < s->end && *s->p == c) {
        s->p++;
        return true;
    }
    return false;
}

/* A string: its raw contents (between the quotes, escapes undecoded) in *str, *n. */
static bool string_raw(scan *s, const char **str, size_t *n) {
    if (!eat(s, '"'))
        return false;
    const char *start = s->p;
    while (s->p < s->end && *s->p != '"') {
        if ((unsigned char)*s->p < 0x20)
            return false;
        if (*s->p == '\\' && ++s->p == s->end) /* skip the escaped character */
            return false;
        s->p++;
    }
    if (s->p == s->end)
        return false;
    *str = start;
    *n = (size_t)(s->p - start);
    s->p++;
    return true;
}

static bool is_name(const char *str, size_t n, const char *name) {
    return n == strlen(name) && memcmp(str, name, n) == 0;
}

static bool skip_value(scan *s, int depth);

/* Walks an object or array whose opening bracket is consumed; for objects, calls
 * member(ctx, name, n, s) to consume each member's value (NULL: skip it). */
typedef bool member_fn(void *ctx, const char *name, size_t n, scan *s, int depth);

static bool walk_object(scan *s, int depth, member_fn *member, void *ctx) {
    if (depth > MAX_DEPTH)
        return false;
    if (eat(s, '}'))
        return true;
    do {
        const char *name;
        size_t n;
        if (!string_raw(s, &name, &n) || !eat(s, ':'))
            return false;
        if (!(member ? member(ctx, name, n, s, depth + 1) : skip_value(s, depth + 1)))
            return false;
    } while (eat(s, ','));
    return eat(s, '}');
}

static bool skip_value(scan *s, int depth) {
    const char *str;
    size_t n;
    if (depth > MAX_DEPTH)
        return false;
    ws(s);
    if (s->p == s->end)
        return false;
    switch (*s->p) {
    case '"':
        return string_raw(s, &str, &n);
    case '{':
        s->p++;
        return walk_object(s, depth, NULL, NULL);
    case '[':
        s->p++;
        if (eat(s, ']'))
            return true;
        do {
            if (!skip_value(s, depth + 1))
                return false;
        } while (eat(s, ','));
        return eat(s, ']');
    default: /* a number, true, false or null: the run of characters that can form one */
        str = s->p;
        while (s->p < s->end && (strchr("+-.eE", *s->p) || (*s->p >= '0' && *s->p <= '9') ||
                                 (*s->p >= 'a' && *s->p <= 'z')))
            s->p++;
        return s->p > str;
    }
}

/* One entry of "Records": {"SequenceNumber":..,"ShardId":..} or {"ErrorCode":..,..}. */
typedef struct {
    bool stored, failed;
    uint8_t kind;
} entry;

static bool entry_member(void *ctx, const char *name, size_t n, scan *s, int depth) {
    entry *e = ctx;
    const char *str;
    size_t len;
    ws(s);
    bool is_string = s->p < s->end && *s->p == '"';
    if (is_name(name, n, "ErrorCode") && is_string) {
        if (!string_raw(s, &str, &len))
            return false;
        kb_status st = kb_error_kind_from_code((const uint8_t *)str, len, &e->kind);
        e->failed = st == KB_OK;
        return st == KB_OK;
    }
    if (is_name(name, n, "SequenceNumber") && is_string) {
        e->stored = true;
        return string_raw(s, &str, &len);
    }
    return skip_value(s, depth); /* ShardId, ErrorMessage, nulls, anything new */
}

typedef struct {
    uint8_t *outcomes;
    size_t cap, count;
    long long failed_count;
    bool saw_records;
} response;

static bool response_member(void *ctx, const char *name, size_t n, scan *s, int depth) {
    response *r = ctx;
    if (is_name(name, n, "FailedRecordCount")) {
        ws(s);
        const char *start = s->p;
        long long v = 0;
        while (s->p < s->end && *s->p >= '0' && *s->p <= '9' && v < 1000000000)
            v = v * 10 + (*s->p++ - '0');
        r->failed_count = v;
        return s->p > start;
    }
    if (!is_name(name, n, "Records"))
        return skip_value(s, depth);
    r->saw_records = true;
    if (!eat(s, '['))
        return false;
    if (eat(s, ']'))
        return true;
    do {
        entry e = {false, false, 0};
        if (!eat(s, '{') || !walk_object(s, depth + 1, entry_member, &e))
            return false;
        uint8_t outcome = e.failed   ? e.kind
                          : e.stored ? KB_OUTCOME_ACCEPTED
                                     : KB_ERROR_KIND_BAD_RESPONSE;
        if (r->count < r->cap)
            r->outcomes[r->count++] = outcome;
    } while (eat(s, ','));
    return eat(s, ']');
}

bool kj_parse_response(const char *body, size_t len, uint8_t *outcomes, size_t cap,
                       size_t *n_outcomes, long long *failed_count) {
    scan s = {body, body + len};
    response r = {outcomes, cap, 0, -1, false};
    bool ok = eat(&s, '{') && walk_object(&s, 0, response_member, &r) && r.saw_records;
    ws(&s);
    *n_outcomes = r.count;
    *failed_count = r.failed_count;
    return ok && s.p == s.end;
}

typedef struct {
    const char *want, *str;
    size_t n;
    bool found;
} lookup;

static bool lookup_member(void *ctx, const char *name, size_t n, scan *s, int depth) {
    lookup *l = ctx;
    ws(s);
    if (!l->found && is_name(name, n, l->want) && s->p < s->end && *s->p == '"')
        return (l->found = string_raw(s, &l->str, &l->n));
    return skip_value(s, depth);
}

bool kj_top_string(const char *body, size_t len, const char *name, const char **s,
                   size_t *n) {
    scan sc = {body, body + len};
    lookup l = {name, NULL, 0, false};
    if (!eat(&sc, '{') || !walk_object(&sc, 0, lookup_member, &l) || !l.found)
        return false;
    *s = l.str;
    *n = l.n;
    return true;
}
