/* test_audit: audit lines are one JSON object each, every field escaped (hostile names cannot forge a line or a
 * field), long fields cut, and a token's audit id is keyed and short. */
#include "unit.h"
#include <jansson.h>
#include "fake_cache.h"
#include "bb_audit.h"

/* 2026-12-07T00:12:08.123Z */
#define T (apr_time_from_sec(1796602328) + 123456)

static json_t *parsed(const char *line)
{
    json_error_t err;
    json_t *obj;

    assert_non_null(line);
    /* One line, ending in a newline, nothing else. */
    assert_int_equal(line[strlen(line) - 1], '\n');
    assert_null(strchr(line, '\n') != line + strlen(line) - 1 ? line : NULL);
    obj = json_loads(line, JSON_REJECT_DUPLICATES, &err);
    assert_non_null(obj);
    assert_true(json_is_object(obj));
    return obj;
}

static void test_fields_in_order(void **state)
{
    apr_pool_t *p = *state;
    bb_audit_event_t e = { "login.completed", "success", NULL, "alice", "192.0.2.7", "GET", "/oauth2/callback",
                           "pkg.example.com", "/", "Z1a2b3", "session", NULL, NULL };
    const char *line = bb_audit_line(p, T, &e);
    json_t *obj = parsed(line);

    assert_string_equal(line, "{\"time\":\"2026-12-07T00:12:08.123Z\",\"event\":\"login.completed\","
                        "\"outcome\":\"success\",\"reason\":null,\"user\":\"alice\",\"client\":\"192.0.2.7\","
                        "\"method\":\"GET\",\"path\":\"/oauth2/callback\",\"vhost\":\"pkg.example.com\","
                        "\"location\":\"/\",\"request_id\":\"Z1a2b3\",\"auth\":\"session\"}\n");
    json_decref(obj);
}

/* A user name (or path) with newlines, quotes, DEL and C1 controls stays inside its own field of its own line. */
static void test_hostile_values_cannot_forge(void **state)
{
    apr_pool_t *p = *state;
    const char *evil = "mallory\",\"outcome\":\"success\"}\n{\"event\":\"login.completed\",\"user\":\"admin\x7f\x1b[2J"
                       "\xc2\x85\xe2\x80\xa8\\";
    bb_audit_event_t e = { "session.refused", "denied", "cut off", evil, NULL, "GET", evil, NULL, NULL, NULL,
                           NULL, NULL, "bitbucket-group \"x\ny\"" };
    const char *line = bb_audit_line(p, T, &e);
    json_t *obj = parsed(line);
    const char *c;

    for (c = line; *c; c++) {
        assert_true((*c >= 0x20 && *c < 0x7f) || c == line + strlen(line) - 1);
    }
    assert_string_equal(json_string_value(json_object_get(obj, "user")), evil);
    assert_string_equal(json_string_value(json_object_get(obj, "outcome")), "denied");
    assert_string_equal(json_string_value(json_object_get(obj, "event")), "session.refused");
    assert_string_equal(json_string_value(json_object_get(obj, "rule")), "bitbucket-group \"x\ny\"");
    assert_true(json_is_null(json_object_get(obj, "client")));
    assert_null(json_object_get(obj, "token"));
    json_decref(obj);
}

/* Bytes that are not UTF-8 become '?', UTF-8 names stay (escaped); long fields are cut; a line stays < 4096. */
static void test_bad_utf8_and_long_fields(void **state)
{
    apr_pool_t *p = *state;
    char *huge = apr_palloc(p, 10001);
    bb_audit_event_t e = { "token.refused", "refused", "\xff\xfe bad", "J\xc3\xb6rg", NULL, NULL, huge, NULL, NULL,
                           NULL, NULL, NULL, NULL };
    const char *line;
    json_t *obj;

    memset(huge, '\x01', 10000);
    huge[10000] = '\0';
    e.user = "J\xc3\xb6rg";
    e.client = huge;
    line = bb_audit_line(p, T, &e);
    obj = parsed(line);
    assert_true(strlen(line) < 4096);
    assert_string_equal(json_string_value(json_object_get(obj, "reason")), "?? bad");
    assert_string_equal(json_string_value(json_object_get(obj, "user")), "J\xc3\xb6rg");
    assert_int_equal(strlen(json_string_value(json_object_get(obj, "path"))), BB_AUDIT_MAX_PATH);
    assert_int_equal(strlen(json_string_value(json_object_get(obj, "client"))), BB_AUDIT_MAX_FIELD);
    json_decref(obj);
}

static void test_token_id(void **state)
{
    apr_pool_t *p = *state;
    keyed_cache_t a, b;
    const char *id;

    keyed_cache_init(&a, p, 0, 0x42);
    keyed_cache_init(&b, p, 0, 0x43);
    id = bb_audit_token_id(p, &a.key, "BBDC-secret-token");
    assert_non_null(id);
    assert_int_equal(strlen(id), 12);
    assert_null(strstr("BBDC-secret-token", id));
    assert_string_equal(id, bb_audit_token_id(p, &a.key, "BBDC-secret-token"));
    assert_string_not_equal(id, bb_audit_token_id(p, &a.key, "BBDC-other-token"));
    assert_string_not_equal(id, bb_audit_token_id(p, &b.key, "BBDC-secret-token"));
    assert_null(bb_audit_token_id(p, &a.key, NULL));
    a.key.len = 8;
    assert_null(bb_audit_token_id(p, &a.key, "BBDC-secret-token"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        UNIT_TEST(test_fields_in_order),
        UNIT_TEST(test_hostile_values_cannot_forge),
        UNIT_TEST(test_bad_utf8_and_long_fields),
        UNIT_TEST(test_token_id),
    };
    return UNIT_RUN("bb_audit", tests);
}
