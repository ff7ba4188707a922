/* fuzz_session: the session cookie and the login-state cookie (bb_cookie_values, bb_jws_verify, bb_session_decode,
 * bb_login_state_decode). The session ring has signers too (ES256 and EdDSA, as with BBAuthSigningKey), so tokens
 * naming them reach the public-key checks. The first byte picks what the rest is, modulo 4:
 *   '0'  a whole Cookie header, as a browser (or an attacker) sends it
 *   '1'  a session payload (JSON text), signed here with the right key, so the claim checks are reached
 *   '2'  a JWS header (JSON text), with valid claims, signed here, so the header checks are reached
 *   '3'  a login-state payload, signed here under the state keys */
#include "fuzz.h"
#include "bb_util.h"
#include "bb_keys.h"
#include "bb_sign.h"
#include "bb_jws.h"
#include "bb_cookie.h"
#include "bb_session.h"
#include "bb_state.h"
#include <openssl/evp.h>
#include <openssl/hmac.h>

#define NOW        1700000000
#define ISSUER     "https://mirror.example.com"
#define KEY_FILE   "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n" \
                   "1111111111111111111111111111111111111111111111111111111111111111\n"
/* The unit tests' P-256 and Ed25519 keys: P256_PEM and ED25519_PEM. */
#include "../unit/sign_keys.h"
#define STATE_LABEL "mod_bbauth login state v1"
#define GOOD_CLAIMS "{\"sub\":\"alice\",\"uid\":42,\"name\":\"Alice\",\"email\":\"a@example.com\",\"sid\":\"c2lk\"," \
                    "\"iss\":\"" ISSUER "\",\"auth_time\":1700000000,\"iat\":1700000000,\"exp\":1700003600}"

static const bb_session_policy_t policy = { ISSUER, 28800, 3600 };

/* header.payload.signature with the parts given as raw (JSON) text, signed with the ring's first key. */
static const char *sign_parts(apr_pool_t *p, const bb_keyring_t *ring, const char *header, size_t hlen,
                              const char *payload, size_t plen)
{
    const bb_key_t *key = &APR_ARRAY_IDX(ring->keys, 0, bb_key_t);
    unsigned char mac[32];
    unsigned int mac_len = 0;
    const char *input = apr_pstrcat(p, bb_base64url_encode(p, (const unsigned char *)header, hlen), ".",
                                    bb_base64url_encode(p, (const unsigned char *)payload, plen), NULL);

    if (HMAC(EVP_sha256(), key->secret, (int)key->len, (const unsigned char *)input, strlen(input), mac,
             &mac_len) == NULL) {
        abort();
    }
    return apr_pstrcat(p, input, ".", bb_base64url_encode(p, mac, mac_len), NULL);
}

static const char *header_for(apr_pool_t *p, const bb_keyring_t *ring, const char *typ)
{
    return apr_psprintf(p, "{\"alg\":\"HS256\",\"kid\":\"%s\",\"typ\":\"%s\"}",
                        APR_ARRAY_IDX(ring->keys, 0, bb_key_t).kid, typ);
}

/* What the header promises of a session that decodes as valid; and the memo (asked twice: filled, then
 * answering) says exactly what the plain decode says. */
static void check_session(const char *value, const bb_keyring_t *ring, bb_memo_t *memo)
{
    apr_pool_t *p = fuzz_pool();
    bb_session_t *s = NULL, *m = NULL;
    bb_session_status_t status = bb_session_decode(p, ring, &policy, value, NOW, &s);
    int i;

    for (i = 0; i < 2; i++) {
        FUZZ_ASSERT(bb_session_decode_memo(p, memo, ring, &policy, value, NOW, &m) == status);
        FUZZ_ASSERT((m == NULL) == (s == NULL));
        FUZZ_ASSERT(m == NULL || (strcmp(m->sub, s->sub) == 0 && strcmp(m->name, s->name) == 0
                                  && strcmp(m->email, s->email) == 0 && strcmp(m->sid, s->sid) == 0
                                  && m->uid == s->uid && m->auth_time == s->auth_time && m->iat == s->iat
                                  && m->exp == s->exp));
    }

    FUZZ_ASSERT((status == BB_SESSION_VALID) == (s != NULL));
    if (s) {
        FUZZ_ASSERT(s->sub && *s->sub && s->sid && *s->sid && s->name && s->email);
        FUZZ_ASSERT(s->exp > NOW && s->auth_time <= s->iat && s->iat <= NOW + 60);
        FUZZ_ASSERT(NOW < s->auth_time + policy.max_age && NOW < s->iat + policy.idle_timeout);
        FUZZ_ASSERT(s->uid >= 0);
    }
    apr_pool_destroy(p);
}

