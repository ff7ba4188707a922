/* bb_pkce: PKCE (RFC 7636) with S256: a random code_verifier and its code_challenge. */
#include <string.h>
#include <openssl/sha.h>
#include "bb_util.h"
#include "bb_pkce.h"

#define PKCE_VERIFIER_BYTES 32          /* 43 base64url characters, within RFC 7636's 43..128 */

char *bb_pkce_verifier(apr_pool_t *p)
{
    return bb_random_token(p, PKCE_VERIFIER_BYTES);
}

char *bb_pkce_challenge_s256(apr_pool_t *p, const char *verifier)
{
    unsigned char digest[SHA256_DIGEST_LENGTH];

    if (verifier == NULL) {
        return NULL;
    }
    SHA256((const unsigned char *)verifier, strlen(verifier), digest);
    return bb_base64url_encode(p, digest, sizeof(digest));
}
