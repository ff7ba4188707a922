/* test_url: return-path safety, percent-encoding and decoding, query parsing and the checks of configured URLs. */
#include "unit.h"
#include "bb_url.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- bb_url_safe_return ---- */

static void test_safe_return_rejects_hostile(void **state)
{
    apr_pool_t *p = *state;
    char *too_long = apr_palloc(p, BB_URL_MAX_RETURN + 2);
    static const char *const hostile[] = {
        "//evil.com", "///evil.com", "/\\evil.com", "\\\\evil.com", "/\\/evil.com", "https://evil.com",
        "http:evil.com", "javascript:alert(1)", "evil.com", "", "/\tevil", "/\r\nSet-Cookie: x", "/ok\x7f",
        "/%0d%0a ok", "/caf\xc3\xa9",
        "/\xe2\x88\x95" "evil.com",      /* U+2215 DIVISION SLASH */
        "/\xef\xbc\x8f" "evil.com",      /* U+FF0F FULLWIDTH SOLIDUS */
        "//", "/a\\b", "/a b", "/\x01", " /",
        "/%2F%2Fevil.com", "/%2fevil.com", "/%09/evil.com", "/a%0D%0ASet-Cookie:x", "/a%5Cb", "/%5c%5cevil", "/a%7F",
    };
    size_t i;

    for (i = 0; i < ARRAY_LEN(hostile); i++) {
        if (bb_url_safe_return(hostile[i]) != NULL) {
            fail_msg("accepted hostile return URL #%zu", i);
        }
    }
    assert_null(bb_url_safe_return(NULL));
    too_long[0] = '/';
    memset(too_long + 1, 'a', BB_URL_MAX_RETURN);
    too_long[BB_URL_MAX_RETURN + 1] = '\0';
    assert_null(bb_url_safe_return(too_long));
    /* One byte shorter is exactly the limit: accepted. */
    too_long[BB_URL_MAX_RETURN] = '\0';
    assert_ptr_equal(bb_url_safe_return(too_long), too_long);
}

static void test_safe_return_accepts_local_paths(void **state)
{
    static const char *const local[] = {
        "/", "/path", "/p?a=1&b=%2F", "/a/b#frag", "/a%2Fb", "/p%C3%A4ckages", "/~user/", "/a//b", "/debian/dists/x?y=/z",
    };
    size_t i;

    for (i = 0; i < ARRAY_LEN(local); i++) {
        assert_ptr_equal(bb_url_safe_return(local[i]), local[i]);
    }
}

/* ---- encoding and decoding ---- */

static void test_encode_rfc3986(void **state)
{
    apr_pool_t *p = *state;
    static const struct { const char *in, *out; } table[] = {
        { "Ladies + Gentlemen", "Ladies%20%2B%20Gentlemen" },
        { "An encoded string!", "An%20encoded%20string%21" },
        { "Dogs, Cats & Mice", "Dogs%2C%20Cats%20%26%20Mice" },
        { "\xe2\x98\x83", "%E2%98%83" },
        { "AZaz09-._~", "AZaz09-._~" },
        { "/?#[]@=%*'", "%2F%3F%23%5B%5D%40%3D%25%2A%27" },
        { "", "" },
    };
    size_t i;

    for (i = 0; i < ARRAY_LEN(table); i++) {
        assert_string_equal(bb_url_encode(p, table[i].in), table[i].out);
    }
}

static char *decode(apr_pool_t *p, const char *s, int plus_is_space)
{
    return bb_url_decode(p, s, strlen(s), plus_is_space);
}

static void test_decode(void **state)
{
    apr_pool_t *p = *state;
    static const char *const malformed[] = { "%0", "%G1", "%1G", "%00", "a%", "ab%2", "%%", "%zz" };
    size_t i;

    assert_string_equal(decode(p, "a%20b%2Bc+d", 0), "a b+c+d");
    assert_string_equal(decode(p, "a%20b%2Bc+d", 1), "a b+c d");
    assert_string_equal(decode(p, "%e2%98%83%E2%98%83", 0), "\xe2\x98\x83\xe2\x98\x83");
    assert_string_equal(decode(p, "", 0), "");
    for (i = 0; i < ARRAY_LEN(malformed); i++) {
        if (decode(p, malformed[i], 0) != NULL) {
            fail_msg("decoded malformed \"%s\"", malformed[i]);
        }
    }
    /* Only len bytes are read: the "%4" cut from "%41" is truncated. */
    assert_null(bb_url_decode(p, "%41", 2, 0));
    assert_string_equal(bb_url_decode(p, "%41%42", 3, 0), "A");
    /* A raw NUL inside the counted bytes is refused too. */
    assert_null(bb_url_decode(p, "a\0b", 3, 0));
}

