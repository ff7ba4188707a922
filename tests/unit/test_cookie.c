/* test_cookie: Cookie header parsing (whitespace, quotes, exact names, duplicates, caps, huge headers) and Set-Cookie making. */
#include "unit.h"
#include "bb_cookie.h"

#define JWS_LIKE "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.d4ggkVJZI4dFZRFghg6lEllobNLSS6cru9lXbXYI8lE"

/* The values joined with '|', to compare a whole result at once ("" when none). */
static const char *values_of(apr_pool_t *p, const char *header, const char *name)
{
    apr_array_header_t *values = bb_cookie_values(p, header, name);
    const char *joined = "";
    int i;

    assert_non_null(values);
    for (i = 0; i < values->nelts; i++) {
        joined = apr_pstrcat(p, joined, i ? "|" : "", APR_ARRAY_IDX(values, i, const char *), NULL);
    }
    return joined;
}

static int count_of(apr_pool_t *p, const char *header, const char *name)
{
    return bb_cookie_values(p, header, name)->nelts;
}

static void test_values_simple(void **state)
{
    apr_pool_t *p = *state;
    const char *header = "a=1; b=2;c=3";

    assert_string_equal(values_of(p, header, "a"), "1");
    assert_string_equal(values_of(p, header, "b"), "2");
    assert_string_equal(values_of(p, header, "c"), "3");
    assert_int_equal(count_of(p, header, "d"), 0);
    assert_string_equal(values_of(p, "bbauth_session=" JWS_LIKE, "bbauth_session"), JWS_LIKE);
}

static void test_values_whitespace(void **state)
{
    apr_pool_t *p = *state;
    const char *header = "  a = 1 ;\tb=2\t;c=  3 3  ;   ";

    assert_string_equal(values_of(p, header, "a"), "1");
    assert_string_equal(values_of(p, header, "b"), "2");
    assert_string_equal(values_of(p, header, "c"), "3 3");
}

static void test_values_exact_names(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(values_of(p, "A=1; a=2", "a"), "2");
    assert_string_equal(values_of(p, "ab=1; a=2; xa=3", "a"), "2");
    assert_int_equal(count_of(p, "ab=1", "a"), 0);
    assert_int_equal(count_of(p, "a=1", "ab"), 0);
    assert_int_equal(count_of(p, "bbauth_session_st_x=1", "bbauth_session"), 0);
    assert_int_equal(count_of(p, "b=a=1", "a"), 0);          /* "a" is in the value, not the name */
}

static void test_values_quoted(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(values_of(p, "a=\"xyz\"; b=1", "a"), "xyz");
    assert_string_equal(values_of(p, "a=\"\"", "a"), "");
    assert_string_equal(values_of(p, "a=\"", "a"), "\"");    /* one quote is not a quoted value */
    assert_string_equal(values_of(p, "a=\"abc", "a"), "\"abc");
    assert_string_equal(values_of(p, "a= \"q\" ", "a"), "q");
}

static void test_values_odd_pairs(void **state)
{
    apr_pool_t *p = *state;
    const char *header = "flag; a=1; =; =x; ;;; b; c=d=e; a=";

    assert_string_equal(values_of(p, header, "a"), "1|");
    assert_string_equal(values_of(p, header, "c"), "d=e");
    assert_int_equal(count_of(p, header, "b"), 0);
    assert_int_equal(count_of(p, header, "flag"), 0);
    assert_int_equal(count_of(p, header, ""), 0);
    assert_int_equal(count_of(p, header, NULL), 0);
    assert_int_equal(count_of(p, NULL, "a"), 0);
    assert_int_equal(count_of(p, "", "a"), 0);
    assert_int_equal(count_of(p, ";", "a"), 0);
}

/* Junk values of the name, however many, never hide the last one (issue 19: no cap on their number). */
static void test_values_same_name_in_order_all_of_them(void **state)
{
    apr_pool_t *p = *state;
    const char *header = "";
    int i;

    assert_string_equal(values_of(p, "s=1; t=x; s=2; s=3", "s"), "1|2|3");
    for (i = 0; i < 500; i++) {
        header = apr_psprintf(p, "%ss=%d; ", header, i);
    }
    assert_int_equal(count_of(p, header, "s"), 500);
    assert_string_equal(APR_ARRAY_IDX(bb_cookie_values(p, header, "s"), 499, const char *), "499");
}

static void test_pairs_with_prefix(void **state)
{
    apr_pool_t *p = *state;
    apr_array_header_t *pairs = bb_cookie_pairs_with_prefix(p, "s_st_a=1; s=2; s_st_=3; x_st_b=4; s_st_b = \"5\"",
                                                            "s_st_");

    assert_int_equal(pairs->nelts, 2);
    assert_string_equal(APR_ARRAY_IDX(pairs, 0, bb_cookie_pair_t).name, "s_st_a");
    assert_string_equal(APR_ARRAY_IDX(pairs, 0, bb_cookie_pair_t).value, "1");
    assert_string_equal(APR_ARRAY_IDX(pairs, 1, bb_cookie_pair_t).name, "s_st_b");
    assert_string_equal(APR_ARRAY_IDX(pairs, 1, bb_cookie_pair_t).value, "5");
    assert_int_equal(bb_cookie_pairs_with_prefix(p, NULL, "s")->nelts, 0);
    assert_int_equal(bb_cookie_pairs_with_prefix(p, "s=1", "")->nelts, 0);
}

