/* bb_table: one scan of a table to set entries that share a name prefix. */
#include "bb_table.h"

/* c in lower case when it is an ASCII capital (field names are ASCII tokens): no call into the C library's locale
 * tables, as apr_tolower makes. */
static int ascii_lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

/* 1 when s begins with prefix, ignoring case: most keys differ from it in their first letters, and stop there. */
static int starts_with(const char *s, const char *prefix)
{
    for (; *prefix; s++, prefix++) {
        if (ascii_lower((unsigned char)*s) != ascii_lower((unsigned char)*prefix)) {
            return 0;      /* also at the end of s: its NUL matches no letter of the prefix */
        }
    }
    return 1;
}

/* 1 when some key of t begins with prefix. */
static int has_key_with_prefix(const apr_table_t *t, const char *prefix)
{
    const apr_array_header_t *fields = apr_table_elts(t);
    const apr_table_entry_t *entry = (const apr_table_entry_t *)fields->elts;
    int i;

    for (i = 0; i < fields->nelts; i++) {
        if (entry[i].key && starts_with(entry[i].key, prefix)) {
            return 1;
        }
    }
    return 0;
}

void bb_table_setn_prefixed(apr_table_t *t, const char *prefix, int n, const char *const keys[],
                            const char *const values[])
{
    int already, i;

    if (n <= 0) {
        return;
    }
    already = has_key_with_prefix(t, prefix);
    for (i = 0; i < n; i++) {
        if (already) {
            apr_table_setn(t, keys[i], values[i]);
        }
        else {
            apr_table_addn(t, keys[i], values[i]);
        }
    }
}
