/* unit.h: what every cmocka unit test of the core includes: cmocka's prerequisites, a pool per test. */
#ifndef BB_UNIT_H
#define BB_UNIT_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>
#include <apr_general.h>
#include <apr_pools.h>
#include <apr_strings.h>

/* Group setup/teardown: APR initialised once, a fresh pool per test in *state. */
static int unit_group_setup(void **state) { (void)state; return apr_initialize() == APR_SUCCESS ? 0 : -1; }
static int unit_group_teardown(void **state) { (void)state; apr_terminate(); return 0; }
static int unit_pool_setup(void **state)
{
    apr_pool_t *p = NULL;
    if (apr_pool_create(&p, NULL) != APR_SUCCESS) return -1;
    *state = p;
    return 0;
}
static int unit_pool_teardown(void **state) { apr_pool_destroy((apr_pool_t *)*state); return 0; }

#define UNIT_TEST(f) cmocka_unit_test_setup_teardown(f, unit_pool_setup, unit_pool_teardown)
#define UNIT_RUN(name, tests) cmocka_run_group_tests_name(name, tests, unit_group_setup, unit_group_teardown)

#endif
