/* bb_bitbucket: Bitbucket's REST calls: whoami (whose credential this is), that user's record, and what they may read. */
#include <string.h>
#include <apr_strings.h>
#include <jansson.h>
#include "bb_bitbucket.h"
#include "bb_oauth1.h"
#include "bb_url.h"

/* Users per page, and pages read before giving up: the filter also matches display names and e-mail addresses
 * by substring, so a short username can match many users. */
#define USERS_PAGE_SIZE 100
#define MAX_USER_PAGES  10
/* Longest username taken from whoami. */
#define MAX_USERNAME 255

const char *bb_bearer_authorizer(apr_pool_t *p, void *baton, const char *method, const char *url)
{
    return apr_pstrcat(p, "Bearer ", (const char *)baton, NULL);
}

/* GETs url with the credential's Authorization header; a failure's message starts with what the call is for
 * ("whoami: GET <url>: ..."). */
static bb_status_t get(apr_pool_t *p, const bb_bitbucket_t *bb, const char *what, const char *url,
                       const char *accept, bb_http_response_t **resp, const char **errmsg)
{
    const char *authorization = bb->authorize(p, bb->baton, "GET", url);
    apr_table_t *headers = apr_table_make(p, 2);
    bb_status_t status;

    *resp = NULL;
    if (authorization == NULL) {
        *errmsg = apr_psprintf(p, "%s: GET %s: not sent: no Authorization header could be made for it", what,
                               bb_url_for_log(p, url));
        return BB_UNAVAILABLE;
    }
    apr_table_setn(headers, "Authorization", authorization);
    apr_table_setn(headers, "Accept", accept);
    status = bb_http_request(p, bb->http, "GET", url, headers, NULL, NULL, resp, errmsg);
    if (status != BB_OK) {
        *errmsg = apr_psprintf(p, "%s: %s", what, *errmsg);
    }
    return status;
}

/* The message for a 401: Bitbucket refused the credential, for the reason an OAuth 1 challenge names if any. */
static const char *refused(apr_pool_t *p, const char *where, const bb_http_response_t *resp)
{
    const char *problem = bb_oauth1_challenge_problem(p, resp);

    return apr_psprintf(p, "%s: HTTP 401: Bitbucket refused the credential%s%s", where, problem ? ": " : "",
                        problem ? problem : "");
}

static int is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Whether a whoami answer can be a username: not too long, no control characters (NUL included), and none of
 * the characters of markup or JSON, which directory usernames cannot hold either (Active Directory forbids
 * them all). */
static int is_plain_name(const char *name, apr_size_t len)
{
    apr_size_t i;

    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (c < 0x20 || c == 0x7f || strchr("<>{}[]\"\\", c)) {
            return 0;
        }
    }
    return len <= MAX_USERNAME;
}

bb_status_t bb_bitbucket_parse_whoami(apr_pool_t *p, const bb_http_response_t *resp, const char *url,
                                      const char **username, const char **errmsg)
{
    const char *where = apr_psprintf(p, "whoami at %s", bb_url_for_log(p, url));
    const char *start = resp->body;
    const char *end = resp->body + resp->body_len;

    *username = NULL;
    if (resp->status == 401) {
        *errmsg = refused(p, where, resp);
        return BB_DENIED;
    }
    if (resp->status != 200 || strcmp(resp->content_type, "text/html") == 0) {
        *errmsg = apr_psprintf(p, "%s: unusable answer, never taken for a username: %s", where,
                               bb_http_describe(p, resp));
        return BB_BAD_RESPONSE;
    }
    for (; start < end && is_blank(*start); start++) {
    }
    while (end > start && is_blank(end[-1])) {
        end--;
    }
    /* Bitbucket answers an unknown, expired or revoked token as an anonymous request: 200 and nothing. */
    if (start == end) {
        *errmsg = apr_psprintf(p, "%s: Bitbucket did not recognise the token (an empty answer: unknown, expired "
                               "or revoked)", where);
        return BB_DENIED;
    }
    if (strcmp(resp->content_type, "text/plain") != 0) {
        *errmsg = apr_psprintf(p, "%s: unusable answer, never taken for a username: not text/plain but %s",
                               where, bb_http_describe(p, resp));
        return BB_BAD_RESPONSE;
    }
    if (!is_plain_name(start, (apr_size_t)(end - start))) {
        *errmsg = apr_psprintf(p, "%s: unusable answer, never taken for a username: markup, JSON, control "
                               "characters or over %d bytes" BB_HTTP_NOT_BITBUCKET, where, MAX_USERNAME);
        return BB_BAD_RESPONSE;
    }
    *username = apr_pstrmemdup(p, start, (apr_size_t)(end - start));
    return BB_OK;
}

