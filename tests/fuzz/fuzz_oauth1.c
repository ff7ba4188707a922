/* fuzz_oauth1: OAuth 1 token-endpoint answers (bb_oauth1_parse_token_response, bb_oauth1_parse_token_body,
 * bb_oauth1_parse_www_authenticate). Input: see fuzz_response in fuzz.h (line 3 is WWW-Authenticate). */
#include "bb_http.h"
#include "fuzz.h"
#include "bb_oauth1.h"

#define URL "https://bb.example.com/plugins/servlet/oauth/request-token?secret=1"

/* A problem name is reduced to [a-z_]; parameters to [a-z_, ]. */
static void check_problem(const bb_oauth1_problem_t *problem)
{
    const char *c;

    for (c = problem->name ? problem->name : ""; *c; c++) {
        FUZZ_ASSERT((*c >= 'a' && *c <= 'z') || *c == '_');
    }
    for (c = problem->parameters ? problem->parameters : ""; *c; c++) {
        FUZZ_ASSERT(!((unsigned char)*c < 0x20 || *c == 0x7f || (unsigned char)*c >= 0x80));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    fuzz_input_t in = { (const char *)data, size };
    bb_http_response_t *resp = fuzz_response(p, &in, "WWW-Authenticate");
    bb_oauth1_token_t *token = NULL, *body;
    bb_oauth1_problem_t problem = { NULL, NULL };
    const char *errmsg = NULL;
    const char *challenge = apr_table_get(resp->headers, "WWW-Authenticate");
    bb_status_t status;

    body = bb_oauth1_parse_token_body(p, resp->body);
    FUZZ_ASSERT(body != NULL && body->expires_in >= 0);
    check_problem(&body->problem);
    if (challenge && bb_oauth1_parse_www_authenticate(p, challenge, &problem)) {
        FUZZ_ASSERT(problem.name != NULL);
        check_problem(&problem);
    }
    status = bb_oauth1_parse_token_response(p, resp, "request token", URL, size & 1, &token, &errmsg);
    FUZZ_ASSERT((status == BB_OK) == (token != NULL));
    if (status == BB_OK) {
        FUZZ_ASSERT(token->token && token->token_secret && resp->status == 200);
    }
    else {
        FUZZ_ASSERT(errmsg && !fuzz_has_control(errmsg));
    }
    apr_pool_destroy(p);
    return 0;
}
