/* The chunk store's S3 backend: store_backend_ops over an S3 bucket prefix ("s3://bucket/prefix"),
 * spoken through libcurl with its SigV4 signer (CURLOPT_AWS_SIGV4).
 *
 * Concurrency: every op is thread-safe and independent, and blocks until its request is answered.
 * Requests in flight come from the caller's threads: the backend keeps a pool of opt->requests
 * (default 8) curl easy handles, each keeping its connection alive between requests, and an op
 * borrows one for each try, waiting while all are busy. So N threads calling put or get give
 * min(N, requests) requests in flight; more threads only wait.
 *
 * Addressing: with an endpoint (opt->endpoint, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL) path-style,
 * ENDPOINT/BUCKET/KEY, as MinIO, Ceph RGW, Garage and Swift's s3api want; without, AWS's
 * virtual-host style https://BUCKET.s3.REGION.amazonaws.com/KEY. Keys are URI-encoded as SigV4
 * wants (only A-Za-z0-9-._~ and / bare); query strings are written sorted and encoded, because
 * libcurl 7.88 signs the query as written while servers canonicalize it.
 *
 * get is one Range request for cap bytes at offset: *got is cap, or less where the object ends
 * (offset 0 and cap at least its size: the whole object; a range starting at or past the end: 0
 * bytes, no error). get_file streams the object into the file; put_file streams the file (neither
 * holds an object in memory) and never replaces an object (ASR_E_EXISTS; see put_new).
 *
 * Payload hash (x-amz-content-sha256, which libcurl 7.88 does not send and servers require): the
 * body's SHA-256 over http, so that the server refuses a body damaged on the way; UNSIGNED-PAYLOAD
 * over https, where TLS already protects it and a file would otherwise be read twice.
 *
 * Batch deletes (del_many): DeleteObjects (POST ?delete), up to 1000 keys a request, quiet (the
 * answer lists only the keys it could not delete). An endpoint that answers 501 NotImplemented
 * (or 405) gets single DELETEs from then on. gc frees thousands of packs at a time and a backup
 * removes one index object per pack it uploaded: one request each was a round trip each.
 *
 * Failures: 5xx, 429, S3's RequestTimeout, and transport errors (refused or reset connections,
 * timeouts: under 1 KiB/s for ASRIMG_S3_STALL_SECONDS, default 30) are retried with exponential
 * backoff and jitter, ASRIMG_S3_RETRIES tries in all (default 6, first wait ASRIMG_S3_BACKOFF_MS,
 * default 250); other answers are final. Messages name the object (s3://bucket/prefix/key), the
 * HTTP status and S3's error Code. Sizes read from the server are capped before anything is
 * allocated for them (error and listing bodies; object bodies go only where the caller said). */
#include "backend_s3.h"

#include <ctype.h>
#include <curl/curl.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "grow.h"
#include "io.h"

#define S3_KEY_MAX 1024u                 /* S3's own limit on a key, in bytes */
#define S3_URL_MAX 4096u
#define S3_ERR_BODY_MAX 8192u            /* an <Error> body; the rest is dropped */
#define S3_LIST_BODY_MAX (16u << 20)     /* one ListObjectsV2 page (1000 keys are ~350 KiB) */
#define S3_LIST_OBJECTS_MAX (64u << 20)  /* objects one list may return */
#define S3_PUT_MAX (5ull << 30)          /* a single PUT's limit; larger needs multipart */
#define S3_CRED_FILE_MAX (1u << 20)
#define S3_REQUESTS_DEFAULT 8u
#define S3_REQUESTS_MAX 256u
#define S3_TRIES_DEFAULT 6u
#define S3_TRIES_MAX 30u
#define S3_BACKOFF_MS_DEFAULT 250u
#define S3_BACKOFF_CAP_MS 20000u
#define S3_STALL_S_DEFAULT 30u
#define S3_DELETE_BATCH_MAX 1000u       /* DeleteObjects' limit on keys a request */
#define S3_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

/* libcurl is loaded when the first S3 store is opened, not linked: it and the two dozen shared
 * objects it needs (TLS, HTTP/2, Kerberos, LDAP, IDN...) would otherwise be read from disk by
 * every asrimg command, S3 or not, which is most of the start of a command on a cold cache
 * (measured: 0.055 s to start a program linked with libcurl, 0.029 s without it, cold). */
#define CURL_FUNCTIONS(X)                                                                                             \
    X(global_init) X(easy_init) X(easy_reset) X(easy_setopt) X(easy_perform) X(easy_getinfo) X(easy_cleanup)          \
    X(easy_strerror) X(getdate) X(slist_append) X(slist_free_all)

/* lc.F is libcurl's curl_F (named without the prefix, which curl.h's type-checking macros own). */
static struct {
#define MEMBER(f) __typeof__(curl_##f) *f;
    CURL_FUNCTIONS(MEMBER)
#undef MEMBER
} lc;

struct s3_slot {
    CURL *h;
    bool busy;
};

