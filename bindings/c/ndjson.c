/*
 * ndjson.c: --format ndjson and --key-field for kb-producer, answering as the
 * command-line tool does.
 *
 * The tool reads a line with serde_json, in one of two ways, and this scanner follows
 * each rule that decides whether a line is accepted (the messages are serde_json's, the
 * columns are where the problem is found):
 *
 *   --format ndjson  the line is one JSON value: strings may hold any bytes but raw
 *                    control characters (their UTF-8 is not checked), escapes are
 *                    \" \\ \/ \b \f \n \r \t \uXXXX, numbers have JSON's grammar and any
 *                    size, nesting any depth; whitespace is space, \t, \n, \r.
 *   --key-field F    the same, but the top level is read as the value it is: an
 *                    object's member names as bytes (raw control characters allowed,
 *                    escapes decoded), a string strictly (UTF-8, surrogate escapes
 *                    paired), a number as a double (refused when out of range). The
 *                    value of F must be UTF-8 as a whole; the last F wins.
 */
#include "ndjson.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define EOF_VALUE "EOF while parsing a value"
#define EOF_STRING "EOF while parsing a string"
#define EOF_LIST "EOF while parsing a list"
#define EOF_OBJECT "EOF while parsing an object"
#define CONTROL "control character (\\u0000-\\u001F) found while parsing a string"

/* One line being scanned. */
typedef struct {
    const uint8_t *s;
    size_t n, i;
    ndj_scanner *sc;
    ndj_refusal *why;
} scan;

static bool invalid(scan *p, const char *what, size_t at) {
    *p->why = (ndj_refusal){.reason = NDJ_INVALID_JSON, .what = what,
                            .column = at < p->n ? at + 1 : p->n};
    return false;
}

static bool is_digit(uint8_t c) { return c >= '0' && c <= '9'; }

