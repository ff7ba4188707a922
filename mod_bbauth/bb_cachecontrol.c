/* bb_cachecontrol: merges an app's Cache-Control with "private" (and "no-store") without weakening it. */
#include <string.h>
#include <apr_strings.h>
#include <apr_lib.h>
#include "bb_cachecontrol.h"

/* The end of the directive starting at s: the next ',' outside a quoted string, or the end. */
static const char *directive_end(const char *s)
{
    int quoted = 0;

    for (; *s; s++) {
        if (*s == '\\' && quoted && s[1]) {
            s++;
        }
        else if (*s == '"') {
            quoted = !quoted;
        }
        else if (*s == ',' && !quoted) {
            break;
        }
    }
    return s;
}

/* 1 when the directive [start, end) is named `name` (case-insensitive), with or without a value. */
static int is_directive(const char *start, const char *end, const char *name)
{
    apr_size_t len = strlen(name);

    return (apr_size_t)(end - start) >= len && !strncasecmp(start, name, len)
        && (start + len == end || start[len] == '=' || apr_isspace(start[len]));
}

/* A directive that would let a shared cache keep the response (or share part of it). */
static int shares(const char *start, const char *end)
{
    return is_directive(start, end, "public") || is_directive(start, end, "s-maxage")
        || is_directive(start, end, "private") || is_directive(start, end, "proxy-revalidate");
}

const char *bb_cache_control_private(apr_pool_t *p, const char *current, int no_store)
{
    const char *kept = "", *s = current ? current : "";
    int has_no_store = 0;

    while (*s) {
        const char *start = s, *end = directive_end(s);

        s = *end ? end + 1 : end;
        while (start < end && apr_isspace(*start)) {
            start++;
        }
        while (end > start && apr_isspace(end[-1])) {
            end--;
        }
        if (start == end || shares(start, end)) {
            continue;
        }
        has_no_store |= is_directive(start, end, "no-store");
        kept = apr_pstrcat(p, kept, ", ", apr_pstrmemdup(p, start, (apr_size_t)(end - start)), NULL);
    }
    if (!*kept) {
        /* Nothing of the app's: a literal, no allocation (the usual answer, on every authenticated response). */
        return no_store ? "private, no-store" : "private";
    }
    return apr_pstrcat(p, "private", no_store && !has_no_store ? ", no-store" : "", kept, NULL);
}
