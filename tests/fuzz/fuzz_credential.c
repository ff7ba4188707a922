/* fuzz_credential: the Authorization header of command-line clients (bb_credential_parse), with the properties an
 * accepted token must have. */
#include "fuzz.h"
#include "bb_credential.h"

static int is_b64token_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || strchr("-._~+/", c);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    apr_pool_t *p = fuzz_pool();
    const char *header = apr_pstrmemdup(p, (const char *)data, size);
    bb_credential_t *cred = NULL;
    bb_cred_status_t status = bb_credential_parse(p, header, &cred);
    const char *reason = bb_credential_reason(status);

    FUZZ_ASSERT(reason != NULL);
    FUZZ_ASSERT((status == BB_CRED_OK) == (cred != NULL));
    if (cred) {
        const char *t = cred->token;
        size_t len = strlen(t);
        size_t n = 0;

        FUZZ_ASSERT(len > 0 && len <= BB_CREDENTIAL_MAX_TOKEN);
        while (n < len && t[n] != '=' && is_b64token_char(t[n])) {
            n++;
        }
        FUZZ_ASSERT(n > 0);
        while (n < len && t[n] == '=') {
            n++;
        }
        FUZZ_ASSERT(n == len);
        FUZZ_ASSERT(cred->basic_username == NULL || !fuzz_has_control(cred->basic_username));
        FUZZ_ASSERT(cred->scheme == BB_CRED_SCHEME_BEARER || cred->scheme == BB_CRED_SCHEME_BASIC);
    }
    apr_pool_destroy(p);
    return 0;
}
