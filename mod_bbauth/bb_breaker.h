/* bb_breaker: outage isolation for calls to Bitbucket: a per-process limit of calls in flight and a circuit breaker. */
#ifndef BB_BREAKER_H
#define BB_BREAKER_H

#include <apr_pools.h>
#include <apr_atomic.h>

/* The circuit's state, shared by the processes of a host: the glue puts it in a shared memory segment made before
 * the children are forked; every field is only read and written with apr_atomic. Zeroed: closed, no failure. */
typedef struct {
    volatile apr_uint32_t failures;       /* consecutive failed calls */
    volatile apr_uint32_t open_until;     /* unix time the cool-down ends; 0: closed */
    volatile apr_uint32_t probing;        /* 1 while the one probe call after a cool-down is out */
    volatile apr_uint32_t probe_started;  /* unix time of that probe, so a probe lost with its process expires */
} bb_breaker_state_t;

/* The breaker logs through the glue: one line per change of state (see bb_breaker_leave). */
typedef void bb_breaker_notify_fn(void *baton, const char *line);

typedef struct {
    bb_breaker_state_t *state;            /* shared */
    const char *name;                     /* what the calls go to, for the log lines (Bitbucket's URL) */
    apr_uint32_t threshold;               /* consecutive failures that open the circuit; 0: never opens */
    apr_uint32_t cooldown;                /* seconds it stays open */
    apr_uint32_t max_calls;               /* calls in flight per process; 0: no limit */
    volatile apr_uint32_t in_flight;      /* this process's (the struct is copied into each child at fork) */
    bb_breaker_notify_fn *notify;         /* may be NULL */
    void *baton;
} bb_breaker_t;

typedef enum {
    BB_BREAKER_GO = 0,                    /* call */
    BB_BREAKER_PROBE,                     /* call: the one probe after a cool-down, whose outcome decides */
    BB_BREAKER_OPEN,                      /* do not call: the circuit is open (or another probe is out) */
    BB_BREAKER_FULL                       /* do not call: max_calls are in flight in this process */
} bb_breaker_admit_t;

typedef enum {
    BB_CALL_ANSWERED = 0,                 /* Bitbucket answered (any status but 5xx and 429) */
    BB_CALL_FAILED,                       /* connect error, timeout, broken connection, 5xx */
    BB_CALL_RATE_LIMITED                  /* 429 */
} bb_call_outcome_t;

/* A breaker over `state` (a NULL state: a limit of calls only, never open). */
bb_breaker_t *bb_breaker_create(apr_pool_t *p, bb_breaker_state_t *state, const char *name, apr_uint32_t threshold,
                                apr_uint32_t cooldown, apr_uint32_t max_calls);

/* Before a call at unix time now. GO and PROBE count the call in flight (the caller must bb_breaker_leave);
 * OPEN and FULL set *retry_after (seconds, at least 1). A NULL breaker always says GO. */
bb_breaker_admit_t bb_breaker_enter(bb_breaker_t *b, apr_int64_t now, apr_int64_t *retry_after);

/* After a call that bb_breaker_enter admitted: the outcome closes (an answer), counts toward opening, or opens
 * (threshold consecutive failures; a failed probe; a 429 for retry_after seconds, or the cool-down when it gave
 * none) the circuit. Notifies "circuit open until <date> ...", "rate-limited by Bitbucket, retrying after N s" and
 * "circuit closed ...". */
void bb_breaker_leave(bb_breaker_t *b, bb_breaker_admit_t admitted, bb_call_outcome_t outcome, apr_int64_t now,
                      apr_int64_t retry_after);

/* Seconds until the circuit may close again (0: closed), for a Retry-After. */
apr_int64_t bb_breaker_retry_after(const bb_breaker_t *b, apr_int64_t now);

/* A Retry-After header's seconds (delta-seconds or an HTTP date, relative to now), capped at max; 0 when absent or
 * unusable. */
apr_int64_t bb_breaker_parse_retry_after(const char *value, apr_int64_t now, apr_int64_t max);

#endif
