/* test_bitbucket: reading whoami answers and users pages, the bearer authorizer, failures before any answer, and
 * against a TLS server on 127.0.0.1: the users look-up's paging, permission checks and group membership. */
#include "unit.h"
#include "fake_response.h"
#include "tls_server.h"
#include <signal.h>
#include "bb_bitbucket.h"
#include "bb_url.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const char *whoami_url = "https://bitbucket.example.com/bitbucket/plugins/servlet/applinks/whoami";
static const char *users_url = "https://bitbucket.example.com/bitbucket/rest/api/1.0/users?filter=jane&limit=100";

/* A users entry as Bitbucket sends it; extra is spliced in before the closing brace. */
#define USER(name, slug, id, extra) \
    "{\"name\":\"" name "\",\"emailAddress\":\"" name "@mail.example\",\"active\":true,\"displayName\":\"D " name \
    "\",\"id\":" #id ",\"slug\":\"" slug "\",\"type\":\"NORMAL\",\"links\":{\"self\":[{\"href\":\"x\"}]}" extra "}"
#define PAGE(values) "{\"size\":1,\"limit\":100,\"isLastPage\":true,\"start\":0,\"values\":[" values "]}"

static void assert_contains(const char *haystack, const char *needle)
{
    if (haystack == NULL || strstr(haystack, needle) == NULL) {
        fail_msg("\"%s\" does not contain \"%s\"", haystack ? haystack : "(null)", needle);
    }
}

/* ---- whoami ---- */

static bb_status_t whoami(apr_pool_t *p, const bb_http_response_t *resp, const char **username, const char **errmsg)
{
    bb_status_t status;

    *errmsg = NULL;
    status = bb_bitbucket_parse_whoami(p, resp, whoami_url, username, errmsg);
    if (status == BB_OK) {
        assert_non_null(*username);
    }
    else {
        assert_null(*username);
        assert_contains(*errmsg, "whoami at https://bitbucket.example.com/bitbucket/plugins/servlet/applinks/whoami");
    }
    return status;
}

static void test_whoami_username(void **state)
{
    apr_pool_t *p = *state;
    const char *username, *errmsg;
    char name255[256];

    assert_int_equal(whoami(p, response(p, 200, "text/plain", " jane@example.com\r\n"), &username, &errmsg), BB_OK);
    assert_string_equal(username, "jane@example.com");
    assert_int_equal(whoami(p, response(p, 200, "text/plain", "j\xc3\xbcrgen"), &username, &errmsg), BB_OK);
    assert_string_equal(username, "j\xc3\xbcrgen");
    memset(name255, 'a', 255);
    name255[255] = '\0';
    assert_int_equal(whoami(p, response(p, 200, "text/plain", name255), &username, &errmsg), BB_OK);
    assert_int_equal(strlen(username), 255);
}

/* Bitbucket's answer for a token it does not know: 200 and nothing, or a 401. */
static void test_whoami_unknown_token(void **state)
{
    apr_pool_t *p = *state;
    const char *username, *errmsg;

    assert_int_equal(whoami(p, response(p, 200, "text/plain", ""), &username, &errmsg), BB_DENIED);
    assert_contains(errmsg, "did not recognise the token");
    assert_int_equal(whoami(p, response(p, 200, "", " \r\n\t"), &username, &errmsg), BB_DENIED);
    assert_int_equal(whoami(p, response(p, 401, "application/json", "{\"errors\":[]}"), &username, &errmsg),
                     BB_DENIED);
    assert_contains(errmsg, "HTTP 401");
}

/* A signed OAuth 1 call that Bitbucket refuses says why in WWW-Authenticate: the message names it and the fix. */
static void test_refusal_names_the_oauth_problem(void **state)
{
    apr_pool_t *p = *state;
    const char *username, *errmsg;
    bb_http_response_t *resp = response(p, 401, "text/plain", "oauth_problem=token_rejected");
    bb_user_t *user;

    apr_table_set(resp->headers, "WWW-Authenticate", "OAuth realm=\"https://bb\", oauth_problem=\"token_rejected\"");
    assert_int_equal(whoami(p, resp, &username, &errmsg), BB_DENIED);
    assert_contains(errmsg, "HTTP 401: Bitbucket refused the credential: oauth_problem=token_rejected: ");
    assert_contains(errmsg, "start again");
    apr_table_set(resp->headers, "WWW-Authenticate", "OAuth realm=\"https://bb\", oauth_problem=\"timestamp_refused\"");
    assert_int_equal(bb_bitbucket_parse_users(p, resp, users_url, "jane", &user, &errmsg), BB_DENIED);
    assert_contains(errmsg, "oauth_problem=timestamp_refused: this server's time");
    apr_table_set(resp->headers, "WWW-Authenticate", "Bearer realm=\"x\"");
    assert_int_equal(whoami(p, resp, &username, &errmsg), BB_DENIED);
    assert_null(strstr(errmsg, "oauth_problem"));
}

