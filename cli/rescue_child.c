/* What rescue run reads from the restore it ran: its --json summary, parsed with json-c (kept
 * apart from json.h, whose json_bool json-c also defines). The child's output is checked JSON
 * before the report holds it; anything else counts as no summary. */
#include "rescue_child.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void rescue_summary_parse(const char *text, struct rescue_summary *out)
{
    *out = (struct rescue_summary){0};
    struct json_object *o = text ? json_tokener_parse(text) : NULL;
    if (!o || !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        return;
    }
    struct json_object *v;
    out->ok = json_object_object_get_ex(o, "ok", &v) && json_object_get_boolean(v);
    out->verified = json_object_object_get_ex(o, "verified", &v) && json_object_get_boolean(v);
    if (json_object_object_get_ex(o, "data_bytes", &v))
        out->bytes += (unsigned long long)json_object_get_int64(v);
    if (json_object_object_get_ex(o, "zero_bytes", &v))
        out->bytes += (unsigned long long)json_object_get_int64(v);
    if (json_object_object_get_ex(o, "seconds", &v))
        out->seconds = json_object_get_double(v);
    if (json_object_object_get_ex(o, "error", &v))
        snprintf(out->error, sizeof out->error, "%s", json_object_get_string(v));
    out->json = strdup(json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
    json_object_put(o);
}

void rescue_summary_free(struct rescue_summary *s)
{
    free(s->json);
    s->json = NULL;
}
