/* bb_bitbucket: Bitbucket's REST API: who the caller is, the user's record, and what the caller may read. */
#ifndef BB_BITBUCKET_H
#define BB_BITBUCKET_H

#include <apr_pools.h>
#include "bb_util.h"
#include "bb_http.h"

#define BB_WHOAMI_PATH         "/plugins/servlet/applinks/whoami"
#define BB_USERS_PATH          "/rest/api/1.0/users"
/* The groups a user is in: needs LICENSED_USER, not admin, despite the path. */
#define BB_GROUPS_OF_USER_PATH "/rest/api/1.0/admin/users/more-members"
#define BB_PROJECTS_PATH       "/rest/api/1.0/projects/"

/* Returns the Authorization header value for one request (Bearer token, OAuth 1 signature, ...). */
typedef const char *bb_authorizer_fn(apr_pool_t *p, void *baton, const char *method, const char *url);

typedef struct {
    const char *base_url;            /* no trailing '/' */
    const bb_http_opts_t *http;
    bb_authorizer_fn *authorize;
    void *baton;
} bb_bitbucket_t;

typedef struct {
    const char *name;                /* username: what whoami returns and what the session's sub holds */
    const char *slug;                /* may differ from name (e.g. '@' becomes '_') */
    const char *display_name;
    const char *email;               /* "" when Bitbucket does not show it */
    const char *type;                /* "NORMAL" or "SERVICE" */
    apr_int64_t id;
    int active;
} bb_user_t;

/* Authorizer for a bearer token: baton is the NUL-terminated token. */
const char *bb_bearer_authorizer(apr_pool_t *p, void *baton, const char *method, const char *url);

/* GET <base>/plugins/servlet/applinks/whoami: the username. An empty body (Bitbucket's answer for an unknown or
 * expired token) or a 401 is BB_DENIED; HTML or a redirect is BB_BAD_RESPONSE (see bb_bitbucket_parse_whoami).
 * Transport failures as bb_http_request, prefixed "whoami: " (bb_bitbucket_user: "users: ", bb_bitbucket_may_read:
 * "permission check: ", bb_bitbucket_in_group: "group check: "); no Authorization from the authorizer:
 * BB_UNAVAILABLE. Messages about unusable answers end with what to check. */
bb_status_t bb_bitbucket_whoami(apr_pool_t *p, const bb_bitbucket_t *bb, const char **username,
                                const char **errmsg);

/* GET <base>/rest/api/1.0/users?filter=<username>&limit=100, then the entry whose name equals username exactly,
 * else case-insensitively (usernames are unique regardless of case; user->name is then Bitbucket's spelling).
 * The slug may differ from the name, so /users/{slug} is not used. The filter also matches display names and
 * e-mail addresses, so up to 10 pages are read. BB_NOT_FOUND when no entry matches (also for SERVICE users of
 * project/repository tokens, which /users does not list); 401 → BB_DENIED; anything but 200 JSON with a
 * "values" array, or a matching entry without integer id > 0, string name, slug, displayName, type and boolean
 * active → BB_BAD_RESPONSE. Messages: "users at <url>: ...". */
bb_status_t bb_bitbucket_user(apr_pool_t *p, const bb_bitbucket_t *bb, const char *username, bb_user_t **user,
                              const char **errmsg);

/* whoami then user: the full identity of the credential's owner. */
bb_status_t bb_bitbucket_identify(apr_pool_t *p, const bb_bitbucket_t *bb, bb_user_t **user, const char **errmsg);

/* With the caller's credential: GET <base>/rest/api/1.0/projects/{project} (repo NULL: may the caller view the
 * project?) or .../projects/{project}/repos/{repo} (may the caller read the repository?). BB_OK for 200 JSON;
 * BB_DENIED for 401 or 404 (Bitbucket's "not permitted" and "no such thing", deliberately alike); other answers
 * BB_BAD_RESPONSE; transport failures as bb_http_request. */
bb_status_t bb_bitbucket_may_read(apr_pool_t *p, const bb_bitbucket_t *bb, const char *project, const char *repo,
                                  const char **errmsg);

/* With the caller's credential: GET <base>/rest/api/1.0/admin/users/more-members?context=<username>&filter=<group>
 * (LICENSED_USER). BB_OK when the page names the group (case-insensitively); BB_DENIED when it does not, or for
 * 401/404 (HTTP access tokens may not ask: Bitbucket keeps them off /admin); other answers BB_BAD_RESPONSE. */
bb_status_t bb_bitbucket_in_group(apr_pool_t *p, const bb_bitbucket_t *bb, const char *username, const char *group,
                                  const char **errmsg);

/* Pure parsers, for the unit tests: a users page (JSON with "values") → the entry named username. */
bb_status_t bb_bitbucket_parse_users(apr_pool_t *p, const bb_http_response_t *resp, const char *url,
                                     const char *username, bb_user_t **user, const char **errmsg);

/* A whoami answer → the username (trimmed): 401 or an empty body → BB_DENIED; any other non-200, text/html, a
 * type other than text/plain, or a body with any of <>{}[]"\, control characters (NUL too) or over 255 bytes →
 * BB_BAD_RESPONSE: an HTML page is never taken for a username. Messages: "whoami at <url>: ...". */
bb_status_t bb_bitbucket_parse_whoami(apr_pool_t *p, const bb_http_response_t *resp, const char *url,
                                      const char **username, const char **errmsg);

#endif