/* Never treat HTML (or anything else that is not a plain name) as a username. */
static void test_whoami_never_html(void **state)
{
    apr_pool_t *p = *state;
    static const struct { int status; const char *content_type, *body, *says; } table[] = {
        { 200, "text/html", "<html><form>Two-step verification</form></html>", "two-factor" },
        { 200, "text/html", "jane", "HTML page" },
        { 200, "text/html", "", "HTML page" },
        { 200, "text/plain", "<html>jane</html>", "markup" },
        { 200, "text/plain", "jane<", "markup" },
        { 200, "text/plain", "{\"unexpected\": true, \"name\": null}", "JSON" },
        { 200, "text/plain", "[\"jane\"]", "JSON" },
        { 200, "text/plain", "\"jane\"", "JSON" },
        { 200, "text/plain", "dom\\jane", "JSON" },
        { 200, "text/plain", "ja\x1b[31mne", "control" },
        { 200, "text/plain", "ja\r\nne", "control" },
        { 200, "application/json", "\"jane\"", "not text/plain but HTTP 200 (application/json)" },
        { 200, "", "jane", "not text/plain but HTTP 200 (" },
        { 302, "text/html", "", "HTTP 302 redirect" },
        { 404, "text/plain", "jane", "HTTP 404" },
        { 500, "text/plain", "jane", "HTTP 500" },
    };
    const char *username, *errmsg;
    char name256[257];
    size_t i;

    for (i = 0; i < ARRAY_LEN(table); i++) {
        if (whoami(p, response(p, table[i].status, table[i].content_type, table[i].body), &username, &errmsg)
            != BB_BAD_RESPONSE) {
            fail_msg("case %zu was not refused", i);
        }
        assert_contains(errmsg, table[i].says);
        assert_contains(errmsg, "never taken for a username");
        assert_contains(errmsg, "check ");
    }
    memset(name256, 'a', 256);
    name256[256] = '\0';
    assert_int_equal(whoami(p, response(p, 200, "text/plain", name256), &username, &errmsg), BB_BAD_RESPONSE);
    /* A NUL would cut the name short if the body were read as a C string. */
    assert_int_equal(whoami(p, response_full(p, 200, "text/plain", "jane\0admin", 10, NULL), &username, &errmsg),
                     BB_BAD_RESPONSE);
}

/* ---- users ---- */

static bb_status_t users(apr_pool_t *p, const bb_http_response_t *resp, const char *username, bb_user_t **user,
                         const char **errmsg)
{
    bb_status_t status;

    *errmsg = NULL;
    status = bb_bitbucket_parse_users(p, resp, users_url, username, user, errmsg);
    if (status == BB_OK) {
        assert_non_null(*user);
    }
    else {
        assert_null(*user);
        assert_contains(*errmsg, "users at https://bitbucket.example.com/bitbucket/rest/api/1.0/users: ");
        /* The query string stays out of messages. */
        assert_null(strstr(*errmsg, "filter="));
    }
    return status;
}

static bb_http_response_t *users_page(apr_pool_t *p, const char *body)
{
    return response(p, 200, "application/json", body);
}

/* The filter also matches display names and e-mail addresses: only the name decides, and the slug may differ. */
static void test_users_exact_match_slug_differs(void **state)
{
    apr_pool_t *p = *state;
    const char *errmsg;
    bb_user_t *user;
    bb_http_response_t *resp = users_page(p, PAGE(USER("jane", "jane", 3, "") ","
                                                  USER("jane@example.com", "jane_example.com", 12, "") ","
                                                  USER("jane@example.com.au", "jane_example.com.au", 13, "")));

    assert_int_equal(users(p, resp, "jane@example.com", &user, &errmsg), BB_OK);
    assert_string_equal(user->name, "jane@example.com");
    assert_string_equal(user->slug, "jane_example.com");
    assert_string_equal(user->display_name, "D jane@example.com");
    assert_string_equal(user->email, "jane@example.com@mail.example");
    assert_string_equal(user->type, "NORMAL");
    assert_int_equal(user->id, 12);
    assert_true(user->active);

    assert_int_equal(users(p, resp, "jane", &user, &errmsg), BB_OK);
    assert_int_equal(user->id, 3);
}

