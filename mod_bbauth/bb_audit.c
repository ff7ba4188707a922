/* bb_audit: formats an audit event as one escaped JSON line and derives a token's audit id. */
#include <string.h>
#include <apr_strings.h>
#include <jansson.h>
#include "bb_cache.h"
#include "bb_audit.h"

#define TOKEN_ID_LEN 12

/* s cut to max bytes, as a JSON string; a string that is not UTF-8 has its non-ASCII bytes replaced by '?'. */
static json_t *field(apr_pool_t *p, const char *s, apr_size_t max)
{
    apr_size_t len, i;
    json_t *value;
    char *ascii;

    if (s == NULL) {
        return json_null();
    }
    len = strnlen(s, max);
    value = json_stringn(s, len);
    if (value) {
        return value;
    }
    ascii = apr_pstrmemdup(p, s, len);
    for (i = 0; i < len; i++) {
        if ((unsigned char)ascii[i] >= 0x80) {
            ascii[i] = '?';
        }
    }
    return json_stringn(ascii, len);
}

static void set_field(apr_pool_t *p, json_t *obj, const char *name, const char *s, apr_size_t max)
{
    json_object_set_new(obj, name, field(p, s, max));
}

static void set_optional(apr_pool_t *p, json_t *obj, const char *name, const char *s)
{
    if (s) {
        set_field(p, obj, name, s, BB_AUDIT_MAX_FIELD);
    }
}

/* RFC 3339 in UTC with milliseconds: 2026-12-07T00:12:08.123Z. */
static const char *rfc3339_ms(apr_pool_t *p, apr_time_t t)
{
    apr_time_exp_t tm;

    apr_time_exp_gmt(&tm, t);
    return apr_psprintf(p, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                        tm.tm_hour, tm.tm_min, tm.tm_sec, tm.tm_usec / 1000);
}

/* The dumped JSON with a newline, and DEL (which JSON leaves as it is, and only a string can hold) escaped. */
static char *escape_del(apr_pool_t *p, const char *json)
{
    apr_size_t dels = 0, n = 0;
    const char *c;
    char *line;

    for (c = json; *c; c++) {
        dels += *c == 0x7f;
    }
    line = apr_palloc(p, strlen(json) + dels * 5 + 2);
    for (c = json; *c; c++) {
        if (*c == 0x7f) {
            memcpy(line + n, "\\u007f", 6);
            n += 6;
        }
        else {
            line[n++] = *c;
        }
    }
    line[n++] = '\n';
    line[n] = '\0';
    return line;
}

char *bb_audit_line(apr_pool_t *p, apr_time_t t, const bb_audit_event_t *e)
{
    json_t *obj = json_object();
    char *text, *line;

    if (obj == NULL) {
        return NULL;
    }
    set_field(p, obj, "time", rfc3339_ms(p, t), BB_AUDIT_MAX_FIELD);
    set_field(p, obj, "event", e->event, BB_AUDIT_MAX_FIELD);
    set_field(p, obj, "outcome", e->outcome, BB_AUDIT_MAX_FIELD);
    set_field(p, obj, "reason", e->reason, BB_AUDIT_MAX_FIELD);
    set_field(p, obj, "user", e->user, BB_AUDIT_MAX_FIELD);
    set_field(p, obj, "client", e->client, BB_AUDIT_MAX_FIELD);
    set_field(p, obj, "method", e->method, BB_AUDIT_MAX_FIELD);
    set_field(p, obj, "path", e->path, BB_AUDIT_MAX_PATH);
    set_field(p, obj, "vhost", e->vhost, BB_AUDIT_MAX_FIELD);
    set_field(p, obj, "location", e->location, BB_AUDIT_MAX_FIELD);
    set_field(p, obj, "request_id", e->request_id, BB_AUDIT_MAX_FIELD);
    set_optional(p, obj, "auth", e->auth);
    set_optional(p, obj, "token", e->token);
    set_optional(p, obj, "rule", e->rule);
    text = json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_PRESERVE_ORDER);
    json_decref(obj);
    if (text == NULL) {
        return NULL;
    }
    line = escape_del(p, text);
    free(text);
    return line;
}

const char *bb_audit_token_id(apr_pool_t *p, const bb_key_t *key, const char *token)
{
    const char *cache_key = token ? bb_cache_key(p, key, "audit", token, strlen(token)) : NULL;

    return cache_key ? apr_pstrndup(p, cache_key, TOKEN_ID_LEN) : NULL;
}
