/* GUIDs as text (see guid.h). libuuid reads and writes the fields in big-endian order, as RFC 4122
 * lays them out; GPT stores the first three little-endian, so they are swapped on the way. */
#include "guid.h"

#include <string.h>
#include <uuid/uuid.h>

/* Between RFC 4122's order and GPT's: the same swap both ways. */
static void swap_gpt(const uint8_t in[16], uint8_t out[16])
{
    static const int order[16] = {3, 2, 1, 0, 5, 4, 7, 6, 8, 9, 10, 11, 12, 13, 14, 15};
    for (int i = 0; i < 16; i++)
        out[i] = in[order[i]];
}

void asr_guid_text(const uint8_t b[16], unsigned flags, char out[ASR_GUID_TEXT])
{
    uuid_t u;
    if (flags & ASR_GUID_GPT)
        swap_gpt(b, u);
    else
        memcpy(u, b, 16);
    if (flags & ASR_GUID_UPPER)
        uuid_unparse_upper(u, out);
    else
        uuid_unparse_lower(u, out);
}

int asr_guid_parse(const char *s, unsigned flags, uint8_t out[16])
{
    uuid_t u;
    if (uuid_parse(s, u) != 0)
        return -1;
    if (flags & ASR_GUID_GPT)
        swap_gpt(u, out);
    else
        memcpy(out, u, 16);
    return 0;
}
