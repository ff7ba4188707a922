/* bb_origin: tells a request sent by this site's own pages from one another site made a browser send. */
#include <strings.h>
#include "bb_origin.h"

bb_origin_t bb_origin_of(const char *sec_fetch_site, const char *origin, const char *const *site_origins,
                         int n_site_origins)
{
    int i;

    /* Browsers set Sec-Fetch-Site themselves (no page can): "same-site" is a sibling host, which must not count. */
    if (sec_fetch_site) {
        return !strcasecmp(sec_fetch_site, "same-origin") ? BB_ORIGIN_SAME : BB_ORIGIN_CROSS;
    }
    if (!origin) {
        return BB_ORIGIN_UNKNOWN;
    }
    for (i = 0; i < n_site_origins; i++) {
        if (site_origins[i] && !strcasecmp(origin, site_origins[i])) {
            return BB_ORIGIN_SAME;
        }
    }
    return BB_ORIGIN_CROSS;   /* another origin, or "null" (a sandboxed page, a redirect from elsewhere) */
}