static void test_users_case_insensitive_fallback(void **state)
{
    apr_pool_t *p = *state;
    const char *errmsg;
    bb_user_t *user;

    assert_int_equal(users(p, users_page(p, PAGE(USER("Jane.Doe", "jane.doe", 7, ""))), "jane.doe", &user, &errmsg),
                     BB_OK);
    /* Bitbucket's spelling is the one kept. */
    assert_string_equal(user->name, "Jane.Doe");
    assert_int_equal(user->id, 7);
    /* An exact match wins over an earlier case-insensitive one. */
    assert_int_equal(users(p, users_page(p, PAGE(USER("ALICE", "alice", 1, "") "," USER("alice", "alice", 2, ""))),
                           "alice", &user, &errmsg), BB_OK);
    assert_int_equal(user->id, 2);
}

static void test_users_no_match(void **state)
{
    apr_pool_t *p = *state;
    const char *errmsg;
    bb_user_t *user;

    assert_int_equal(users(p, users_page(p, PAGE(USER("janet", "janet", 4, ""))), "jane", &user, &errmsg),
                     BB_NOT_FOUND);
    assert_contains(errmsg, "no Bitbucket user named jane");
    assert_int_equal(users(p, users_page(p, PAGE(USER("janet", "janet", 4, ""))), "JANET2", &user, &errmsg),
                     BB_NOT_FOUND);
    assert_int_equal(users(p, users_page(p, PAGE("")), "jane", &user, &errmsg), BB_NOT_FOUND);
}

static void test_users_optional_and_inactive(void **state)
{
    apr_pool_t *p = *state;
    const char *errmsg;
    bb_user_t *user;

    assert_int_equal(users(p, users_page(p, "{\"values\":[{\"name\":\"jane\",\"active\":false,\"displayName\":\"J\","
                                            "\"id\":9,\"slug\":\"jane\",\"type\":\"NORMAL\"}]}"),
                           "jane", &user, &errmsg), BB_OK);
    assert_string_equal(user->email, "");
    assert_false(user->active);
    assert_int_equal(users(p, users_page(p, "{\"values\":[{\"name\":\"jane\",\"active\":true,\"displayName\":\"J\","
                                            "\"id\":9,\"slug\":\"jane\",\"type\":\"NORMAL\",\"emailAddress\":null}]}"),
                           "jane", &user, &errmsg), BB_OK);
    assert_string_equal(user->email, "");
    assert_true(user->active);
}

