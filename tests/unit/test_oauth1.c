/* test_oauth1: OAuth 1.0a RSA-SHA1 signing against published vectors, the Authorization header, token answers,
 * problem reporting and consumer-key loading. */
#include "unit.h"
#include "fake_response.h"
#include <apr_file_io.h>
#include <apr_time.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include "bb_oauth1.h"
#include "bb_url.h"

/* ---- fixtures: the vectors' key (fact sheet §6.1, 1024 bits: only loadable with a lowered minimum) ---- */

static const char vector_private_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIICdgIBADANBgkqhkiG9w0BAQEFAASCAmAwggJcAgEAAoGBALRiMLAh9iimur8V\n"
    "A7qVvdqxevEuUkW4K+2KdMXmnQbG9Aa7k7eBjK1S+0LYmVjPKlJGNXHDGuy5Fw/d\n"
    "7rjVJ0BLB+ubPK8iA/Tw3hLQgXMRRGRXXCn8ikfuQfjUS1uZSatdLB81mydBETlJ\n"
    "hI6GH4twrbDJCR2Bwy/XWXgqgGRzAgMBAAECgYBYWVtleUzavkbrPjy0T5FMou8H\n"
    "X9u2AC2ry8vD/l7cqedtwMPp9k7TubgNFo+NGvKsl2ynyprOZR1xjQ7WgrgVB+mm\n"
    "uScOM/5HVceFuGRDhYTCObE+y1kxRloNYXnx3ei1zbeYLPCHdhxRYW7T0qcynNmw\n"
    "rn05/KO2RLjgQNalsQJBANeA3Q4Nugqy4QBUCEC09SqylT2K9FrrItqL2QKc9v0Z\n"
    "zO2uwllCbg0dwpVuYPYXYvikNHHg+aCWF+VXsb9rpPsCQQDWR9TT4ORdzoj+Nccn\n"
    "qkMsDmzt0EfNaAOwHOmVJ2RVBspPcxt5iN4HI7HNeG6U5YsFBb+/GZbgfBT3kpNG\n"
    "WPTpAkBI+gFhjfJvRw38n3g/+UeAkwMI2TJQS4n8+hid0uus3/zOjDySH3XHCUno\n"
    "cn1xOJAyZODBo47E+67R4jV1/gzbAkEAklJaspRPXP877NssM5nAZMU0/O/NGCZ+\n"
    "3jPgDUno6WbJn5cqm8MqWhW1xGkImgRk+fkDBquiq4gPiT898jusgQJAd5Zrr6Q8\n"
    "AO/0isr/3aa6O6NLQxISLKcPDk2NOccAfS/xOtfOz4sJYM3+Bs4Io9+dZGSDCA54\n"
    "Lw03eHTNQghS0A==\n"
    "-----END PRIVATE KEY-----\n";

static const char vector_public_pem[] =
    "-----BEGIN PUBLIC KEY-----\n"
    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC0YjCwIfYoprq/FQO6lb3asXrx\n"
    "LlJFuCvtinTF5p0GxvQGu5O3gYytUvtC2JlYzypSRjVxwxrsuRcP3e641SdASwfr\n"
    "mzyvIgP08N4S0IFzEURkV1wp/IpH7kH41EtbmUmrXSwfNZsnQRE5SYSOhh+LcK2w\n"
    "yQkdgcMv11l4KoBkcwIDAQAB\n"
    "-----END PUBLIC KEY-----\n";

static const char vector_6_1_base[] =
    "GET&http%3A%2F%2Fphotos.example.net%2Fphotos&file%3Dvacaction.jpg%26oauth_consumer_key%3Ddpf43f3p2l4k3l03"
    "%26oauth_nonce%3D13917289812797014437%26oauth_signature_method%3DRSA-SHA1%26oauth_timestamp%3D1196666512"
    "%26oauth_version%3D1.0%26size%3Doriginal";
static const char vector_6_1_signature[] =
    "jvTp/wX1TYtByB1m+Pbyo0lnCOLIsyGCH7wke8AUs3BpnwZJtAuEJkvQL2/9n4s5wUmUl4aCI4BwpraNx4RtEXMe5qg5T1LVTGliMRpKas"
    "KsW//e+RinhejgCuzoH26dyF8iY2ZZ/5D1ilgeijhV/vBka5twt399mXwaYdCwFYE=";

static const char vector_6_2_base[] =
    "GET&http%3A%2F%2Fterm.ie%2Foauth%2Fexample%2Frequest_token.php&oauth_consumer_key%3Dkey%26oauth_nonce%3D"
    "c3839c47cb204a20e042b11a5cc9f971%26oauth_signature_method%3DRSA-SHA1%26oauth_timestamp%3D1377815426"
    "%26oauth_version%3D1.0";
static const char vector_6_2_signature[] =
    "P72T4RS8dVBneQPJSY71D3iLEjge2tiivxEasPVoaoDldDgPdwpQfhS1q0th19jB3B3+9P6tBWjpWaVPxrNZe3ssBCiwS/EmXZ/6VCJGU3Y"
    "oDHMtz+0jCd36NjHj5I6TpLVQ8/rtfy6+EzpdUMz7ydnhKXYqJFPOWnNv8HM1W7I=";

