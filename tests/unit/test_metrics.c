/* test_metrics: the shared counter table (layout, atomic updates from many processes), call classification, and the
 * Prometheus and mod_status renderings. */
#include "unit.h"
#include <sys/wait.h>
#include <unistd.h>
#include <apr_shm.h>
#include "bb_metrics.h"
#include "bb_http.h"

#define BASE "https://bitbucket.example.com/bitbucket"

static bb_metrics_t *fresh(apr_pool_t *p)
{
    apr_size_t size = bb_metrics_size();
    bb_metrics_t *m = bb_metrics_init(apr_palloc(p, size), size);

    assert_non_null(m);
    return m;
}

static int occurrences(const char *text, const char *needle)
{
    int n = 0;

    for (text = strstr(text, needle); text; text = strstr(text + 1, needle)) {
        n++;
    }
    return n;
}

static void test_layout_init_attach(void **state)
{
    apr_pool_t *p = *state;
    apr_size_t size = bb_metrics_size();
    void *mem = apr_pcalloc(p, size);
    bb_metrics_t *m;

    assert_null(bb_metrics_attach(mem, size));           /* zeroes: no table laid out */
    assert_null(bb_metrics_init(mem, size - 1));
    m = bb_metrics_init(mem, size);
    assert_non_null(m);
    bb_metrics_inc(m, BB_M_LOGOUT);
    /* Another generation of the configuration finds the same table, counts kept. */
    assert_ptr_equal(bb_metrics_attach(mem, size), m);
    assert_int_equal(bb_metrics_value(bb_metrics_attach(mem, size), BB_M_LOGOUT), 1);
    assert_null(bb_metrics_attach(mem, size - 1));
    /* Out-of-range ids are ignored, not written past the table. */
    bb_metrics_inc(m, BB_M_COUNT);
    assert_int_equal(bb_metrics_value(m, BB_M_COUNT), 0);
}

/* Children of one parent count into an anonymous shared segment, as httpd's children do. */
static void test_counts_from_many_processes(void **state)
{
    apr_pool_t *p = *state;
    enum { CHILDREN = 4, EACH = 20000 };
    apr_shm_t *shm = NULL;
    bb_metrics_t *m;
    int i;

    assert_int_equal(apr_shm_create(&shm, bb_metrics_size(), NULL, p), APR_SUCCESS);
    m = bb_metrics_init(apr_shm_baseaddr_get(shm), apr_shm_size_get(shm));
    assert_non_null(m);
    for (i = 0; i < CHILDREN; i++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            int n;
            for (n = 0; n < EACH; n++) {
                bb_metrics_inc(m, BB_M_TOKEN_CACHED_VALID);
                bb_metrics_observe_call(m, BB_CALL_WHOAMI, BB_CALL_OK, 1000);
            }
            _exit(0);
        }
    }
    for (i = 0; i < CHILDREN; i++) {
        int status = 0;
        assert_true(wait(&status) > 0);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    assert_int_equal(bb_metrics_value(m, BB_M_TOKEN_CACHED_VALID), CHILDREN * EACH);
    assert_int_equal(bb_metrics_calls(m, BB_CALL_WHOAMI, BB_CALL_OK), CHILDREN * EACH);
    apr_shm_destroy(shm);
}

static void test_call_kind(void **state)
{
    assert_int_equal(bb_metrics_call_kind(BASE "/rest/oauth2/latest/token"), BB_CALL_OAUTH2_TOKEN);
    assert_int_equal(bb_metrics_call_kind(BASE "/rest/oauth2/latest/revoke"), BB_CALL_OAUTH2_REVOKE);
    assert_int_equal(bb_metrics_call_kind(BASE "/plugins/servlet/oauth/request-token"), BB_CALL_OAUTH1_TOKEN);
    assert_int_equal(bb_metrics_call_kind(BASE "/plugins/servlet/oauth/access-token"), BB_CALL_OAUTH1_TOKEN);
    assert_int_equal(bb_metrics_call_kind(BASE "/plugins/servlet/applinks/whoami"), BB_CALL_WHOAMI);
    assert_int_equal(bb_metrics_call_kind(BASE "/rest/api/1.0/users?filter=alice&limit=100"), BB_CALL_USER);
    assert_int_equal(bb_metrics_call_kind(BASE "/rest/api/1.0/admin/users/more-members?context=alice"),
                     BB_CALL_GROUP);
    assert_int_equal(bb_metrics_call_kind(BASE "/rest/api/1.0/projects/PROJ/repos/r"), BB_CALL_PERMISSION);
    assert_int_equal(bb_metrics_call_kind(BASE "/rest/api/1.0/application-properties"), BB_CALL_OTHER);
    /* Only the path names the kind: a query that looks like a path does not. */
    assert_int_equal(bb_metrics_call_kind(BASE "/rest/api/1.0/x?u=/rest/oauth2/latest/token"), BB_CALL_OTHER);
    assert_int_equal(bb_metrics_call_kind(NULL), BB_CALL_OTHER);
}