/* Answers of the wrong shape: refused, whichever member is off. */
static void test_users_wrong_shapes(void **state)
{
    apr_pool_t *p = *state;
    static const struct { int status; const char *content_type, *body, *says; bb_status_t expected; } table[] = {
        { 200, "application/json", "[" USER("jane", "jane", 1, "") "]", "no \"values\" array", BB_BAD_RESPONSE },
        { 200, "application/json", "{\"values\":\"not-a-list\"}", "no \"values\" array", BB_BAD_RESPONSE },
        { 200, "application/json", "{\"unexpected\":true,\"values\":\"not-a-list\",\"access_token\":12345,"
                                   "\"name\":null,\"size\":\"many\"}", "no \"values\" array", BB_BAD_RESPONSE },
        { 200, "application/json", "{\"values\":[1]}", "without a string \"name\"", BB_BAD_RESPONSE },
        { 200, "application/json", "{\"values\":[{\"name\":null}]}", "without a string \"name\"", BB_BAD_RESPONSE },
        { 200, "application/json", PAGE(USER("jane", "jane", "12", "")), "valid \"id\"", BB_BAD_RESPONSE },
        { 200, "application/json", PAGE(USER("jane", "jane", 0, "")), "valid \"id\"", BB_BAD_RESPONSE },
        { 200, "application/json", PAGE(USER("jane", "jane", 1.5, "")), "valid \"id\"", BB_BAD_RESPONSE },
        { 200, "application/json", "{\"values\":[{\"name\":\"jane\",\"displayName\":\"J\",\"id\":9,\"slug\":\"jane\","
                                   "\"type\":\"NORMAL\"}]}", "valid \"active\"", BB_BAD_RESPONSE },
        { 200, "application/json", "{\"values\":[{\"name\":\"jane\",\"active\":\"true\",\"displayName\":\"J\","
                                   "\"id\":9,\"slug\":\"jane\",\"type\":\"NORMAL\"}]}", "valid \"active\"",
          BB_BAD_RESPONSE },
        { 200, "application/json", "{\"values\":[{\"name\":\"jane\",\"active\":true,\"displayName\":\"J\",\"id\":9,"
                                   "\"slug\":\"jane\",\"emailAddress\":5,\"type\":\"NORMAL\"}]}",
          "valid \"emailAddress\"", BB_BAD_RESPONSE },
        { 200, "application/json", "{\"values\":[{\"name\":\"jane\",\"active\":true,\"displayName\":\"J\",\"id\":9,"
                                   "\"type\":\"NORMAL\"}]}", "valid \"slug\"", BB_BAD_RESPONSE },
        { 200, "application/json", "{\"values\":[{\"name\":\"jane\",\"active\":true,\"id\":9,\"slug\":\"jane\","
                                   "\"type\":\"NORMAL\"}]}", "valid \"displayName\"", BB_BAD_RESPONSE },
        { 200, "application/json", "{\"values\":[{\"name\":\"jane\",\"active\":true,\"displayName\":\"J\",\"id\":9,"
                                   "\"slug\":\"jane\"}]}", "valid \"type\"", BB_BAD_RESPONSE },
        { 200, "application/json", "{\"values\": [1, 2,, <<garbage>>", "not valid JSON", BB_BAD_RESPONSE },
        { 200, "text/html", "<html>Two-step verification</html>", "two-factor", BB_BAD_RESPONSE },
        { 200, "text/plain", PAGE(USER("jane", "jane", 1, "")), "(text/plain)", BB_BAD_RESPONSE },
        { 302, "", "", "HTTP 302 redirect", BB_BAD_RESPONSE },
        { 404, "application/json", "{\"errors\":[{\"message\":\"x\"}]}", "HTTP 404", BB_BAD_RESPONSE },
        { 500, "application/json", PAGE(USER("jane", "jane", 1, "")), "HTTP 500", BB_BAD_RESPONSE },
        { 401, "application/json", "{\"errors\":[{\"message\":\"You are not permitted\"}]}", "HTTP 401", BB_DENIED },
    };
    const char *errmsg;
    bb_user_t *user;
    size_t i;

    for (i = 0; i < ARRAY_LEN(table); i++) {
        bb_status_t status = users(p, response(p, table[i].status, table[i].content_type, table[i].body), "jane",
                                   &user, &errmsg);
        if (status != table[i].expected) {
            fail_msg("case %zu: %s instead of %s (%s)", i, bb_status_name(status), bb_status_name(table[i].expected),
                     errmsg ? errmsg : "");
        }
        assert_contains(errmsg, table[i].says);
        if (status == BB_BAD_RESPONSE) {
            assert_contains(errmsg, ": check ");   /* every unusable answer says what to look at */
        }
    }
}

/* ---- requests ---- */

static const char *no_authorization(apr_pool_t *p, void *baton, const char *method, const char *url)
{
    return NULL;
}

static void test_bearer_authorizer(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(bb_bearer_authorizer(p, "tok.en-1", "GET", whoami_url), "Bearer tok.en-1");
}