static const char vector_6_3_base[] =
    "POST&http%3A%2F%2Fexample.com%2Frequest&a2%3Dr%2520b%26a3%3D2%2520q%26a3%3Da%26b5%3D%253D%25253D%26c%2540"
    "%3D%26c2%3D%26oauth_consumer_key%3D9djdj82h48djs9d2%26oauth_nonce%3D7d8f3e4a%26oauth_signature_method%3D"
    "HMAC-SHA1%26oauth_timestamp%3D137131201%26oauth_token%3Dkkk9d7dh3k39sjv7";

/* A token secret that must never reach a message. */
#define SECRET "SeCrEt-4f9a2c"

static const bb_oauth1_key_t *vector_key(apr_pool_t *p)
{
    const char *err = NULL;
    const bb_oauth1_key_t *key = bb_oauth1_key_from_pem(p, vector_private_pem, strlen(vector_private_pem),
                                                       "vector key", 1024, &err);
    assert_non_null(key);
    return key;
}

static bb_oauth1_client_t *vector_client(apr_pool_t *p, const char *consumer_key)
{
    bb_oauth1_client_t *client = apr_pcalloc(p, sizeof(*client));
    client->base_url = "https://bitbucket.example.com/bitbucket";
    client->consumer_key = consumer_key;
    client->key = vector_key(p);
    client->callback_uri = "https://mirror.example.com/bbauth/callback";
    return client;
}

static void assert_contains(const char *haystack, const char *needle)
{
    if (haystack == NULL || strstr(haystack, needle) == NULL) {
        fail_msg("\"%s\" does not contain \"%s\"", haystack ? haystack : "(null)", needle);
    }
}

/* Checks an RSA-SHA1 signature with the key's public half, as Bitbucket does. */
static void assert_signature_verifies(apr_pool_t *p, const bb_oauth1_key_t *key, const char *base_string,
                                      const char *signature)
{
    const char *pem = bb_oauth1_public_key_pem(p, key);
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *pub = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    apr_size_t sig_len;
    unsigned char *sig = bb_base64_decode(p, signature, strlen(signature), &sig_len);
    int ok;

    assert_non_null(pub);
    assert_non_null(sig);
    ok = EVP_DigestVerifyInit(ctx, NULL, EVP_sha1(), NULL, pub) == 1
        && EVP_DigestVerify(ctx, sig, sig_len, (const unsigned char *)base_string, strlen(base_string)) == 1;
    EVP_MD_CTX_free(ctx);
    EVP_PKEY_free(pub);
    BIO_free(bio);
    assert_true(ok);
}

/* The decoded value of name="..." in an Authorization header. */
static const char *header_param(apr_pool_t *p, const char *header, const char *name)
{
    const char *start = strstr(header, apr_pstrcat(p, name, "=\"", NULL));
    const char *end;

    assert_non_null(start);
    start += strlen(name) + 2;
    end = strchr(start, '"');
    assert_non_null(end);
    return bb_url_decode(p, start, (apr_size_t)(end - start), 0);
}

/* ---- RFC 5849 §3.4 base string and RSA-SHA1 against the vectors ---- */

static void test_vector_6_1(void **state)
{
    apr_pool_t *p = *state;
    apr_table_t *oauth = apr_table_make(p, 8);
    const char *base;

    apr_table_set(oauth, "oauth_consumer_key", "dpf43f3p2l4k3l03");
    apr_table_set(oauth, "oauth_nonce", "13917289812797014437");
    apr_table_set(oauth, "oauth_signature_method", "RSA-SHA1");
    apr_table_set(oauth, "oauth_timestamp", "1196666512");
    apr_table_set(oauth, "oauth_version", "1.0");
    base = bb_oauth1_base_string(p, "GET", "http://photos.example.net/photos?file=vacaction.jpg&size=original",
                                 NULL, oauth);
    assert_string_equal(base, vector_6_1_base);
    assert_string_equal(bb_oauth1_sign(p, vector_key(p), base), vector_6_1_signature);
}

static void test_vector_6_2(void **state)
{
    apr_pool_t *p = *state;
    apr_table_t *oauth = apr_table_make(p, 8);
    const char *base;

    apr_table_set(oauth, "oauth_consumer_key", "key");
    apr_table_set(oauth, "oauth_signature_method", "RSA-SHA1");
    apr_table_set(oauth, "oauth_timestamp", "1377815426");
    apr_table_set(oauth, "oauth_nonce", "c3839c47cb204a20e042b11a5cc9f971");
    apr_table_set(oauth, "oauth_version", "1.0");
    base = bb_oauth1_base_string(p, "get", "http://term.ie/oauth/example/request_token.php", NULL, oauth);
    assert_string_equal(base, vector_6_2_base);
    assert_string_equal(bb_oauth1_sign(p, vector_key(p), base), vector_6_2_signature);
}

/* Query and form body together, repeated names sorted by value, '+' as space, realm and any signature left out. */
static void test_vector_6_3_rfc5849(void **state)
{
    apr_pool_t *p = *state;
    apr_table_t *oauth = apr_table_make(p, 8);

    apr_table_set(oauth, "realm", "Example");
    apr_table_set(oauth, "oauth_consumer_key", "9djdj82h48djs9d2");
    apr_table_set(oauth, "oauth_token", "kkk9d7dh3k39sjv7");
    apr_table_set(oauth, "oauth_signature_method", "HMAC-SHA1");
    apr_table_set(oauth, "oauth_timestamp", "137131201");
    apr_table_set(oauth, "oauth_nonce", "7d8f3e4a");
    apr_table_set(oauth, "oauth_signature", "bYT5CMsGcbgUdFHObYMEfcx6bsw=");
    assert_string_equal(bb_oauth1_base_string(p, "POST", "http://example.com/request?b5=%3D%253D&a3=a&c%40=&a2=r%20b",
                                              "c2&a3=2+q", oauth),
                        vector_6_3_base);
}

