/* fuzz_clientsetup: what the account and denial pages build from configuration and forms: BBAuthClientSetup's
 * check and snippets (bb_clientsetup) and Require questions read back from a form (bb_requirement). Input: line 1
 * the client, line 2 the URL, line 3 the username; the rest a question. */
#include "fuzz.h"
#include "bb_clientsetup.h"
#include "bb_requirement.h"

#define BASE "https://bb.example.com/ctx"

/* The lines may hold line breaks of their own, nothing else below 0x20, and never the user's token. */
static void check_snippet(apr_pool_t *p, const char *client, const char *url, const char *user)
{
    const bb_clientsetup_t *setup = bb_clientsetup_make(p, client, url, user);
    const char *c;

    FUZZ_ASSERT(setup && setup->where && setup->text && !strcmp(setup->client, client));
    FUZZ_ASSERT(strstr(setup->text, BB_CLIENTSETUP_PLACEHOLDER) != NULL);
    for (c = url; *c; c++) {
        FUZZ_ASSERT((unsigned char)*c > 0x20 && (unsigned char)*c < 0x7f);
    }
    if (!fuzz_has_control(user)) {
        for (c = setup->text; *c; c++) {
            FUZZ_ASSERT(*c == '\n' || !((unsigned char)*c < 0x20 || *c == 0x7f));
        }
    }
}

static void check_question(apr_pool_t *p, const char *question)
{
    const bb_requirement_t *req = bb_requirement_parse(p, question);
    const char *link;

    if (!req) {
        return;
    }
    FUZZ_ASSERT(strlen(question) <= BB_REQUIREMENT_MAX_QUESTION && !fuzz_has_control(req->what));
    FUZZ_ASSERT(*req->what && *req->what != ' ');
    FUZZ_ASSERT((req->kind == BB_REQ_REPO) == (req->repo != NULL));
    FUZZ_ASSERT((req->kind == BB_REQ_GROUP) == (req->project == NULL));
    FUZZ_ASSERT(bb_requirement_missing(p, req) != NULL);
    link = bb_requirement_link(p, BASE, req);
    if (link) {
        /* Every part percent-encoded: nothing in it can leave the Bitbucket it names. */
        FUZZ_ASSERT(!strncmp(link, BASE "/projects/", strlen(BASE "/projects/")));
        FUZZ_ASSERT(strpbrk(link + strlen(BASE), "?#\"<> \\") == NULL && !fuzz_has_control(link));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    fuzz_input_t in = { (const char *)data, size };
    const char *client = fuzz_line(p, &in);
    const char *url = fuzz_line(p, &in);
    const char *user = fuzz_line(p, &in);
    size_t len;
    const char *question = fuzz_rest(p, &in, &len);

    if (bb_clientsetup_check(p, client, url) == NULL) {
        check_snippet(p, client, url, user);
    }
    else {
        FUZZ_ASSERT(bb_clientsetup_make(p, client, url, user) == NULL);
    }
    check_question(p, question);
    apr_pool_destroy(p);
    return 0;
}