/* Failures before any answer: nothing to sign with, nobody listening. Neither names the token. */
static void test_identify_without_answer(void **state)
{
    apr_pool_t *p = *state;
    bb_http_opts_t http = { NULL, 2, 0, NULL, NULL, NULL, 0, NULL };
    bb_bitbucket_t bb = { "https://127.0.0.1:1/bitbucket", &http, no_authorization, NULL };
    bb_user_t stale, *user = &stale;
    const char *errmsg = NULL;

    assert_int_equal(bb_bitbucket_identify(p, &bb, &user, &errmsg), BB_UNAVAILABLE);
    assert_null(user);
    assert_contains(errmsg, "GET https://127.0.0.1:1/bitbucket/plugins/servlet/applinks/whoami: not sent");

    bb.authorize = bb_bearer_authorizer;
    bb.baton = "SECRET-TOKEN";
    errmsg = NULL;
    assert_int_equal(bb_bitbucket_identify(p, &bb, &user, &errmsg), BB_UNAVAILABLE);
    assert_contains(errmsg, "GET https://127.0.0.1:1/bitbucket/plugins/servlet/applinks/whoami: could not connect");
    assert_null(strstr(errmsg, "SECRET-TOKEN"));

    errmsg = NULL;
    assert_int_equal(bb_bitbucket_user(p, &bb, "jane doe", &user, &errmsg), BB_UNAVAILABLE);
    assert_contains(errmsg, "GET https://127.0.0.1:1/bitbucket/rest/api/1.0/users: could not connect");
}


/* ---- calls answered by a TLS server on 127.0.0.1 ---- */

/* A whole HTTP answer with this status, type and body; the connection closes after it. */
static const char *http_answer(apr_pool_t *p, int status, const char *content_type, const char *body)
{
    return apr_psprintf(p, "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %" APR_SIZE_T_FMT
                        "\r\nConnection: close\r\n\r\n%s",
                        status, content_type, strlen(body), body);
}

static const char *json_answer(apr_pool_t *p, const char *body)
{
    return http_answer(p, 200, "application/json;charset=UTF-8", body);
}

/* A Bitbucket at a server that gives the answers in order, asked with a bearer token. */
typedef struct {
    server_t *server;
    bb_http_opts_t http;
    bb_bitbucket_t bb;
} bitbucket_at_t;

static bitbucket_at_t *bitbucket_answering(apr_pool_t *p, const char *const *answers, int count)
{
    bitbucket_at_t *at = apr_pcalloc(p, sizeof(*at));

    make_pki();
    at->http.timeout_sec = 2;
    trust_test_ca(p, &at->http);
    at->server = start_server_answers(p, pki.good, answers, count);
    at->bb.base_url = apr_psprintf(p, "https://127.0.0.1:%d/bitbucket", at->server->port);
    at->bb.http = &at->http;
    at->bb.authorize = bb_bearer_authorizer;
    at->bb.baton = "t0ken";
    return at;
}

/* A users page of one user that is not jane; next: its nextPageStart (negative: none, and the last page). */
static const char *page_without_jane(apr_pool_t *p, int next)
{
    return json_answer(p, next < 0 ? PAGE(USER("janet", "janet", 7, ""))
                                   : apr_psprintf(p, "{\"size\":1,\"limit\":100,\"isLastPage\":false,\"start\":0,"
                                                  "\"nextPageStart\":%d,\"values\":[" USER("janet", "janet", 7, "")
                                                  "]}", next));
}

/* The filter matches many users: the look-up reads on, page after page, asking from nextPageStart. */
static void test_user_on_a_later_page(void **state)
{
    apr_pool_t *p = *state;
    const char *answers[] = { page_without_jane(p, 100), page_without_jane(p, 200),
                              json_answer(p, PAGE(USER("jane", "jane", 3, ""))) };
    bitbucket_at_t *at = bitbucket_answering(p, answers, 3);
    const char *errmsg = NULL;
    bb_user_t *user = NULL;

    assert_int_equal(bb_bitbucket_user(p, &at->bb, "jane", &user, &errmsg), BB_OK);
    stop_server(at->server);
    assert_int_equal(user->id, 3);
    assert_int_equal(at->server->served, 3);
    assert_string_equal(at->server->targets[0], "GET /bitbucket/rest/api/1.0/users?filter=jane&limit=100 HTTP/1.1");
    assert_string_equal(at->server->targets[1],
                        "GET /bitbucket/rest/api/1.0/users?filter=jane&limit=100&start=100 HTTP/1.1");
    assert_string_equal(at->server->targets[2],
                        "GET /bitbucket/rest/api/1.0/users?filter=jane&limit=100&start=200 HTTP/1.1");
}

