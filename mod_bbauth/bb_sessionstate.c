/* bb_sessionstate: a session's ended mark, revalidation mark and grant in the shared cache, remembered per process. */
#include <string.h>
#include <stdio.h>
#include <apr_atomic.h>
#include <apr_strings.h>
#include "bb_sessionstate.h"

#define ENDED_NS    "ended"
#define CHECKED_NS  "checked"
/* An ended session stays ended: this process believes the cache's "ended" this long without asking again. */
#define ENDED_MEMO  3600
/* Longest text of a checked mark: the unix time it holds until. */
#define CHECKED_MAX 20

/* What this process remembers of a session, as unix times until which each answer is believed (0: nothing). */
typedef struct {
    apr_int64_t live_until;        /* the cache said "not ended" ... */
    apr_int64_t ends_seen;         /* ... when this host had ended this many sessions */
    apr_int64_t ended_until;
    apr_int64_t checked_until;
    apr_int64_t grant_until;
} remembered_t;

static void recall(apr_pool_t *p, const bb_sessionstate_t *ss, const char *sid, apr_int64_t now, remembered_t *rec)
{
    bb_memo_value_t v;

    memset(rec, 0, sizeof(*rec));
    if (bb_memo_get(ss->memo, p, sid, strlen(sid), now, &v)) {
        rec->live_until = v.n[0];
        rec->ends_seen = v.n[1];
        rec->ended_until = v.n[2];
        rec->checked_until = v.n[3];
        rec->grant_until = v.n[4];
    }
}

static apr_int64_t latest(apr_int64_t a, apr_int64_t b)
{
    return a > b ? a : b;
}

static void remember(const bb_sessionstate_t *ss, const char *sid, const remembered_t *rec)
{
    bb_memo_value_t v;

    memset(&v, 0, sizeof(v));
    v.n[0] = rec->live_until;
    v.n[1] = rec->ends_seen;
    v.n[2] = rec->ended_until;
    v.n[3] = rec->checked_until;
    v.n[4] = rec->grant_until;
    bb_memo_put(ss->memo, sid, strlen(sid), latest(latest(rec->live_until, rec->ended_until),
                                                   latest(rec->checked_until, rec->grant_until)), &v);
}

static apr_int64_t host_ends(const bb_sessionstate_t *ss)
{
    return ss->host_ends ? (apr_int64_t)apr_atomic_read32(ss->host_ends) : 0;
}

static const char *key_of(apr_pool_t *p, const bb_sessionstate_t *ss, const char *ns, const char *sid)
{
    return bb_cache_name(p, ss->space, ns, sid);
}

bb_session_liveness_t bb_sessionstate_liveness(apr_pool_t *p, const bb_sessionstate_t *ss, const char *sid,
                                               apr_int64_t now)
{
    remembered_t rec;
    /* Read before the cache: a session ended here after this read changes the count and voids what follows. */
    apr_int64_t ends = host_ends(ss);
    const char *key;
    apr_status_t rv;

    recall(p, ss, sid, now, &rec);
    if (rec.ended_until > now) {
        return BB_SESSION_ENDED;
    }
    if (rec.live_until > now && rec.ends_seen == ends) {
        return BB_SESSION_LIVE;
    }
    key = key_of(p, ss, ENDED_NS, sid);
    if (ss->cache == NULL || key == NULL) {
        return BB_SESSION_UNKNOWN;
    }
    rv = bb_cache_has_marker(ss->cache, key, p);
    if (rv == APR_SUCCESS) {
        rec.ended_until = now + ENDED_MEMO;
        remember(ss, sid, &rec);
        return BB_SESSION_ENDED;
    }
    if (rv != APR_NOTFOUND) {
        return BB_SESSION_UNKNOWN;
    }
    rec.live_until = now + ss->recheck;
    rec.ends_seen = ends;
    remember(ss, sid, &rec);
    return BB_SESSION_LIVE;
}

