/* fake_response.h: Bitbucket answers made up for the unit tests of the parsers (no network). */
#ifndef BB_FAKE_RESPONSE_H
#define BB_FAKE_RESPONSE_H

#include <string.h>
#include <apr_tables.h>
#include "bb_http.h"

/* An answer with a body of len bytes (it may hold NULs) and, when location is not NULL, a Location header. */
static inline bb_http_response_t *response_full(apr_pool_t *p, int status, const char *content_type, const char *body,
                                         apr_size_t len, const char *location)
{
    bb_http_response_t *resp = apr_pcalloc(p, sizeof(*resp));

    resp->status = status;
    resp->content_type = content_type;
    resp->body = body;
    resp->body_len = len;
    resp->headers = apr_table_make(p, 2);
    if (location) {
        apr_table_set(resp->headers, "Location", location);
    }
    return resp;
}

static inline bb_http_response_t *response(apr_pool_t *p, int status, const char *content_type, const char *body)
{
    return response_full(p, status, content_type, body, strlen(body), NULL);
}

/* A text answer with a Location header (location may be NULL). */
static inline bb_http_response_t *response_at(apr_pool_t *p, int status, const char *content_type, const char *body,
                                       const char *location)
{
    return response_full(p, status, content_type, body, strlen(body), location);
}

#endif
