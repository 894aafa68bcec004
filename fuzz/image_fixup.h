/* Checksum repair for the image fuzz harnesses (fuzz_image.c, fuzz_stream.c): nearly every byte
 * of an image is under an XXH3 checksum, so without recomputing them almost every mutation stops
 * at the first checksum check and never reaches the parsers behind it. */
#ifndef ASR_FUZZ_IMAGE_FIXUP_H
#define ASR_FUZZ_IMAGE_FIXUP_H

#include <stddef.h>
#include <stdint.h>

/* Recomputes, in place, every checksum of a single-part image that the structure lets us find:
 * part header, image header, each chunk and section up to the index, the chunk table's content
 * hashes, the whole-stream hash, the index and the footer. Everything else stays as mutated. */
void fuzz_fix_checksums(uint8_t *img, size_t size);

/* The same for a store snapshot (feature external-chunks) and its chunk records: recs holds
 * entries of a 32-byte store id, a u32 (little-endian) length and a chunk record. Each record's
 * stored hash, content hash and header checksum are recomputed, then the snapshot's, its chunk
 * table taking each chunk's content hash from the record its store id names. Ids stay as they
 * are (a mutated content no longer matches its id: the path of a store's refusal). */
void fuzz_fix_snapshot(uint8_t *img, size_t size, uint8_t *recs, size_t recs_len);

#endif
