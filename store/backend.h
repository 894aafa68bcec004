/* The object backends of a chunk store (internal to store/): a directory (backend_dir.c) or an
 * S3 bucket prefix (backend_s3.c). A store sees only these calls, so its layout and rules are the
 * same on both (SPEC.md section 19). Keys are relative names such as "packs/ab/ab12...".
 *
 * Rules every backend keeps:
 * - put writes an object whole or not at all (a directory: temporary name, fsync, rename, fsync
 *   of the directory); an object is never visible half-written.
 * - get of a missing object is ASR_E_NOT_FOUND-like: rc ASR_E_IO with *missing set, so callers
 *   tell "not there" from "could not read".
 * - list returns every key under a prefix, in no particular order, with size and modification
 *   time as the backend's own clock sees them (the lease rule of SPEC.md 19.8 compares those
 *   times with each other, never with the client's clock).
 * - errors name the object and, for S3, the HTTP status.
 * - every call is thread-safe: restore threads fetch chunks at once, and a session's lease thread
 *   rewrites its session object while the backup uploads packs. */
#ifndef ASR_STORE_BACKEND_H
#define ASR_STORE_BACKEND_H

#include "asr_store.h"

struct store_backend;

struct store_object {
    char *key;      /* malloc'd */
    uint64_t size;
    int64_t mtime;  /* unix seconds, the backend's clock */
};

struct store_backend_ops {
    /* Writes data (len bytes) as key, replacing any object of that name. */
    int (*put)(struct store_backend *b, const char *key, const void *data, size_t len, struct asr_error *err);
    /* Writes the file at path as key (large objects: snapshots). Never replaces an object: when key
     * is there, ASR_E_EXISTS (the directory backend links; S3: If-None-Match: *, or a HEAD first
     * where the endpoint lacks it), so two backups of one host in one second keep both snapshots. */
    int (*put_file)(struct store_backend *b, const char *key, const char *path, struct asr_error *err);
    /* Reads up to cap bytes at offset of key into buf; *got: bytes read, fewer than cap only where
     * the object ends (an offset at or past its end reads none: ASR_OK, *got 0). *missing: the
     * object is not there (rc ASR_E_IO). */
    int (*get)(struct store_backend *b, const char *key, uint64_t offset, void *buf, size_t cap, size_t *got,
               bool *missing, struct asr_error *err);
    /* The whole object into the file at path. */
    int (*get_file)(struct store_backend *b, const char *key, const char *path, bool *missing,
                    struct asr_error *err);
    /* Every object under prefix ("packs/", "" for all): *out malloc'd, free with store_objects_free. */
    int (*list)(struct store_backend *b, const char *prefix, struct store_object **out, size_t *count,
                struct asr_error *err);
    /* Removes key; a key that is not there is fine. */
    int (*del)(struct store_backend *b, const char *key, struct asr_error *err);
    /* Removes keys (n of them) in as few requests as the backend can, adding those it made to
     * *requests; keys not there are fine. After an error some may be gone; the message names one
     * that is not. NULL where one del a key is as quick (a directory): use store_del_many. */
    int (*del_many)(struct store_backend *b, const char *const *keys, size_t n, uint64_t *requests,
                    struct asr_error *err);
    /* The backend's current time (a directory: the mtime of a file just written; S3: the Date of
     * a response), for comparisons with list's mtimes. */
    int (*now)(struct store_backend *b, int64_t *now, struct asr_error *err);
    /* Removes what crashed writers left behind that nothing has written to since older_than (the
     * backend's clock): the directory backend's unfinished tmp/ files. NULL where writes leave
     * nothing behind (S3 objects appear whole or not at all). */
    int (*sweep)(struct store_backend *b, int64_t older_than, uint64_t *removed, struct asr_error *err);
    void (*close)(struct store_backend *b);
};

struct store_backend {
    const struct store_backend_ops *ops;
    char url[1024]; /* as given, for messages */
    bool remote;    /* each request costs a round trip: chunks are read in pack windows (windows.c) */
};

int store_backend_dir_open(const char *path, bool create, struct store_backend **out, struct asr_error *err);
int store_backend_s3_open(const char *url, const struct asr_store_options *opt, struct store_backend **out,
                          struct asr_error *err);
void store_objects_free(struct store_object *o, size_t n);

#endif