struct s3_backend {
    struct store_backend base;
    char bucket[256];
    char prefix[S3_KEY_MAX]; /* "" or "a/b/" (ends in /) */
    char origin[1536];       /* URL of the bucket, no trailing / */
    bool https;
    char sigv4[160];         /* "aws:amz:REGION:s3" */
    char region[64];
    char access[256], secret[256];
    char token_hdr[4096 + 32]; /* "x-amz-security-token: ..." or "" */
    unsigned tries, backoff_ms, stall_s;
    atomic_int cond_put; /* If-None-Match on PUT: 0 not known yet, 1 honoured, -1 refused (501) */
    atomic_int batch_del; /* DeleteObjects: 0 not known yet, 1 honoured, -1 refused (501, 405) */
    unsigned delete_batch; /* keys a DeleteObjects request takes (ASRIMG_S3_DELETE_BATCH, 1: none) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct s3_slot *slots;
    unsigned nslots;
};

static const struct store_backend_ops s3_ops;

/* ---- parsing S3's answers (untrusted) -------------------------------------------------------- */

/* The text between <tag> and </tag>, searching [p, end): start and length, or NULL. */
static const char *xml_find(const char *p, const char *end, const char *tag, size_t *vlen)
{
    char open[64], close[64];
    int no = snprintf(open, sizeof open, "<%s>", tag), nc = snprintf(close, sizeof close, "</%s>", tag);
    if (no <= 0 || nc <= 0 || (size_t)no >= sizeof open || (size_t)nc >= sizeof close || p >= end)
        return NULL;
    const char *s = memmem(p, (size_t)(end - p), open, (size_t)no);
    if (!s)
        return NULL;
    s += no;
    const char *e = memmem(s, (size_t)(end - s), close, (size_t)nc);
    if (!e)
        return NULL;
    *vlen = (size_t)(e - s);
    return s;
}

static size_t utf8_put(char *o, uint32_t c)
{
    if (c < 0x80) {
        o[0] = (char)c;
        return 1;
    }
    if (c < 0x800) {
        o[0] = (char)(0xc0 | (c >> 6));
        o[1] = (char)(0x80 | (c & 0x3f));
        return 2;
    }
    if (c < 0x10000) {
        o[0] = (char)(0xe0 | (c >> 12));
        o[1] = (char)(0x80 | ((c >> 6) & 0x3f));
        o[2] = (char)(0x80 | (c & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | (c >> 18));
    o[1] = (char)(0x80 | ((c >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((c >> 6) & 0x3f));
    o[3] = (char)(0x80 | (c & 0x3f));
    return 4;
}

/* XML text (len bytes) with its entities decoded into out (room for len + 1: decoding never
 * lengthens). false for an unknown or malformed entity, a NUL or a raw '<'. */
static bool xml_text(const char *s, size_t len, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < len;) {
        char c = s[i];
        if (c == '\0' || c == '<')
            return false;
        if (c != '&') {
            out[o++] = c;
            i++;
            continue;
        }
        const char *semi = memchr(s + i, ';', len - i);
        if (!semi)
            return false;
        const char *ent = s + i + 1;
        size_t el = (size_t)(semi - ent);
        static const struct { const char *name; char c; } named[] = {
            {"amp", '&'}, {"lt", '<'}, {"gt", '>'}, {"quot", '"'}, {"apos", '\''}};
        bool done = false;
        for (size_t k = 0; k < sizeof named / sizeof named[0]; k++) {
            if (el == strlen(named[k].name) && memcmp(ent, named[k].name, el) == 0) {
                out[o++] = named[k].c;
                done = true;
            }
        }
        if (!done) {
            /* &#N; or &#xN;: the shortest form ("&#9;", 4 bytes) never encodes to more than 4 */
            if (el < 2 || el > 8 || ent[0] != '#')
                return false;
            bool hex = ent[1] == 'x';
            size_t d = hex ? 2 : 1;
            if (d >= el)
                return false;
            uint32_t v = 0;
            for (; d < el; d++) {
                int ch = (unsigned char)ent[d];
                int dv = isdigit(ch) ? ch - '0' : hex && isxdigit(ch) ? tolower(ch) - 'a' + 10 : -1;
                if (dv < 0)
                    return false;
                v = v * (hex ? 16u : 10u) + (uint32_t)dv;
            }
            if (v == 0 || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
                return false;
            o += utf8_put(out + o, v);
        }
        i = (size_t)(semi - s) + 1;
    }
    out[o] = '\0';
    return true;
}

/* Decoded text of <tag> in [p, end) into out (out_len bytes), cut to fit; false when absent or
 * malformed. */
static bool xml_get(const char *p, const char *end, const char *tag, char *out, size_t out_len)
{
    size_t vl;
    const char *v = xml_find(p, end, tag, &vl);
    if (!v || out_len == 0)
        return false;
    char *tmp = malloc(vl + 1);
    if (!tmp)
        return false;
    bool ok = xml_text(v, vl, tmp);
    if (ok)
        snprintf(out, out_len, "%s", tmp);
    free(tmp);
    return ok;
}

static bool parse_u64(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 20)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

int s3_parse_time(const char *s, size_t len, int64_t *out)
{
    /* YYYY-MM-DDTHH:MM:SS, then optional .fraction, then Z */
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    size_t n = sizeof shape - 1;
    if (len < n + 1)
        return ASR_E_CORRUPT;
    for (size_t i = 0; i < n; i++) {
        if (shape[i] == 'd' ? !isdigit((unsigned char)s[i]) : s[i] != shape[i])
            return ASR_E_CORRUPT;
    }
    size_t i = n;
    if (s[i] == '.') {
        i++;
        size_t f = i;
        while (i < len && isdigit((unsigned char)s[i]))
            i++;
        if (i == f)
            return ASR_E_CORRUPT;
    }
    if (i + 1 != len || s[i] != 'Z')
        return ASR_E_CORRUPT;
    int v[6];
    static const unsigned at[6] = {0, 5, 8, 11, 14, 17}, width[6] = {4, 2, 2, 2, 2, 2};
    for (int k = 0; k < 6; k++) {
        int x = 0;
        for (unsigned j = 0; j < width[k]; j++)
            x = x * 10 + (s[at[k] + j] - '0');
        v[k] = x;
    }
    if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 || v[4] > 59 || v[5] > 60)
        return ASR_E_CORRUPT;
    struct tm tm = {.tm_year = v[0] - 1900, .tm_mon = v[1] - 1, .tm_mday = v[2],
                    .tm_hour = v[3], .tm_min = v[4], .tm_sec = v[5]};
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return ASR_E_CORRUPT;
    *out = (int64_t)t;
    return ASR_OK;
}

static int list_fail(struct asr_error *err, const char *what, size_t at)
{
    return asr_fail_public(err, ASR_E_CORRUPT, "S3 listing: %s in the answer, near byte %zu", what, at);
}

int s3_parse_list(const char *xml, size_t len, const char *want, size_t strip, struct s3_list_page *pg,
                  struct asr_error *err)
{
    const char *end = xml + len, *p = xml;
    size_t wl = strlen(want);
    if (strip > wl)
        return asr_fail_public(err, ASR_E_ARG, "S3 listing: prefix cut longer than the prefix");
    if (!memmem(xml, len, "<ListBucketResult", 17))
        return list_fail(err, "no ListBucketResult", 0);
    for (;;) {
        size_t cl;
        const char *c = xml_find(p, end, "Contents", &cl);
        if (!c)
            break;
        const char *ce = c + cl;
        size_t at = (size_t)(c - xml), vl;
        const char *v = xml_find(c, ce, "Key", &vl);
        if (!v || vl == 0 || vl > S3_KEY_MAX * 6) /* an entity is at most 6 bytes per byte */
            return list_fail(err, "a Contents without a Key", at);
        char key[S3_KEY_MAX * 6 + 1];
        if (!xml_text(v, vl, key) || strlen(key) > S3_KEY_MAX)
            return list_fail(err, "a bad Key", at);
        size_t kl = strlen(key);
        if (kl < wl || memcmp(key, want, wl) != 0)
            return list_fail(err, "a Key outside the listed prefix", at);
        p = ce;
        if (kl == wl)
            continue; /* the prefix itself: a "folder" some S3 consoles make, not an object of ours */
        uint64_t size;
        v = xml_find(c, ce, "Size", &vl);
        if (!v || !parse_u64(v, vl, &size))
            return list_fail(err, "a bad Size", at);
        int64_t mtime;
        v = xml_find(c, ce, "LastModified", &vl);
        if (!v || s3_parse_time(v, vl, &mtime) != ASR_OK)
            return list_fail(err, "a bad LastModified", at);
        if (pg->count >= S3_LIST_OBJECTS_MAX)
            return asr_fail_public(err, ASR_E_LIMIT, "S3 listing: more than %u objects", S3_LIST_OBJECTS_MAX);
        struct store_object *g = asr_grow(pg->objs, &pg->cap, pg->count + 1, sizeof *g, 256);
        char *k = strdup(key + strip);
        if (!g || !k) {
            free(k);
            return asr_fail_public(err, ASR_E_NOMEM, "S3 listing: out of memory");
        }
        pg->objs = g;
        g[pg->count++] = (struct store_object){.key = k, .size = size, .mtime = mtime};
    }
    size_t vl;
    const char *v = xml_find(xml, end, "IsTruncated", &vl);
    pg->truncated = v && vl == 4 && memcmp(v, "true", 4) == 0;
    pg->token[0] = '\0';
    if (pg->truncated) {
        v = xml_find(xml, end, "NextContinuationToken", &vl);
        if (!v || vl == 0 || vl >= sizeof pg->token || !xml_text(v, vl, pg->token) || !pg->token[0])
            return list_fail(err, "a truncated page without a usable NextContinuationToken", 0);
    }
    return ASR_OK;
}

/* Only printable ASCII reaches a message. */
static void printable(char *s)
{
    for (; *s; s++)
        if (!isprint((unsigned char)*s))
            *s = '?';
}

void s3_parse_error(const char *xml, size_t len, char *code, size_t code_len, char *msg, size_t msg_len)
{
    const char *end = xml + len;
    if (code_len) {
        code[0] = '\0';
        if (!xml_get(xml, end, "Code", code, code_len))
            code[0] = '\0';
    }
    if (msg_len) {
        msg[0] = '\0';
        if (!xml_get(xml, end, "Message", msg, msg_len))
            msg[0] = '\0';
    }
    if (code_len)
        printable(code);
    if (msg_len)
        printable(msg);
}

int s3_parse_delete_result(const char *xml, size_t len, char *key, size_t key_len, char *code, size_t code_len,
                           char *msg, size_t msg_len, struct asr_error *err)
{
    const char *end = xml + len;
    if (key_len)
        key[0] = '\0';
    /* the root whole: "<DeleteResult .../>", or "<DeleteResult ...>" ... "</DeleteResult>" */
    const char *root = memmem(xml, len, "<DeleteResult", strlen("<DeleteResult"));
    const char *gt = root ? memchr(root, '>', (size_t)(end - root)) : NULL;
    const char *close = gt ? memmem(gt, (size_t)(end - gt), "</DeleteResult>", strlen("</DeleteResult>")) : NULL;
    if (!gt || (gt[-1] != '/' && !close))
        return asr_fail_public(err, ASR_E_CORRUPT, "the answer to a batch delete is not a whole DeleteResult");
    for (const char *p = gt; close && (p = memmem(p, (size_t)(close - p), "<Error>", 7)) != NULL;) {
        size_t vl;
        const char *e = xml_find(p, close, "Error", &vl);
        char c[64];
        if (!e || !xml_get(e, e + vl, "Code", c, sizeof c))
            return asr_fail_public(err, ASR_E_CORRUPT, "a batch delete's answer has an <Error> cut or without a Code");
        p = e + vl;
        if (!strcmp(c, "NoSuchKey")) /* deleting what is not there is what was asked */
            continue;
        if (key_len && !xml_get(e, e + vl, "Key", key, key_len))
            snprintf(key, key_len, "?");
        s3_parse_error(e, vl, code, code_len, msg, msg_len);
        if (key_len)
            printable(key);
        return ASR_OK;
    }
    return ASR_OK;
}

/* ---- encoding ------------------------------------------------------------------------------- */

/* Appends n bytes of s to the text *buf (len, cap; kept NUL-ended). */
static bool text_add(char **buf, size_t *len, size_t *cap, const char *s, size_t n)
{
    char *g = asr_grow(*buf, cap, *len + n + 1, 1, 4096);
    if (!g)
        return false;
    *buf = g;
    memcpy(g + *len, s, n);
    *len += n;
    g[*len] = '\0';
    return true;
}

/* s as XML text (&, <, >, ", ' as entities) appended to *buf; false when out of memory or s holds
 * a control character, which XML 1.0 cannot carry. */
static bool xml_add(char **buf, size_t *len, size_t *cap, const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        const char *ent = c == '&' ? "&amp;" : c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '"' ? "&quot;"
                        : c == '\'' ? "&apos;" : NULL;
        if (c < 0x20 || c == 0x7f)
            return false;
        if (!(ent ? text_add(buf, len, cap, ent, strlen(ent)) : text_add(buf, len, cap, s, 1)))
            return false;
    }
    return true;
}

/* s percent-encoded as SigV4 wants (A-Za-z0-9-._~ bare; / too when keep_slash) into out. */
static bool uri_encode(const char *s, bool keep_slash, char *out, size_t out_len)
{
    static const char hexd[] = "0123456789ABCDEF";
    size_t o = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        bool bare = isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~' || (keep_slash && c == '/');
        if (o + 4 > out_len)
            return false;
        if (bare) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hexd[c >> 4];
            out[o++] = hexd[c & 15];
        }
    }
    out[o] = '\0';
    return true;
}

static void hex_of(const unsigned char *d, size_t n, char *out)
{
    static const char hexd[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hexd[d[i] >> 4];
        out[2 * i + 1] = hexd[d[i] & 15];
    }
    out[2 * n] = '\0';
}

/* ---- one request, retried -------------------------------------------------------------------- */

enum s3_sink { SINK_NONE, SINK_BUF, SINK_FD, SINK_MEM };

struct s3_req {
    /* what */
    const char *method;  /* GET PUT POST DELETE HEAD */
    const char *key;     /* store key; NULL: the bucket */
    const char *query;   /* canonical query, or NULL */
    const char *content_md5; /* Content-MD5 header value (base64), or NULL */
    bool if_none_match;  /* create only: If-None-Match: * */
    char range[80];      /* Range header value, or "" */
    /* body sent */
    bool upload;
    const uint8_t *data; /* or in_fd */
    int in_fd;
    uint64_t in_len, in_pos;
    int in_errno;
    char sha[65];
    /* body received */
    enum s3_sink sink;
    uint8_t *buf;        /* SINK_BUF: cap bytes, skip first (a range the server ignored) */
    size_t cap, got;
    uint64_t skip, skipped;
    bool enough;
    int out_fd;          /* SINK_FD */
    uint64_t out_pos;
    int out_errno;
    char *mem;           /* SINK_MEM: up to mem_max */
    size_t mem_len, mem_cap, mem_max;
    bool too_big;
    /* answer */
    CURL *h;
    long status;
    bool have_date;
    int64_t date;
    char ebody[S3_ERR_BODY_MAX];
    size_t eb_len;
    char code[64], message[200];
    char curl_msg[CURL_ERROR_SIZE];
    CURLcode cc;
    unsigned tries;
    double secs;
};

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    struct s3_req *r = ud;
    size_t len = sz * n;
    long st = 0;
    lc.easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &st);
    if (st < 200 || st > 299) {
        size_t room = sizeof r->ebody - 1 - r->eb_len, k = len < room ? len : room;
        memcpy(r->ebody + r->eb_len, p, k);
        r->eb_len += k;
        return len;
    }
    switch (r->sink) {
    case SINK_NONE:
        return len;
    case SINK_BUF: {
        size_t off = 0;
        if (st == 200 && r->skipped < r->skip) { /* the server sent the whole object */
            uint64_t s = r->skip - r->skipped;
            off = s < len ? (size_t)s : len;
            r->skipped += off;
        }
        size_t take = len - off, room = r->cap - r->got;
        if (take > room) {
            memcpy(r->buf + r->got, p + off, room);
            r->got += room;
            r->enough = true; /* all that was asked for: stop here */
            return 0;
        }
        memcpy(r->buf + r->got, p + off, take);
        r->got += take;
        return len;
    }
    case SINK_FD: {
        int rc = asr_pwrite_full(r->out_fd, p, len, r->out_pos, NULL);
        if (rc != 0) {
            r->out_errno = rc < 0 ? -rc : ENOSPC;
            return 0;
        }
        r->out_pos += len;
        return len;
    }
    case SINK_MEM: {
        if (len > r->mem_max - r->mem_len) {
            r->too_big = true;
            return 0;
        }
        if (r->mem_len + len + 1 > r->mem_cap) {
            char *m = asr_grow(r->mem, &r->mem_cap, r->mem_len + len + 1, 1, 64u << 10);
            if (!m) {
                r->too_big = true;
                return 0;
            }
            r->mem = m;
        }
        memcpy(r->mem + r->mem_len, p, len);
        r->mem_len += len;
        r->mem[r->mem_len] = '\0';
        return len;
    }
    }
    return 0;
}

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    struct s3_req *r = ud;
    size_t len = sz * n;
    char line[256];
    if (len >= sizeof line)
        return len; /* no header we read is that long */
    memcpy(line, p, len);
    line[len] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    if (strncasecmp(line, "date:", 5) == 0) {
        time_t t = lc.getdate(line + 5, NULL);
        if (t != (time_t)-1) {
            r->date = (int64_t)t;
            r->have_date = true;
        }
    } else if (r->sink == SINK_MEM && strncasecmp(line, "content-length:", 15) == 0) {
        long st = 0;
        lc.easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &st);
        uint64_t cl;
        const char *v = line + 15;
        while (*v == ' ' || *v == '\t')
            v++;
        if (st >= 200 && st <= 299 && (!parse_u64(v, strlen(v), &cl) || cl > r->mem_max)) {
            r->too_big = true; /* refused before a byte of it is stored */
            return 0;
        }
    }
    return len;
}