/* RFC 5849 §3.6 / RFC 3986: unreserved characters kept, everything else %XX upper-case, UTF-8 byte by byte. */
static void test_encoding_table(void **state)
{
    apr_pool_t *p = *state;
    static const struct { const char *in, *out; } table[] = {
        { "abcABC123", "abcABC123" },
        { "-._~", "-._~" },
        { "%", "%25" },
        { "+", "%2B" },
        { "&=*", "%26%3D%2A" },
        { "\n", "%0A" },
        { " ", "%20" },
        { "\x7f", "%7F" },
        { "\xc2\x80", "%C2%80" },
        { "\xe3\x80\x81", "%E3%80%81" },
        { "Ladies + Gentlemen", "Ladies%20%2B%20Gentlemen" },
        { "An encoded string!", "An%20encoded%20string%21" },
        { "Dogs, Cats & Mice", "Dogs%2C%20Cats%20%26%20Mice" },
        { "\xe2\x98\x83", "%E2%98%83" },
    };
    apr_table_t *oauth = apr_table_make(p, 1);
    size_t i;

    for (i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        assert_string_equal(bb_url_encode(p, table[i].in), table[i].out);
    }
    /* In the base string the encoded parameter string is encoded once more. */
    apr_table_set(oauth, "oauth_callback", "Ladies + Gentlemen \xe2\x98\x83");
    assert_string_equal(bb_oauth1_base_string(p, "POST", "https://h/x", NULL, oauth),
                        "POST&https%3A%2F%2Fh%2Fx&oauth_callback%3DLadies%2520%252B%2520Gentlemen%2520%25E2%2598%2583");
}

static void test_base_string_uri(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(bb_oauth1_base_string_uri(p, "https://bitbucket.example.com:443/bitbucket/rest/api?x=1#f"),
                        "https://bitbucket.example.com/bitbucket/rest/api");
    assert_string_equal(bb_oauth1_base_string_uri(p, "HTTPS://BitBucket.Example.COM:8443/bitbucket/Plugins"),
                        "https://bitbucket.example.com:8443/bitbucket/Plugins");
    assert_string_equal(bb_oauth1_base_string_uri(p, "http://h.example:80/a%20b/"), "http://h.example/a%20b/");
    assert_string_equal(bb_oauth1_base_string_uri(p, "http://h.example:443/"), "http://h.example:443/");
    assert_string_equal(bb_oauth1_base_string_uri(p, "https://h.example:80/"), "https://h.example:80/");
    assert_string_equal(bb_oauth1_base_string_uri(p, "https://h.example"), "https://h.example/");
    assert_string_equal(bb_oauth1_base_string_uri(p, "https://[::1]:8443/x"), "https://[::1]:8443/x");
    assert_string_equal(bb_oauth1_base_string_uri(p, "https://127.0.0.1:8443/x"), "https://127.0.0.1:8443/x");
    assert_null(bb_oauth1_base_string_uri(p, "ftp://h.example/x"));
    assert_null(bb_oauth1_base_string_uri(p, "/relative/path"));
    assert_null(bb_oauth1_base_string(p, "GET", "nope", NULL, apr_table_make(p, 1)));
}

/* ---- the Authorization header ---- */

/* Vector 6.1 again, this time as a signed request: the URL's query parameters are part of the signature. */
static void test_authorization_header_format(void **state)
{
    apr_pool_t *p = *state;
    bb_oauth1_step_t no_step = { NULL, NULL, NULL };
    const char *header = bb_oauth1_authorization_at(p, vector_client(p, "dpf43f3p2l4k3l03"), "GET",
                                                    "http://photos.example.net/photos?file=vacaction.jpg&size=original",
                                                    &no_step, "1196666512", "13917289812797014437");

    assert_string_equal(header,
        "OAuth oauth_consumer_key=\"dpf43f3p2l4k3l03\", oauth_signature_method=\"RSA-SHA1\", "
        "oauth_timestamp=\"1196666512\", oauth_nonce=\"13917289812797014437\", oauth_version=\"1.0\", "
        "oauth_signature=\"jvTp%2FwX1TYtByB1m%2BPbyo0lnCOLIsyGCH7wke8AUs3BpnwZJtAuEJkvQL2%2F9n4s5wUmUl4aCI4BwpraNx4R"
        "tEXMe5qg5T1LVTGliMRpKasKsW%2F%2Fe%2BRinhejgCuzoH26dyF8iY2ZZ%2F5D1ilgeijhV%2FvBka5twt399mXwaYdCwFYE%3D\"");
}

