/* sign_keys.h: the P-256 and Ed25519 private keys (PKCS#8 PEM) of the signing unit tests and the session fuzzer. */
#ifndef BB_SIGN_KEYS_H
#define BB_SIGN_KEYS_H

#define P256_PEM \
    "-----BEGIN PRIVATE KEY-----\n" \
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgEp/847G4jqiuB7jJ\n" \
    "6xzFeYvZiFdDubDLlVfzAnPli/6hRANCAATkz2iWee680h8JwHx12bUcf/HfeZFF\n" \
    "Pk1nTjDJ28EKMaTA6MesgqPQoBBp97xXeW/NgalRHjywgs9FBkYXJabs\n" \
    "-----END PRIVATE KEY-----\n"
#define ED25519_PEM \
    "-----BEGIN PRIVATE KEY-----\n" \
    "MC4CAQAwBQYDK2VwBCIEIHHK9adPRfboxdwdsGvFRuzty5crwsCFk9WwQ1L/8XhU\n" \
    "-----END PRIVATE KEY-----\n"

#endif