/* The last page, a page without nextPageStart, and a next page that does not move on all end the look-up. */
static void test_user_paging_ends(void **state)
{
    apr_pool_t *p = *state;
    const char *last[] = { page_without_jane(p, 100), page_without_jane(p, -1) };
    const char *no_next[] = { json_answer(p, "{\"isLastPage\":false,\"values\":[]}") };
    const char *backwards[] = { page_without_jane(p, 100), page_without_jane(p, 100) };
    const struct {
        const char *const *answers;
        int count;
    } table[] = { { last, 2 }, { no_next, 1 }, { backwards, 2 } };
    size_t i;

    for (i = 0; i < ARRAY_LEN(table); i++) {
        bitbucket_at_t *at = bitbucket_answering(p, table[i].answers, table[i].count);
        const char *errmsg = NULL;
        bb_user_t *user = NULL;

        assert_int_equal(bb_bitbucket_user(p, &at->bb, "jane", &user, &errmsg), BB_NOT_FOUND);
        stop_server(at->server);
        assert_null(user);
        assert_int_equal(at->server->served, table[i].count);
        assert_contains(errmsg, "no Bitbucket user named jane");
    }
}

/* A filter that matches thousands: at most 10 pages are read (an 11th request would find no server answering). */
static void test_user_page_cap(void **state)
{
    apr_pool_t *p = *state;
    const char *answers[10];
    bitbucket_at_t *at;
    const char *errmsg = NULL;
    bb_user_t *user = NULL;
    int i;

    for (i = 0; i < 10; i++) {
        answers[i] = page_without_jane(p, (i + 1) * 100);
    }
    at = bitbucket_answering(p, answers, 10);
    assert_int_equal(bb_bitbucket_user(p, &at->bb, "jane", &user, &errmsg), BB_NOT_FOUND);
    stop_server(at->server);
    assert_int_equal(at->server->served, 10);
    assert_contains(errmsg, "no Bitbucket user named jane among the first 1000 matches of the filter");
    assert_string_equal(at->server->targets[9],
                        "GET /bitbucket/rest/api/1.0/users?filter=jane&limit=100&start=900 HTTP/1.1");
}

/* One permission check against a server giving `answer`; the request line is put in *target. */
static bb_status_t may_read(apr_pool_t *p, const char *answer, const char *repo, const char **target,
                            const char **errmsg)
{
    bitbucket_at_t *at = bitbucket_answering(p, &answer, 1);
    bb_status_t status;

    *errmsg = NULL;
    status = bb_bitbucket_may_read(p, &at->bb, "PROJ", repo, errmsg);
    stop_server(at->server);
    *target = apr_pstrdup(p, at->server->targets[0]);
    return status;
}

/* 200 JSON: yes; 401 (not permitted) and 404 (no such project or repository) alike: no; anything else: unusable. */
static void test_may_read(void **state)
{
    apr_pool_t *p = *state;
    const char *target, *errmsg;

    assert_int_equal(may_read(p, json_answer(p, "{\"slug\":\"my repo\"}"), "my repo", &target, &errmsg), BB_OK);
    assert_string_equal(target, "GET /bitbucket/rest/api/1.0/projects/PROJ/repos/my%20repo HTTP/1.1");
    assert_int_equal(may_read(p, json_answer(p, "{\"key\":\"PROJ\"}"), NULL, &target, &errmsg), BB_OK);
    assert_string_equal(target, "GET /bitbucket/rest/api/1.0/projects/PROJ HTTP/1.1");
    assert_int_equal(may_read(p, http_answer(p, 401, "application/json", "{\"errors\":[]}"), "r", &target, &errmsg),
                     BB_DENIED);
    assert_contains(errmsg, "HTTP 401: not permitted, or no such thing");
    assert_int_equal(may_read(p, http_answer(p, 404, "application/json", "{\"errors\":[]}"), "gone", &target,
                              &errmsg), BB_DENIED);
    assert_contains(errmsg, "/projects/PROJ/repos/gone: HTTP 404: not permitted, or no such thing");
    assert_int_equal(may_read(p, http_answer(p, 200, "text/html", "<html>login</html>"), "r", &target, &errmsg),
                     BB_BAD_RESPONSE);
    assert_contains(errmsg, "unusable answer: HTTP 200 HTML page");
    assert_int_equal(may_read(p, http_answer(p, 500, "application/json", "{}"), "r", &target, &errmsg),
                     BB_BAD_RESPONSE);
    assert_contains(errmsg, "unusable answer: HTTP 500");
    assert_int_equal(may_read(p, http_answer(p, 403, "application/json", "{}"), "r", &target, &errmsg),
                     BB_BAD_RESPONSE);
}