static size_t on_read(char *p, size_t sz, size_t n, void *ud)
{
    struct s3_req *r = ud;
    uint64_t left = r->in_len - r->in_pos;
    size_t want = sz * n;
    if (want > left)
        want = (size_t)left;
    if (want == 0)
        return 0;
    if (r->data) {
        memcpy(p, r->data + r->in_pos, want);
    } else {
        int rc = asr_pread_full(r->in_fd, p, want, r->in_pos);
        if (rc != 0) {
            r->in_errno = rc < 0 ? -rc : ESTALE; /* ESTALE: the file shrank while being sent */
            return CURL_READFUNC_ABORT;
        }
    }
    r->in_pos += want;
    return want;
}

static int on_seek(void *ud, curl_off_t off, int origin)
{
    struct s3_req *r = ud;
    if (origin != SEEK_SET || off < 0 || (uint64_t)off > r->in_len)
        return CURL_SEEKFUNC_CANTSEEK;
    r->in_pos = (uint64_t)off;
    return CURL_SEEKFUNC_OK;
}

static CURL *slot_take(struct s3_backend *b)
{
    pthread_mutex_lock(&b->mu);
    for (;;) {
        for (unsigned i = 0; i < b->nslots; i++) {
            struct s3_slot *s = &b->slots[i];
            if (s->busy)
                continue;
            if (!s->h && !(s->h = lc.easy_init()))
                continue;
            s->busy = true;
            pthread_mutex_unlock(&b->mu);
            lc.easy_reset(s->h); /* keeps the connection */
            return s->h;
        }
        bool any = false;
        for (unsigned i = 0; i < b->nslots; i++)
            any |= b->slots[i].busy;
        if (!any) { /* none busy and none could be made */
            pthread_mutex_unlock(&b->mu);
            return NULL;
        }
        pthread_cond_wait(&b->cv, &b->mu);
    }
}

static void slot_give(struct s3_backend *b, CURL *h)
{
    pthread_mutex_lock(&b->mu);
    for (unsigned i = 0; i < b->nslots; i++)
        if (b->slots[i].h == h)
            b->slots[i].busy = false;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
}

static bool transient(CURLcode cc)
{
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_WEIRD_SERVER_REPLY:
        return true;
    default:
        return false;
    }
}

