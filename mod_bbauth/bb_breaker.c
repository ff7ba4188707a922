/* bb_breaker: outage isolation for Bitbucket calls: per-process limits, per-holder 429 holds, a circuit breaker. */
#include <apr_date.h>
#include <apr_lib.h>
#include <apr_strings.h>
#include <apr_time.h>
#include "bb_breaker.h"
#include "bb_util.h"

/* A probe still out after this long died with its process: another request may probe. */
#define PROBE_EXPIRES_SEC 120

bb_breaker_t *bb_breaker_create(apr_pool_t *p, bb_breaker_state_t *state, const char *name, apr_uint32_t threshold,
                                apr_uint32_t cooldown, apr_uint32_t max_calls)
{
    bb_breaker_t *b = apr_pcalloc(p, sizeof(*b));

    b->state = state;
    b->name = name ? name : "Bitbucket";
    b->threshold = state ? threshold : 0;
    b->cooldown = cooldown > 0 ? cooldown : 1;
    b->max_calls = max_calls;
    b->anonymous_calls = max_calls / 4 > 0 ? max_calls / 4 : 1;
    return b;
}

/* The slots a digest may use. */
static bb_hold_t *ways_of(bb_breaker_state_t *st, apr_uint64_t digest, int way)
{
    return &st->holds[(digest + (apr_uint64_t)way) % BB_BREAKER_HOLDS];
}

/* Seconds the holder is still held back at now (0: not held). */
static apr_int64_t held_for(bb_breaker_state_t *st, const char *holder, apr_int64_t now)
{
    apr_uint64_t digest = bb_digest64(holder);
    int way;

    for (way = 0; st && way < BB_BREAKER_HOLD_WAYS; way++) {
        bb_hold_t *hold = ways_of(st, digest, way);
        apr_int64_t until = apr_atomic_read32(&hold->until);

        if (apr_atomic_read64(&hold->holder) == digest && until > now) {
            return until - now;
        }
    }
    return 0;
}

/* The holder's slot: its own, else a free or ended one, else the one whose hold ends first. */
static bb_hold_t *slot_for(bb_breaker_state_t *st, apr_uint64_t digest, apr_int64_t now)
{
    bb_hold_t *best = NULL;
    int way;

    for (way = 0; way < BB_BREAKER_HOLD_WAYS; way++) {
        bb_hold_t *hold = ways_of(st, digest, way);
        apr_uint32_t until = apr_atomic_read32(&hold->until);

        if (apr_atomic_read64(&hold->holder) == digest) {
            return hold;
        }
        if ((apr_int64_t)until <= now) {
            until = 0;
        }
        if (best == NULL || until < apr_atomic_read32(&best->until)) {
            best = hold;
        }
    }
    return best;
}

/* Holds the holder back until now + seconds (never shortening a longer hold of its own). */
static void hold(bb_breaker_state_t *st, const char *holder, apr_int64_t now, apr_int64_t seconds)
{
    apr_uint64_t digest = bb_digest64(holder);
    bb_hold_t *slot = slot_for(st, digest, now);
    apr_uint32_t until = (apr_uint32_t)(now + seconds);

    if (apr_atomic_read64(&slot->holder) == digest && apr_atomic_read32(&slot->until) >= until) {
        return;
    }
    apr_atomic_set32(&slot->until, 0);          /* no reader takes the new holder for the old hold's */
    apr_atomic_set64(&slot->holder, digest);
    apr_atomic_set32(&slot->until, until);
}

/* Holders held back at now, and the latest end of their holds. */
static apr_uint32_t holds_active(bb_breaker_state_t *st, apr_int64_t now, apr_int64_t *latest)
{
    apr_uint32_t active = 0;
    int i;

    *latest = now;
    for (i = 0; i < BB_BREAKER_HOLDS; i++) {
        apr_int64_t until = apr_atomic_read32(&st->holds[i].until);

        if (until > now) {
            active++;
            *latest = until > *latest ? until : *latest;
        }
    }
    return active;
}

