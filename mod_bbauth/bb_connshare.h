/* bb_connshare: per-process libcurl shares (connection cache, TLS sessions, DNS) for the threads of a child. */
#ifndef BB_CONNSHARE_H
#define BB_CONNSHARE_H

#include <apr_pools.h>
#include <curl/curl.h>

/* Most distinct sets of extra CA certificates (BBAuthCAFile values) a process keeps shares for; requests of a
 * server beyond them simply open connections of their own. */
#define BB_CONNSHARE_MAX 8

/* Once per process (a child, after fork): shares can be handed out from then on, until pool p is destroyed
 * (which closes their connections). APR_ENOTIMPL without threads; another error when no mutex could be made. */
apr_status_t bb_connshare_init(apr_pool_t *p);

/* The share for the requests that trust ca_pem (the pointer is the identity: a server's configuration keeps
 * it for its life; NULL: the system's CAs only), made on first use with a lock per kind of data, so that
 * connections and TLS sessions verified against one trust store are never reused under another. NULL before
 * bb_connshare_init, after its pool is gone, or with BB_CONNSHARE_MAX shares made already. */
CURLSH *bb_connshare_for(const char *ca_pem);

#endif
