/* bb_requirement: a Require bitbucket-repo/-project/-group question in words: what it asks, what a refused user lacks, where in Bitbucket to ask for it. */
#ifndef BB_REQUIREMENT_H
#define BB_REQUIREMENT_H

#include <apr_pools.h>

/* Longest question (kind, space, argument) that is read back from a form. */
#define BB_REQUIREMENT_MAX_QUESTION 512

typedef enum {
    BB_REQ_REPO = 0,
    BB_REQ_PROJECT,
    BB_REQ_GROUP
} bb_req_kind_t;

/* The Require names of the kinds, in bb_req_kind_t order: "bitbucket-repo", "bitbucket-project", "bitbucket-group". */
extern const char *const bb_requirement_names[];

typedef struct {
    bb_req_kind_t kind;
    const char *what;          /* "PROJ/repo", "PROJ" or the group name, as written */
    const char *project;       /* repo and project: the project key; NULL for a group */
    const char *repo;          /* repo: the repository slug; else NULL */
} bb_requirement_t;

/* The requirement a question names, as the module writes it ("bitbucket-repo PROJ/alpha"): a known kind, one space,
 * then the argument as the Require line has it (not starting with a space, no control characters; for a repository
 * PROJECT/repo with both parts, for a project no '/'), the whole at most BB_REQUIREMENT_MAX_QUESTION bytes. NULL for
 * anything else. */
bb_requirement_t *bb_requirement_parse(apr_pool_t *p, const char *question);

/* What a user refused by it lacks, as the end of "you need ...": "read access to repository PROJ/alpha in
 * Bitbucket", "access to project PROJ in Bitbucket", "membership of the Bitbucket group NAME". */
const char *bb_requirement_missing(apr_pool_t *p, const bb_requirement_t *req);

/* The page in Bitbucket where the user can see whom to ask: <base>/projects/PROJ[/repos/repo] (each part
 * percent-encoded); NULL for a group (no page a user may see). */
const char *bb_requirement_link(apr_pool_t *p, const char *bitbucket_url, const bb_requirement_t *req);

#endif
