/* Private to store/ and its tests: what backend_s3.c offers beyond struct store_backend_ops (making
 * the bucket) and its parsers of S3's answers, exposed so that tests feed them hostile bodies
 * without a server. Every parser is bounded by len and never trusts a size or count it reads. */
#ifndef ASR_STORE_BACKEND_S3_H
#define ASR_STORE_BACKEND_S3_H

#include "backend.h"

/* Creates the store's bucket (a bucket that is already this account's is fine). The backend must
 * be an S3 one (ASR_E_ARG otherwise). */
int store_backend_s3_make_bucket(struct store_backend *b, struct asr_error *err);

/* One page of a ListObjectsV2 answer. */
struct s3_list_page {
    struct store_object *objs; /* appended to; free with store_objects_free(objs, count) */
    size_t count, cap;
    bool truncated;            /* IsTruncated: another page follows */
    char token[1024];          /* NextContinuationToken, decoded; "" when none */
};

/* Appends the objects of the XML answer xml (len bytes, need not end in NUL) to pg. Every key must
 * start with want (the listed prefix); strip bytes of it (the store's own prefix) are cut off the
 * key kept. ASR_E_CORRUPT for a body that is not a listing (a bad number, time, entity, key). */
int s3_parse_list(const char *xml, size_t len, const char *want, size_t strip, struct s3_list_page *pg,
                  struct asr_error *err);
/* S3's <Error> body: its Code and Message, decoded and cut to fit ("" when absent). */
void s3_parse_error(const char *xml, size_t len, char *code, size_t code_len, char *msg, size_t msg_len);
/* A DeleteObjects answer (<DeleteResult>, quiet): ASR_OK with key "" when it lists no error other
 * than NoSuchKey (deleting what is not there is what was asked); else ASR_OK with the first other
 * <Error>'s Key, Code and Message, decoded, printable and cut to fit. ASR_E_CORRUPT for a body that
 * is not a DeleteResult, or an <Error> without a Code. */
int s3_parse_delete_result(const char *xml, size_t len, char *key, size_t key_len, char *code, size_t code_len,
                           char *msg, size_t msg_len, struct asr_error *err);
/* An ISO 8601 UTC time as S3 writes LastModified ("2026-12-05T17:50:04.000Z"): unix seconds. */
int s3_parse_time(const char *s, size_t len, int64_t *out);

#endif
