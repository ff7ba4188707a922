/* test_connshare: the per-process curl shares: none before init or after the pool, one per trust store, a bound. */
#include "unit.h"
#include <apr_thread_proc.h>
#include "bb_connshare.h"

static void test_no_share_before_init_or_after_the_pool(void **state)
{
    apr_pool_t *p = *state, *child;

    assert_null(bb_connshare_for(NULL));
    assert_int_equal(apr_pool_create(&child, p), APR_SUCCESS);
    assert_int_equal(bb_connshare_init(child), APR_SUCCESS);
    assert_non_null(bb_connshare_for(NULL));
    apr_pool_destroy(child);
    assert_null(bb_connshare_for(NULL));
}

static void test_one_share_per_trust_store(void **state)
{
    apr_pool_t *p = *state;
    static const char ca_a[] = "-----BEGIN CERTIFICATE-----A", ca_b[] = "-----BEGIN CERTIFICATE-----A";
    CURLSH *system_only, *a, *b;

    assert_int_equal(bb_connshare_init(p), APR_SUCCESS);
    system_only = bb_connshare_for(NULL);
    a = bb_connshare_for(ca_a);
    b = bb_connshare_for(ca_b);   /* the same text elsewhere: another server's setting, another share */
    assert_non_null(system_only);
    assert_non_null(a);
    assert_non_null(b);
    assert_ptr_not_equal(system_only, a);
    assert_ptr_not_equal(a, b);
    assert_ptr_equal(bb_connshare_for(NULL), system_only);
    assert_ptr_equal(bb_connshare_for(ca_a), a);
}

static void test_shares_are_bounded(void **state)
{
    apr_pool_t *p = *state;
    char stores[BB_CONNSHARE_MAX + 1][2];
    int i;

    assert_int_equal(bb_connshare_init(p), APR_SUCCESS);
    for (i = 0; i < BB_CONNSHARE_MAX; i++) {
        assert_non_null(bb_connshare_for(stores[i]));
    }
    assert_null(bb_connshare_for(stores[BB_CONNSHARE_MAX]));
    assert_non_null(bb_connshare_for(stores[0]));
}

/* Requests of many threads take and give back the share's locks: a handle using it is set up and dropped. */
static void *APR_THREAD_FUNC use_share(apr_thread_t *thread, void *share)
{
    int i;

    for (i = 0; i < 200; i++) {
        CURL *curl = curl_easy_init();
        curl_easy_setopt(curl, CURLOPT_SHARE, share);
        curl_easy_cleanup(curl);
    }
    apr_thread_exit(thread, APR_SUCCESS);
    return NULL;
}

static void test_threads_use_one_share(void **state)
{
    apr_pool_t *p = *state;
    apr_thread_t *threads[4];
    apr_status_t rv;
    CURLSH *share;
    int i;

    assert_int_equal(bb_connshare_init(p), APR_SUCCESS);
    share = bb_connshare_for(NULL);
    for (i = 0; i < 4; i++) {
        assert_int_equal(apr_thread_create(&threads[i], NULL, use_share, share, p), APR_SUCCESS);
    }
    for (i = 0; i < 4; i++) {
        assert_int_equal(apr_thread_join(&rv, threads[i]), APR_SUCCESS);
        assert_int_equal(rv, APR_SUCCESS);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_no_share_before_init_or_after_the_pool),
        UNIT_TEST(test_one_share_per_trust_store),
        UNIT_TEST(test_shares_are_bounded),
        UNIT_TEST(test_threads_use_one_share),
    };

    curl_global_init(CURL_GLOBAL_DEFAULT);
    return UNIT_RUN("connshare", tests);
}