bb_status_t bb_bitbucket_whoami(apr_pool_t *p, const bb_bitbucket_t *bb, const char **username,
                                const char **errmsg)
{
    const char *url = bb_url_join(p, bb->base_url, BB_WHOAMI_PATH);
    bb_http_response_t *resp;
    bb_status_t status = get(p, bb, "whoami", url, "text/plain", &resp, errmsg);

    *username = NULL;
    if (status != BB_OK) {
        return status;
    }
    return bb_bitbucket_parse_whoami(p, resp, url, username, errmsg);
}

/* Copies a users-page entry into user; returns the name of the member that is missing or of the wrong type,
 * or NULL. Only emailAddress is optional (absent or null): Bitbucket leaves it out when it may not be shown. */
static const char *read_user(apr_pool_t *p, const json_t *entry, bb_user_t *user)
{
    const json_t *id = json_object_get(entry, "id");
    const json_t *active = json_object_get(entry, "active");
    const json_t *email = json_object_get(entry, "emailAddress");

    if (!json_is_integer(id) || json_integer_value(id) <= 0) {
        return "id";
    }
    if (!json_is_boolean(active)) {
        return "active";
    }
    if (email && !json_is_string(email) && !json_is_null(email)) {
        return "emailAddress";
    }
    user->id = (apr_int64_t)json_integer_value(id);
    user->active = json_is_true(active);
    user->email = json_is_string(email) ? apr_pstrdup(p, json_string_value(email)) : "";
    if ((user->name = bb_json_string(p, entry, "name")) == NULL) {
        return "name";
    }
    if ((user->slug = bb_json_string(p, entry, "slug")) == NULL) {
        return "slug";
    }
    if ((user->display_name = bb_json_string(p, entry, "displayName")) == NULL) {
        return "displayName";
    }
    if ((user->type = bb_json_string(p, entry, "type")) == NULL) {
        return "type";
    }
    return NULL;
}

/* The entry of values whose name is username: exactly, else case-insensitively (Bitbucket's usernames are
 * unique regardless of case); NULL when none. *malformed is set when an entry has no string name. */
static const json_t *find_user(const json_t *values, const char *username, int *malformed)
{
    const json_t *entry, *folded = NULL;
    size_t i;

    *malformed = 0;
    json_array_foreach(values, i, entry) {
        const char *name = json_string_value(json_object_get(entry, "name"));
        if (name == NULL) {
            *malformed = 1;
            return NULL;
        }
        if (strcmp(name, username) == 0) {
            return entry;
        }
        if (folded == NULL && strcasecmp(name, username) == 0) {
            folded = entry;
        }
    }
    return folded;
}

/* Where the next page starts, or -1 when this was the last one or the page does not say. */
static apr_int64_t next_page_start(const json_t *page)
{
    const json_t *next = json_object_get(page, "nextPageStart");

    if (json_is_true(json_object_get(page, "isLastPage")) || !json_is_integer(next) || json_integer_value(next) <= 0) {
        return -1;
    }
    return (apr_int64_t)json_integer_value(next);
}