apr_status_t bb_sessionstate_end(apr_pool_t *p, const bb_sessionstate_t *ss, const char *sid, apr_int64_t now,
                                 apr_int64_t until)
{
    const char *key = key_of(p, ss, ENDED_NS, sid);
    apr_status_t rv = ss->cache && key ? bb_cache_store_marker(ss->cache, key, apr_time_from_sec(until), p)
                                       : APR_EINVAL;
    remembered_t rec;

    bb_sessionstate_forget_grant(p, ss, sid);
    recall(p, ss, sid, now, &rec);
    rec.ended_until = now + ENDED_MEMO;
    rec.live_until = 0;
    remember(ss, sid, &rec);
    /* After the mark: a process that reads the count after this sees the mark in the cache too. */
    if (ss->host_ends) {
        apr_atomic_inc32(ss->host_ends);
    }
    return rv;
}

int bb_sessionstate_checked(apr_pool_t *p, const bb_sessionstate_t *ss, const char *sid, apr_int64_t now)
{
    remembered_t rec;
    const char *key;
    const char *text;
    apr_size_t len;
    apr_int64_t until;
    int end = 0;

    recall(p, ss, sid, now, &rec);
    if (rec.checked_until > now) {
        return 1;
    }
    key = key_of(p, ss, CHECKED_NS, sid);
    text = key ? (const char *)bb_cache_retrieve_authentic(p, ss->cache, ss->key, key, CHECKED_MAX, &len) : NULL;
    if (text == NULL || sscanf(text, "%" APR_INT64_T_FMT "%n", &until, &end) != 1 || (apr_size_t)end != len
        || until <= now) {
        return 0;
    }
    rec.checked_until = until;
    remember(ss, sid, &rec);
    return 1;
}

apr_status_t bb_sessionstate_mark_checked(apr_pool_t *p, const bb_sessionstate_t *ss, const char *sid,
                                          apr_int64_t now, apr_int64_t until)
{
    const char *key = key_of(p, ss, CHECKED_NS, sid);
    const char *text = apr_psprintf(p, "%" APR_INT64_T_FMT, until);
    remembered_t rec;

    recall(p, ss, sid, now, &rec);
    rec.checked_until = until;
    remember(ss, sid, &rec);
    return bb_cache_store_authentic(p, ss->cache, ss->key, key, until, text, strlen(text));
}

/* Remembers whether a grant is kept, for ss->recheck seconds. */
static void remember_grant(apr_pool_t *p, const bb_sessionstate_t *ss, const char *sid, apr_int64_t now, int kept)
{
    remembered_t rec;

    recall(p, ss, sid, now, &rec);
    rec.grant_until = kept ? now + ss->recheck : 0;
    remember(ss, sid, &rec);
}

apr_status_t bb_sessionstate_save_grant(apr_pool_t *p, const bb_sessionstate_t *ss, const char *sid,
                                        const bb_grant_t *grant, apr_int64_t now, apr_int64_t until)
{
    apr_status_t rv = ss->cache ? bb_grant_store(p, ss->cache, ss->space, ss->sealer, sid, grant,
                                                 apr_time_from_sec(until))
                                : APR_EINVAL;

    remember_grant(p, ss, sid, now, rv == APR_SUCCESS);
    return rv;
}

bb_grant_t *bb_sessionstate_load_grant(apr_pool_t *p, const bb_sessionstate_t *ss, const char *sid, apr_int64_t now)
{
    bb_grant_t *grant = ss->cache ? bb_grant_load(p, ss->cache, ss->space, ss->sealer, sid) : NULL;

    remember_grant(p, ss, sid, now, grant != NULL);
    return grant;
}

int bb_sessionstate_has_grant(apr_pool_t *p, const bb_sessionstate_t *ss, const char *sid, apr_int64_t now)
{
    remembered_t rec;

    recall(p, ss, sid, now, &rec);
    return rec.grant_until > now || bb_sessionstate_load_grant(p, ss, sid, now) != NULL;
}

void bb_sessionstate_forget_grant(apr_pool_t *p, const bb_sessionstate_t *ss, const char *sid)
{
    remembered_t rec;

    if (ss->cache) {
        bb_grant_remove(p, ss->cache, ss->space, sid);
    }
    recall(p, ss, sid, 0, &rec);
    rec.grant_until = 0;
    remember(ss, sid, &rec);
}