/* ---- queries ---- */

static int count_key(const apr_table_t *table, const char *key)
{
    const apr_array_header_t *entries = apr_table_elts(table);
    const apr_table_entry_t *entry = (const apr_table_entry_t *)entries->elts;
    int i, n = 0;

    for (i = 0; i < entries->nelts; i++) {
        n += strcmp(entry[i].key, key) == 0;
    }
    return n;
}

static void test_parse_query(void **state)
{
    apr_pool_t *p = *state;
    apr_table_t *q = bb_url_parse_query(p, "a=1&b=2&a=3");

    assert_int_equal(apr_table_elts(q)->nelts, 3);
    assert_int_equal(count_key(q, "a"), 2);
    assert_null(bb_url_query_single(q, "a"));
    assert_string_equal(bb_url_query_single(q, "b"), "2");
    assert_null(bb_url_query_single(q, "c"));

    q = bb_url_parse_query(p, "&&x=1&&");
    assert_int_equal(apr_table_elts(q)->nelts, 1);
    assert_string_equal(bb_url_query_single(q, "x"), "1");

    q = bb_url_parse_query(p, "a");
    assert_string_equal(bb_url_query_single(q, "a"), "");

    q = bb_url_parse_query(p, "=x&k=");
    assert_int_equal(apr_table_elts(q)->nelts, 1);
    assert_string_equal(bb_url_query_single(q, "k"), "");

    q = bb_url_parse_query(p, "st%61te=a%2Bb+c&bad=%G0&%zz=1&v=x=y");
    assert_string_equal(bb_url_query_single(q, "state"), "a+b c");
    assert_null(bb_url_query_single(q, "bad"));
    assert_string_equal(bb_url_query_single(q, "v"), "x=y");
    assert_int_equal(apr_table_elts(q)->nelts, 2);

    assert_int_equal(apr_table_elts(bb_url_parse_query(p, NULL))->nelts, 0);
    assert_int_equal(apr_table_elts(bb_url_parse_query(p, ""))->nelts, 0);
}

/* A callback with two states or two codes is ambiguous and must be refused, however the second is spelled. */
static void test_query_single_refuses_duplicates(void **state)
{
    apr_pool_t *p = *state;
    apr_table_t *q = bb_url_parse_query(p, "code=c1&state=s1&state=s2");

    assert_string_equal(bb_url_query_single(q, "code"), "c1");
    assert_null(bb_url_query_single(q, "state"));
    assert_null(bb_url_query_single(bb_url_parse_query(p, "code=a&c%6Fde=b"), "code"));
    assert_null(bb_url_query_single(bb_url_parse_query(p, "code=a&code"), "code"));
}

static void test_with_query_and_form(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(bb_url_with_query(p, "https://h/x", "a", "1 2", "skip", NULL, "b&", "=", (char *)NULL),
                        "https://h/x?a=1%202&b%26=%3D");
    assert_string_equal(bb_url_with_query(p, "https://h/x?y=1", "a", "b", (char *)NULL), "https://h/x?y=1&a=b");
    assert_string_equal(bb_url_with_query(p, "https://h/x", "a", NULL, (char *)NULL), "https://h/x");
    assert_string_equal(bb_url_form(p, "grant_type", "authorization_code", "code", "a+b/c", (char *)NULL),
                        "grant_type=authorization_code&code=a%2Bb%2Fc");
    assert_string_equal(bb_url_form(p, (char *)NULL), "");
}

/* ---- configured URLs ---- */

static void test_check_base_accepts(void **state)
{
    apr_pool_t *p = *state;
    const char *err = NULL;

    assert_string_equal(bb_url_check_base(p, "https://bitbucket.example.com", &err), "https://bitbucket.example.com");
    assert_string_equal(bb_url_check_base(p, "https://bb.example.com:8443/bitbucket/", &err),
                        "https://bb.example.com:8443/bitbucket");
    assert_string_equal(bb_url_check_base(p, "https://bitbucket.example.com/", &err), "https://bitbucket.example.com");
    assert_string_equal(bb_url_check_base(p, "https://[::1]:7990/bb", &err), "https://[::1]:7990/bb");
    assert_null(err);
}