/* "domain|path, ..." of the scopes, host-only written as "-". */
static const char *scopes_of(apr_pool_t *p, const char *name, const char *host, const char *path)
{
    apr_array_header_t *scopes = bb_cookie_scopes(p, name, host, path);
    const char *joined = "";
    int i;

    for (i = 0; i < scopes->nelts; i++) {
        const bb_cookie_attrs_t *scope = &APR_ARRAY_IDX(scopes, i, bb_cookie_attrs_t);
        joined = apr_pstrcat(p, joined, i ? ", " : "", scope->domain ? scope->domain : "-", "|", scope->path, NULL);
    }
    return joined;
}

static void test_scopes(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(scopes_of(p, "s", "mirror.example.test", "/packages/x.tgz"),
                        "-|/, -|/packages, mirror.example.test|/, mirror.example.test|/packages, "
                        "example.test|/, example.test|/packages");
    assert_string_equal(scopes_of(p, "s", "mirror.example.test", "/packages/"),
                        "-|/, -|/packages, mirror.example.test|/, mirror.example.test|/packages, "
                        "example.test|/, example.test|/packages");
    assert_string_equal(scopes_of(p, "s", "127.0.0.1", "/a//b/c"), "-|/, -|/a, -|/a//b");
    assert_string_equal(scopes_of(p, "s", "[::1]", "/"), "-|/");
    assert_string_equal(scopes_of(p, "s", "localhost", "/"), "-|/");
    assert_string_equal(scopes_of(p, "s", NULL, NULL), "-|/");
    assert_string_equal(scopes_of(p, "__Host-s", "mirror.example.test", "/packages/x"), "-|/");
    assert_int_equal(bb_cookie_scopes(p, "s", "a.b.c.d.e.f.g", "/1/2/3/4/5/6/7/8/9")->nelts, BB_COOKIE_MAX_SCOPES);
}

static void test_prefix_problem(void **state)
{
    (void)state;
    assert_null(bb_cookie_prefix_problem("bbauth_session", "example.test", "/x", 0));
    assert_null(bb_cookie_prefix_problem("__Host-bbauth", NULL, "/", 1));
    assert_null(bb_cookie_prefix_problem("__Secure-bbauth", "example.test", "/x", 1));
    assert_non_null(bb_cookie_prefix_problem("__Host-bbauth", "example.test", "/", 1));
    assert_non_null(bb_cookie_prefix_problem("__Host-bbauth", NULL, "/packages", 1));
    assert_non_null(bb_cookie_prefix_problem("__Host-bbauth", NULL, "/", 0));
    assert_non_null(bb_cookie_prefix_problem("__Secure-bbauth", NULL, "/", 0));
}

/* n cookies c0=v0 .. c<n-1>=v<n-1>, then the given tail. */
static char *many_cookies(apr_pool_t *p, int n, const char *tail)
{
    apr_array_header_t *parts = apr_array_make(p, n + 1, sizeof(char *));
    int i;

    for (i = 0; i < n; i++) {
        APR_ARRAY_PUSH(parts, char *) = apr_psprintf(p, "c%d=v%d; ", i, i);
    }
    APR_ARRAY_PUSH(parts, const char *) = tail;
    return apr_array_pstrcat(p, parts, '\0');
}

static void test_values_many_cookies(void **state)
{
    apr_pool_t *p = *state;
    char *header = many_cookies(p, 500, "target=found");

    assert_string_equal(values_of(p, header, "target"), "found");
    assert_string_equal(values_of(p, header, "c499"), "v499");
    assert_string_equal(values_of(p, header, "c0"), "v0");
}

static void test_values_huge_headers(void **state)
{
    apr_pool_t *p = *state;
    /* ~1.2 MB: a parser that rescans the header per pair would not finish in any reasonable time. */
    char *header = many_cookies(p, 100000, "target=found");
    apr_size_t big = 1 << 20;
    char *one_pair = apr_palloc(p, big + 3);

    assert_string_equal(values_of(p, header, "target"), "found");
    memcpy(one_pair, "a=", 2);
    memset(one_pair + 2, 'x', big);
    one_pair[big + 2] = '\0';
    assert_int_equal(strlen(values_of(p, one_pair, "a")), big);
    memset(one_pair, ' ', big + 2);
    assert_int_equal(count_of(p, one_pair, "a"), 0);
    memset(one_pair, '=', big + 2);
    assert_int_equal(count_of(p, one_pair, "a"), 0);
}