static void backoff(const struct s3_backend *b, unsigned attempt, uint64_t *rng)
{
    uint64_t d = b->backoff_ms;
    for (unsigned i = 1; i < attempt && d < S3_BACKOFF_CAP_MS; i++)
        d *= 2;
    if (d > S3_BACKOFF_CAP_MS)
        d = S3_BACKOFF_CAP_MS;
    /* half fixed, half random: spreads the clients a 503 sent back at once */
    *rng ^= *rng << 13;
    *rng ^= *rng >> 7;
    *rng ^= *rng << 17;
    uint64_t ms = d / 2 + (d ? *rng % (d / 2 + 1) : 0);
    struct timespec ts = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

/* Where messages say the object is: s3://bucket/prefix/key. */
static void obj_name(const struct s3_backend *b, const char *key, char *out, size_t len)
{
    snprintf(out, len, "s3://%s/%s%s", b->bucket, b->prefix, key ? key : "");
}

static int build_url(const struct s3_backend *b, const struct s3_req *r, char *url, size_t len)
{
    char full[S3_KEY_MAX + 1], enc[3 * S3_KEY_MAX + 1];
    enc[0] = '\0';
    if (r->key) {
        int n = snprintf(full, sizeof full, "%s%s", b->prefix, r->key);
        if (n < 0 || (size_t)n >= sizeof full || !uri_encode(full, true, enc, sizeof enc))
            return ASR_E_LIMIT;
    }
    int n = snprintf(url, len, "%s/%s%s%s", b->origin, enc, r->query ? "?" : "", r->query ? r->query : "");
    return n < 0 || (size_t)n >= len ? ASR_E_LIMIT : ASR_OK;
}

static void try_reset(struct s3_req *r)
{
    r->in_pos = 0;
    r->in_errno = 0;
    r->got = 0;
    r->skipped = 0;
    r->enough = false;
    r->out_pos = 0;
    r->out_errno = 0;
    r->mem_len = 0;
    r->too_big = false;
    r->status = 0;
    r->have_date = false;
    r->eb_len = 0;
    r->curl_msg[0] = '\0';
    if (r->sink == SINK_FD && ftruncate(r->out_fd, 0) != 0)
        r->out_errno = errno;
}

static void set_options(const struct s3_backend *b, struct s3_req *r, const char *url, struct curl_slist *hdrs)
{
    CURL *h = r->h;
    lc.easy_setopt(h, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    lc.easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
#else
    lc.easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    lc.easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    lc.easy_setopt(h, CURLOPT_PATH_AS_IS, 1L); /* a key's "." and ".." are names, not steps */
    lc.easy_setopt(h, CURLOPT_AWS_SIGV4, b->sigv4);
    lc.easy_setopt(h, CURLOPT_USERNAME, b->access); /* apart: an access key may hold ':' */
    lc.easy_setopt(h, CURLOPT_PASSWORD, b->secret);
    lc.easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    lc.easy_setopt(h, CURLOPT_USERAGENT, "asrimg/" ASRIMG_VERSION);
    lc.easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    /* a transfer slower than 1 KiB/s for stall_s seconds (30) is a timeout, retried */
    lc.easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    lc.easy_setopt(h, CURLOPT_LOW_SPEED_TIME, (long)b->stall_s);
    lc.easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
    lc.easy_setopt(h, CURLOPT_ERRORBUFFER, r->curl_msg);
    /* A pack window is megabytes: 16 KiB (curl's default) reads would be a thousand receive
     * calls and callbacks each */
    if (r->sink == SINK_BUF || r->sink == SINK_FD)
        lc.easy_setopt(h, CURLOPT_BUFFERSIZE, 512L << 10);
    lc.easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    lc.easy_setopt(h, CURLOPT_WRITEDATA, r);
    lc.easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    lc.easy_setopt(h, CURLOPT_HEADERDATA, r);
    if (r->upload) {
        lc.easy_setopt(h, CURLOPT_UPLOAD, 1L);
        lc.easy_setopt(h, CURLOPT_READFUNCTION, on_read);
        lc.easy_setopt(h, CURLOPT_READDATA, r);
        lc.easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
        lc.easy_setopt(h, CURLOPT_SEEKDATA, r);
        lc.easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->in_len);
        if (strcmp(r->method, "PUT") != 0) /* a body with another method: DeleteObjects' POST */
            lc.easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    } else if (strcmp(r->method, "HEAD") == 0) {
        lc.easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else if (strcmp(r->method, "GET") != 0) {
        lc.easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method);
    }
}

static bool hdr_add(struct curl_slist **list, const char *h)
{
    struct curl_slist *t = lc.slist_append(*list, h);
    if (t)
        *list = t;
    return t != NULL;
}

/* Runs r, retrying what may pass on another try. ASR_OK when an answer came (r->status, r->code
 * say which); an error naming the object when none did or the local side failed. */
static int perform(struct s3_backend *b, struct s3_req *r, struct asr_error *err)
{
    char url[S3_URL_MAX], name[S3_KEY_MAX + 300];
    obj_name(b, r->key, name, sizeof name);
    if (build_url(b, r, url, sizeof url) != ASR_OK)
        return asr_fail_public(err, ASR_E_LIMIT, "%s: key too long for S3", name);
    struct curl_slist *hdrs = NULL;
    char sha_hdr[128], range_hdr[100], md5_hdr[64];
    snprintf(sha_hdr, sizeof sha_hdr, "x-amz-content-sha256: %s", r->sha[0] ? r->sha : S3_EMPTY_SHA256);
    snprintf(range_hdr, sizeof range_hdr, "Range: %s", r->range);
    bool ok = hdr_add(&hdrs, sha_hdr);
    if (ok && b->token_hdr[0])
        ok = hdr_add(&hdrs, b->token_hdr);
    if (ok && r->range[0])
        ok = hdr_add(&hdrs, range_hdr);
    if (ok && r->upload)
        ok = hdr_add(&hdrs, "Content-Type: application/octet-stream");
    if (ok && r->content_md5) {
        snprintf(md5_hdr, sizeof md5_hdr, "Content-MD5: %s", r->content_md5);
        ok = hdr_add(&hdrs, md5_hdr);
    }
    if (ok && r->if_none_match)
        ok = hdr_add(&hdrs, "If-None-Match: *");
    if (!ok) {
        lc.slist_free_all(hdrs);
        return asr_fail_public(err, ASR_E_NOMEM, "%s: out of memory", name);
    }

    uint64_t rng = asr_now_ns() ^ (uint64_t)(uintptr_t)r ^ 0x9e3779b97f4a7c15ull;
    double t0 = asr_now();
    int rc = ASR_OK;
    for (r->tries = 1;; r->tries++) {
        try_reset(r);
        if (r->out_errno) {
            rc = asr_fail_public(err, ASR_E_IO, "%s: cannot write the local file: %s", name, strerror(r->out_errno));
            break;
        }
        r->h = slot_take(b);
        if (!r->h) {
            rc = asr_fail_public(err, ASR_E_NOMEM, "%s: cannot make a curl handle", name);
            break;
        }
        set_options(b, r, url, hdrs);
        r->cc = lc.easy_perform(r->h);
        lc.easy_getinfo(r->h, CURLINFO_RESPONSE_CODE, &r->status);
        lc.easy_setopt(r->h, CURLOPT_ERRORBUFFER, NULL); /* r->curl_msg dies with r */
        slot_give(b, r->h);
        r->h = NULL;
        if (r->cc == CURLE_WRITE_ERROR && r->enough)
            r->cc = CURLE_OK;
        if (r->in_errno || r->out_errno || r->too_big)
            break; /* the local side failed or the answer is too big: no retry helps */
        bool again;
        if (r->cc != CURLE_OK) {
            again = transient(r->cc);
        } else {
            r->ebody[r->eb_len] = '\0';
            s3_parse_error(r->ebody, r->eb_len, r->code, sizeof r->code, r->message, sizeof r->message);
            /* 409 ConditionalRequestConflict: two conditional PUTs of one key at once; AWS asks
             * for a retry (which then meets 412 when the other one won) */
            again = (r->status >= 500 && r->status != 501) || r->status == 429 ||
                    (r->status == 400 && !strcmp(r->code, "RequestTimeout")) ||
                    (r->status == 409 && !strcmp(r->code, "ConditionalRequestConflict"));
        }
        if (!again || r->tries >= b->tries)
            break;
        backoff(b, r->tries, &rng);
    }
    r->secs = asr_now() - t0;
    lc.slist_free_all(hdrs);
    if (rc != ASR_OK)
        return rc;
    if (r->in_errno)
        return asr_fail_public(err, ASR_E_IO, "%s: cannot read the local file: %s", name, strerror(r->in_errno));
    if (r->out_errno)
        return asr_fail_public(err, ASR_E_IO, "%s: cannot write the local file: %s", name, strerror(r->out_errno));
    if (r->too_big)
        return asr_fail_public(err, ASR_E_LIMIT, "%s: the answer is larger than %zu bytes", name, r->mem_max);
    if (r->cc != CURLE_OK)
        return asr_fail_public(err, ASR_E_IO, "%s: %s (%u %s in %.1f s)", name,
                               r->curl_msg[0] ? r->curl_msg : lc.easy_strerror(r->cc), r->tries,
                               r->tries == 1 ? "try" : "tries", r->secs);
    return ASR_OK;
}

/* The message for an answer the op does not accept: object, status, S3's Code and Message. */
static int http_fail(const struct s3_backend *b, const struct s3_req *r, struct asr_error *err)
{
    char name[S3_KEY_MAX + 300], tries[48] = "";
    obj_name(b, r->key, name, sizeof name);
    if (r->tries > 1)
        snprintf(tries, sizeof tries, " (%u tries in %.1f s)", r->tries, r->secs);
    return asr_fail_public(err, ASR_E_IO, "%s: HTTP %ld%s%s%s%s%s", name, r->status, r->code[0] ? " " : "",
                           r->code, r->message[0] ? ": " : "", r->message, tries);
}

static struct s3_backend *s3_of(struct store_backend *b)
{
    return (struct s3_backend *)b;
}

static bool key_ok(const char *key)
{
    return key && key[0] && key[0] != '/' && strlen(key) < S3_KEY_MAX;
}

static int bad_key(struct s3_backend *b, const char *key, struct asr_error *err)
{
    return asr_fail_public(err, ASR_E_ARG, "%s: bad object key \"%s\"", b->base.url, key ? key : "(null)");
}

/* ---- the ops --------------------------------------------------------------------------------- */

static int sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char d[32];
    unsigned int dl = 0;
    if (!EVP_Digest(data, len, d, &dl, EVP_sha256(), NULL) || dl != 32)
        return ASR_E_NOMEM;
    hex_of(d, 32, out);
    return ASR_OK;
}

