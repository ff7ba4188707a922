/* bb_cachecontrol: the Cache-Control value that keeps an authenticated response out of shared caches. */
#ifndef BB_CACHECONTROL_H
#define BB_CACHECONTROL_H

#include <apr_pools.h>

/* The Cache-Control value for a response the app answered with `current` (NULL or "" when it set none; several
 * headers joined with ", "): "private" first, then "no-store" when no_store asks for it and the app did not say it,
 * then every directive of the app except those that let a shared cache keep it ("public", "s-maxage", and a
 * "private" limited to some fields, which shares the rest). Quoted values (no-cache="Set-Cookie, X") stay whole.
 * Never weaker than what the app set. */
const char *bb_cache_control_private(apr_pool_t *p, const char *current, int no_store);

#endif