static void test_check_base_rejects(void **state)
{
    apr_pool_t *p = *state;
    static const struct { const char *url, *reason; } table[] = {
        { "http://bitbucket.example.com", "https" },
        { "https://", "host" },
        { "https://user:pw@host", "user:password@" },
        { "https://user@host", "user:password@" },
        { "https://host/?q", "query" },
        { "https://host/?", "query" },
        { "https://host/#f", "fragment" },
        { "ftp://host/x", "https" },
        { "https://host/a b", "character" },
        { "https://host/a\tb", "character" },
        { "https://host/\r\n", "character" },
        { "https://h\xc3\xa9st/", "character" },
        { "https://host\\@evil/", "character" },
        { "https://host:0/", "port" },
        { "https://host:99999/", "port" },
        { "https://host:-1/", "port" },
        { "https://host:/", "port" },
        { "bitbucket.example.com", "absolute" },
        { "/bitbucket", "absolute" },
        { "", "empty" },
    };
    size_t i;

    for (i = 0; i < ARRAY_LEN(table); i++) {
        const char *err = NULL;
        if (bb_url_check_base(p, table[i].url, &err) != NULL) {
            fail_msg("accepted base URL \"%s\"", table[i].url);
        }
        assert_non_null(err);
        if (strstr(err, table[i].reason) == NULL) {
            fail_msg("base URL \"%s\": \"%s\" does not mention %s", table[i].url, err, table[i].reason);
        }
    }
    assert_null(bb_url_check_base(p, NULL, &(const char *){ NULL }));
}

static void test_check_redirect(void **state)
{
    apr_pool_t *p = *state;
    const char *origin = NULL, *path = NULL, *err = NULL;
    const char *url = "https://WWW.Example.com/bbauth/callback%20x";
    char *long_url;

    assert_ptr_equal(bb_url_check_redirect(p, url, &origin, &path, &err), url);
    assert_string_equal(origin, "https://www.example.com");
    assert_string_equal(path, "/bbauth/callback%20x");

    assert_non_null(bb_url_check_redirect(p, "http://localhost:8080/cb", &origin, &path, &err));
    assert_string_equal(origin, "http://localhost:8080");
    assert_string_equal(path, "/cb");
    /* The default port written out is left out of the origin, as browsers do. */
    assert_non_null(bb_url_check_redirect(p, "https://h.example:443/", &origin, &path, &err));
    assert_string_equal(origin, "https://h.example");
    assert_string_equal(path, "/");
    assert_non_null(bb_url_check_redirect(p, "https://[::1]:8443/cb", &origin, &path, &err));
    assert_string_equal(origin, "https://[::1]:8443");

    err = NULL;
    assert_null(bb_url_check_redirect(p, "https://www.example.com", &origin, &path, &err));
    assert_non_null(strstr(err, "path"));
    assert_null(bb_url_check_redirect(p, "https://www.example.com/cb#x", &origin, &path, &err));
    assert_null(bb_url_check_redirect(p, "https://www.example.com/cb?x=1", &origin, &path, &err));
    assert_null(bb_url_check_redirect(p, "https://u@www.example.com/cb", &origin, &path, &err));
    assert_null(bb_url_check_redirect(p, "ftp://www.example.com/cb", &origin, &path, &err));
    assert_null(bb_url_check_redirect(p, "/cb", &origin, &path, &err));

    long_url = apr_pstrcat(p, "https://www.example.com/", NULL);
    while (strlen(long_url) < 450) {
        long_url = apr_pstrcat(p, long_url, "a", NULL);
    }
    assert_non_null(bb_url_check_redirect(p, long_url, &origin, &path, &err));
    err = NULL;
    assert_null(bb_url_check_redirect(p, apr_pstrcat(p, long_url, "a", NULL), &origin, &path, &err));
    assert_non_null(strstr(err, "450"));
}

static void test_join_and_for_log(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(bb_url_join(p, "https://h/bitbucket", "/rest/x"), "https://h/bitbucket/rest/x");
    assert_string_equal(bb_url_for_log(p, "https://h/cb?code=SECRET&state=s"), "https://h/cb");
    assert_string_equal(bb_url_for_log(p, "https://h/cb#code=SECRET"), "https://h/cb");
    assert_string_equal(bb_url_for_log(p, "https://h/a\r\nb"), "https://h/ab");
    assert_string_equal(bb_url_for_log(p, "https://h/x"), "https://h/x");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_safe_return_rejects_hostile),
        UNIT_TEST(test_safe_return_accepts_local_paths),
        UNIT_TEST(test_encode_rfc3986),
        UNIT_TEST(test_decode),
        UNIT_TEST(test_parse_query),
        UNIT_TEST(test_query_single_refuses_duplicates),
        UNIT_TEST(test_with_query_and_form),
        UNIT_TEST(test_check_base_accepts),
        UNIT_TEST(test_check_base_rejects),
        UNIT_TEST(test_check_redirect),
        UNIT_TEST(test_join_and_for_log),
    };
    return UNIT_RUN("url", tests);
}
