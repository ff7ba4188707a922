/* bb_credential: parses an Authorization header (Bearer or Basic) into a Bitbucket HTTP access token. */
#include <string.h>
#include <strings.h>
#include <apr_strings.h>
#include "bb_util.h"
#include "bb_credential.h"

const char *bb_credential_reason(bb_cred_status_t status)
{
    switch (status) {
    case BB_CRED_OK:              return "ok";
    case BB_CRED_MISSING:         return "no credentials";
    case BB_CRED_UNKNOWN_SCHEME:  return "not a Bearer or Basic credential";
    case BB_CRED_HEADER_TOO_LONG: return "Authorization header too long";
    case BB_CRED_NO_CREDENTIALS:  return "scheme without credentials";
    case BB_CRED_BAD_BASE64:      return "Basic credentials are not padded standard base64";
    case BB_CRED_NO_COLON:        return "Basic credentials without ':'";
    case BB_CRED_EMPTY:           return "empty Basic user and password";
    case BB_CRED_CONTROL_CHAR:    return "control character in the credentials";
    case BB_CRED_NON_ASCII:       return "non-ASCII byte in the token";
    case BB_CRED_PERCENT:         return "'%' in the token";
    case BB_CRED_TOKEN_TOO_LONG:  return "token too long";
    case BB_CRED_BAD_TOKEN:       return "token has characters outside the token alphabet";
    }
    return "unknown";
}

static int has_control(const char *s, apr_size_t len)
{
    apr_size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            return 1;
        }
    }
    return 0;
}

/* RFC 6750 b64token characters before the '=' padding. Explicit ranges: no dependence on the locale. */
static int is_token_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
        || c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

/* Checks a non-empty, control-free token; the specific reasons come first so that log lines say what is wrong. */
static bb_cred_status_t check_token(const char *token, apr_size_t len)
{
    apr_size_t body = len, i;

    if (len > BB_CREDENTIAL_MAX_TOKEN) {
        return BB_CRED_TOKEN_TOO_LONG;
    }
    while (body > 0 && token[body - 1] == '=') {
        body--;
    }
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)token[i];
        if (c >= 0x80) {
            return BB_CRED_NON_ASCII;
        }
        if (c == '%') {
            return BB_CRED_PERCENT;
        }
        if (i < body && !is_token_char(c)) {
            return BB_CRED_BAD_TOKEN;
        }
    }
    return body > 0 ? BB_CRED_OK : BB_CRED_BAD_TOKEN;
}

static bb_cred_status_t make_credential(apr_pool_t *p, bb_cred_scheme_t scheme, const char *token,
                                        apr_size_t token_len, const char *user, apr_size_t user_len,
                                        bb_credential_t **out)
{
    bb_cred_status_t status = check_token(token, token_len);
    bb_credential_t *cred;

    if (status != BB_CRED_OK) {
        return status;
    }
    cred = apr_pcalloc(p, sizeof(*cred));
    cred->scheme = scheme;
    cred->token = apr_pstrmemdup(p, token, token_len);
    cred->basic_username = user_len > 0 ? apr_pstrmemdup(p, user, user_len) : NULL;
    *out = cred;
    return BB_CRED_OK;
}

/* "user:password" after base64. Split at the first ':' (RFC 7617: the user-id cannot contain one). */
static bb_cred_status_t parse_basic(apr_pool_t *p, const char *b64, apr_size_t b64_len, bb_credential_t **out)
{
    apr_size_t len, user_len, pass_len;
    const char *text = (const char *)bb_base64_decode(p, b64, b64_len, &len);
    const char *colon;

    if (text == NULL) {
        return BB_CRED_BAD_BASE64;
    }
    if (has_control(text, len)) {
        return BB_CRED_CONTROL_CHAR;
    }
    colon = memchr(text, ':', len);
    if (colon == NULL) {
        return BB_CRED_NO_COLON;
    }
    user_len = (apr_size_t)(colon - text);
    pass_len = len - user_len - 1;
    if (pass_len > 0) {
        return make_credential(p, BB_CRED_SCHEME_BASIC, colon + 1, pass_len, text, user_len, out);
    }
    if (user_len > 0) {
        /* pip's token-as-username form: the only secret sent is the user part. */
        return make_credential(p, BB_CRED_SCHEME_BASIC, text, user_len, NULL, 0, out);
    }
    return BB_CRED_EMPTY;
}

/* 1 when the len bytes at s are `name`, ignoring ASCII case (RFC 7235 §2.1: schemes are case-insensitive). */
static int scheme_is(const char *s, apr_size_t len, const char *name)
{
    return len == strlen(name) && strncasecmp(s, name, len) == 0;
}

bb_cred_status_t bb_credential_parse(apr_pool_t *p, const char *header, bb_credential_t **out)
{
    apr_size_t len, scheme_len, rest;
    int bearer;

    if (header == NULL || header[0] == '\0') {
        return BB_CRED_MISSING;
    }
    len = strnlen(header, BB_CREDENTIAL_MAX_HEADER + 1);
    if (len > BB_CREDENTIAL_MAX_HEADER) {
        return BB_CRED_HEADER_TOO_LONG;
    }
    while (len > 0 && (header[len - 1] == ' ' || header[len - 1] == '\t')) {
        len--;
    }
    if (has_control(header, len)) {
        return BB_CRED_CONTROL_CHAR;
    }
    scheme_len = 0;
    while (scheme_len < len && header[scheme_len] != ' ') {
        scheme_len++;
    }
    bearer = scheme_is(header, scheme_len, "Bearer");
    if (!bearer && !scheme_is(header, scheme_len, "Basic")) {
        return BB_CRED_UNKNOWN_SCHEME;
    }
    rest = scheme_len;
    while (rest < len && header[rest] == ' ') {
        rest++;
    }
    if (rest == len) {
        return BB_CRED_NO_CREDENTIALS;
    }
    return bearer ? make_credential(p, BB_CRED_SCHEME_BEARER, header + rest, len - rest, NULL, 0, out)
                  : parse_basic(p, header + rest, len - rest, out);
}
