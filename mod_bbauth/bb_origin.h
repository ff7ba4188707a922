/* bb_origin: whether a browser's request came from this site's own pages (Fetch Metadata, Origin). */
#ifndef BB_ORIGIN_H
#define BB_ORIGIN_H

typedef enum {
    BB_ORIGIN_SAME = 0,        /* sent by a page of this site */
    BB_ORIGIN_CROSS,           /* sent by another site (a sibling host too), or a browser hid where from */
    BB_ORIGIN_UNKNOWN          /* no Sec-Fetch-Site and no Origin: not a browser (curl, a script) */
} bb_origin_t;

/* Where a request came from, by its Sec-Fetch-Site header (trusted first: only "same-origin" is this site) and
 * else its Origin header, which must equal one of the n_site_origins "scheme://host[:port]" (NULL entries skipped;
 * compared without regard to case). Either header NULL when absent. */
bb_origin_t bb_origin_of(const char *sec_fetch_site, const char *origin, const char *const *site_origins,
                         int n_site_origins);

#endif
