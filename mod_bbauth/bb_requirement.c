/* bb_requirement: Require bitbucket-repo/-project/-group questions read back from their text, and put in words with a link to Bitbucket. */
#include <string.h>
#include <apr_strings.h>

#include "bb_url.h"
#include "bb_requirement.h"

const char *const bb_requirement_names[] = { "bitbucket-repo", "bitbucket-project", "bitbucket-group" };

/* 1 when s has no control character (a group name may have spaces, never a line break). */
static int no_controls(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f) {
            return 0;
        }
    }
    return 1;
}

bb_requirement_t *bb_requirement_parse(apr_pool_t *p, const char *question)
{
    const char *space = question ? strchr(question, ' ') : NULL;
    bb_requirement_t *req;
    const char *slash;
    int kind;

    if (!space || !space[1] || space[1] == ' ' || strlen(question) > BB_REQUIREMENT_MAX_QUESTION
        || !no_controls(space + 1)) {
        return NULL;
    }
    for (kind = BB_REQ_REPO; kind <= BB_REQ_GROUP; kind++) {
        if (strlen(bb_requirement_names[kind]) == (apr_size_t)(space - question)
            && !strncmp(question, bb_requirement_names[kind], (apr_size_t)(space - question))) {
            break;
        }
    }
    if (kind > BB_REQ_GROUP) {
        return NULL;
    }
    req = apr_pcalloc(p, sizeof(*req));
    req->kind = (bb_req_kind_t)kind;
    req->what = space + 1;
    slash = strchr(req->what, '/');
    if (kind == BB_REQ_REPO) {
        if (!slash || slash == req->what || !slash[1] || strchr(slash + 1, '/')) {
            return NULL;
        }
        req->project = apr_pstrmemdup(p, req->what, (apr_size_t)(slash - req->what));
        req->repo = slash + 1;
    }
    else if (kind == BB_REQ_PROJECT) {
        if (slash) {
            return NULL;
        }
        req->project = req->what;
    }
    return req;
}

const char *bb_requirement_missing(apr_pool_t *p, const bb_requirement_t *req)
{
    switch (req->kind) {
    case BB_REQ_REPO:
        return apr_pstrcat(p, "read access to repository ", req->what, " in Bitbucket", NULL);
    case BB_REQ_PROJECT:
        return apr_pstrcat(p, "access to project ", req->what, " in Bitbucket", NULL);
    default:
        return apr_pstrcat(p, "membership of the Bitbucket group ", req->what, NULL);
    }
}

const char *bb_requirement_link(apr_pool_t *p, const char *bitbucket_url, const bb_requirement_t *req)
{
    if (req->kind == BB_REQ_GROUP) {
        return NULL;
    }
    return apr_pstrcat(p, bitbucket_url, "/projects/", bb_url_encode(p, req->project),
                       req->repo ? "/repos/" : "", req->repo ? bb_url_encode(p, req->repo) : "", NULL);
}
