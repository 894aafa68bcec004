/* GUIDs as text, through libuuid: the image's own id, partition type and unique GUIDs, and
 * filesystem UUIDs, each in the case its reader expects. */
#ifndef ASR_GUID_H
#define ASR_GUID_H
#include <stdint.h>

#define ASR_GUID_TEXT 37 /* "xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" and its NUL */

/* Flags for the functions below. */
#define ASR_GUID_GPT 1u   /* the bytes are as GPT stores them: the first three fields little-endian */
#define ASR_GUID_UPPER 2u /* A-F rather than a-f (text only) */

/* The 16 bytes b as text in out. */
void asr_guid_text(const uint8_t b[16], unsigned flags, char out[ASR_GUID_TEXT]);
/* Text (either case) to 16 bytes: 0, or -1 with out untouched when s is not a GUID. */
int asr_guid_parse(const char *s, unsigned flags, uint8_t out[16]);

#endif
