/* Growable arrays (see grow.h). */
#include "grow.h"

#include <stdint.h>
#include <stdlib.h>

void *asr_grow(void *items, size_t *cap, size_t need, size_t elem, size_t first)
{
    if (need <= *cap)
        return items;
    size_t c = *cap ? *cap : first ? first : 1;
    while (c < need)
        c = c > SIZE_MAX / 2 ? need : 2 * c;
    if (elem && c > SIZE_MAX / elem)
        return NULL;
    void *p = realloc(items, c * elem);
    if (p)
        *cap = c;
    return p;
}
