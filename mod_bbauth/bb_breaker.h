/* bb_breaker: outage isolation for Bitbucket calls: per-process limits, per-holder 429 holds, a circuit breaker. */
#ifndef BB_BREAKER_H
#define BB_BREAKER_H

#include <apr_pools.h>
#include <apr_atomic.h>

/* Whose credential a call carries, for the holds a 429 puts on it (Bitbucket limits each user on its own): a user's
 * keyed hash (never a token; see the glue's bbauth_http_for), BB_HOLDER_ANONYMOUS for checks of credentials nobody
 * confirmed (they also have a small share of the calls in flight, see bb_breaker_create), or NULL for the module's
 * own calls (logins, probes of the setup page), which are held back together. */
#define BB_HOLDER_ANONYMOUS "anonymous"

/* Holds a host keeps at once. A hold goes to one of BB_BREAKER_HOLD_WAYS slots chosen by its holder's digest: its
 * own, a free or ended one, else the one that ends first (so a flood of 429s can shorten the holds of others, never
 * open the circuit for everyone by itself). */
#define BB_BREAKER_HOLDS     256
#define BB_BREAKER_HOLD_WAYS 8
/* Users held back at once (at least; BBAuthCircuitFailures when larger) that say Bitbucket as a whole is limiting
 * the module: the circuit then opens for the longest Retry-After among them. */
#define BB_BREAKER_MANY_HELD 3

/* One holder's calls held back after a 429, until a unix time. Written without a lock: two 429s landing in the same
 * slot at the same instant may lose one hold (that holder then makes one more call and is held again). */
typedef struct {
    volatile apr_uint64_t holder;         /* bb_digest64 of the holder string; 0: free */
    volatile apr_uint32_t until;          /* unix time the hold ends */
    apr_uint32_t unused;
} bb_hold_t;

/* The circuit's state, shared by the processes of a host: the glue puts it in a shared memory segment made before
 * the children are forked; every field is only read and written with apr_atomic. Zeroed: closed, no failure. */
typedef struct {
    volatile apr_uint32_t failures;       /* consecutive failed calls */
    volatile apr_uint32_t open_until;     /* unix time the cool-down ends; 0: closed */
    volatile apr_uint32_t probing;        /* 1 while the one probe call after a cool-down is out */
    volatile apr_uint32_t probe_started;  /* unix time of that probe, so a probe lost with its process expires */
    bb_hold_t holds[BB_BREAKER_HOLDS];    /* the holders a 429 holds back */
} bb_breaker_state_t;

/* The breaker logs through the glue: one line per change of state (see bb_breaker_leave). */
typedef void bb_breaker_notify_fn(void *baton, const char *line);

typedef struct {
    bb_breaker_state_t *state;            /* shared */
    const char *name;                     /* what the calls go to, for the log lines (Bitbucket's URL) */
    apr_uint32_t threshold;               /* consecutive failures that open the circuit; 0: never opens */
    apr_uint32_t cooldown;                /* seconds it stays open */
    apr_uint32_t max_calls;               /* calls in flight per process; 0: no limit */
    apr_uint32_t anonymous_calls;         /* of them, for BB_HOLDER_ANONYMOUS: a quarter of max_calls, at least 1 */
    volatile apr_uint32_t in_flight;      /* this process's (the struct is copied into each child at fork) */
    volatile apr_uint32_t anonymous_in_flight;
    bb_breaker_notify_fn *notify;         /* may be NULL */
    void *baton;
} bb_breaker_t;

typedef enum {
    BB_BREAKER_GO = 0,                    /* call */
    BB_BREAKER_PROBE,                     /* call: the one probe after a cool-down, whose outcome decides */
    BB_BREAKER_OPEN,                      /* do not call: the circuit is open (or another probe is out) */
    BB_BREAKER_FULL,                      /* do not call: max_calls (or the anonymous share) are in flight here */
    BB_BREAKER_HELD                       /* do not call: a 429 for this holder asked to wait */
} bb_breaker_admit_t;

typedef enum {
    BB_CALL_ANSWERED = 0,                 /* Bitbucket answered (any status but 5xx and 429) */
    BB_CALL_FAILED,                       /* connect error, timeout, broken connection, 5xx */
    BB_CALL_RATE_LIMITED                  /* 429 */
} bb_call_outcome_t;

/* A breaker over `state` (a NULL state: a limit of calls only, never open). */
bb_breaker_t *bb_breaker_create(apr_pool_t *p, bb_breaker_state_t *state, const char *name, apr_uint32_t threshold,
                                apr_uint32_t cooldown, apr_uint32_t max_calls);

/* Before a call for `holder` (see BB_HOLDER_ANONYMOUS) at unix time now. GO and PROBE count the call in flight
 * (the caller must bb_breaker_leave with the same holder); OPEN, FULL and HELD set *retry_after (seconds, at least
 * 1). A NULL breaker always says GO. */
bb_breaker_admit_t bb_breaker_enter(bb_breaker_t *b, const char *holder, apr_int64_t now, apr_int64_t *retry_after);

/* After a call that bb_breaker_enter admitted: an answer closes the circuit (after a probe) and ends the run of
 * failures; a failure counts toward opening it (threshold consecutive failures; a failed probe opens it again); a
 * 429 holds back this holder alone for retry_after seconds (the cool-down when it gave none), and opens the circuit
 * only when BB_BREAKER_MANY_HELD holders (or threshold, when larger) are held at once. Notifies "circuit open until
 * <date> ...", "rate-limited by Bitbucket, retrying after N s for <whom> only ..." and "circuit closed ...". */
void bb_breaker_leave(bb_breaker_t *b, const char *holder, bb_breaker_admit_t admitted, bb_call_outcome_t outcome,
                      apr_int64_t now, apr_int64_t retry_after);

/* Seconds until `holder` may call again (0: now): the circuit's cool-down or the holder's own hold, whichever is
 * longer, for a Retry-After. */
apr_int64_t bb_breaker_retry_after(const bb_breaker_t *b, const char *holder, apr_int64_t now);

/* A Retry-After header's seconds (delta-seconds or an HTTP date, relative to now), capped at max; 0 when absent or
 * unusable. */
apr_int64_t bb_breaker_parse_retry_after(const char *value, apr_int64_t now, apr_int64_t max);

#endif
