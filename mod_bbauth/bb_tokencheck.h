/* bb_tokencheck: the token check's policy: what a check's result is, what it answers, stale use, renew ahead. */
#ifndef BB_TOKENCHECK_H
#define BB_TOKENCHECK_H

#include <apr_time.h>
#include "bb_util.h"
#include "bb_bitbucket.h"

/* What one check of a token found; also what its leader hands to the requests that waited for it. */
typedef enum {
    BB_CHECK_VALID = 0,            /* Bitbucket accepted the token */
    BB_CHECK_REFUSED,              /* Bitbucket refused it (unknown, expired, revoked, owner deactivated) */
    BB_CHECK_FAILED,               /* Bitbucket failed: unreachable, timed out, 5xx, garbage, an open circuit */
    BB_CHECK_HELD_HERE,            /* this server held the call back (its limits of calls in flight), or a wait
                                    * for a concurrent check ran out: Bitbucket did not fail */
    BB_CHECK_RATE_LIMITED,         /* Bitbucket answered 429 for this caller, or holds it back after one */
    BB_CHECK_ADDRESS_LIMITED       /* not asked: the client's address is over BBAuthAnonymousChecksPerMinute */
} bb_check_result_t;

/* The result of a call to Bitbucket from its status and error message (bb_http's held-back and 429 lines). */
bb_check_result_t bb_tokencheck_result(bb_status_t status, const char *errmsg);

/* The HTTP status a request gets for a result: 200 (VALID), 401 (REFUSED), 429 (the caller over a rate limit:
 * Bitbucket's, or its address's), 503 (Bitbucket cannot say now). */
int bb_tokencheck_http_status(bb_check_result_t result);

/* BBAuthStaleIfError: whether a verdict Bitbucket confirmed before may stand in for this result. Only when
 * Bitbucket itself failed: never for a call this server held back or a wait that ran out (a revoked token would
 * live on whenever junk fills the call slots), nor for a 429 (the caller is over its limit, Bitbucket is well). */
int bb_tokencheck_may_use_stale(bb_check_result_t result);

/* Renew ahead: whether a valid verdict (validated_at to expires) is in the last tenth of its life at now, so that
 * one request renews it while the others go on using it. */
int bb_tokencheck_renew_due(apr_int64_t validated_at, apr_int64_t expires, apr_int64_t now);

/* Whose credential the calls of a check carry (bb_http_opts_t.holder): the owner Bitbucket named before (NULL:
 * nobody confirmed the token: BB_HOLDER_ANONYMOUS). */
const char *bb_tokencheck_holder(const bb_user_t *earlier);

#endif
