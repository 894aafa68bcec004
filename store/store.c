/* The store itself: opening one (backend by URL), its config object (SPEC.md 19.2), the key file
 * (made by init, loaded and checked by open) and chunk ids (HMAC-SHA-256 with the key); the small
 * helpers every store/ module shares are in shared.c. */
#include "backend_s3.h"
#include "internal.h"
#include "windows.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <xxhash.h>

#include "guid.h"
#include "io.h"
#include "le.h"

static const char config_magic[8] = {'A', 'S', 'R', 'S', 'T', 'O', 'R', 'E'};
static const char key_check_text[] = "asrimg store key check"; /* 22 bytes, no NUL */

/* ---- config (SPEC.md 19.2) ----------------------------------------------------------------- */

void store_config_encode(const struct store_config *c, uint8_t out[STORE_CONFIG_SIZE])
{
    memset(out, 0, STORE_CONFIG_SIZE);
    memcpy(out, config_magic, 8);
    put_le32(out + 8, c->version);
    memcpy(out + 16, c->uuid, 16);
    put_le64(out + 32, c->hash_seed);
    memcpy(out + 40, c->key_check, 32);
    put_le32(out + 72, c->pack_target);
    put_le64(out + 80, c->created_unix);
    put_le64(out + 88, XXH3_64bits(out, 88));
}

static bool zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

int store_config_decode(const uint8_t *in, size_t len, struct store_config *c, struct asr_error *err)
{
    if (len < 12 || memcmp(in, config_magic, 8))
        return store_fail(err, ASR_E_CORRUPT, "config: not a store's config (no ASRSTORE magic)");
    c->version = get_le32(in + 8);
    if (c->version != STORE_VERSION)
        return store_fail(err, ASR_E_UNSUPPORTED, "config: store version %u (this asrimg reads version %u)",
                          c->version, STORE_VERSION);
    if (len != STORE_CONFIG_SIZE)
        return store_fail(err, ASR_E_CORRUPT, "config: %zu bytes, not %u", len, STORE_CONFIG_SIZE);
    if (get_le64(in + 88) != XXH3_64bits(in, 88))
        return store_fail(err, ASR_E_CORRUPT, "config: checksum mismatch");
    if (!zero(in + 12, 4) || !zero(in + 76, 4))
        return store_fail(err, ASR_E_CORRUPT, "config: reserved bytes not zero");
    memcpy(c->uuid, in + 16, 16);
    c->hash_seed = get_le64(in + 32);
    memcpy(c->key_check, in + 40, 32);
    c->pack_target = get_le32(in + 72);
    c->created_unix = get_le64(in + 80);
    if (c->pack_target < STORE_MIN_PACK_TARGET || c->pack_target > STORE_MAX_PACK_TARGET)
        return store_fail(err, ASR_E_CORRUPT, "config: pack_target %u outside %u..%u", c->pack_target,
                          STORE_MIN_PACK_TARGET, STORE_MAX_PACK_TARGET);
    return ASR_OK;
}

/* ---- the key file -------------------------------------------------------------------------- */

/* opt's key file, else ASRIMG_STORE_KEY_FILE, else $HOME/.config/asrimg/store-UUID.key. */
static int key_file_path(const struct asr_store_options *opt, const uint8_t uuid[16], char *out, size_t n,
                         bool *is_default, struct asr_error *err)
{
    const char *given = opt && opt->key_file ? opt->key_file : getenv("ASRIMG_STORE_KEY_FILE");
    *is_default = !given || !*given;
    if (!*is_default) {
        if ((size_t)snprintf(out, n, "%s", given) >= n)
            return store_fail(err, ASR_E_ARG, "key file: path too long");
        return ASR_OK;
    }
    const char *home = getenv("HOME");
    if (!home || !*home)
        return store_fail(err, ASR_E_ARG, "key file: HOME is not set: give the key file (ASRIMG_STORE_KEY_FILE)");
    char text[ASR_GUID_TEXT];
    asr_guid_text(uuid, 0, text);
    if ((size_t)snprintf(out, n, "%s/.config/asrimg/store-%s.key", home, text) >= n)
        return store_fail(err, ASR_E_ARG, "key file: path too long");
    return ASR_OK;
}

