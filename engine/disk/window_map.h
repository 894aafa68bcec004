/* A window pieced together from runs of other windows: a logical volume whose extents lie on
 * several PVs (and disks), an array striped over its members. Reads through it are split at the
 * pieces' edges and go to each piece's parent window, whose bounds and read-error handling
 * apply in turn, so a stack of windows (an LV inside a decrypted LUKS volume inside a partition)
 * reads every byte through the checks of every layer. Internal to the engine. */
#ifndef ASR_WINDOW_MAP_H
#define ASR_WINDOW_MAP_H
#include <stddef.h>
#include <stdint.h>

#include "asr_engine.h"

struct window_piece {
    uint64_t off, len;               /* in the mapped window */
    const struct asr_window *parent; /* must outlive the map */
    uint64_t parent_off;
};

struct window_map {
    struct window_piece *v;
    size_t n, cap;
    uint64_t size; /* the end of the last piece: pieces are contiguous from 0 */
};

/* Appends len bytes of parent from parent_off at the end of the map. ASR_E_ARG when the run lies
 * outside the parent or the map would pass 2^64 bytes; ASR_E_NOMEM. */
int window_map_add(struct window_map *m, const struct asr_window *parent, uint64_t parent_off, uint64_t len,
                   struct asr_error *err);
/* The map as a window (it points at m, which must outlive it); path names it in messages. */
void window_map_window(struct window_map *m, const char *path, struct asr_window *out);
void window_map_free(struct window_map *m);

#endif
