/* fuzz_bitbucket: Bitbucket's answers: whoami (bb_bitbucket_parse_whoami), a users page (bb_bitbucket_parse_users)
 * and the OAuth 2 token endpoint (bb_oauth2_parse_token_response). Input: see fuzz_response in fuzz.h (line 3 is
 * Location); the users page is searched for "alice". */
#include "bb_http.h"
#include "fuzz.h"
#include "bb_bitbucket.h"
#include "bb_oauth2.h"

#define URL "https://bb.example.com/rest/x?secret=1"

static void check_error(bb_status_t status, const char *errmsg)
{
    if (status != BB_OK) {
        FUZZ_ASSERT(errmsg && !fuzz_has_control(errmsg));
    }
}

static void check_whoami(apr_pool_t *p, const bb_http_response_t *resp)
{
    const char *username = NULL, *errmsg = NULL;
    bb_status_t status = bb_bitbucket_parse_whoami(p, resp, URL, &username, &errmsg);

    FUZZ_ASSERT((status == BB_OK) == (username != NULL));
    if (username) {
        FUZZ_ASSERT(*username && strlen(username) <= 255 && !fuzz_has_control(username));
        FUZZ_ASSERT(strpbrk(username, "<>{}[]\"\\") == NULL);
    }
    check_error(status, errmsg);
}

static void check_users(apr_pool_t *p, const bb_http_response_t *resp)
{
    bb_user_t *user = NULL;
    const char *errmsg = NULL;
    bb_status_t status = bb_bitbucket_parse_users(p, resp, URL, "alice", &user, &errmsg);

    FUZZ_ASSERT((status == BB_OK) == (user != NULL));
    if (user) {
        FUZZ_ASSERT(user->name && strcasecmp(user->name, "alice") == 0);
        FUZZ_ASSERT(user->slug && user->display_name && user->email && user->type && user->id > 0);
    }
    check_error(status, errmsg);
}

static void check_tokens(apr_pool_t *p, const bb_http_response_t *resp)
{
    bb_oauth2_tokens_t *tokens = NULL;
    const char *errmsg = NULL;
    bb_status_t status = bb_oauth2_parse_token_response(p, resp, URL, &tokens, &errmsg);
    const char *c;

    FUZZ_ASSERT((status == BB_OK) == (tokens != NULL));
    if (tokens) {
        FUZZ_ASSERT(tokens->access_token && *tokens->access_token);
        for (c = tokens->access_token; *c; c++) {
            FUZZ_ASSERT(*c > 0x20 && *c < 0x7f);
        }
        FUZZ_ASSERT(tokens->expires_in >= 0 && tokens->expires_in <= BB_OAUTH2_MAX_EXPIRES_IN);
    }
    check_error(status, errmsg);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    fuzz_input_t in = { (const char *)data, size };
    bb_http_response_t *resp = fuzz_response(p, &in, "Location");

    check_whoami(p, resp);
    check_users(p, resp);
    check_tokens(p, resp);
    apr_pool_destroy(p);
    return 0;
}