/* One group check (is jane in `group`?) against a server giving `answer`. */
static bb_status_t in_group(apr_pool_t *p, const char *answer, const char *group, const char **errmsg)
{
    bitbucket_at_t *at = bitbucket_answering(p, &answer, 1);
    bb_status_t status;

    *errmsg = NULL;
    status = bb_bitbucket_in_group(p, &at->bb, "jane", group, errmsg);
    stop_server(at->server);
    assert_string_equal(at->server->targets[0],
                        apr_psprintf(p, "GET /bitbucket/rest/api/1.0/admin/users/more-members?context=jane&filter=%s"
                                     "&limit=1000 HTTP/1.1", bb_url_encode(p, group)));
    return status;
}

#define GROUPS(names) "{\"size\":2,\"isLastPage\":true,\"values\":[" names "]}"

/* The filter matches group names by substring: only an entry named exactly the group (in any case) is membership. */
static void test_in_group_exact_name(void **state)
{
    apr_pool_t *p = *state;
    const char *errmsg;

    assert_int_equal(in_group(p, json_answer(p, GROUPS("{\"name\":\"developers-old\"},{\"name\":\"old-developers\"},"
                                                       "{\"name\":\"developer\"}")), "developers", &errmsg),
                     BB_DENIED);
    assert_contains(errmsg, "jane is not in the group developers");
    assert_int_equal(in_group(p, json_answer(p, GROUPS("{\"name\":\"developers-old\"},{\"name\":\"Developers\"}")),
                              "developers", &errmsg), BB_OK);
    assert_int_equal(in_group(p, json_answer(p, GROUPS("{\"name\":7},{\"name\":null},{},{\"name\":\"qa team\"}")),
                              "qa team", &errmsg), BB_OK);
    assert_int_equal(in_group(p, json_answer(p, GROUPS("")), "developers", &errmsg), BB_DENIED);
}

static void test_in_group_refusals_and_unusable_answers(void **state)
{
    apr_pool_t *p = *state;
    const char *errmsg;

    /* HTTP access tokens are kept off /admin: 401, as a user Bitbucket does not know is 404. */
    assert_int_equal(in_group(p, http_answer(p, 401, "application/json", "{}"), "developers", &errmsg), BB_DENIED);
    assert_contains(errmsg, "HTTP 401: not permitted");
    assert_int_equal(in_group(p, http_answer(p, 404, "application/json", "{}"), "developers", &errmsg), BB_DENIED);
    assert_int_equal(in_group(p, http_answer(p, 200, "text/plain", GROUPS("{\"name\":\"developers\"}")),
                              "developers", &errmsg), BB_BAD_RESPONSE);
    assert_int_equal(in_group(p, json_answer(p, "not json {"), "developers", &errmsg), BB_BAD_RESPONSE);
    assert_contains(errmsg, "no \"values\" array");
    assert_int_equal(in_group(p, json_answer(p, "{\"values\":\"developers\"}"), "developers", &errmsg),
                     BB_BAD_RESPONSE);
    assert_int_equal(in_group(p, json_answer(p, "[{\"name\":\"developers\"}]"), "developers", &errmsg),
                     BB_BAD_RESPONSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_whoami_username),
        UNIT_TEST(test_whoami_unknown_token),
        UNIT_TEST(test_refusal_names_the_oauth_problem),
        UNIT_TEST(test_whoami_never_html),
        UNIT_TEST(test_users_exact_match_slug_differs),
        UNIT_TEST(test_users_case_insensitive_fallback),
        UNIT_TEST(test_users_no_match),
        UNIT_TEST(test_users_optional_and_inactive),
        UNIT_TEST(test_users_wrong_shapes),
        UNIT_TEST(test_bearer_authorizer),
        UNIT_TEST(test_identify_without_answer),
        UNIT_TEST(test_user_on_a_later_page),
        UNIT_TEST(test_user_paging_ends),
        UNIT_TEST(test_user_page_cap),
        UNIT_TEST(test_may_read),
        UNIT_TEST(test_in_group_exact_name),
        UNIT_TEST(test_in_group_refusals_and_unusable_answers),
    };

    signal(SIGPIPE, SIG_IGN);
    bb_http_global_init();
    return UNIT_RUN("bitbucket", tests);
}
