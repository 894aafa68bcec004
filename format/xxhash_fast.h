/* xxHash through the fastest implementation this CPU has. Debian's libxxhash is built for the
 * x86-64 baseline (SSE2); its *_dispatch entry points choose AVX2 or AVX-512 at run time and
 * give the same hashes, 1.2x faster over 256 KiB chunks on the bench machine. The header maps
 * the usual XXH3 names onto them, so format/ includes this instead of <xxhash.h>. */
#ifndef ASR_XXHASH_FAST_H
#define ASR_XXHASH_FAST_H
#include <xxhash.h>
#if defined(__x86_64__) && defined(__has_include)
#if __has_include(<xxh_x86dispatch.h>)
#include <xxh_x86dispatch.h>
#endif
#endif
#endif
