/* bb_audit: one audit event as one line of JSON (every field escaped, long ones cut), and a token's audit id. */
#ifndef BB_AUDIT_H
#define BB_AUDIT_H

#include <apr_pools.h>
#include <apr_time.h>
#include "bb_keys.h"

/* Most bytes of a field that reach the line (a path: BB_AUDIT_MAX_PATH): the rest is cut, so that a line stays
 * shorter than PIPE_BUF (4096) and is written to a pipe or an O_APPEND file in one piece, never interleaved. */
#define BB_AUDIT_MAX_FIELD 128
#define BB_AUDIT_MAX_PATH  256

/* What an event is about; any field may be NULL (written as null; the optional ones are then left out). */
typedef struct {
    const char *event;        /* e.g. "login.completed", "session.refused", "token.accepted", "require.denied" */
    const char *outcome;      /* "success", "failure", "granted", "denied", "refused", ... */
    const char *reason;       /* why, in words an admin reads */
    const char *user;         /* the Bitbucket user name */
    const char *client;       /* the client address as httpd sees it (mod_remoteip respected) */
    const char *method;
    const char *path;         /* without the query string (which may carry codes) */
    const char *vhost;
    const char *location;     /* the <Location>/<Directory> the request matched */
    const char *request_id;   /* UNIQUE_ID of mod_unique_id */
    /* Optional, written only when set: */
    const char *auth;         /* how the user authenticated: "session" or "token" */
    const char *token;        /* a token's audit id (bb_audit_token_id), never the token */
    const char *rule;         /* a Require line */
} bb_audit_event_t;

/* The event at time t as one JSON object on one line, ending in "\n": {"time":RFC 3339 UTC with milliseconds,
 * "event","outcome","reason","user","client","method","path","vhost","location","request_id"[,"auth"][,"token"]
 * [,"rule"]}. ASCII only: control characters, quotes, backslashes and every non-ASCII character are \u-escaped (a
 * byte that is not UTF-8 becomes '?'), so no field can end the line or forge another field. NULL only when out of
 * memory. */
char *bb_audit_line(apr_pool_t *p, apr_time_t t, const bb_audit_event_t *event);

/* A short id of a token for correlating its events: 12 characters of base64url(HMAC-SHA256(key, "audit" NUL token)).
 * Keyed with the integration's key, so that the log gives no way to test guesses of tokens; the same on every host
 * of the integration. NULL when key is unusable or token is NULL. */
const char *bb_audit_token_id(apr_pool_t *p, const bb_key_t *key, const char *token);

#endif