static void check_state(apr_pool_t *p, const bb_keyring_t *state_ring, const char *value)
{
    bb_login_state_t *ls = NULL;

    if (bb_login_state_decode(p, state_ring, value, "st", NOW, &ls) == BB_STATE_VALID) {
        FUZZ_ASSERT(ls != NULL && ls->state && strcmp(ls->state, "st") == 0 && ls->exp > NOW && ls->return_to);
    }
}

static apr_array_header_t *fuzz_signers(apr_pool_t *p)
{
    apr_array_header_t *signers = apr_array_make(p, 2, sizeof(bb_signkey_t *));
    const char *err = NULL;

    APR_ARRAY_PUSH(signers, bb_signkey_t *) = bb_signkey_from_pem(p, P256_PEM, strlen(P256_PEM), "p256", &err);
    APR_ARRAY_PUSH(signers, bb_signkey_t *) = bb_signkey_from_pem(p, ED25519_PEM, strlen(ED25519_PEM), "ed", &err);
    if (APR_ARRAY_IDX(signers, 0, bb_signkey_t *) == NULL || APR_ARRAY_IDX(signers, 1, bb_signkey_t *) == NULL) {
        abort();
    }
    return signers;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bb_keyring_t *ring, *state_ring;
    static bb_memo_t *memo;
    static apr_pool_t *keep;
    apr_pool_t *p = fuzz_pool();
    const char *rest = apr_pstrmemdup(p, (const char *)data + (size > 0), size - (size > 0));
    size_t rest_len = size - (size > 0);
    json_t *claims = NULL;
    int i;

    if (ring == NULL) {
        const char *err = NULL;
        FUZZ_KEEP_BEGIN();
        keep = fuzz_pool();
        ring = bb_keyring_with_signers(keep, bb_keyring_parse(keep, KEY_FILE, strlen(KEY_FILE), &err),
                                       fuzz_signers(keep));
        state_ring = bb_keyring_derive(keep, ring, STATE_LABEL);
        memo = bb_memo_create(keep, 4);
        FUZZ_KEEP_END();
        if (ring == NULL || state_ring == NULL || memo == NULL) {
            abort();
        }
    }
    switch (size ? data[0] % 4 : 0) {
    case 0: {
        apr_array_header_t *values = bb_cookie_values(p, rest, "bbauth_session");
        /* No cap on their number (issue 19), but each takes its name and an "=" in the header. */
        FUZZ_ASSERT((size_t)values->nelts <= strlen(rest) / (sizeof("bbauth_session=") - 1));
        for (i = 0; i < values->nelts; i++) {
            const char *value = APR_ARRAY_IDX(values, i, const char *);
            check_session(value, ring, memo);
            check_state(p, state_ring, value);
        }
        bb_jws_verify(p, ring, "JWT", rest, rest_len, &claims);
        check_session(rest, ring, memo);
        break;
    }
    case 1:
        check_session(sign_parts(p, ring, header_for(p, ring, "JWT"), strlen(header_for(p, ring, "JWT")), rest,
                                 rest_len), ring, memo);
        break;
    case 2:
        check_session(sign_parts(p, ring, rest, rest_len, GOOD_CLAIMS, strlen(GOOD_CLAIMS)), ring, memo);
        break;
    default:
        check_state(p, state_ring, sign_parts(p, state_ring, header_for(p, state_ring, "bbauth-state"),
                                              strlen(header_for(p, state_ring, "bbauth-state")), rest, rest_len));
        break;
    }
    apr_pool_destroy(p);
    return 0;
}
