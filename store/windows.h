/* Pack windows (windows.c): chunk records of a remote store read a window of a pack at a time,
 * shared by the threads that read them. Internal to store/. */
#ifndef ASR_STORE_WINDOWS_H
#define ASR_STORE_WINDOWS_H

#include "backend.h"

struct store_windows;

int store_windows_new(struct store_windows **out, struct asr_error *err);
void store_windows_free(struct store_windows *ws); /* NULL-safe */
/* Like the backend's get of len bytes at off of key (pack number pack, which names the pack the
 * same way for every call): *got short where the pack ends; *missing when it is not there. */
int store_windows_read(struct store_windows *ws, struct store_backend *b, uint32_t pack, const char *key,
                       uint64_t off, void *buf, size_t len, size_t *got, bool *missing, struct asr_error *err);

#endif