/* The request-token and access-token steps: their parameters are sent, encoded, in order, and signed. */
static void test_authorization_header_steps(void **state)
{
    apr_pool_t *p = *state;
    bb_oauth1_client_t *client = vector_client(p, "mirror key");
    bb_oauth1_step_t request_step = { NULL, client->callback_uri, NULL };
    bb_oauth1_step_t access_step = { "req/tok+1", NULL, "a1B2c3" };
    const char *url = "https://bitbucket.example.com/bitbucket/plugins/servlet/oauth/request-token";
    const char *header = bb_oauth1_authorization_at(p, client, "POST", url, &request_step, "1700000000", "n0nce");
    apr_table_t *signed_params = apr_table_make(p, 8);

    assert_string_equal(apr_pstrndup(p, header, strlen(header) - strlen(strstr(header, ", oauth_signature="))),
        "OAuth oauth_consumer_key=\"mirror%20key\", oauth_signature_method=\"RSA-SHA1\", "
        "oauth_timestamp=\"1700000000\", oauth_nonce=\"n0nce\", oauth_version=\"1.0\", "
        "oauth_callback=\"https%3A%2F%2Fmirror.example.com%2Fbbauth%2Fcallback\"");
    apr_table_set(signed_params, "oauth_consumer_key", "mirror key");
    apr_table_set(signed_params, "oauth_signature_method", "RSA-SHA1");
    apr_table_set(signed_params, "oauth_timestamp", "1700000000");
    apr_table_set(signed_params, "oauth_nonce", "n0nce");
    apr_table_set(signed_params, "oauth_version", "1.0");
    apr_table_set(signed_params, "oauth_callback", client->callback_uri);
    assert_signature_verifies(p, client->key, bb_oauth1_base_string(p, "POST", url, NULL, signed_params),
                              header_param(p, header, "oauth_signature"));

    header = bb_oauth1_authorization_at(p, client, "POST", url, &access_step, "1700000000", "n0nce");
    assert_contains(header, "OAuth oauth_consumer_key=\"mirror%20key\", oauth_token=\"req%2Ftok%2B1\", "
                            "oauth_signature_method=\"RSA-SHA1\", ");
    assert_contains(header, "oauth_version=\"1.0\", oauth_verifier=\"a1B2c3\", oauth_signature=\"");
    assert_null(strstr(header, "oauth_callback"));
    assert_null(strstr(header, "realm"));
}

static void test_authorization_fresh_nonce_and_time(void **state)
{
    apr_pool_t *p = *state;
    bb_oauth1_client_t *client = vector_client(p, "k");
    bb_oauth1_step_t no_step = { NULL, NULL, NULL };
    const char *url = "https://bitbucket.example.com/bitbucket/plugins/servlet/applinks/whoami";
    const char *first = bb_oauth1_authorization(p, client, "GET", url, &no_step);
    const char *second = bb_oauth1_authorization(p, client, "GET", url, &no_step);
    apr_int64_t timestamp = apr_atoi64(header_param(p, first, "oauth_timestamp"));
    apr_int64_t now = apr_time_sec(apr_time_now());

    assert_non_null(first);
    assert_non_null(second);
    assert_int_equal(strlen(header_param(p, first, "oauth_nonce")), 22);
    assert_string_not_equal(header_param(p, first, "oauth_nonce"), header_param(p, second, "oauth_nonce"));
    assert_true(timestamp >= now - 5 && timestamp <= now);
}

/* The REST authorizer signs with the access token and the URL's query (/users?filter=...). */
static void test_authorizer_signs_query(void **state)
{
    apr_pool_t *p = *state;
    bb_oauth1_baton_t baton = { vector_client(p, "k"), "access-token-1" };
    bb_oauth1_step_t access = { "access-token-1", NULL, NULL };
    const char *url = "https://bitbucket.example.com/bitbucket/rest/api/1.0/users?filter=jane%40example.com";
    const char *header = bb_oauth1_authorizer(p, &baton, "GET", url);
    const char *nonce = header_param(p, header, "oauth_nonce");
    const char *timestamp = header_param(p, header, "oauth_timestamp");
    apr_table_t *signed_params = apr_table_make(p, 8);

    assert_string_equal(header, bb_oauth1_authorization_at(p, baton.client, "GET", url, &access, timestamp, nonce));
    assert_contains(header, "oauth_token=\"access-token-1\"");
    apr_table_set(signed_params, "oauth_consumer_key", "k");
    apr_table_set(signed_params, "oauth_token", "access-token-1");
    apr_table_set(signed_params, "oauth_signature_method", "RSA-SHA1");
    apr_table_set(signed_params, "oauth_timestamp", timestamp);
    apr_table_set(signed_params, "oauth_nonce", nonce);
    apr_table_set(signed_params, "oauth_version", "1.0");
    assert_contains(bb_oauth1_base_string(p, "GET", url, NULL, signed_params), "filter%3Djane%2540example.com");
    assert_signature_verifies(p, baton.client->key, bb_oauth1_base_string(p, "GET", url, NULL, signed_params),
                              header_param(p, header, "oauth_signature"));
}

static void test_authorize_url(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(bb_oauth1_authorize_url(p, vector_client(p, "k"), "req/tok+1"),
                        "https://bitbucket.example.com/bitbucket/plugins/servlet/oauth/authorize"
                        "?oauth_token=req%2Ftok%2B1");
}

/* ---- token answers ---- */

static const char *token_url = "https://bitbucket.example.com/bitbucket/plugins/servlet/oauth/request-token";

static bb_status_t parse(apr_pool_t *p, const bb_http_response_t *resp, int require_confirmed,
                         bb_oauth1_token_t **token, const char **errmsg)
{
    *token = NULL;
    *errmsg = NULL;
    return bb_oauth1_parse_token_response(p, resp, "request token", token_url, require_confirmed, token, errmsg);
}