static void test_call_outcome(void **state)
{
    assert_int_equal(bb_metrics_call_outcome(BB_OK, 200), BB_CALL_OK);
    assert_int_equal(bb_metrics_call_outcome(BB_OK, 204), BB_CALL_OK);
    assert_int_equal(bb_metrics_call_outcome(BB_OK, 302), BB_CALL_REDIRECT);
    assert_int_equal(bb_metrics_call_outcome(BB_OK, 401), BB_CALL_REFUSED);
    assert_int_equal(bb_metrics_call_outcome(BB_OK, 403), BB_CALL_REFUSED);
    assert_int_equal(bb_metrics_call_outcome(BB_OK, 404), BB_CALL_CLIENT_ERROR);
    assert_int_equal(bb_metrics_call_outcome(BB_OK, 503), BB_CALL_SERVER_ERROR);
    assert_int_equal(bb_metrics_call_outcome(BB_OK, 0), BB_CALL_SERVER_ERROR);
    assert_int_equal(bb_metrics_call_outcome(BB_UNAVAILABLE, 0), BB_CALL_UNAVAILABLE);
    assert_int_equal(bb_metrics_call_outcome(BB_BAD_RESPONSE, 0), BB_CALL_TOO_LARGE);
}

static void test_login_failure_causes(void **state)
{
    apr_pool_t *p = *state;
    bb_http_response_t page;

    memset(&page, 0, sizeof(page));
    page.status = 200;
    page.content_type = "text/html";
    page.body = "";
    assert_int_equal(bb_metrics_login_failure(BB_OK, NULL), BB_M_COUNT);
    assert_int_equal(bb_metrics_login_failure(BB_DENIED, "POST x: invalid_grant"), BB_M_LOGIN_FAILED_TOKEN_REFUSED);
    assert_int_equal(bb_metrics_login_failure(BB_UNAVAILABLE, "POST x: timeout"), BB_M_LOGIN_FAILED_UNAVAILABLE);
    assert_int_equal(bb_metrics_login_failure(BB_BAD_RESPONSE, "POST x: HTTP 500"), BB_M_LOGIN_FAILED_BAD_RESPONSE);
    /* bb_http's two-factor hint wins over the status. */
    assert_int_equal(bb_metrics_login_failure(BB_BAD_RESPONSE, bb_http_describe(p, &page)),
                     BB_M_LOGIN_FAILED_TWO_FACTOR);
    assert_int_equal(bb_metrics_session_refusal(BB_SESSION_EXPIRED), BB_M_SESSION_REFUSED_EXPIRED);
    assert_int_equal(bb_metrics_session_refusal(BB_SESSION_INVALID), BB_M_SESSION_REFUSED_INVALID);
    assert_int_equal(bb_metrics_session_refusal(BB_SESSION_VALID), BB_M_COUNT);
}

static void test_cache_results(void **state)
{
    assert_int_equal(bb_metrics_cache_result(BB_CACHE_OP_STORE, APR_SUCCESS), BB_M_CACHE_STORE_OK);
    assert_int_equal(bb_metrics_cache_result(BB_CACHE_OP_STORE, APR_ENOSPC), BB_M_CACHE_STORE_ERROR);
    assert_int_equal(bb_metrics_cache_result(BB_CACHE_OP_RETRIEVE, APR_SUCCESS), BB_M_CACHE_RETRIEVE_HIT);
    assert_int_equal(bb_metrics_cache_result(BB_CACHE_OP_RETRIEVE, APR_NOTFOUND), BB_M_CACHE_RETRIEVE_MISS);
    assert_int_equal(bb_metrics_cache_result(BB_CACHE_OP_RETRIEVE, APR_EGENERAL), BB_M_CACHE_RETRIEVE_ERROR);
    assert_int_equal(bb_metrics_cache_result(BB_CACHE_OP_REMOVE, APR_NOTFOUND), BB_M_CACHE_REMOVE_MISS);
    assert_int_equal(bb_metrics_cache_result(BB_CACHE_OP_REMOVE, APR_EGENERAL), BB_M_CACHE_REMOVE_ERROR);
}