static int sha256_fd(int fd, uint64_t len, char out[65])
{
    enum { BLK = 1 << 20 };
    unsigned char *buf = malloc(BLK), d[32];
    unsigned int dl = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    int rc = buf && c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) ? 0 : -ENOMEM;
    for (uint64_t off = 0; rc == 0 && off < len;) {
        size_t n = len - off < BLK ? (size_t)(len - off) : BLK;
        rc = asr_pread_full(fd, buf, n, off);
        if (rc == 0 && !EVP_DigestUpdate(c, buf, n))
            rc = -ENOMEM;
        off += n;
    }
    if (rc == 0 && (!EVP_DigestFinal_ex(c, d, &dl) || dl != 32))
        rc = -ENOMEM;
    if (rc == 0)
        hex_of(d, 32, out);
    EVP_MD_CTX_free(c);
    free(buf);
    return rc;
}

static int s3_put(struct store_backend *bb, const char *key, const void *data, size_t len, struct asr_error *err)
{
    struct s3_backend *b = s3_of(bb);
    if (!key_ok(key))
        return bad_key(b, key, err);
    if ((uint64_t)len > S3_PUT_MAX)
        return asr_fail_public(err, ASR_E_LIMIT, "s3://%s/%s%s: %zu bytes is more than one S3 PUT takes", b->bucket,
                               b->prefix, key, len);
    struct s3_req *r = calloc(1, sizeof *r);
    if (!r)
        return asr_fail_public(err, ASR_E_NOMEM, "s3://%s/%s%s: out of memory", b->bucket, b->prefix, key);
    *r = (struct s3_req){.method = "PUT", .key = key, .upload = true, .data = data, .in_fd = -1, .in_len = len};
    strcpy(r->sha, "UNSIGNED-PAYLOAD");
    int rc = b->https ? ASR_OK : sha256_hex(data ? data : "", len, r->sha);
    if (rc != ASR_OK)
        rc = asr_fail_public(err, ASR_E_NOMEM, "s3://%s/%s%s: cannot hash", b->bucket, b->prefix, key);
    if (rc == ASR_OK && !data)
        r->data = (const uint8_t *)"";
    if (rc == ASR_OK)
        rc = perform(b, r, err);
    if (rc == ASR_OK && r->status != 200)
        rc = http_fail(b, r, err);
    free(r);
    return rc;
}

static int exists_fail(const struct s3_backend *b, const char *key, struct asr_error *err)
{
    char name[S3_KEY_MAX + 300];
    obj_name(b, key, name, sizeof name);
    return asr_fail_public(err, ASR_E_EXISTS, "%s: already exists", name);
}

/* PUT r (a body to key) only where no object of that name is: ASR_E_EXISTS when one is. With
 * If-None-Match: * (AWS since 2024, MinIO, Ceph RGW); an endpoint that answers it with 501 (Swift's
 * s3api) gets a HEAD first from then on, which leaves a window between the two requests. */
static int put_new(struct s3_backend *b, struct s3_req *r, struct asr_error *err)
{
    if (atomic_load(&b->cond_put) >= 0) {
        r->if_none_match = true;
        int rc = perform(b, r, err);
        if (rc != ASR_OK)
            return rc;
        if (r->status == 200) {
            atomic_store(&b->cond_put, 1);
            return ASR_OK;
        }
        if (r->status == 412)
            return exists_fail(b, r->key, err);
        if (r->status != 501)
            return http_fail(b, r, err);
        atomic_store(&b->cond_put, -1);
        r->if_none_match = false;
    }
    struct s3_req *h = calloc(1, sizeof *h);
    if (!h)
        return asr_fail_public(err, ASR_E_NOMEM, "%s: out of memory", b->base.url);
    *h = (struct s3_req){.method = "HEAD", .key = r->key, .in_fd = -1, .out_fd = -1};
    int rc = perform(b, h, err);
    if (rc == ASR_OK && h->status == 200)
        rc = exists_fail(b, r->key, err);
    else if (rc == ASR_OK && h->status != 404)
        rc = http_fail(b, h, err);
    free(h);
    if (rc == ASR_OK)
        rc = perform(b, r, err);
    if (rc == ASR_OK && r->status != 200)
        rc = http_fail(b, r, err);
    return rc;
}

