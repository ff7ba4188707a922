/* bb_credential: parses an Authorization header (Bearer or Basic) into a Bitbucket HTTP access token. */
#ifndef BB_CREDENTIAL_H
#define BB_CREDENTIAL_H

#include <apr_pools.h>

/* Longest Authorization header value looked at, and longest token accepted (Bitbucket's are ~44 characters). */
#define BB_CREDENTIAL_MAX_HEADER 8192
#define BB_CREDENTIAL_MAX_TOKEN  1024

typedef enum {
    BB_CRED_SCHEME_BEARER = 0,
    BB_CRED_SCHEME_BASIC
} bb_cred_scheme_t;

/* A token as a command-line client sent it. Nothing here is an identity: only Bitbucket's answer for the token
 * says who its owner is. Whatever the scheme, the token is checked at Bitbucket as a Bearer token, which every
 * kind of HTTP access token accepts (project and repository tokens accept nothing else). */
typedef struct {
    const char *token;             /* RFC 6750 b64token: [A-Za-z0-9-._~+/]+ then '='*, at most MAX_TOKEN */
    const char *basic_username;    /* Basic "user:token": user (a hint for log lines only); otherwise NULL */
    bb_cred_scheme_t scheme;
} bb_credential_t;

typedef enum {
    BB_CRED_OK = 0,
    BB_CRED_MISSING,          /* NULL or empty header */
    BB_CRED_UNKNOWN_SCHEME,   /* not "Bearer" or "Basic" (compared case-insensitively), or no scheme */
    BB_CRED_HEADER_TOO_LONG,  /* over BB_CREDENTIAL_MAX_HEADER */
    BB_CRED_NO_CREDENTIALS,   /* the scheme without one or more spaces and something after them */
    BB_CRED_BAD_BASE64,       /* Basic: not strict standard base64 with padding */
    BB_CRED_NO_COLON,         /* Basic: decoded text without ':' */
    BB_CRED_EMPTY,            /* Basic: both user and password empty */
    BB_CRED_CONTROL_CHAR,     /* a byte < 0x20 or 0x7f (CR, LF, NUL, TAB, ...) in the header or a decoded part */
    BB_CRED_NON_ASCII,        /* a byte >= 0x80 in the token */
    BB_CRED_PERCENT,          /* '%' in the token: percent-encoded, never a Bitbucket token */
    BB_CRED_TOKEN_TOO_LONG,   /* over BB_CREDENTIAL_MAX_TOKEN */
    BB_CRED_BAD_TOKEN         /* any other character outside b64token, or '=' before the end */
} bb_cred_status_t;

/* Parses an Authorization header value. Accepted:
 *   "Bearer <token>"
 *   "Basic " base64("<user>:<token>")  the password is the token (Git, Maven, Composer http-basic, ...); the user
 *                                      is kept in basic_username, or NULL when empty
 *   "Basic " base64("<token>:")        an empty password: the user is the token (pip's https://TOKEN@host/)
 * The scheme is followed by one or more spaces; trailing spaces and tabs are ignored. Basic's base64 must be
 * padded (RFC 7617 and every client send it so), which keeps one accepted spelling per credential.
 * On BB_CRED_OK *out is a pool-owned credential; on anything else *out is untouched. Never fails on any input. */
bb_cred_status_t bb_credential_parse(apr_pool_t *p, const char *header, bb_credential_t **out);

/* Short text of a status for log lines ("bad base64", ...); never contains any part of the credential. */
const char *bb_credential_reason(bb_cred_status_t status);

#endif