static void test_parse_token_body(void **state)
{
    apr_pool_t *p = *state;
    bb_oauth1_token_t *token = bb_oauth1_parse_token_body(p, "oauth_token=at%2B1&oauth_token_secret=" SECRET
                                                          "&oauth_expires_in=157680000&oauth_session_handle=h"
                                                          "&oauth_authorization_expires_in=160000000");

    assert_string_equal(token->token, "at+1");
    assert_string_equal(token->token_secret, SECRET);
    assert_false(token->callback_confirmed);
    assert_int_equal(token->expires_in, 157680000);
    assert_null(token->problem.name);

    token = bb_oauth1_parse_token_body(p, "oauth_token=&oauth_callback_confirmed=true&oauth_expires_in=soon");
    assert_null(token->token);
    assert_true(token->callback_confirmed);
    assert_int_equal(token->expires_in, 0);

    token = bb_oauth1_parse_token_body(p, "oauth_problem=token_expired");
    assert_string_equal(token->problem.name, "token_expired");
    assert_null(token->problem.parameters);
    assert_null(bb_oauth1_parse_token_body(p, NULL)->token);
}

static void test_response_request_token_ok(void **state)
{
    apr_pool_t *p = *state;
    bb_oauth1_token_t *token;
    const char *errmsg;
    bb_http_response_t *resp = response(p, 200, "text/plain",
                                        "oauth_token=rt1&oauth_token_secret=" SECRET "&oauth_callback_confirmed=true");

    assert_int_equal(parse(p, resp, 1, &token, &errmsg), BB_OK);
    assert_string_equal(token->token, "rt1");
    assert_true(token->callback_confirmed);

    resp->content_type = "application/x-www-form-urlencoded";
    assert_int_equal(parse(p, resp, 1, &token, &errmsg), BB_OK);
}

/* Without oauth_callback_confirmed the server is in OAuth 1.0 mode: no verifier would come back. */
static void test_response_missing_callback_confirmed(void **state)
{
    apr_pool_t *p = *state;
    bb_oauth1_token_t *token;
    const char *errmsg;
    bb_http_response_t *resp = response(p, 200, "text/plain", "oauth_token=rt1&oauth_token_secret=" SECRET);

    assert_int_equal(parse(p, resp, 1, &token, &errmsg), BB_BAD_RESPONSE);
    assert_null(token);
    assert_contains(errmsg, "oauth_callback_confirmed");
    assert_contains(errmsg, token_url);
    assert_null(strstr(errmsg, SECRET));

    /* The access-token step does not need it. */
    assert_int_equal(parse(p, resp, 0, &token, &errmsg), BB_OK);
    assert_string_equal(token->token_secret, SECRET);
}

static void test_response_without_token(void **state)
{
    apr_pool_t *p = *state;
    bb_oauth1_token_t *token;
    const char *errmsg;

    assert_int_equal(parse(p, response(p, 200, "text/plain", "hello"), 0, &token, &errmsg), BB_BAD_RESPONSE);
    assert_contains(errmsg, "without oauth_token");
    assert_int_equal(parse(p, response(p, 200, "text/plain", "oauth_token_secret=" SECRET), 0, &token, &errmsg),
                     BB_BAD_RESPONSE);
    assert_null(strstr(errmsg, SECRET));
}

static const struct {
    const char *name;
    int status;
    const char *advice;   /* a piece of the message */
} known_problems[] = {
    { "consumer_key_unknown", 401, "BBAuthClientID does not match the Consumer Key" },
    { "consumer_key_rejected", 401, "Incoming Authentication" },
    { "consumer_key_refused", 503, "refuses this consumer" },
    { "signature_invalid", 401, "Public Key in the application link does not match BBAuthOAuth1PrivateKey" },
    { "signature_method_rejected", 400, "RSA-SHA1" },
    { "timestamp_refused", 400, "clock (NTP)" },
    { "nonce_used", 401, "nonce" },
    { "token_rejected", 401, "took too long or was replayed; start again" },
    { "token_expired", 401, "took too long or was replayed; start again" },
    { "token_used", 401, "took too long or was replayed; start again" },
    { "token_revoked", 401, "revoked" },
    { "permission_denied", 401, "did not approve, or the link does not allow 3-legged OAuth" },
    { "permission_unknown", 401, "did not approve, or the link does not allow 3-legged OAuth" },
    { "additional_authorization_required", 401, "log in again" },
    { "parameter_absent", 400, "Authorization header" },
    { "parameter_rejected", 400, "BBAuthRedirectURI" },
    { "version_rejected", 400, "version 1.0" },
    { "user_refused", 503, "refuses this user" },
};

static void assert_denied_for(apr_pool_t *p, const bb_http_response_t *resp, const char *name, const char *advice)
{
    bb_oauth1_token_t *token;
    const char *errmsg;

    assert_int_equal(parse(p, resp, 1, &token, &errmsg), BB_DENIED);
    assert_null(token);
    assert_contains(errmsg, apr_pstrcat(p, "oauth_problem=", name, NULL));
    assert_contains(errmsg, advice);
    assert_contains(errmsg, token_url);
    assert_null(strstr(errmsg, SECRET));
}

