/* bb_table: sets several entries of an apr_table_t that share a name prefix, paying one scan of the table instead of one per entry. */
#ifndef BB_TABLE_H
#define BB_TABLE_H

#include <apr_tables.h>

/* As apr_table_setn(t, keys[i], values[i]) for each of the n keys, which must be distinct and each begin with
 * `prefix` (case-insensitively, as table keys compare). apr_table_setn scans the whole table for each key and
 * compares in full every key whose first four letters match, as all of ours do (X-Bitbucket-..., BITBUCKET_...):
 * this scans once for any key beginning with the prefix and, when there is none (the usual case), adds each entry
 * without a scan. Keys and values are not copied (they must live as long as the table's pool). */
void bb_table_setn_prefixed(apr_table_t *t, const char *prefix, int n, const char *const keys[],
                            const char *const values[]);

#endif
