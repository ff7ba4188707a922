/* bb_pkce: PKCE (RFC 7636) S256: code verifiers and their challenges. */
#ifndef BB_PKCE_H
#define BB_PKCE_H

#include <apr_pools.h>

/* A fresh code_verifier: base64url of 32 random bytes (43 characters). NULL if no randomness. */
char *bb_pkce_verifier(apr_pool_t *p);
/* code_challenge = base64url(SHA-256(verifier)), no padding. */
char *bb_pkce_challenge_s256(apr_pool_t *p, const char *verifier);

#endif