static const bb_cookie_attrs_t full = { "/", "example.com", "Lax", 3600, 1, 1 };

static void test_make_full(void **state)
{
    assert_string_equal(bb_cookie_make(*state, "bbauth_session", JWS_LIKE, &full),
                        "bbauth_session=" JWS_LIKE "; Path=/; Domain=example.com; Max-Age=3600; Secure; HttpOnly; "
                        "SameSite=Lax");
}

static void test_make_delete(void **state)
{
    bb_cookie_attrs_t attrs = { "/cb", NULL, "Lax", 0, 0, 1 };

    assert_string_equal(bb_cookie_make(*state, "s", "", &attrs),
                        "s=; Path=/cb; Max-Age=0; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; SameSite=Lax");
}

static void test_make_session_cookie_and_bare(void **state)
{
    apr_pool_t *p = *state;
    bb_cookie_attrs_t attrs = { NULL, NULL, NULL, -1, 1, 0 };

    assert_string_equal(bb_cookie_make(p, "s", "v", &attrs), "s=v; Secure");
    assert_string_equal(bb_cookie_make(p, "s", "v", NULL), "s=v");
    attrs.max_age = 31536000;
    attrs.secure = 0;
    attrs.same_site = "Strict";
    assert_string_equal(bb_cookie_make(p, "s", "v", &attrs), "s=v; Max-Age=31536000; SameSite=Strict");
}

static void test_make_refuses_bad_values(void **state)
{
    apr_pool_t *p = *state;
    static const char *const bad[] = {
        "a;b", "a,b", "a\rb", "a\nb", "a b", "a\tb", "\"ab\"", "a\\b", "a\x01" "b", "a\x7f", "Zo\xc3\xab",
        "v\r\nSet-Cookie: admin=1",
    };
    apr_size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_null(bb_cookie_make(p, "s", bad[i], &full));
    }
    assert_null(bb_cookie_make(p, "s", NULL, &full));
    assert_non_null(bb_cookie_make(p, "s", "A-z_0.9~!#$%&'()*+/:<=>?@[]^`{|}", &full));
}

static void test_make_refuses_bad_names(void **state)
{
    apr_pool_t *p = *state;
    static const char *const bad[] = {
        "", "a b", "a=b", "a;b", "a,b", "a\r\n", "(x)", "a\"b", "a/b", "a\x01", "\xc3\xab",
    };
    apr_size_t i;

    for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_null(bb_cookie_make(p, bad[i], "v", &full));
    }
    assert_null(bb_cookie_make(p, NULL, "v", &full));
    assert_non_null(bb_cookie_make(p, "bbauth_session_st_ungWv48Bz-pBQUDe", "v", &full));
}

static void test_make_refuses_bad_attributes(void **state)
{
    apr_pool_t *p = *state;
    bb_cookie_attrs_t attrs = full;

    attrs.path = "/x; Domain=evil.example";
    assert_null(bb_cookie_make(p, "s", "v", &attrs));
    attrs.path = "/x\r\nSet-Cookie: a=1";
    assert_null(bb_cookie_make(p, "s", "v", &attrs));
    attrs.path = "/x\x7f";
    assert_null(bb_cookie_make(p, "s", "v", &attrs));
    attrs.path = "/d\xc3\xa9j\xc3\xa0";   /* raw UTF-8: a path attribute is ASCII (percent-encode it) */
    assert_null(bb_cookie_make(p, "s", "v", &attrs));
    attrs = full;
    attrs.domain = "example.com\n";
    assert_null(bb_cookie_make(p, "s", "v", &attrs));
    attrs = full;
    attrs.same_site = "Lax; Secure";
    assert_null(bb_cookie_make(p, "s", "v", &attrs));
    attrs = full;
    attrs.path = "/a b/";           /* a space is allowed in a path-value */
    assert_string_equal(bb_cookie_make(p, "s", "v", &attrs),
                        "s=v; Path=/a b/; Domain=example.com; Max-Age=3600; Secure; HttpOnly; SameSite=Lax");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_values_simple),
        UNIT_TEST(test_values_whitespace),
        UNIT_TEST(test_values_exact_names),
        UNIT_TEST(test_values_quoted),
        UNIT_TEST(test_values_odd_pairs),
        UNIT_TEST(test_values_same_name_in_order_all_of_them),
        UNIT_TEST(test_values_many_cookies),
        UNIT_TEST(test_values_huge_headers),
        UNIT_TEST(test_make_full),
        UNIT_TEST(test_make_delete),
        UNIT_TEST(test_make_session_cookie_and_bare),
        UNIT_TEST(test_make_refuses_bad_values),
        UNIT_TEST(test_make_refuses_bad_names),
        UNIT_TEST(test_make_refuses_bad_attributes),
        UNIT_TEST(test_pairs_with_prefix),
        UNIT_TEST(test_scopes),
        UNIT_TEST(test_prefix_problem),
    };
    return UNIT_RUN("cookie", tests);
}
