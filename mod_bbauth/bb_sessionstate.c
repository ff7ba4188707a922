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
#define CANARY_NS   "canary"
/* The canary lives a week (under memcached's 30-day limit on relative expiries) and is rewritten, epoch kept, when
 * it was written more than CANARY_REFRESH seconds ago: it is always among the newest entries of an evicting cache. */
#define CANARY_TTL     (7 * 86400)
#define CANARY_REFRESH 60
/* Longest text of a canary: "<epoch> <written>", two unix times. */
#define CANARY_MAX  41

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

/* Reads the canary: APR_SUCCESS with *epoch and *written, APR_NOTFOUND when absent or not one (written by
 * something else: rewritten), or the cache's error. */
static apr_status_t read_canary(apr_pool_t *p, const bb_sessionstate_t *ss, const char *key, apr_int64_t *epoch,
                                apr_int64_t *written)
{
    char text[CANARY_MAX + 1];
    unsigned int len = CANARY_MAX;
    int end = 0;
    apr_status_t rv = ss->cache->retrieve(ss->cache->baton, (const unsigned char *)key, (unsigned int)strlen(key),
                                          (unsigned char *)text, &len, p);

    if (rv != APR_SUCCESS) {
        return rv == APR_ENOSPC ? APR_NOTFOUND : rv;
    }
    text[len] = '\0';
    if (sscanf(text, "%" APR_INT64_T_FMT " %" APR_INT64_T_FMT "%n", epoch, written, &end) != 2
        || (unsigned int)end != len) {
        return APR_NOTFOUND;
    }
    return APR_SUCCESS;
}

static apr_status_t write_canary(apr_pool_t *p, const bb_sessionstate_t *ss, const char *key, apr_int64_t epoch,
                                 apr_int64_t now)
{
    const char *text = apr_psprintf(p, "%" APR_INT64_T_FMT " %" APR_INT64_T_FMT, epoch, now);

    return ss->cache->store(ss->cache->baton, (const unsigned char *)key, (unsigned int)strlen(key),
                            apr_time_from_sec(now + CANARY_TTL), (const unsigned char *)text,
                            (unsigned int)strlen(text), p);
}

apr_status_t bb_sessionstate_epoch(apr_pool_t *p, const bb_sessionstate_t *ss, apr_int64_t now, apr_int64_t *epoch)
{
    const char *key = ss->cache ? key_of(p, ss, CANARY_NS, "epoch") : NULL;
    apr_int64_t written;
    apr_status_t rv;

    if (key == NULL) {
        return APR_EINVAL;
    }
    rv = read_canary(p, ss, key, epoch, &written);
    if (rv == APR_SUCCESS) {
        if (written + CANARY_REFRESH <= now) {
            write_canary(p, ss, key, *epoch, now);   /* a failure shows at the next read */
        }
        return APR_SUCCESS;
    }
    if (rv != APR_NOTFOUND) {
        return rv;
    }
    /* None: a new epoch begins now, unless the cache cannot keep what it is given (blind). */
    rv = write_canary(p, ss, key, now, now);
    if (rv != APR_SUCCESS) {
        return rv;
    }
    rv = read_canary(p, ss, key, epoch, &written);
    return rv == APR_NOTFOUND ? APR_EGENERAL : rv;
}

bb_session_liveness_t bb_sessionstate_liveness(apr_pool_t *p, const bb_sessionstate_t *ss, const char *sid,
                                               apr_int64_t began, apr_int64_t now, int *checked)
{
    apr_int64_t epoch;
    remembered_t rec;
    /* Read before the cache: a session ended here after this read changes the count and voids what follows. */
    apr_int64_t ends = host_ends(ss);
    const char *key;
    apr_status_t rv;

    recall(p, ss, sid, now, &rec);
    if (checked) {
        *checked = rec.checked_until > now;
    }
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
    if (rv != APR_NOTFOUND || bb_sessionstate_epoch(p, ss, now, &epoch) != APR_SUCCESS) {
        return BB_SESSION_UNKNOWN;
    }
    if (epoch > began) {
        return BB_SESSION_UNVERIFIED;
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