static void test_response_problem_in_header(void **state)
{
    apr_pool_t *p = *state;
    size_t i;

    for (i = 0; i < sizeof(known_problems) / sizeof(known_problems[0]); i++) {
        bb_http_response_t *resp = response(p, known_problems[i].status, "text/html", "<html>" SECRET "</html>");
        apr_table_add(resp->headers, "WWW-Authenticate", "Basic realm=\"Atlassian\"");
        apr_table_add(resp->headers, "WWW-Authenticate",
                      apr_psprintf(p, "OAuth realm=\"https%%3A%%2F%%2Fbitbucket.example.com%%2Fbitbucket\", "
                                   "oauth_problem=\"%s\"", known_problems[i].name));
        assert_denied_for(p, resp, known_problems[i].name, known_problems[i].advice);
    }
}

static void test_response_problem_in_body(void **state)
{
    apr_pool_t *p = *state;
    size_t i;

    for (i = 0; i < sizeof(known_problems) / sizeof(known_problems[0]); i++) {
        const char *body = apr_psprintf(p, "oauth_problem=%s&oauth_token_secret=" SECRET, known_problems[i].name);
        assert_denied_for(p, response(p, known_problems[i].status, "text/plain", body), known_problems[i].name,
                          known_problems[i].advice);
    }
    /* Even with a 200. */
    assert_denied_for(p, response(p, 200, "application/x-www-form-urlencoded", "oauth_problem=nonce_used"),
                      "nonce_used", "NTP");
}

static void test_response_problem_parameters(void **state)
{
    apr_pool_t *p = *state;
    bb_http_response_t *resp = response(p, 400, "text/plain", "");
    bb_oauth1_token_t *token;
    const char *errmsg;

    apr_table_set(resp->headers, "WWW-Authenticate",
                  "OAuth realm=\"x\", oauth_problem=\"parameter_absent\", "
                  "oauth_parameters_absent=\"oauth_verifier%26oauth_token\"");
    assert_int_equal(parse(p, resp, 0, &token, &errmsg), BB_DENIED);
    assert_contains(errmsg, "oauth_problem=parameter_absent (parameters: oauth_verifier, oauth_token)");

    /* Bitbucket's shape: the header names the problem, the body adds the parameters (and advice, not shown). */
    resp = response(p, 400, "text/plain", "oauth_problem=parameter_rejected&oauth_parameters_rejected=oauth_callback"
                                          "&oauth_problem_advice=bad+callback");
    apr_table_set(resp->headers, "WWW-Authenticate",
                  "OAuth realm=\"https://bb\", oauth_problem=\"parameter_rejected\"");
    assert_int_equal(parse(p, resp, 1, &token, &errmsg), BB_DENIED);
    assert_contains(errmsg, "oauth_problem=parameter_rejected (parameters: oauth_callback)");
    assert_null(strstr(errmsg, "bad callback"));
}

/* Names this module does not know are shown reduced to [a-z_] and capped, so a server cannot inject text. */
static void test_response_unknown_problem(void **state)
{
    apr_pool_t *p = *state;
    bb_http_response_t *resp = response(p, 401, "text/plain", "");
    bb_oauth1_token_t *token;
    const char *errmsg;

    apr_table_set(resp->headers, "WWW-Authenticate",
                  "OAuth oauth_problem=\"Brand_New%0D%0AX-Injected: 1 <b>\"");
    assert_int_equal(parse(p, resp, 1, &token, &errmsg), BB_DENIED);
    assert_contains(errmsg, "oauth_problem=brand_newxinjectedb: a problem this module does not know");

    resp = response(p, 401, "text/plain",
                    "oauth_problem=aaaaaaaaaabbbbbbbbbbccccccccccddddddddddeeeeeeeeeeffffffffff");
    assert_int_equal(parse(p, resp, 1, &token, &errmsg), BB_DENIED);
    assert_contains(errmsg, "oauth_problem=aaaaaaaaaabbbbbbbbbbccccccccccdddddddddd: ");
}

static void test_response_html_page_is_two_factor_hint(void **state)
{
    apr_pool_t *p = *state;
    bb_oauth1_token_t *token;
    const char *errmsg;
    bb_http_response_t *resp = response(p, 200, "text/html", "<html><form>Two-step verification " SECRET "</form>");

    assert_int_equal(parse(p, resp, 1, &token, &errmsg), BB_BAD_RESPONSE);
    assert_null(token);
    assert_contains(errmsg, "two-factor");
    assert_contains(errmsg, token_url);
    assert_null(strstr(errmsg, SECRET));
}

static void test_response_redirect_is_two_factor_hint(void **state)
{
    apr_pool_t *p = *state;
    bb_oauth1_token_t *token;
    const char *errmsg;
    bb_http_response_t *resp = response(p, 302, "text/html", "");

    apr_table_set(resp->headers, "Location", "https://bitbucket.example.com/bitbucket/plugins/servlet/twofa?t=" SECRET);
    assert_int_equal(parse(p, resp, 1, &token, &errmsg), BB_BAD_RESPONSE);
    assert_contains(errmsg, "two-factor");
    assert_null(strstr(errmsg, SECRET));
}

static void test_response_server_error_and_garbage(void **state)
{
    apr_pool_t *p = *state;
    bb_oauth1_token_t *token;
    const char *errmsg;

    assert_int_equal(parse(p, response(p, 500, "text/plain", "oops " SECRET), 1, &token, &errmsg), BB_BAD_RESPONSE);
    assert_contains(errmsg, "500");
    assert_null(strstr(errmsg, SECRET));
    assert_int_equal(parse(p, response(p, 503, "", ""), 1, &token, &errmsg), BB_BAD_RESPONSE);
    assert_int_equal(parse(p, response(p, 200, "application/json", "{\"oauth_token\":\"x\"}"), 1, &token, &errmsg),
                     BB_BAD_RESPONSE);
}