/* bb_bitbucket_parse_users, also telling where the next page starts when the user is not on this one. */
static bb_status_t read_users_page(apr_pool_t *p, const bb_http_response_t *resp, const char *url,
                                   const char *username, bb_user_t **user, apr_int64_t *next_start,
                                   const char **errmsg)
{
    const char *where = apr_psprintf(p, "users at %s", bb_url_for_log(p, url));
    const json_t *page, *values, *entry;
    const char *wrong;
    bb_user_t *found;
    int malformed;

    *user = NULL;
    *next_start = -1;
    if (resp->status == 401) {
        *errmsg = refused(p, where, resp);
        return BB_DENIED;
    }
    if (resp->status != 200 || strcmp(resp->content_type, "application/json") != 0) {
        *errmsg = apr_psprintf(p, "%s: unusable answer: %s", where, bb_http_describe(p, resp));
        return BB_BAD_RESPONSE;
    }
    page = bb_json_parse(p, resp->body, resp->body_len);
    values = json_is_object(page) ? json_object_get(page, "values") : NULL;
    if (page == NULL) {
        *errmsg = apr_psprintf(p, "%s: unusable answer: not valid JSON" BB_HTTP_NOT_BITBUCKET, where);
        return BB_BAD_RESPONSE;
    }
    if (!json_is_array(values)) {
        *errmsg = apr_psprintf(p, "%s: unusable answer: not a page of users (no \"values\" array)"
                               BB_HTTP_NOT_BITBUCKET, where);
        return BB_BAD_RESPONSE;
    }
    entry = find_user(values, username, &malformed);
    if (malformed) {
        *errmsg = apr_psprintf(p, "%s: unusable answer: a user entry without a string \"name\""
                               BB_HTTP_NOT_BITBUCKET, where);
        return BB_BAD_RESPONSE;
    }
    if (entry == NULL) {
        *next_start = next_page_start(page);
        *errmsg = apr_psprintf(p, "%s: no Bitbucket user named %s", where, bb_strip_controls(p, username));
        return BB_NOT_FOUND;
    }
    found = apr_pcalloc(p, sizeof(*found));
    wrong = read_user(p, entry, found);
    if (wrong) {
        *errmsg = apr_psprintf(p, "%s: unusable answer: the user entry lacks a valid \"%s\"" BB_HTTP_NOT_BITBUCKET,
                               where, wrong);
        return BB_BAD_RESPONSE;
    }
    *user = found;
    return BB_OK;
}

bb_status_t bb_bitbucket_parse_users(apr_pool_t *p, const bb_http_response_t *resp, const char *url,
                                     const char *username, bb_user_t **user, const char **errmsg)
{
    apr_int64_t next_start;

    return read_users_page(p, resp, url, username, user, &next_start, errmsg);
}

bb_status_t bb_bitbucket_user(apr_pool_t *p, const bb_bitbucket_t *bb, const char *username, bb_user_t **user,
                              const char **errmsg)
{
    const char *users_url = bb_url_join(p, bb->base_url, BB_USERS_PATH);
    const char *limit = apr_itoa(p, USERS_PAGE_SIZE);
    apr_int64_t start = 0;
    int pages;

    *user = NULL;
    for (pages = 0; pages < MAX_USER_PAGES; pages++) {
        const char *url = bb_url_with_query(p, users_url, "filter", username, "limit", limit, "start",
                                            start > 0 ? apr_psprintf(p, "%" APR_INT64_T_FMT, start) : NULL,
                                            (char *)NULL);
        bb_http_response_t *resp;
        apr_int64_t next_start;
        bb_status_t status = get(p, bb, "users", url, "application/json", &resp, errmsg);

        if (status != BB_OK) {
            return status;
        }
        status = read_users_page(p, resp, url, username, user, &next_start, errmsg);
        /* A next start that does not move on would loop. */
        if (status != BB_NOT_FOUND || next_start <= start) {
            return status;
        }
        start = next_start;
    }
    *errmsg = apr_psprintf(p, "users at %s: no Bitbucket user named %s among the first %d matches of the filter",
                           users_url, bb_strip_controls(p, username), MAX_USER_PAGES * USERS_PAGE_SIZE);
    return BB_NOT_FOUND;
}