static void test_prometheus_counters(void **state)
{
    apr_pool_t *p = *state;
    bb_metrics_t *m = fresh(p);
    const char *text;

    bb_metrics_inc(m, BB_M_LOGIN_STARTED);
    bb_metrics_inc(m, BB_M_LOGIN_FAILED_STATE_EXPIRED);
    bb_metrics_inc(m, BB_M_LOGIN_FAILED_STATE_EXPIRED);
    bb_metrics_inc(m, BB_M_REQUIRE_ASKED_DENIED);
    text = bb_metrics_prometheus(p, m);
    assert_non_null(strstr(text, "# HELP bbauth_logins_started_total "));
    assert_non_null(strstr(text, "# TYPE bbauth_logins_started_total counter\nbbauth_logins_started_total 1\n"));
    assert_non_null(strstr(text, "\nbbauth_logins_failed_total{cause=\"state_expired\"} 2\n"));
    assert_non_null(strstr(text, "\nbbauth_logins_failed_total{cause=\"state_replayed\"} 0\n"));
    assert_non_null(strstr(text, "\nbbauth_require_decisions_total{source=\"bitbucket\",decision=\"denied\"} 1\n"));
    assert_non_null(strstr(text, "\nbbauth_logouts_total 0\n"));
    /* One HELP and one TYPE per family: a family's rows are adjacent in the table. */
    assert_int_equal(occurrences(text, "# TYPE bbauth_logins_failed_total "), 1);
    assert_int_equal(occurrences(text, "# TYPE bbauth_cache_operations_total "), 1);
    assert_int_equal(occurrences(text, "# TYPE "), occurrences(text, "# HELP "));
    assert_int_equal(occurrences(text, "# TYPE "), 10);
    assert_int_equal(text[strlen(text) - 1], '\n');
}

static void test_prometheus_histogram(void **state)
{
    apr_pool_t *p = *state;
    bb_metrics_t *m = fresh(p);
    const char *text;

    bb_metrics_observe_call(m, BB_CALL_OAUTH2_TOKEN, BB_CALL_OK, 3000);           /* 3 ms */
    bb_metrics_observe_call(m, BB_CALL_OAUTH2_TOKEN, BB_CALL_OK, 5000);           /* on a bound: in it */
    bb_metrics_observe_call(m, BB_CALL_OAUTH2_TOKEN, BB_CALL_REFUSED, 700000);    /* 0.7 s */
    bb_metrics_observe_call(m, BB_CALL_OAUTH2_TOKEN, BB_CALL_UNAVAILABLE, 20000000); /* 20 s: +Inf only */
    bb_metrics_observe_call(m, BB_CALL_WHOAMI, BB_CALL_OK, -5);                   /* clock stepped back: 0 */
    text = bb_metrics_prometheus(p, m);
    assert_non_null(strstr(text, "# TYPE bbauth_bitbucket_call_duration_seconds histogram\n"));
#define H "bbauth_bitbucket_call_duration_seconds"
    assert_non_null(strstr(text, "\n" H "_bucket{endpoint=\"oauth2_token\",le=\"0.005\"} 2\n"));
    assert_non_null(strstr(text, "\n" H "_bucket{endpoint=\"oauth2_token\",le=\"0.5\"} 2\n"));
    assert_non_null(strstr(text, "\n" H "_bucket{endpoint=\"oauth2_token\",le=\"1\"} 3\n"));
    assert_non_null(strstr(text, "\n" H "_bucket{endpoint=\"oauth2_token\",le=\"10\"} 3\n"));
    assert_non_null(strstr(text, "\n" H "_bucket{endpoint=\"oauth2_token\",le=\"+Inf\"} 4\n"));
    assert_non_null(strstr(text, "\n" H "_count{endpoint=\"oauth2_token\"} 4\n"));
    assert_non_null(strstr(text, "\n" H "_sum{endpoint=\"oauth2_token\"} 20.708000\n"));
    assert_non_null(strstr(text, "\n" H "_bucket{endpoint=\"whoami\",le=\"0.005\"} 1\n"));
    assert_non_null(strstr(text, "\n" H "_sum{endpoint=\"whoami\"} 0.000000\n"));
    assert_non_null(strstr(text, "\n" H "_count{endpoint=\"user\"} 0\n"));
#undef H
    assert_non_null(strstr(text, "\nbbauth_bitbucket_calls_total{endpoint=\"oauth2_token\",outcome=\"ok\"} 2\n"));
    assert_non_null(strstr(text, "\nbbauth_bitbucket_calls_total{endpoint=\"oauth2_token\",outcome=\"refused\"} 1\n"));
    assert_non_null(strstr(text, "\nbbauth_bitbucket_calls_total{endpoint=\"oauth2_token\",outcome=\"unavailable\"} 1\n"));
    assert_int_equal(bb_metrics_calls(m, BB_CALL_OAUTH2_TOKEN, BB_CALL_OK), 2);
}