static void ws(scan *p) {
    while (p->i < p->n &&
           (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

/* How many leading bytes of s[0..n] are valid UTF-8 (Rust's rules: no overlong forms,
 * no surrogates, nothing above U+10FFFF). */
static size_t utf8_valid_up_to(const uint8_t *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        uint8_t b = s[i], lo = 0x80, hi = 0xBF;
        size_t more;
        if (b < 0x80) {
            i++;
            continue;
        }
        if (b >= 0xC2 && b <= 0xDF)
            more = 1;
        else if (b == 0xE0)
            more = 2, lo = 0xA0;
        else if (b == 0xED)
            more = 2, hi = 0x9F;
        else if (b >= 0xE1 && b <= 0xEF)
            more = 2;
        else if (b == 0xF0)
            more = 3, lo = 0x90;
        else if (b >= 0xF1 && b <= 0xF3)
            more = 3;
        else if (b == 0xF4)
            more = 3, hi = 0x8F;
        else
            return i;
        if (n - i - 1 < more || s[i + 1] < lo || s[i + 1] > hi)
            return i;
        for (size_t k = 2; k <= more; k++)
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
        i += more + 1;
    }
    return n;
}

bool ndj_utf8_valid(const uint8_t *s, size_t n) { return utf8_valid_up_to(s, n) == n; }

/* ---- Strings ------------------------------------------------------------------------ */

static int hex_digit(uint8_t c) {
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Four hex digits at s: their value, or -1. */
static long hex4(const uint8_t *s) {
    long v = 0;
    for (int k = 0; k < 4; k++) {
        int h = hex_digit(s[k]);
        if (h < 0)
            return -1;
        v = v << 4 | h;
    }
    return v;
}

/* The \uXXXX whose 'u' was just read: its value in *u. */
static bool read_hex4(scan *p, long *u) {
    if (p->n - p->i < 4)
        return invalid(p, EOF_STRING, p->n);
    *u = hex4(p->s + p->i);
    p->i += 4;
    return *u >= 0 || invalid(p, "invalid escape", p->i - 1);
}

/* The escape after a backslash just read. */
static bool skip_escape(scan *p) {
    if (p->i >= p->n)
        return invalid(p, EOF_STRING, p->n);
    long u;
    switch (p->s[p->i++]) {
    case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
        return true;
    case 'u':
        return read_hex4(p, &u);
    default:
        return invalid(p, "invalid escape", p->i - 1);
    }
}

/* A string whose opening quote was just read, up to and past its closing quote. Raw
 * control characters are refused unless allow_control (a member name read as bytes);
 * *escaped is set when the string holds a backslash. */
static bool skip_string(scan *p, bool allow_control, bool *escaped) {
    for (;;) {
        if (p->i >= p->n)
            return invalid(p, EOF_STRING, p->n);
        uint8_t c = p->s[p->i];
        if (c == '"') {
            p->i++;
            return true;
        }
        if (c == '\\') {
            *escaped = true;
            p->i++;
            if (!skip_escape(p))
                return false;
        } else if (c < 0x20 && !allow_control) {
            return invalid(p, CONTROL, p->i - 1); /* serde_json says a column early here */
        } else {
            p->i++;
        }
    }
}

/* A string read as a string (the top-level value under --key-field): as skip_string,
 * and its surrogate escapes come in pairs and, once it is read, its bytes are UTF-8. */
static bool strict_string(scan *p) {
    size_t run = p->i;           /* the raw bytes since the last escape */
    size_t decoded = 0;          /* the string's length decoded, up to run */
    size_t bad = SIZE_MAX;       /* where its first byte that is not UTF-8 lands, decoded */
    for (;;) {
        if (p->i >= p->n)
            return invalid(p, EOF_STRING, p->n);
        uint8_t c = p->s[p->i];
        if ((c == '"' || c == '\\') && bad == SIZE_MAX) {
            size_t ok = utf8_valid_up_to(p->s + run, p->i - run);
            if (ok < p->i - run)
                bad = decoded + ok;
        }
        if (c == '"' || c == '\\')
            decoded += p->i - run;
        if (c == '"') {
            p->i++;
            if (bad == SIZE_MAX)
                return true;
            /* serde_json counts back from the closing quote, in decoded bytes. */
            size_t back = decoded - bad;
            return invalid(p, "invalid unicode code point", p->i > back + 1 ? p->i - back - 1 : 0);
        }
        if (c < 0x20)
            return invalid(p, CONTROL, p->i);
        p->i++;
        if (c != '\\')
            continue;
        if (p->i >= p->n)
            return invalid(p, EOF_STRING, p->n);
        if (p->s[p->i] != 'u') {
            if (!skip_escape(p))
                return false;
            decoded++;
        } else {
            long u, u2;
            p->i++;
            if (!read_hex4(p, &u))
                return false;
            if (u >= 0xDC00 && u <= 0xDFFF)
                return invalid(p, "lone leading surrogate in hex escape", p->i - 1);
            if (u >= 0xD800 && u <= 0xDBFF) { /* a trailing surrogate escape must follow */
                for (const char *want = "\\u"; *want; want++, p->i++) {
                    if (p->i >= p->n)
                        return invalid(p, EOF_STRING, p->n);
                    if (p->s[p->i] != (uint8_t)*want)
                        return invalid(p, "unexpected end of hex escape", p->i);
                }
                if (!read_hex4(p, &u2))
                    return false;
                if (u2 < 0xDC00 || u2 > 0xDFFF)
                    return invalid(p, "lone leading surrogate in hex escape", p->i - 1);
            }
            decoded += u < 0x80 ? 1 : u < 0x800 ? 2 : u < 0xD800 || u > 0xDBFF ? 3 : 4;
        }
        run = p->i;
    }
}

/* Where decoded bytes go: into out, or compared with cmp[0..cmp_len). */
typedef struct {
    uint8_t *out;
    const uint8_t *cmp;
    size_t cmp_len, len;
    bool differs;
} sink;

static void put(sink *k, uint8_t b) {
    if (k->out)
        k->out[k->len] = b;
    else if (k->len >= k->cmp_len || k->cmp[k->len] != b)
        k->differs = true;
    k->len++;
}

/* A code point as UTF-8; a surrogate as the 3 bytes UTF-8 forbids for it (WTF-8). */
static void put_code_point(sink *k, uint32_t c) {
    if (c < 0x80) {
        put(k, (uint8_t)c);
    } else if (c < 0x800) {
        put(k, (uint8_t)(0xC0 | c >> 6));
        put(k, (uint8_t)(0x80 | (c & 63)));
    } else if (c < 0x10000) {
        put(k, (uint8_t)(0xE0 | c >> 12));
        put(k, (uint8_t)(0x80 | (c >> 6 & 63)));
        put(k, (uint8_t)(0x80 | (c & 63)));
    } else {
        put(k, (uint8_t)(0xF0 | c >> 18));
        put(k, (uint8_t)(0x80 | (c >> 12 & 63)));
        put(k, (uint8_t)(0x80 | (c >> 6 & 63)));
        put(k, (uint8_t)(0x80 | (c & 63)));
    }
}

/* Decodes the inside of a string already checked by skip_string, as serde_json decodes
 * bytes: a leading surrogate escape followed by a trailing one is one character, any
 * other surrogate escape stands alone. */
static void unescape(const uint8_t *s, size_t n, sink *k) {
    static const uint8_t SIMPLE[256] = {['"'] = '"', ['\\'] = '\\', ['/'] = '/', ['b'] = '\b',
                                        ['f'] = '\f', ['n'] = '\n', ['r'] = '\r', ['t'] = '\t'};
    size_t i = 0;
    while (i < n) {
        if (s[i] != '\\') {
            put(k, s[i++]);
            continue;
        }
        uint8_t e = s[i + 1];
        i += 2;
        if (e != 'u') {
            put(k, SIMPLE[e]);
            continue;
        }
        uint32_t u = (uint32_t)hex4(s + i);
        i += 4;
        while (u >= 0xD800 && u <= 0xDBFF && n - i >= 6 && s[i] == '\\' && s[i + 1] == 'u') {
            uint32_t u2 = (uint32_t)hex4(s + i + 2);
            i += 6;
            if (u2 >= 0xDC00 && u2 <= 0xDFFF) {
                u = 0x10000 + ((u - 0xD800) << 10) + (u2 - 0xDC00);
                break;
            }
            put_code_point(k, u); /* unpaired; the next escape may start a pair */
            u = u2;
        }
        put_code_point(k, u);
    }
}

size_t ndj_unescape(const ndj_key *key, uint8_t *out) {
    sink k = {.out = out};
    unescape(key->bytes, key->len, &k);
    return k.len;
}

/* ---- Numbers ------------------------------------------------------------------------ */

/* A number; `typed`: read as a number (a bare number line under --key-field), where
 * serde_json words a line that ends too soon as an EOF. */
static bool skip_number(scan *p, bool typed) {
    const char *short_end = typed ? EOF_VALUE : "invalid number";
    if (p->s[p->i] == '-')
        p->i++;
    if (p->i >= p->n)
        return invalid(p, short_end, p->n);
    if (p->s[p->i] == '0') {
        p->i++;
        if (p->i < p->n && is_digit(p->s[p->i]))
            return invalid(p, "invalid number", p->i);
    } else if (is_digit(p->s[p->i])) {
        while (p->i < p->n && is_digit(p->s[p->i]))
            p->i++;
    } else {
        return invalid(p, "invalid number", p->i);
    }
    if (p->i < p->n && p->s[p->i] == '.') {
        size_t first = ++p->i;
        while (p->i < p->n && is_digit(p->s[p->i]))
            p->i++;
        if (p->i == first)
            return invalid(p, p->i >= p->n ? short_end : "invalid number", p->i);
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-'))
            p->i++;
        if (p->i >= p->n || !is_digit(p->s[p->i]))
            return invalid(p, p->i >= p->n ? short_end : "invalid number", p->i);
        while (p->i < p->n && is_digit(p->s[p->i]))
            p->i++;
    }
    return true;
}

/* Whether serde_json (without float_roundtrip) reads the number s[0..n], valid JSON, as
 * a finite double: it keeps the first digits that fit a u64 and scales them by powers
 * of ten, refusing a result that overflows. Only a bare number line is read so. */
#define OVERFLOWS(a, d, max) ((a) >= (max) / 10 && ((a) > (max) / 10 || (uint64_t)(d) > (max) % 10))

static bool number_in_range(const ndj_scanner *sc, const uint8_t *s, size_t n) {
    size_t i = s[0] == '-';
    uint64_t sig = 0;
    int32_t exp = 0;
    if (s[i] == '0') {
        i++;
    } else {
        for (; i < n && is_digit(s[i]); i++) {
            if (OVERFLOWS(sig, s[i] - '0', UINT64_MAX))
                break;
            sig = sig * 10 + (uint64_t)(s[i] - '0');
        }
        for (; i < n && is_digit(s[i]); i++) /* digits past a u64 scale it */
            exp++;
    }
    if (i < n && s[i] == '.') {
        for (i++; i < n && is_digit(s[i]); i++) {
            if (OVERFLOWS(sig, s[i] - '0', UINT64_MAX)) {
                while (i < n && is_digit(s[i]))
                    i++;
                break;
            }
            sig = sig * 10 + (uint64_t)(s[i] - '0');
            exp--;
        }
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        bool positive = s[++i] != '-';
        if (s[i] == '+' || s[i] == '-')
            i++;
        int32_t e = 0;
        for (; i < n && is_digit(s[i]); i++) {
            if (OVERFLOWS((uint64_t)e, s[i] - '0', (uint64_t)INT32_MAX))
                return sig == 0 || !positive; /* 0 or a vanishing number, else infinite */
            e = e * 10 + (s[i] - '0');
        }
        int64_t x = positive ? (int64_t)exp + e : (int64_t)exp - e;
        exp = x > INT32_MAX ? INT32_MAX : x < INT32_MIN ? INT32_MIN : (int32_t)x;
    }
    double f = (double)sig;
    for (;;) {
        uint32_t a = exp < 0 ? 0u - (uint32_t)exp : (uint32_t)exp;
        if (a <= 308)
            return exp < 0 || !isinf(f * sc->powers[a]);
        if (f == 0.0)
            return true;
        if (exp >= 0)
            return false;
        f /= 1e308;
        exp += 308;
    }
}

/* ---- Values ------------------------------------------------------------------------- */

static bool ident(scan *p, const char *word) {
    for (p->i++, word++; *word; word++, p->i++) {
        if (p->i >= p->n)
            return invalid(p, EOF_VALUE, p->n);
        if (p->s[p->i] != (uint8_t)*word)
            return invalid(p, "expected ident", p->i);
    }
    return true;
}

/* A string, number, true, false or null at p->i. */
static bool scalar(scan *p) {
    bool escaped = false;
    switch (p->s[p->i]) {
    case '"':
        p->i++;
        return skip_string(p, false, &escaped);
    case 't':
        return ident(p, "true");
    case 'f':
        return ident(p, "false");
    case 'n':
        return ident(p, "null");
    default:
        if (p->s[p->i] == '-' || is_digit(p->s[p->i]))
            return skip_number(p, false);
        return invalid(p, "expected value", p->i);
    }
}

/* An object member's name and colon, inside a skipped value. */
static bool member_name(scan *p) {
    bool escaped = false;
    ws(p);
    if (p->i >= p->n)
        return invalid(p, EOF_OBJECT, p->n);
    if (p->s[p->i] != '"')
        return invalid(p, "key must be a string", p->i);
    p->i++;
    if (!skip_string(p, false, &escaped))
        return false;
    ws(p);
    if (p->i >= p->n)
        return invalid(p, EOF_OBJECT, p->n);
    if (p->s[p->i] != ':')
        return invalid(p, "expected `:`", p->i);
    p->i++;
    return true;
}

/* One value of any depth, without recursion: a bit per open container (1: object). */
static bool skip_value(scan *p) {
    size_t depth = 0;
    uint8_t *stack = p->sc->stack;
    for (;;) {
        ws(p);
        if (p->i >= p->n)
            return invalid(p, EOF_VALUE, p->n);
        uint8_t c = p->s[p->i];
        if (c == '[' || c == '{') {
            bool object = c == '{';
            if (depth >= p->sc->stack_bits)
                return invalid(p, "nested too deeply", p->i); /* ndj_init's bound broken */
            if (object)
                stack[depth / 8] |= (uint8_t)(1u << depth % 8);
            else
                stack[depth / 8] &= (uint8_t)~(1u << depth % 8);
            depth++;
            p->i++;
            ws(p);
            if (p->i >= p->n)
                return invalid(p, object ? EOF_OBJECT : EOF_LIST, p->n);
            if (p->s[p->i] != (object ? '}' : ']')) {
                if (object && !member_name(p))
                    return false;
                continue; /* the first element's value */
            }
            p->i++; /* empty */
            depth--;
        } else if (!scalar(p)) {
            return false;
        }
        /* After a value: close what ends here, then the next element's value. */
        for (;;) {
            if (depth == 0)
                return true;
            bool object = stack[(depth - 1) / 8] >> (depth - 1) % 8 & 1;
            ws(p);
            if (p->i >= p->n)
                return invalid(p, object ? EOF_OBJECT : EOF_LIST, p->n);
            c = p->s[p->i];
            if (c == (object ? '}' : ']')) {
                p->i++;
                depth--;
                continue;
            }
            if (c != ',')
                return invalid(p, object ? "expected `,` or `}`" : "expected `,` or `]`", p->i);
            p->i++;
            if (object && !member_name(p))
                return false;
            break;
        }
    }
}

static bool end_of_line(scan *p) {
    ws(p);
    return p->i >= p->n || invalid(p, "trailing characters", p->i);
}

/* ---- The two checks ------------------------------------------------------------------ */

bool ndj_init(ndj_scanner *s, size_t max_line) {
    s->stack_bits = max_line + 1;
    s->stack = calloc(s->stack_bits / 8 + 1, 1);
    /* serde_json's powers of ten, as correctly rounded doubles. */
    for (int e = 0; e <= 308; e++) {
        char text[16];
        snprintf(text, sizeof text, "1e%d", e);
        s->powers[e] = strtod(text, NULL);
    }
    return s->stack != NULL;
}

void ndj_free(ndj_scanner *s) {
    free(s->stack);
    s->stack = NULL;
}

const char *ndj_reason_name(int reason) {
    return reason == NDJ_INVALID_JSON ? "invalid_json"
           : reason == NDJ_KEY_FIELD_MISSING ? "key_field_missing"
                                            : "none";
}

void ndj_print_detail(FILE *out, const ndj_refusal *why, const char *field) {
    if (why->reason == NDJ_INVALID_JSON)
        fprintf(out, "%s at column %zu", why->what, why->column);
    else if (why->line_is)
        fprintf(out, "the line is %s, not an object with \"%s\"", why->what, field);
    else if (why->what)
        fprintf(out, "field \"%s\" is %s, not a string or number", field, why->what);
    else
        fprintf(out, "no field \"%s\"", field);
}

bool ndj_check(ndj_scanner *s, const uint8_t *line, size_t len, ndj_refusal *why) {
    scan p = {.s = line, .n = len, .sc = s, .why = why};
    return skip_value(&p) && end_of_line(&p);
}

/* The top-level object: its members' names are read as bytes and compared with the
 * field's name; the last member so named gives the key. */
static bool object_key(scan *p, const char *field, size_t field_len, ndj_key *key) {
    size_t start = 0, end = 0; /* the field's value, as JSON text */
    bool found = false, first = true;
    for (p->i++;;) {
        ws(p);
        if (p->i >= p->n)
            return invalid(p, EOF_OBJECT, p->n);
        uint8_t c = p->s[p->i];
        if (c == '}') {
            p->i++;
            break;
        }
        if (first) {
            first = false;
            if (c != '"')
                return invalid(p, "key must be a string", p->i);
        } else if (c != ',') {
            return invalid(p, "expected `,` or `}`", p->i);
        } else {
            p->i++;
            ws(p);
            if (p->i >= p->n)
                return invalid(p, EOF_VALUE, p->n);
            if (p->s[p->i] == '}')
                return invalid(p, "trailing comma", p->i);
            if (p->s[p->i] != '"')
                return invalid(p, "key must be a string", p->i);
        }
        size_t name = ++p->i;
        bool escaped = false;
        if (!skip_string(p, true, &escaped))
            return false;
        size_t name_len = p->i - 1 - name;
        bool is_field;
        if (escaped) {
            sink k = {.cmp = (const uint8_t *)field, .cmp_len = field_len};
            unescape(p->s + name, name_len, &k);
            is_field = !k.differs && k.len == field_len;
        } else {
            is_field = name_len == field_len && memcmp(p->s + name, field, field_len) == 0;
        }
        ws(p);
        if (p->i >= p->n)
            return invalid(p, EOF_OBJECT, p->n);
        if (p->s[p->i] != ':')
            return invalid(p, "expected `:`", p->i);
        p->i++;
        ws(p);
        size_t value = p->i;
        if (!skip_value(p))
            return false;
        if (is_field) {
            size_t ok = utf8_valid_up_to(p->s + value, p->i - value);
            if (ok < p->i - value)
                return invalid(p, "invalid unicode code point", value + ok);
            found = true, start = value, end = p->i;
        }
    }
    if (!end_of_line(p))
        return false;
    const char *holds = NULL;
    if (found) {
        const uint8_t *v = p->s + start;
        size_t n = end - start;
        switch (v[0]) {
        case '"':
            *key = (ndj_key){.bytes = v + 1, .len = n - 2, .escaped = memchr(v, '\\', n) != NULL};
            return true;
        case 'n':
            holds = "null";
            break;
        case 't': case 'f':
            holds = "a boolean";
            break;
        case '{':
            holds = "an object";
            break;
        case '[':
            holds = "an array";
            break;
        default: /* a number: its JSON text */
            *key = (ndj_key){.bytes = v, .len = n};
            return true;
        }
    }
    *p->why = (ndj_refusal){.reason = NDJ_KEY_FIELD_MISSING, .what = holds};
    return false;
}

/* The top-level array, read as a sequence: its elements are skipped values. */
static bool top_array(scan *p) {
    for (bool first = true;; first = false) {
        p->i += first; /* '[' */
        ws(p);
        if (p->i >= p->n)
            return invalid(p, EOF_LIST, p->n);
        if (p->s[p->i] == ']') {
            p->i++;
            return true;
        }
        if (!first) {
            if (p->s[p->i] != ',')
                return invalid(p, "expected `,` or `]`", p->i);
            p->i++;
            ws(p);
            if (p->i >= p->n)
                return invalid(p, EOF_VALUE, p->n);
            if (p->s[p->i] == ']')
                return invalid(p, "trailing comma", p->i);
        }
        if (!skip_value(p))
            return false;
    }
}

bool ndj_key_field(ndj_scanner *s, const uint8_t *line, size_t len, const char *field,
                   size_t field_len, ndj_key *key, ndj_refusal *why) {
    scan p = {.s = line, .n = len, .sc = s, .why = why};
    ws(&p);
    if (p.i >= p.n)
        return invalid(&p, EOF_VALUE, p.n);
    const char *kind;
    size_t start = p.i;
    switch (line[p.i]) {
    case '{':
        return object_key(&p, field, field_len, key);
    case '[':
        kind = "an array";
        if (!top_array(&p))
            return false;
        break;
    case '"':
        kind = "a string";
        p.i++;
        if (!strict_string(&p))
            return false;
        break;
    case 't': case 'f':
        kind = "a boolean";
        if (!scalar(&p))
            return false;
        break;
    case 'n':
        kind = "null";
        if (!scalar(&p))
            return false;
        break;
    default:
        kind = "a number";
        if (line[p.i] != '-' && !is_digit(line[p.i]))
            return invalid(&p, "expected value", p.i);
        if (!skip_number(&p, true))
            return false;
        if (!number_in_range(s, line + start, p.i - start))
            return invalid(&p, "number out of range", p.i - 1);
    }
    if (!end_of_line(&p))
        return false;
    *why = (ndj_refusal){.reason = NDJ_KEY_FIELD_MISSING, .what = kind, .line_is = true};
    return false;
}