/* mkdir -p of the directory above path, private (it holds keys). */
static int make_key_dir(const char *path, struct asr_error *err)
{
    char dir[PATH_MAX];
    snprintf(dir, sizeof dir, "%s", path);
    for (char *c = strchr(dir + 1, '/'); c; c = strchr(c + 1, '/')) {
        *c = 0;
        if (mkdir(dir, 0700) < 0 && errno != EEXIST)
            return store_fail(err, ASR_E_IO, "%s: cannot create: %s", dir, strerror(errno));
        *c = '/';
    }
    return ASR_OK;
}

static int key_write(const char *path, const uint8_t key[STORE_KEY_SIZE], struct asr_error *err)
{
    char text[2 * STORE_KEY_SIZE + 2];
    store_hex(key, STORE_KEY_SIZE, text);
    strcat(text, "\n");
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return store_fail(err, errno == EEXIST ? ASR_E_EXISTS : ASR_E_IO, "%s: cannot create the key file: %s", path,
                          errno == EEXIST ? "it exists (a key is never overwritten)" : strerror(errno));
    int w = asr_write_full(fd, text, strlen(text));
    if (w || fsync(fd) < 0) {
        int e = w > 0 ? ENOSPC : w < 0 ? -w : errno;
        close(fd);
        unlink(path);
        return store_fail(err, ASR_E_IO, "%s: cannot write the key file: %s", path, strerror(e));
    }
    close(fd);
    return ASR_OK;
}

static int key_read(const char *path, uint8_t key[STORE_KEY_SIZE], struct asr_error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return store_fail(err, ASR_E_IO, "%s: cannot read the store's key file: %s", path, strerror(errno));
    char text[2 * STORE_KEY_SIZE + 3];
    ssize_t n = read(fd, text, sizeof text);
    close(fd);
    if (n == 2 * STORE_KEY_SIZE + 1 && text[n - 1] == '\n')
        n--;
    if (n != 2 * STORE_KEY_SIZE)
        return store_fail(err, ASR_E_CORRUPT, "%s: not a store key file (64 hex digits and a newline)", path);
    text[n] = 0;
    if (store_hex_parse(text, key, STORE_KEY_SIZE) < 0)
        return store_fail(err, ASR_E_CORRUPT, "%s: not a store key file (64 hex digits and a newline)", path);
    return ASR_OK;
}

static void key_check_of(const uint8_t key[STORE_KEY_SIZE], const uint8_t uuid[16], uint8_t out[32])
{
    store_hmac(key, key_check_text, sizeof key_check_text - 1, uuid, 16, out);
}

/* ---- init, open, close --------------------------------------------------------------------- */

static int backend_open(const char *url, const struct asr_store_options *opt, bool create, struct store_backend **b,
                        struct asr_error *err)
{
    if (strncmp(url, "s3://", 5))
        return store_backend_dir_open(url, create, b, err);
    int rc = store_backend_s3_open(url, opt, b, err);
    /* store init makes the bucket when it is not there yet (one we own already is fine). */
    if (!rc && create && (rc = store_backend_s3_make_bucket(*b, err))) {
        (*b)->ops->close(*b);
        *b = NULL;
    }
    return rc;
}

int store_init_with(const char *url, const struct asr_store_options *opt, uint32_t pack_target, char *key_path,
                    size_t key_path_len, struct asr_error *err)
{
    struct store_backend *b;
    int rc = backend_open(url, opt, true, &b, err);
    if (rc)
        return rc;
    struct store_object *objs = NULL;
    size_t n = 0;
    if (!(rc = b->ops->list(b, "", &objs, &n, err)) && n)
        rc = store_fail(err, ASR_E_EXISTS, "%s: not empty (%s is there): a store is made where nothing is", url,
                        objs[0].key);
    store_objects_free(objs, n);

    struct store_config c = {.version = STORE_VERSION, .pack_target = pack_target};
    uint8_t key[STORE_KEY_SIZE];
    char path[PATH_MAX];
    bool is_default = false;
    if (!rc)
        rc = store_random(c.uuid, sizeof c.uuid, err);
    if (!rc)
        rc = store_random(&c.hash_seed, sizeof c.hash_seed, err);
    if (!rc)
        rc = store_random(key, sizeof key, err);
    if (!rc)
        rc = key_file_path(opt, c.uuid, path, sizeof path, &is_default, err);
    if (!rc && is_default)
        rc = make_key_dir(path, err);
    if (!rc) {
        key_check_of(key, c.uuid, c.key_check);
        c.created_unix = (uint64_t)time(NULL);
        rc = key_write(path, key, err);
    }
    if (!rc) {
        uint8_t raw[STORE_CONFIG_SIZE];
        store_config_encode(&c, raw);
        if ((rc = b->ops->put(b, "config", raw, sizeof raw, err)))
            unlink(path); /* no store uses the key */
    }
    OPENSSL_cleanse(key, sizeof key);
    b->ops->close(b);
    if (!rc && key_path && key_path_len)
        snprintf(key_path, key_path_len, "%s", path);
    return rc;
}