static const char *status_value(const apr_array_header_t *lines, const char *key)
{
    int i;

    for (i = 0; i < lines->nelts; i++) {
        const bb_metrics_line_t *line = &APR_ARRAY_IDX(lines, i, bb_metrics_line_t);
        if (!strcmp(line->key, key)) {
            return line->value;
        }
    }
    return NULL;
}

static void test_status_lines(void **state)
{
    apr_pool_t *p = *state;
    bb_metrics_t *m = fresh(p);
    apr_array_header_t *lines;

    bb_metrics_inc(m, BB_M_LOGOUT);
    bb_metrics_inc(m, BB_M_SESSION_REFUSED_LOGGED_OUT);
    bb_metrics_observe_call(m, BB_CALL_PERMISSION, BB_CALL_OK, 1500000);
    lines = bb_metrics_status_lines(p, m);
    assert_int_equal(lines->nelts, BB_M_COUNT + 2 * BB_CALL_KINDS);
    assert_string_equal(status_value(lines, "bbauth_logouts_total"), "1");
    assert_string_equal(status_value(lines, "bbauth_sessions_refused_total{reason=\"logged_out\"}"), "1");
    assert_string_equal(status_value(lines, "bbauth_logins_completed_total"), "0");
    assert_string_equal(status_value(lines, "bbauth_bitbucket_call_duration_seconds_count{endpoint=\"permission\"}"),
                        "1");
    assert_string_equal(status_value(lines, "bbauth_bitbucket_call_duration_seconds_sum{endpoint=\"permission\"}"),
                        "1.500000");
}

/* The version label of bbauth_build_info: as given, escaped where the text format needs it. */
static void test_build_info(void **state)
{
    apr_pool_t *p = *state;

    assert_string_equal(bb_metrics_build_info(p, "0.1.0"),
                        "# HELP bbauth_build_info The version of mod_bbauth that answers (always 1).\n"
                        "# TYPE bbauth_build_info gauge\n"
                        "bbauth_build_info{version=\"0.1.0\"} 1\n");
    assert_non_null(strstr(bb_metrics_build_info(p, "1.0~rc1+dfsg-2"),
                           "\nbbauth_build_info{version=\"1.0~rc1+dfsg-2\"} 1\n"));
    assert_non_null(strstr(bb_metrics_build_info(p, "a\"b\\c\nd"),
                           "\nbbauth_build_info{version=\"a\\\"b\\\\c\\nd\"} 1\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_layout_init_attach),
        UNIT_TEST(test_counts_from_many_processes),
        UNIT_TEST(test_call_kind),
        UNIT_TEST(test_call_outcome),
        UNIT_TEST(test_login_failure_causes),
        UNIT_TEST(test_cache_results),
        UNIT_TEST(test_prometheus_counters),
        UNIT_TEST(test_prometheus_histogram),
        UNIT_TEST(test_status_lines),
        UNIT_TEST(test_build_info),
    };
    return UNIT_RUN("metrics", tests);
}