static void notify(const bb_breaker_t *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void notify(const bb_breaker_t *b, const char *fmt, ...)
{
    char line[512];
    va_list ap;

    if (b->notify == NULL) {
        return;
    }
    va_start(ap, fmt);
    apr_vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    b->notify(b->baton, line);
}

/* OPEN, PROBE or GO as far as the circuit is concerned. */
static bb_breaker_admit_t circuit_admits(bb_breaker_t *b, apr_int64_t now, apr_int64_t *retry_after)
{
    bb_breaker_state_t *st = b->state;
    apr_uint32_t open_until = st ? apr_atomic_read32(&st->open_until) : 0;

    if (open_until == 0) {
        return BB_BREAKER_GO;
    }
    if (now < (apr_int64_t)open_until) {
        *retry_after = (apr_int64_t)open_until - now;
        return BB_BREAKER_OPEN;
    }
    if (apr_atomic_read32(&st->probing)
        && now - (apr_int64_t)apr_atomic_read32(&st->probe_started) > PROBE_EXPIRES_SEC) {
        apr_atomic_set32(&st->probing, 0);
    }
    if (apr_atomic_cas32(&st->probing, 1, 0) == 0) {
        apr_atomic_set32(&st->probe_started, (apr_uint32_t)now);
        return BB_BREAKER_PROBE;
    }
    *retry_after = 1;       /* the probe decides within BBAuthTimeout */
    return BB_BREAKER_OPEN;
}

static int is_anonymous(const char *holder)
{
    return holder != NULL && strcmp(holder, BB_HOLDER_ANONYMOUS) == 0;
}

/* Takes a place among the process's calls in flight (and the anonymous share of them): 0 when there is none. */
static int take_place(bb_breaker_t *b, const char *holder)
{
    if (apr_atomic_inc32(&b->in_flight) >= b->max_calls && b->max_calls > 0) {
        apr_atomic_dec32(&b->in_flight);
        return 0;
    }
    if (is_anonymous(holder) && b->max_calls > 0
        && apr_atomic_inc32(&b->anonymous_in_flight) >= b->anonymous_calls) {
        apr_atomic_dec32(&b->anonymous_in_flight);
        apr_atomic_dec32(&b->in_flight);
        return 0;
    }
    return 1;
}

static void give_place(bb_breaker_t *b, const char *holder)
{
    if (is_anonymous(holder) && b->max_calls > 0) {
        apr_atomic_dec32(&b->anonymous_in_flight);
    }
    apr_atomic_dec32(&b->in_flight);
}

bb_breaker_admit_t bb_breaker_enter(bb_breaker_t *b, const char *holder, apr_int64_t now, apr_int64_t *retry_after)
{
    bb_breaker_admit_t admit;

    *retry_after = 0;
    if (b == NULL) {
        return BB_BREAKER_GO;
    }
    *retry_after = held_for(b->state, holder, now);
    if (*retry_after > 0) {
        return BB_BREAKER_HELD;
    }
    admit = circuit_admits(b, now, retry_after);
    if (admit == BB_BREAKER_OPEN) {
        return admit;
    }
    if (!take_place(b, holder)) {
        if (admit == BB_BREAKER_PROBE) {
            apr_atomic_set32(&b->state->probing, 0);    /* another request may probe */
        }
        *retry_after = 1;
        return BB_BREAKER_FULL;
    }
    return admit;
}

/* Opens the circuit until now + seconds (never shortening a longer opening); 1 when it was not open till then. */
static int open_circuit(bb_breaker_t *b, apr_int64_t now, apr_int64_t seconds)
{
    bb_breaker_state_t *st = b->state;
    apr_uint32_t until = (apr_uint32_t)(now + seconds), seen;

    do {
        seen = apr_atomic_read32(&st->open_until);
        if (seen >= until) {
            return 0;
        }
    } while (apr_atomic_cas32(&st->open_until, until, seen) != seen);
    return 1;
}

static void log_opened(const bb_breaker_t *b, apr_int64_t now, apr_int64_t seconds, const char *why)
{
    char date[APR_RFC822_DATE_LEN];

    apr_rfc822_date(date, apr_time_from_sec(now + seconds));
    notify(b, "circuit open until %s (%" APR_INT64_T_FMT " s) after %s at %s: requests that need Bitbucket get 503 "
           "with Retry-After until then, then one probe call decides", date, seconds, why, b->name);
}

static void failed(bb_breaker_t *b, bb_breaker_admit_t admitted, apr_int64_t now)
{
    bb_breaker_state_t *st = b->state;
    apr_uint32_t failures = apr_atomic_inc32(&st->failures) + 1;

    if (admitted == BB_BREAKER_PROBE) {
        if (open_circuit(b, now, b->cooldown)) {
            log_opened(b, now, b->cooldown, "the probe call failed");
        }
    }
    else if (failures >= b->threshold && apr_atomic_read32(&st->open_until) == 0
             && open_circuit(b, now, b->cooldown)) {
        char why[64];

        apr_snprintf(why, sizeof(why), "%u consecutive failed calls", failures);
        log_opened(b, now, b->cooldown, why);
    }
}

static void closed_by_probe(bb_breaker_t *b)
{
    apr_atomic_set32(&b->state->open_until, 0);
    apr_atomic_set32(&b->state->probing, 0);
    notify(b, "circuit closed: %s answered the probe call", b->name);
}

static const char *whom(const char *holder)
{
    return holder == NULL ? "this server's own calls (logins)" : is_anonymous(holder)
           ? "checks of credentials nobody confirmed (anonymous)" : "one user";
}

/* A 429 holds back its holder; many holders held at once open the circuit (Bitbucket limits the whole module). */
static void rate_limited(bb_breaker_t *b, const char *holder, bb_breaker_admit_t admitted, apr_int64_t now,
                         apr_int64_t retry_after)
{
    apr_int64_t seconds = retry_after > 0 ? retry_after : b->cooldown, latest;
    apr_uint32_t many = b->threshold > BB_BREAKER_MANY_HELD ? b->threshold : BB_BREAKER_MANY_HELD;
    apr_uint32_t active;

    hold(b->state, holder, now, seconds);
    notify(b, "rate-limited by Bitbucket, retrying after %" APR_INT64_T_FMT " s for %s only (%s answered 429)",
           seconds, whom(holder), b->name);
    active = holds_active(b->state, now, &latest);
    if (b->threshold > 0 && active >= many) {
        char why[64];

        apr_snprintf(why, sizeof(why), "429s for %u users at once", active);
        if (open_circuit(b, now, latest - now)) {
            log_opened(b, now, latest - now, why);
        }
    }
    else if (admitted == BB_BREAKER_PROBE) {
        closed_by_probe(b);     /* Bitbucket answers: only the holder waits */
    }
}

void bb_breaker_leave(bb_breaker_t *b, const char *holder, bb_breaker_admit_t admitted, bb_call_outcome_t outcome,
                      apr_int64_t now, apr_int64_t retry_after)
{
    bb_breaker_state_t *st;

    if (b == NULL || (admitted != BB_BREAKER_GO && admitted != BB_BREAKER_PROBE)) {
        return;
    }
    give_place(b, holder);
    st = b->state;
    if (st == NULL) {
        return;
    }
    if (outcome == BB_CALL_RATE_LIMITED) {
        rate_limited(b, holder, admitted, now, retry_after);
    }
    else if (b->threshold == 0) {
        return;
    }
    else if (outcome == BB_CALL_ANSWERED) {
        apr_atomic_set32(&st->failures, 0);
        if (admitted == BB_BREAKER_PROBE) {
            closed_by_probe(b);
        }
        return;
    }
    else {
        failed(b, admitted, now);
    }
    if (admitted == BB_BREAKER_PROBE) {
        apr_atomic_set32(&st->probing, 0);
    }
}

apr_int64_t bb_breaker_retry_after(const bb_breaker_t *b, const char *holder, apr_int64_t now)
{
    apr_uint32_t open_until = b && b->state ? apr_atomic_read32(&b->state->open_until) : 0;
    apr_int64_t circuit = 0, held = b ? held_for(b->state, holder, now) : 0;

    if (open_until != 0) {
        circuit = (apr_int64_t)open_until > now ? (apr_int64_t)open_until - now : 1;
    }
    return circuit > held ? circuit : held;
}

apr_int64_t bb_breaker_parse_retry_after(const char *value, apr_int64_t now, apr_int64_t max)
{
    apr_int64_t seconds = 0;
    apr_time_t date;
    const char *c;

    if (value == NULL || *value == '\0') {
        return 0;
    }
    for (c = value; apr_isdigit(*c); c++) {
        seconds = seconds * 10 + (*c - '0');
        if (seconds > max) {
            return max;
        }
    }
    if (c == value || *c != '\0') {
        date = apr_date_parse_http(value);
        seconds = date == APR_DATE_BAD ? 0 : apr_time_sec(date) - now;
    }
    return seconds < 0 ? 0 : seconds > max ? max : seconds;
}