int asr_store_init(const char *url, const struct asr_store_options *opt, char *key_path, size_t key_path_len,
                   struct asr_error *err)
{
    return store_init_with(url, opt, STORE_DEFAULT_PACK_TARGET, key_path, key_path_len, err);
}

int asr_store_open(const char *url, const struct asr_store_options *opt, struct asr_store **out,
                   struct asr_error *err)
{
    *out = NULL;
    struct asr_store *s = calloc(1, sizeof *s);
    if (!s)
        return store_fail(err, ASR_E_NOMEM, "%s: out of memory", url);
    pthread_mutex_init(&s->load_lock, NULL);
    s->read_ids = store_read_ids_image;
    int rc = backend_open(url, opt, false, &s->b, err);
    uint8_t *raw = NULL;
    size_t len = 0;
    bool missing = false;
    if (!rc && (rc = store_get_whole(s->b, "config", 4096, &raw, &len, &missing, err)) && missing)
        rc = store_fail(err, ASR_E_NOT_IMAGE, "%s: not a store (no config object)", url);
    if (!rc) {
        struct asr_error e2 = {0};
        if ((rc = store_config_decode(raw, len, &s->cfg, &e2)))
            store_fail(err, rc, "%s: %s", url, e2.msg);
    }
    free(raw);
    bool is_default = false;
    if (!rc)
        rc = key_file_path(opt, s->cfg.uuid, s->key_path, sizeof s->key_path, &is_default, err);
    if (!rc)
        rc = key_read(s->key_path, s->key, err);
    if (!rc) {
        uint8_t check[32];
        key_check_of(s->key, s->cfg.uuid, check);
        if (CRYPTO_memcmp(check, s->cfg.key_check, 32))
            rc = store_fail(err, ASR_E_ARG, "%s: the key in %s is not this store's key", url, s->key_path);
    }
    if (rc) {
        asr_store_close(s);
        return rc;
    }
    *out = s;
    return ASR_OK;
}

void asr_store_close(struct asr_store *s)
{
    if (!s)
        return;
    store_windows_free(s->windows); /* first: its fetches ahead use the backend */
    if (s->b)
        s->b->ops->close(s->b);
    store_table_free(s->table);
    free(s->expect);
    pthread_mutex_destroy(&s->load_lock);
    OPENSSL_cleanse(s->key, sizeof s->key);
    free(s);
}

const char *asr_store_url(const struct asr_store *s) { return s->b->url; }

uint64_t asr_store_hash_seed(const struct asr_store *s) { return s->cfg.hash_seed; }

void asr_store_uuid(const struct asr_store *s, uint8_t uuid[16]) { memcpy(uuid, s->cfg.uuid, 16); }

void asr_store_chunk_id(const struct asr_store *s, const void *content, size_t len, struct asr_store_id *out)
{
    store_hmac(s->key, content, len, NULL, 0, out->b);
}

bool asr_store_split_ref(const char *ref, char **store, char **snapshot)
{
    const char *sep = NULL;
    for (const char *p = strstr(ref, "::"); p; p = strstr(p + 1, "::"))
        sep = p;
    if (!sep || sep == ref || !sep[2])
        return false;
    char *a = strndup(ref, (size_t)(sep - ref)), *b = strdup(sep + 2);
    if (!a || !b) {
        free(a);
        free(b);
        return false;
    }
    *store = a;
    *snapshot = b;
    return true;
}
