/* bb_hostflight: one question to Bitbucket at a time per key on a host, in a table of shared memory. */
#ifndef BB_HOSTFLIGHT_H
#define BB_HOSTFLIGHT_H

#include <apr_atomic.h>
#include <apr_time.h>

/* Questions a host tracks at once, and the slots one key may use (more simply go untracked: asked again). */
#define BB_HOSTFLIGHT_SLOTS 512
#define BB_HOSTFLIGHT_WAYS  8
/* Seconds a landed answer stays for processes arriving just after the leader landed. */
#define BB_HOSTFLIGHT_KEEP  2

/* One question: who asks, until when, and its answer once landed. No lock: the key is taken with a CAS, the
 * question with a CAS on state (until << 32 | outcome), so of the processes arriving together exactly one leads. */
typedef struct {
    volatile apr_uint64_t key;            /* bb_digest64 of the caller's key (a keyed hash, never a token); 0: free */
    volatile apr_uint64_t state;          /* unix time the question (or its kept answer) ends << 32 | outcome */
} bb_hostflight_slot_t;

/* Made by the glue in a shared memory segment before the children are forked; zeroed: nothing asked. */
typedef struct {
    bb_hostflight_slot_t slots[BB_HOSTFLIGHT_SLOTS];
} bb_hostflights_t;

typedef enum {
    BB_HOSTFLIGHT_LEAD = 0,               /* nobody on the host is asking: the caller asks, then bb_hostflight_land */
    BB_HOSTFLIGHT_LANDED,                 /* another process answered (now, or while the caller waited): *outcome */
    BB_HOSTFLIGHT_BUSY                    /* another process is still asking after `wait` */
} bb_hostflight_role_t;

/* A question being asked, for its leader's bb_hostflight_land. */
typedef struct {
    bb_hostflight_slot_t *slot;           /* NULL: untracked (no table, no key, or every slot of the key busy) */
    apr_uint64_t key;
} bb_hostflight_t;

/* Joins the question `key` at unix time now: leads it (the question expires at now + `expires` seconds, should its
 * leader die) when nobody on the host is asking, else waits up to `wait`, polling, for the leader's answer. Outcomes
 * are the caller's codes, any int but INT_MAX. */
bb_hostflight_role_t bb_hostflight_join(bb_hostflights_t *table, const char *key, apr_int64_t now,
                                        apr_int64_t expires, apr_interval_time_t wait, bb_hostflight_t *flight,
                                        int *outcome);

/* The leader's answer at unix time now: kept BB_HOSTFLIGHT_KEEP seconds for the others. */
void bb_hostflight_land(const bb_hostflight_t *flight, int outcome, apr_int64_t now);

#endif
