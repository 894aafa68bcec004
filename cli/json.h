/* cli/json.h: the --json emitter of every command. */
#ifndef ASR_CLI_JSON_H
#define ASR_CLI_JSON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

/* JSON emitter: no allocation; commas handled by tracking the first member of each level. */
struct json {
    FILE *f;
    int depth;
    bool first[32];
};
void json_begin(struct json *j, FILE *f);
void json_obj(struct json *j, const char *key);   /* key NULL inside arrays or at top level */
void json_arr(struct json *j, const char *key);
void json_end_obj(struct json *j);
void json_end_arr(struct json *j);
void json_str(struct json *j, const char *key, const char *v);
void json_u64(struct json *j, const char *key, uint64_t v);
void json_dbl(struct json *j, const char *key, double v);
void json_bool(struct json *j, const char *key, bool v);
void json_null(struct json *j, const char *key);
void json_finish(struct json *j);
/* text, already JSON (one value, as json-c writes it), as the value of key. */
void json_raw(struct json *j, const char *key, const char *text);

#endif