static int s3_put_file(struct store_backend *bb, const char *key, const char *path, struct asr_error *err)
{
    struct s3_backend *b = s3_of(bb);
    if (!key_ok(key))
        return bad_key(b, key, err);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return asr_fail_public(err, ASR_E_IO, "%s: %s", path, strerror(errno));
    struct stat st;
    int rc = ASR_OK;
    struct s3_req *r = calloc(1, sizeof *r);
    if (!r)
        rc = asr_fail_public(err, ASR_E_NOMEM, "%s: out of memory", path);
    else if (fstat(fd, &st) != 0)
        rc = asr_fail_public(err, ASR_E_IO, "%s: %s", path, strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = asr_fail_public(err, ASR_E_ARG, "%s: not a regular file", path);
    else if ((uint64_t)st.st_size > S3_PUT_MAX)
        rc = asr_fail_public(err, ASR_E_LIMIT, "%s: %lld bytes is more than one S3 PUT takes", path,
                             (long long)st.st_size);
    if (rc == ASR_OK) {
        *r = (struct s3_req){.method = "PUT", .key = key, .upload = true, .in_fd = fd, .in_len = (uint64_t)st.st_size};
        strcpy(r->sha, "UNSIGNED-PAYLOAD");
        int hr = b->https ? 0 : sha256_fd(fd, r->in_len, r->sha);
        if (hr != 0)
            rc = asr_fail_public(err, ASR_E_IO, "%s: %s", path, hr < 0 ? strerror(-hr) : "changed while read");
    }
    if (rc == ASR_OK)
        rc = put_new(b, r, err);
    free(r);
    close(fd);
    return rc;
}

/* A GET's answer that is not the object: missing (404 NoSuchKey) or an error. */
static int get_refused(struct s3_backend *b, struct s3_req *r, bool *missing, struct asr_error *err)
{
    if (r->status == 404 && (!r->code[0] || !strcmp(r->code, "NoSuchKey"))) {
        if (missing)
            *missing = true;
        char name[S3_KEY_MAX + 300];
        obj_name(b, r->key, name, sizeof name);
        return asr_fail_public(err, ASR_E_IO, "%s: no such object (HTTP 404%s%s)", name, r->code[0] ? " " : "",
                               r->code);
    }
    return http_fail(b, r, err);
}

static int s3_get(struct store_backend *bb, const char *key, uint64_t offset, void *buf, size_t cap, size_t *got,
                  bool *missing, struct asr_error *err)
{
    struct s3_backend *b = s3_of(bb);
    if (missing)
        *missing = false;
    if (got)
        *got = 0;
    if (!key_ok(key))
        return bad_key(b, key, err);
    if (cap == 0)
        return ASR_OK;
    if (offset > UINT64_MAX - cap)
        return asr_fail_public(err, ASR_E_ARG, "s3://%s/%s%s: range past 2^64", b->bucket, b->prefix, key);
    struct s3_req *r = calloc(1, sizeof *r);
    if (!r)
        return asr_fail_public(err, ASR_E_NOMEM, "s3://%s/%s%s: out of memory", b->bucket, b->prefix, key);
    *r = (struct s3_req){.method = "GET", .key = key, .sink = SINK_BUF, .buf = buf, .cap = cap, .skip = offset,
                         .in_fd = -1, .out_fd = -1};
    snprintf(r->range, sizeof r->range, "bytes=%llu-%llu", (unsigned long long)offset,
             (unsigned long long)(offset + cap - 1));
    int rc = perform(b, r, err);
    if (rc == ASR_OK) {
        if (r->status == 200 || r->status == 206) {
            if (got)
                *got = r->got;
        } else if (r->status == 416) {
            /* the range starts at or past the end (or the object is empty): nothing there */
        } else {
            rc = get_refused(b, r, missing, err);
        }
    }
    free(r);
    return rc;
}

static int s3_get_file(struct store_backend *bb, const char *key, const char *path, bool *missing,
                       struct asr_error *err)
{
    struct s3_backend *b = s3_of(bb);
    if (missing)
        *missing = false;
    if (!key_ok(key))
        return bad_key(b, key, err);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return asr_fail_public(err, ASR_E_IO, "%s: %s", path, strerror(errno));
    struct s3_req *r = calloc(1, sizeof *r);
    int rc = r ? ASR_OK : asr_fail_public(err, ASR_E_NOMEM, "%s: out of memory", path);
    if (r) {
        *r = (struct s3_req){.method = "GET", .key = key, .sink = SINK_FD, .out_fd = fd, .in_fd = -1};
        rc = perform(b, r, err);
    }
    if (rc == ASR_OK && r->status != 200)
        rc = get_refused(b, r, missing, err);
    if (rc == ASR_OK && fsync(fd) != 0)
        rc = asr_fail_public(err, ASR_E_IO, "%s: %s", path, strerror(errno));
    if (close(fd) != 0 && rc == ASR_OK)
        rc = asr_fail_public(err, ASR_E_IO, "%s: %s", path, strerror(errno));
    if (rc != ASR_OK)
        unlink(path); /* never leave a part of an object looking like all of it */
    free(r);
    return rc;
}

static int s3_list(struct store_backend *bb, const char *prefix, struct store_object **out, size_t *count,
                   struct asr_error *err)
{
    struct s3_backend *b = s3_of(bb);
    *out = NULL;
    *count = 0;
    if (!prefix || strlen(prefix) >= S3_KEY_MAX || prefix[0] == '/')
        return bad_key(b, prefix, err);
    char want[S3_KEY_MAX + 1], enc_prefix[3 * S3_KEY_MAX + 1], enc_tok[3 * 1024 + 1], query[4 * S3_KEY_MAX + 3200];
    int n = snprintf(want, sizeof want, "%s%s", b->prefix, prefix);
    if (n < 0 || (size_t)n >= sizeof want || !uri_encode(want, false, enc_prefix, sizeof enc_prefix))
        return bad_key(b, prefix, err);
    struct s3_list_page pg = {0};
    struct s3_req *r = calloc(1, sizeof *r);
    int rc = r ? ASR_OK : asr_fail_public(err, ASR_E_NOMEM, "%s: out of memory", b->base.url);
    char last_tok[sizeof pg.token] = "";
    for (unsigned page = 0; rc == ASR_OK; page++) {
        /* parameters sorted by name, values encoded: the form the server signs */
        if (page == 0) {
            snprintf(query, sizeof query, "list-type=2&max-keys=1000&prefix=%s", enc_prefix);
        } else {
            uri_encode(pg.token, false, enc_tok, sizeof enc_tok);
            snprintf(query, sizeof query, "continuation-token=%s&list-type=2&max-keys=1000&prefix=%s", enc_tok,
                     enc_prefix);
        }
        char *mem = r->mem;
        size_t mem_cap = r->mem_cap;
        *r = (struct s3_req){.method = "GET", .key = NULL, .query = query, .sink = SINK_MEM, .mem = mem,
                             .mem_cap = mem_cap, .mem_max = S3_LIST_BODY_MAX, .in_fd = -1, .out_fd = -1};
        rc = perform(b, r, err);
        if (rc == ASR_OK && r->status != 200) {
            r->key = prefix; /* the message names what was listed */
            rc = http_fail(b, r, err);
        }
        if (rc == ASR_OK)
            rc = s3_parse_list(r->mem ? r->mem : "", r->mem_len, want, strlen(b->prefix), &pg, err);
        if (rc != ASR_OK || !pg.truncated)
            break;
        if (!strcmp(pg.token, last_tok)) {
            rc = asr_fail_public(err, ASR_E_CORRUPT, "s3://%s/%s: the listing repeats its continuation token",
                                 b->bucket, want);
            break;
        }
        snprintf(last_tok, sizeof last_tok, "%s", pg.token);
    }
    if (r)
        free(r->mem);
    free(r);
    if (rc != ASR_OK) {
        store_objects_free(pg.objs, pg.count);
        return rc;
    }
    *out = pg.objs;
    *count = pg.count;
    return ASR_OK;
}

static int s3_del(struct store_backend *bb, const char *key, struct asr_error *err)
{
    struct s3_backend *b = s3_of(bb);
    if (!key_ok(key))
        return bad_key(b, key, err);
    struct s3_req *r = calloc(1, sizeof *r);
    if (!r)
        return asr_fail_public(err, ASR_E_NOMEM, "%s: out of memory", b->base.url);
    *r = (struct s3_req){.method = "DELETE", .key = key, .in_fd = -1, .out_fd = -1};
    int rc = perform(b, r, err);
    bool gone = r->status == 404 && (!r->code[0] || !strcmp(r->code, "NoSuchKey"));
    if (rc == ASR_OK && r->status != 204 && r->status != 200 && !gone)
        rc = http_fail(b, r, err);
    free(r);
    return rc;
}

/* The DeleteObjects body for keys (n of them, the store's prefix before each) into *body; false
 * when out of memory or a key cannot be written in XML. */
static bool delete_body(const struct s3_backend *b, const char *const *keys, size_t n, char **body, size_t *len)
{
    static const char head[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                               "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>";
    static const char open[] = "<Object><Key>", close[] = "</Key></Object>", tail[] = "</Delete>";
    size_t cap = 0;
    *body = NULL;
    *len = 0;
    bool ok = text_add(body, len, &cap, head, strlen(head));
    for (size_t i = 0; ok && i < n; i++)
        ok = text_add(body, len, &cap, open, strlen(open)) && xml_add(body, len, &cap, b->prefix) &&
             xml_add(body, len, &cap, keys[i]) && text_add(body, len, &cap, close, strlen(close));
    return ok && text_add(body, len, &cap, tail, strlen(tail));
}

/* One DeleteObjects request for keys (n of them), counted in *requests once sent. *refused: the
 * endpoint does not do batch deletes (501, 405, NotImplemented) or the keys cannot be sent so,
 * nothing deleted, and ASR_OK. */
static int delete_batch(struct s3_backend *b, const char *const *keys, size_t n, bool *refused, uint64_t *requests,
                        struct asr_error *err)
{
    char *body = NULL, md5_b64[32];
    size_t len = 0;
    unsigned char md5[16];
    unsigned md5_len = 0;
    *refused = false;
    if (!delete_body(b, keys, n, &body, &len) || !EVP_Digest(body, len, md5, &md5_len, EVP_md5(), NULL) ||
        md5_len != sizeof md5) {
        free(body); /* a key XML cannot carry, or no MD5 here (a FIPS build): one DELETE each */
        *refused = true;
        return ASR_OK;
    }
    EVP_EncodeBlock((unsigned char *)md5_b64, md5, sizeof md5);
    struct s3_req *r = calloc(1, sizeof *r);
    int rc = r ? ASR_OK : asr_fail_public(err, ASR_E_NOMEM, "%s: out of memory", b->base.url);
    if (rc == ASR_OK) {
        *r = (struct s3_req){.method = "POST", .key = NULL, .query = "delete=", .content_md5 = md5_b64,
                             .upload = true, .data = (const uint8_t *)body, .in_fd = -1, .in_len = len,
                             .sink = SINK_MEM, .mem_max = S3_LIST_BODY_MAX, .out_fd = -1};
        strcpy(r->sha, "UNSIGNED-PAYLOAD");
        if (!b->https && sha256_hex(body, len, r->sha) != ASR_OK)
            rc = asr_fail_public(err, ASR_E_NOMEM, "%s: cannot hash", b->base.url);
    }
    if (rc == ASR_OK) {
        rc = perform(b, r, err);
        (*requests)++;
    }
    if (rc == ASR_OK && (r->status == 501 || r->status == 405 || !strcmp(r->code, "NotImplemented"))) {
        *refused = true;
    } else if (rc == ASR_OK && r->status != 200) {
        r->key = keys[0]; /* the message names the first of the batch */
        rc = http_fail(b, r, err);
    } else if (rc == ASR_OK) {
        char key[S3_KEY_MAX], code[64], msg[200];
        rc = s3_parse_delete_result(r->mem ? r->mem : "", r->mem_len, key, sizeof key, code, sizeof code, msg,
                                    sizeof msg, err);
        if (rc == ASR_OK && key[0])
            rc = asr_fail_public(err, ASR_E_IO, "s3://%s/%s: cannot delete: %s%s%s", b->bucket, key, code,
                                 msg[0] ? ": " : "", msg);
        else if (rc != ASR_OK) {
            char why[sizeof err->msg];
            snprintf(why, sizeof why, "%s", err->msg);
            rc = asr_fail_public(err, rc, "s3://%s/%s: %s", b->bucket, b->prefix, why);
        }
    }
    if (r)
        free(r->mem);
    free(r);
    free(body);
    return rc;
}

static int s3_del_many(struct store_backend *bb, const char *const *keys, size_t n, uint64_t *requests,
                       struct asr_error *err)
{
    struct s3_backend *b = s3_of(bb);
    for (size_t i = 0; i < n; i++)
        if (!key_ok(keys[i]))
            return bad_key(b, keys[i], err);
    int rc = ASR_OK;
    for (size_t at = 0; at < n && rc == ASR_OK;) {
        size_t k = n - at < b->delete_batch ? n - at : b->delete_batch;
        bool singles = k == 1 || atomic_load(&b->batch_del) < 0;
        if (!singles) {
            uint64_t sent = *requests;
            rc = delete_batch(b, keys + at, k, &singles, requests, err);
            if (rc == ASR_OK && *requests > sent) /* the endpoint's answer, not keys XML cannot carry */
                atomic_store(&b->batch_del, singles ? -1 : 1);
        }
        for (size_t i = 0; singles && i < k && rc == ASR_OK; i++, (*requests)++)
            rc = s3_del(bb, keys[at + i], err);
        at += k;
    }
    return rc;
}

static int s3_now(struct store_backend *bb, int64_t *now, struct asr_error *err)
{
    struct s3_backend *b = s3_of(bb);
    struct s3_req *r = calloc(1, sizeof *r);
    if (!r)
        return asr_fail_public(err, ASR_E_NOMEM, "%s: out of memory", b->base.url);
    /* HEAD of the bucket: the cheapest request every store client may make */
    *r = (struct s3_req){.method = "HEAD", .key = NULL, .in_fd = -1, .out_fd = -1};
    int rc = perform(b, r, err);
    if (rc == ASR_OK && r->status != 200)
        rc = http_fail(b, r, err);
    if (rc == ASR_OK && !r->have_date)
        rc = asr_fail_public(err, ASR_E_IO, "s3://%s: the answer has no Date header", b->bucket);
    if (rc == ASR_OK)
        *now = r->date;
    free(r);
    return rc;
}

static void s3_close(struct store_backend *bb)
{
    struct s3_backend *b = s3_of(bb);
    if (!b)
        return;
    for (unsigned i = 0; i < b->nslots; i++)
        if (b->slots[i].h)
            lc.easy_cleanup(b->slots[i].h);
    free(b->slots);
    pthread_mutex_destroy(&b->mu);
    pthread_cond_destroy(&b->cv);
    explicit_bzero(b->secret, sizeof b->secret);
    explicit_bzero(b->token_hdr, sizeof b->token_hdr);
    free(b);
}

static const struct store_backend_ops s3_ops = {
    .put = s3_put,
    .put_file = s3_put_file,
    .get = s3_get,
    .get_file = s3_get_file,
    .list = s3_list,
    .del = s3_del,
    .del_many = s3_del_many,
    .now = s3_now,
    .close = s3_close,
};

int store_backend_s3_make_bucket(struct store_backend *bb, struct asr_error *err)
{
    if (!bb || bb->ops != &s3_ops)
        return asr_fail_public(err, ASR_E_ARG, "not an S3 store");
    struct s3_backend *b = s3_of(bb);
    char body[256] = "";
    if (strcmp(b->region, "us-east-1") != 0) /* AWS wants the region named, except its first */
        snprintf(body, sizeof body,
                 "<CreateBucketConfiguration><LocationConstraint>%s</LocationConstraint></CreateBucketConfiguration>",
                 b->region);
    struct s3_req *r = calloc(1, sizeof *r);
    if (!r)
        return asr_fail_public(err, ASR_E_NOMEM, "%s: out of memory", b->base.url);
    *r = (struct s3_req){.method = "PUT", .key = NULL, .upload = true, .data = (const uint8_t *)body,
                         .in_len = strlen(body), .in_fd = -1, .out_fd = -1};
    int rc = sha256_hex(body, strlen(body), r->sha);
    if (rc == ASR_OK)
        rc = perform(b, r, err);
    if (rc == ASR_OK && r->status != 200 && !(r->status == 409 && !strcmp(r->code, "BucketAlreadyOwnedByYou")))
        rc = http_fail(b, r, err);
    free(r);
    return rc;
}

/* ---- opening ---------------------------------------------------------------------------------- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_FAILED_INIT;
static char curl_load_msg[256]; /* why libcurl could not be loaded; "" when it was */

/* Loads libcurl (once, for the process: it stays loaded) and initializes it. */
static void curl_init(void)
{
    void *h = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        snprintf(curl_load_msg, sizeof curl_load_msg, "cannot load libcurl.so.4 (Debian package libcurl4): %s",
                 dlerror());
        return;
    }
#define LOAD(f)                                                                                                        \
    if (!(*(void **)&lc.f = dlsym(h, "curl_" #f))) {                                                                   \
        snprintf(curl_load_msg, sizeof curl_load_msg, "libcurl.so.4 has no curl_%s", #f);                              \
        return;                                                                                                        \
    }
    CURL_FUNCTIONS(LOAD)
#undef LOAD
    curl_init_rc = lc.global_init(CURL_GLOBAL_DEFAULT);
    if (curl_init_rc != CURLE_OK)
        snprintf(curl_load_msg, sizeof curl_load_msg, "libcurl: %s", lc.easy_strerror(curl_init_rc));
}

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    size_t n = strlen(s);
    while (n && isspace((unsigned char)s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* The [profile] of an AWS shared credentials file: false when the file or profile is not there. */
static int creds_file(struct s3_backend *b, const char *path, const char *profile, bool *found,
                      struct asr_error *err)
{
    *found = false;
    FILE *f = fopen(path, "re");
    if (!f && (errno == ENOENT || errno == ENOTDIR))
        return ASR_OK;
    if (!f)
        return asr_fail_public(err, ASR_E_IO, "%s: %s", path, strerror(errno));
    char line[8192], token[4096] = "";
    bool in = false, have_id = false, have_secret = false;
    size_t total = 0;
    int rc = ASR_OK;
    while (fgets(line, sizeof line, f)) {
        total += strlen(line);
        if (total > S3_CRED_FILE_MAX) {
            rc = asr_fail_public(err, ASR_E_LIMIT, "%s: larger than %u bytes", path, S3_CRED_FILE_MAX);
            break;
        }
        char *s = trim(line);
        if (*s == '#' || *s == ';' || !*s)
            continue;
        if (*s == '[') {
            char *e = strchr(s, ']');
            if (e) {
                *e = '\0';
                in = strcmp(trim(s + 1), profile) == 0;
            }
            continue;
        }
        char *eq = strchr(s, '=');
        if (!in || !eq)
            continue;
        *eq = '\0';
        char *k = trim(s), *v = trim(eq + 1);
        if (!strcmp(k, "aws_access_key_id") && strlen(v) < sizeof b->access) {
            strcpy(b->access, v);
            have_id = true;
        } else if (!strcmp(k, "aws_secret_access_key") && strlen(v) < sizeof b->secret) {
            strcpy(b->secret, v);
            have_secret = true;
        } else if (!strcmp(k, "aws_session_token") && strlen(v) < sizeof token) {
            strcpy(token, v);
        }
    }
    fclose(f);
    explicit_bzero(line, sizeof line);
    if (rc == ASR_OK && have_id && have_secret) {
        *found = true;
        if (token[0])
            snprintf(b->token_hdr, sizeof b->token_hdr, "x-amz-security-token: %s", token);
    }
    explicit_bzero(token, sizeof token);
    return rc;
}

static int credentials(struct s3_backend *b, struct asr_error *err)
{
    const char *id = getenv("AWS_ACCESS_KEY_ID"), *secret = getenv("AWS_SECRET_ACCESS_KEY");
    if (id && *id && secret && *secret) {
        if (strlen(id) >= sizeof b->access || strlen(secret) >= sizeof b->secret)
            return asr_fail_public(err, ASR_E_ARG, "AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY: too long");
        strcpy(b->access, id);
        strcpy(b->secret, secret);
        const char *tok = getenv("AWS_SESSION_TOKEN");
        if (tok && *tok) {
            int n = snprintf(b->token_hdr, sizeof b->token_hdr, "x-amz-security-token: %s", tok);
            if (n < 0 || (size_t)n >= sizeof b->token_hdr)
                return asr_fail_public(err, ASR_E_ARG, "AWS_SESSION_TOKEN: too long");
        }
        return ASR_OK;
    }
    char path[4096];
    const char *file = getenv("AWS_SHARED_CREDENTIALS_FILE"), *home = getenv("HOME");
    const char *profile = getenv("AWS_PROFILE");
    if (!profile || !*profile)
        profile = "default";
    if (file && *file)
        snprintf(path, sizeof path, "%s", file);
    else if (home && *home)
        snprintf(path, sizeof path, "%s/.aws/credentials", home);
    else
        path[0] = '\0';
    bool found = false;
    if (path[0]) {
        int rc = creds_file(b, path, profile, &found, err);
        if (rc != ASR_OK)
            return rc;
    }
    if (!found)
        return asr_fail_public(err, ASR_E_ARG,
                               "%s: no S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or profile "
                               "[%s] in %s",
                               b->base.url, profile, path[0] ? path : "~/.aws/credentials");
    return ASR_OK;
}

static unsigned env_uint(const char *name, unsigned dflt, unsigned lo, unsigned hi)
{
    const char *v = getenv(name);
    uint64_t x;
    if (!v || !parse_u64(v, strlen(v), &x) || x < lo || x > hi)
        return dflt;
    return (unsigned)x;
}

/* "s3://bucket/prefix": bucket and prefix ("" or ending in /). */
static int parse_url(struct s3_backend *b, const char *url, struct asr_error *err)
{
    if (strncmp(url, "s3://", 5) != 0)
        return asr_fail_public(err, ASR_E_ARG, "%s: not an s3://bucket/prefix URL", url);
    const char *s = url + 5, *slash = strchr(s, '/');
    size_t bl = slash ? (size_t)(slash - s) : strlen(s);
    if (bl < 3 || bl > 63)
        return asr_fail_public(err, ASR_E_ARG, "%s: a bucket name has 3 to 63 characters", url);
    for (size_t i = 0; i < bl; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!(islower(c) || isdigit(c) || c == '.' || c == '-' || c == '_'))
            return asr_fail_public(err, ASR_E_ARG, "%s: a bucket name has only a-z 0-9 . - _", url);
    }
    memcpy(b->bucket, s, bl);
    b->bucket[bl] = '\0';
    const char *p = slash ? slash + 1 : "";
    size_t pl = strlen(p);
    while (pl && p[pl - 1] == '/')
        pl--;
    if (pl + 2 > S3_KEY_MAX - 128)
        return asr_fail_public(err, ASR_E_ARG, "%s: prefix too long", url);
    memcpy(b->prefix, p, pl);
    b->prefix[pl] = '\0';
    /* no empty, "." or ".." segment: a key is the same name for every client */
    for (const char *seg = b->prefix; pl && *seg;) {
        size_t sl = strcspn(seg, "/");
        if (sl == 0 || (sl == 1 && seg[0] == '.') || (sl == 2 && seg[0] == '.' && seg[1] == '.'))
            return asr_fail_public(err, ASR_E_ARG, "%s: bad prefix", url);
        seg += sl + (seg[sl] == '/');
    }
    if (pl)
        strcat(b->prefix, "/");
    return ASR_OK;
}

static int endpoint(struct s3_backend *b, const struct asr_store_options *opt, struct asr_error *err)
{
    const char *ep = opt && opt->endpoint && *opt->endpoint ? opt->endpoint : NULL;
    if (!ep)
        ep = getenv("AWS_ENDPOINT_URL_S3");
    if (!ep || !*ep)
        ep = getenv("AWS_ENDPOINT_URL");
    int n;
    if (ep && *ep) {
        size_t el = strlen(ep);
        while (el && ep[el - 1] == '/')
            el--;
        bool http = !strncmp(ep, "http://", 7), https = !strncmp(ep, "https://", 8);
        if ((!http && !https) || el <= (size_t)(https ? 8 : 7) || el > 1024 || strpbrk(ep, " ?#\r\n"))
            return asr_fail_public(err, ASR_E_ARG, "S3 endpoint %s: not an http:// or https:// URL", ep);
        b->https = https;
        n = snprintf(b->origin, sizeof b->origin, "%.*s/%s", (int)el, ep, b->bucket);
    } else if (strchr(b->bucket, '.') || strchr(b->bucket, '_')) {
        b->https = true; /* not a name TLS can match as a host: path-style */
        n = snprintf(b->origin, sizeof b->origin, "https://s3.%s.amazonaws.com/%s", b->region, b->bucket);
    } else {
        b->https = true;
        n = snprintf(b->origin, sizeof b->origin, "https://%s.s3.%s.amazonaws.com", b->bucket, b->region);
    }
    return n < 0 || (size_t)n >= sizeof b->origin ? asr_fail_public(err, ASR_E_ARG, "S3 endpoint: too long") : ASR_OK;
}

static int region(struct s3_backend *b, const struct asr_store_options *opt, struct asr_error *err)
{
    const char *r = opt && opt->region && *opt->region ? opt->region : getenv("AWS_REGION");
    if (!r || !*r)
        r = getenv("AWS_DEFAULT_REGION");
    if (!r || !*r)
        r = "us-east-1";
    size_t n = strlen(r);
    if (n >= sizeof b->region || strspn(r, "abcdefghijklmnopqrstuvwxyz0123456789-") != n)
        return asr_fail_public(err, ASR_E_ARG, "S3 region \"%s\": not a region name", r);
    strcpy(b->region, r);
    snprintf(b->sigv4, sizeof b->sigv4, "aws:amz:%s:s3", r);
    return ASR_OK;
}

int store_backend_s3_open(const char *url, const struct asr_store_options *opt, struct store_backend **out,
                          struct asr_error *err)
{
    *out = NULL;
    if (!url || strlen(url) >= sizeof((struct store_backend *)0)->url)
        return asr_fail_public(err, ASR_E_ARG, "S3 store URL missing or too long");
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return asr_fail_public(err, ASR_E_IO, "%s: %s", url, curl_load_msg);
    struct s3_backend *b = calloc(1, sizeof *b);
    if (!b)
        return asr_fail_public(err, ASR_E_NOMEM, "%s: out of memory", url);
    b->base.ops = &s3_ops;
    b->base.remote = true;
    strcpy(b->base.url, url);
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->cv, NULL);
    int rc = parse_url(b, url, err);
    if (rc == ASR_OK)
        rc = region(b, opt, err);
    if (rc == ASR_OK)
        rc = endpoint(b, opt, err);
    if (rc == ASR_OK)
        rc = credentials(b, err);
    if (rc == ASR_OK) {
        b->tries = env_uint("ASRIMG_S3_RETRIES", S3_TRIES_DEFAULT, 1, S3_TRIES_MAX);
        b->backoff_ms = env_uint("ASRIMG_S3_BACKOFF_MS", S3_BACKOFF_MS_DEFAULT, 0, 60000);
        b->stall_s = env_uint("ASRIMG_S3_STALL_SECONDS", S3_STALL_S_DEFAULT, 1, 3600);
        b->delete_batch = env_uint("ASRIMG_S3_DELETE_BATCH", S3_DELETE_BATCH_MAX, 1, S3_DELETE_BATCH_MAX);
        b->nslots = opt && opt->requests ? opt->requests : S3_REQUESTS_DEFAULT;
        if (b->nslots > S3_REQUESTS_MAX)
            b->nslots = S3_REQUESTS_MAX;
        b->slots = calloc(b->nslots, sizeof *b->slots);
        if (!b->slots)
            rc = asr_fail_public(err, ASR_E_NOMEM, "%s: out of memory", url);
    }
    if (rc != ASR_OK) {
        s3_close(&b->base);
        return rc;
    }
    *out = &b->base;
    return ASR_OK;
}