static void test_www_authenticate_parser(void **state)
{
    apr_pool_t *p = *state;
    bb_oauth1_problem_t problem = { NULL, NULL };

    assert_false(bb_oauth1_parse_www_authenticate(p, "Basic realm=\"x\"", &problem));
    assert_false(bb_oauth1_parse_www_authenticate(p, "OAuthX oauth_problem=\"nonce_used\"", &problem));
    assert_false(bb_oauth1_parse_www_authenticate(p, "OAuth realm=\"https%3A%2F%2Fbb\"", &problem));
    assert_false(bb_oauth1_parse_www_authenticate(p, "OAuth", &problem));
    assert_null(problem.name);
    assert_true(bb_oauth1_parse_www_authenticate(p, "oauth oauth_problem=token_used, realm=\"r\"", &problem));
    assert_string_equal(problem.name, "token_used");
    assert_true(bb_oauth1_parse_www_authenticate(p, "OAuth realm=\"a, b\",oauth_problem=\"timestamp_refused\","
                                                    "oauth_acceptable_timestamps=\"1-2\"", &problem));
    assert_string_equal(problem.name, "timestamp_refused");
    /* An unterminated quote ends the parse. */
    assert_false(bb_oauth1_parse_www_authenticate(p, "OAuth realm=\"x, oauth_problem=nonce_used", &problem));
}

/* The callback of a denied login carries oauth_verifier=denied; nothing is sent to Bitbucket for it. */
static void test_access_token_denied_without_request(void **state)
{
    apr_pool_t *p = *state;
    bb_http_opts_t http = { NULL, 1, 0, NULL, NULL, NULL, 0, NULL };
    bb_oauth1_client_t *client = vector_client(p, "k");
    bb_oauth1_token_t *token = NULL;
    const char *errmsg = NULL;

    client->base_url = "https://unreachable.invalid";
    assert_int_equal(bb_oauth1_access_token(p, client, &http, "rt1", "denied", &token, &errmsg), BB_DENIED);
    assert_contains(errmsg, "did not approve");
    assert_int_equal(bb_oauth1_access_token(p, client, &http, "rt1", "", &token, &errmsg), BB_DENIED);
    assert_contains(errmsg, "without oauth_verifier");
    assert_null(token);
}

/* ---- the consumer's key ---- */

/* Writes text to a fresh file in the temp directory; returns its path. */
static const char *temp_file(apr_pool_t *p, const char *text)
{
    const char *dir;
    char *path;
    apr_file_t *file;
    apr_size_t len = strlen(text);

    assert_int_equal(apr_temp_dir_get(&dir, p), APR_SUCCESS);
    path = apr_pstrcat(p, dir, "/test_oauth1_XXXXXX", NULL);
    assert_int_equal(apr_file_mktemp(&file, path, APR_FOPEN_CREATE | APR_FOPEN_READ | APR_FOPEN_WRITE |
                                     APR_FOPEN_EXCL | APR_FOPEN_DELONCLOSE, p), APR_SUCCESS);
    assert_int_equal(apr_file_write_full(file, text, len, NULL), APR_SUCCESS);
    /* The file goes when the test's pool is destroyed (APR_FOPEN_DELONCLOSE). */
    return path;
}

static apr_status_t free_pkey(void *pkey)
{
    EVP_PKEY_free(pkey);
    return APR_SUCCESS;
}

static EVP_PKEY *generate(apr_pool_t *p, const char *type, size_t rsa_bits)
{
    EVP_PKEY *pkey = strcmp(type, "RSA") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", rsa_bits)
                                              : EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    assert_non_null(pkey);
    apr_pool_cleanup_register(p, pkey, free_pkey, apr_pool_cleanup_null);
    return pkey;
}

enum pem_form { PKCS8, PKCS1, PKCS8_ENCRYPTED, PKCS1_ENCRYPTED };

/* pkey as PEM text in the given form. */
static const char *pem_of(apr_pool_t *p, EVP_PKEY *pkey, enum pem_form form)
{
    BIO *bio = BIO_new(BIO_s_mem());
    const EVP_CIPHER *cipher = form == PKCS8_ENCRYPTED || form == PKCS1_ENCRYPTED ? EVP_aes_256_cbc() : NULL;
    char *data;
    const char *text;
    long len;
    int ok = form == PKCS8 || form == PKCS8_ENCRYPTED
        ? PEM_write_bio_PKCS8PrivateKey(bio, pkey, cipher, "pw", 2, NULL, NULL)
        : PEM_write_bio_PrivateKey_traditional(bio, pkey, cipher, (unsigned char *)"pw", 2, NULL, NULL);

    assert_int_equal(ok, 1);
    len = BIO_get_mem_data(bio, &data);
    text = apr_pstrmemdup(p, data, (apr_size_t)len);
    BIO_free(bio);
    return text;
}

static void assert_load_fails(apr_pool_t *p, const char *path, const char *why)
{
    const char *err = NULL;

    assert_null(bb_oauth1_load_key(p, path, &err));
    assert_contains(err, path);
    assert_contains(err, why);
    assert_null(strstr(err, "PRIVATE KEY-----\n"));
}