bb_status_t bb_bitbucket_identify(apr_pool_t *p, const bb_bitbucket_t *bb, bb_user_t **user, const char **errmsg)
{
    const char *username;
    bb_status_t status = bb_bitbucket_whoami(p, bb, &username, errmsg);

    *user = NULL;
    if (status != BB_OK) {
        return status;
    }
    return bb_bitbucket_user(p, bb, username, user, errmsg);
}

/* A 200 JSON answer: BB_OK; 401 (not permitted) or 404 (no such thing): BB_DENIED, the two on purpose alike to
 * the caller; anything else: BB_BAD_RESPONSE. */
static bb_status_t permitted(apr_pool_t *p, const bb_http_response_t *resp, const char *where, const char **errmsg)
{
    if (resp->status == 401 || resp->status == 404) {
        *errmsg = apr_psprintf(p, "%s: HTTP %d: not permitted, or no such thing", where, resp->status);
        return BB_DENIED;
    }
    if (resp->status != 200 || strcmp(resp->content_type, "application/json") != 0) {
        *errmsg = apr_psprintf(p, "%s: unusable answer: %s", where, bb_http_describe(p, resp));
        return BB_BAD_RESPONSE;
    }
    return BB_OK;
}

bb_status_t bb_bitbucket_may_read(apr_pool_t *p, const bb_bitbucket_t *bb, const char *project, const char *repo,
                                  const char **errmsg)
{
    const char *path = apr_pstrcat(p, BB_PROJECTS_PATH, bb_url_encode(p, project),
                                   repo ? "/repos/" : "", repo ? bb_url_encode(p, repo) : "", NULL);
    const char *url = bb_url_join(p, bb->base_url, path);
    bb_http_response_t *resp;
    bb_status_t status = get(p, bb, "permission check", url, "application/json", &resp, errmsg);

    return status == BB_OK ? permitted(p, resp, url, errmsg) : status;
}

/* 1 when a page of groups ({"values": [{"name": ...}]}) holds `group` (Bitbucket's group names are
 * case-insensitive). */
static int page_has_group(const json_t *values, const char *group)
{
    size_t i;
    const json_t *entry;

    json_array_foreach(values, i, entry) {
        const json_t *name = json_object_get(entry, "name");
        if (json_is_string(name) && !strcasecmp(json_string_value(name), group)) {
            return 1;
        }
    }
    return 0;
}

bb_status_t bb_bitbucket_in_group(apr_pool_t *p, const bb_bitbucket_t *bb, const char *username, const char *group,
                                  const char **errmsg)
{
    const char *url = bb_url_with_query(p, bb_url_join(p, bb->base_url, BB_GROUPS_OF_USER_PATH), "context", username,
                                        "filter", group, "limit", "1000", (char *)NULL);
    bb_http_response_t *resp;
    const json_t *page, *values;
    bb_status_t status = get(p, bb, "group check", url, "application/json", &resp, errmsg);

    if (status != BB_OK || (status = permitted(p, resp, bb_url_for_log(p, url), errmsg)) != BB_OK) {
        return status;
    }
    page = bb_json_parse(p, resp->body, resp->body_len);
    values = json_is_object(page) ? json_object_get(page, "values") : NULL;
    if (!json_is_array(values)) {
        *errmsg = apr_psprintf(p, "groups at %s: unusable answer: no \"values\" array", bb_url_for_log(p, url));
        return BB_BAD_RESPONSE;
    }
    if (!page_has_group(values, group)) {
        *errmsg = apr_psprintf(p, "%s is not in the group %s", bb_strip_controls(p, username),
                               bb_strip_controls(p, group));
        return BB_DENIED;
    }
    return BB_OK;
}
