/* Growable arrays: the one place that doubles a capacity, so that no caller multiplies a count by
 * an element size unchecked. Callers keep their own bounds (a cap on entries from a disk or an
 * image is checked before growing, never here). */
#ifndef ASR_GROW_H
#define ASR_GROW_H
#include <stddef.h>

/* Room for need (> 0) elements of elem bytes in items, which has room for *cap: items itself when
 * they fit, else items reallocated to a capacity doubled from *cap (from first when *cap is 0)
 * until need fits, *cap updated. NULL when out of memory or the size would overflow; items is then
 * still the caller's, unchanged, as is *cap. */
void *asr_grow(void *items, size_t *cap, size_t need, size_t elem, size_t first);

#endif