static void test_load_key_pkcs1_and_pkcs8(void **state)
{
    apr_pool_t *p = *state;
    EVP_PKEY *pkey = generate(p, "RSA", 2048);
    const char *pkcs1 = pem_of(p, pkey, PKCS1);
    const char *pkcs8 = pem_of(p, pkey, PKCS8);
    const char *err = NULL;
    bb_oauth1_key_t *from_pkcs1, *from_pkcs8;
    const char *public_pem;

    assert_contains(pkcs1, "-----BEGIN RSA PRIVATE KEY-----");
    assert_contains(pkcs8, "-----BEGIN PRIVATE KEY-----");
    from_pkcs1 = bb_oauth1_load_key(p, temp_file(p, pkcs1), &err);
    assert_non_null(from_pkcs1);
    from_pkcs8 = bb_oauth1_load_key(p, temp_file(p, pkcs8), &err);
    assert_non_null(from_pkcs8);

    public_pem = bb_oauth1_public_key_pem(p, from_pkcs1);
    assert_true(strncmp(public_pem, "-----BEGIN PUBLIC KEY-----\n", 27) == 0);
    assert_true(strcmp(public_pem + strlen(public_pem) - 25, "-----END PUBLIC KEY-----\n") == 0);
    assert_string_equal(public_pem, bb_oauth1_public_key_pem(p, from_pkcs8));
    assert_signature_verifies(p, from_pkcs8, "POST&x&y", bb_oauth1_sign(p, from_pkcs1, "POST&x&y"));
}

static void test_public_key_pem_of_vector(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(bb_oauth1_public_key_pem(p, vector_key(p)), vector_public_pem);
}

static void test_load_key_encrypted_refused(void **state)
{
    apr_pool_t *p = *state;
    EVP_PKEY *pkey = generate(p, "RSA", 2048);
    const char *pkcs8 = pem_of(p, pkey, PKCS8_ENCRYPTED);
    const char *pkcs1 = pem_of(p, pkey, PKCS1_ENCRYPTED);

    assert_contains(pkcs8, "-----BEGIN ENCRYPTED PRIVATE KEY-----");
    assert_contains(pkcs1, "Proc-Type: 4,ENCRYPTED");
    assert_load_fails(p, temp_file(p, pkcs8), "the key is encrypted; remove the passphrase (openssl pkey -in ");
    assert_load_fails(p, temp_file(p, pkcs1), "the key is encrypted; remove the passphrase (openssl pkey -in ");
}

static void test_load_key_not_rsa_refused(void **state)
{
    apr_pool_t *p = *state;

    assert_load_fails(p, temp_file(p, pem_of(p, generate(p, "EC", 0), PKCS8)), "not an RSA key (EC)");
}

/* The vectors' 1024-bit key is fine for the vectors, not for a real link. */
static void test_load_key_too_small_refused(void **state)
{
    apr_pool_t *p = *state;

    assert_load_fails(p, temp_file(p, vector_private_pem), "the RSA key has 1024 bits; at least 2048 are needed");
}

static void test_load_key_garbage_missing_public(void **state)
{
    apr_pool_t *p = *state;
    const char *dir;

    assert_load_fails(p, temp_file(p, "not a key\n"), "no PEM private key found");
    assert_load_fails(p, temp_file(p, ""), "no PEM private key found");
    assert_load_fails(p, temp_file(p, vector_public_pem), "no PEM private key found");
    assert_load_fails(p, "/nonexistent/bbauth-oauth1.key", "cannot read the key file");
    assert_int_equal(apr_temp_dir_get(&dir, p), APR_SUCCESS);
    assert_load_fails(p, dir, "cannot read the key file");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_vector_6_1),
        UNIT_TEST(test_vector_6_2),
        UNIT_TEST(test_vector_6_3_rfc5849),
        UNIT_TEST(test_encoding_table),
        UNIT_TEST(test_base_string_uri),
        UNIT_TEST(test_authorization_header_format),
        UNIT_TEST(test_authorization_header_steps),
        UNIT_TEST(test_authorization_fresh_nonce_and_time),
        UNIT_TEST(test_authorizer_signs_query),
        UNIT_TEST(test_authorize_url),
        UNIT_TEST(test_parse_token_body),
        UNIT_TEST(test_response_request_token_ok),
        UNIT_TEST(test_response_missing_callback_confirmed),
        UNIT_TEST(test_response_without_token),
        UNIT_TEST(test_response_problem_in_header),
        UNIT_TEST(test_response_problem_in_body),
        UNIT_TEST(test_response_problem_parameters),
        UNIT_TEST(test_response_unknown_problem),
        UNIT_TEST(test_response_html_page_is_two_factor_hint),
        UNIT_TEST(test_response_redirect_is_two_factor_hint),
        UNIT_TEST(test_response_server_error_and_garbage),
        UNIT_TEST(test_www_authenticate_parser),
        UNIT_TEST(test_access_token_denied_without_request),
        UNIT_TEST(test_load_key_pkcs1_and_pkcs8),
        UNIT_TEST(test_public_key_pem_of_vector),
        UNIT_TEST(test_load_key_encrypted_refused),
        UNIT_TEST(test_load_key_not_rsa_refused),
        UNIT_TEST(test_load_key_too_small_refused),
        UNIT_TEST(test_load_key_garbage_missing_public),
    };
    return UNIT_RUN("oauth1", tests);
}
