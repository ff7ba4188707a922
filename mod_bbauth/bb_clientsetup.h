/* bb_clientsetup: what a package client needs to reach a mirror with a Bitbucket HTTP access token: the lines to paste and where they go. */
#ifndef BB_CLIENTSETUP_H
#define BB_CLIENTSETUP_H

#include <apr_pools.h>

/* Stands for the user's token in every snippet: the page never carries a real one. */
#define BB_CLIENTSETUP_PLACEHOLDER "<token>"
/* The clients BBAuthClientSetup knows, for messages. */
#define BB_CLIENTSETUP_CLIENTS "composer, pip, uv, poetry, npm, yarn, pnpm"
/* Bitbucket's page where a user manages their HTTP access tokens (7.21 to 9.x): <base>/plugins/servlet/
 * access-tokens/users/<slug>/manage, with the user's slug (not the username: they differ, e.g. for '@'). */
#define BB_TOKEN_PAGE_PATH "/plugins/servlet/access-tokens/users/"

typedef struct {
    const char *client;      /* "composer", "pip", ... */
    const char *where;       /* where the lines go: a file, or "a shell" */
    const char *text;        /* the lines, with BB_CLIENTSETUP_PLACEHOLDER where the token goes */
} bb_clientsetup_t;

/* NULL when client is one of BB_CLIENTSETUP_CLIENTS and url an absolute http or https URL with a host, a path or
 * none, and no user:password@, query or fragment; else what is wrong (a phrase for "BBAuthClientSetup: ..."). */
const char *bb_clientsetup_check(apr_pool_t *p, const char *client, const char *url);

/* The lines that set `client` up to use the mirror at `url` (checked with bb_clientsetup_check) as `username`.
 * Values in shell lines are single-quoted, the username is percent-encoded inside URLs. NULL when the client or
 * url is not accepted by bb_clientsetup_check, or username is NULL. */
const bb_clientsetup_t *bb_clientsetup_make(apr_pool_t *p, const char *client, const char *url,
                                            const char *username);

/* The URL of the page where the user with this slug creates HTTP access tokens (bitbucket_url without trailing
 * '/'; the slug percent-encoded). */
const char *bb_clientsetup_token_page(apr_pool_t *p, const char *bitbucket_url, const char *slug);

#endif
