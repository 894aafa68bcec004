/* Pack windows (windows.c): chunk records of a remote store read a window of a pack at a time,
 * shared by the threads that read them, and fetched ahead of them when told what comes next.
 * Internal to store/. */
#ifndef ASR_STORE_WINDOWS_H
#define ASR_STORE_WINDOWS_H

#include "backend.h"

/* A window fetched ahead: a pack of store init's pack_target (16 MiB) with the record that closed
 * it, in one GET, half as many requests as 8 MiB windows (measured: 28 GETs against 55 for a 1 GiB
 * root's restore). A read nobody advised of (verify, mount) fetches 8 MiB from its record, as
 * before: a random read should not wait for 17. */
#define STORE_WINDOW_BYTES (17u << 20)
#define STORE_READ_WINDOW_BYTES (8u << 20)
#define STORE_WINDOWS 6u        /* windows, so at most this many times STORE_WINDOW_BYTES of memory */
#define STORE_WINDOWS_AHEAD 3u  /* windows fetched ahead and not read yet, at most: three stay for reads */
#define STORE_WINDOWS_KEY 64u   /* room for a pack's name, "packs/XX/ID" */

struct store_windows;

/* A record a reader will ask for soon: len bytes at off of pack (numbered as for store_windows_read,
 * named key). */
struct store_want {
    uint32_t pack;
    uint32_t len;
    uint64_t off;
    char key[STORE_WINDOWS_KEY];
};

int store_windows_new(struct store_windows **out, struct asr_error *err);
/* NULL-safe; waits for the fetches ahead in flight. b of every call must outlive ws. */
void store_windows_free(struct store_windows *ws);
/* Like the backend's get of len bytes at off of key (pack number pack, which names the pack the
 * same way for every call): *got short where the pack ends; *missing when it is not there. */
int store_windows_read(struct store_windows *ws, struct store_backend *b, uint32_t pack, const char *key,
                       uint64_t off, void *buf, size_t len, size_t *got, bool *missing, struct asr_error *err);
/* Advice: the records the readers will ask for next, in that order (n of them). Background threads
 * fetch the windows that hold the first of them, ending each window at the last record it needs
 * (never past a pack's records), as long as windows are free of records not read yet; this
 * replaces the advice given before. A failed fetch ahead is dropped: a read of that window fetches
 * it again and reports its own error. */
void store_windows_prefetch(struct store_windows *ws, struct store_backend *b, const struct store_want *want,
                            size_t n);

#endif
