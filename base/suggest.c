/*
 * "Did you mean": the nearest known name to a misspelt one, by
 * Levenshtein distance, for unknown fields, ops, enum values and config
 * keys.
 */
#include "host.h"

#include <string.h>
#include <strings.h>

static size_t
suggest_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    size_t row[65];
    if (la > 64 || lb > 64) {
        return (size_t)-1;
    }
    for (size_t j = 0; j <= lb; j++) {
        row[j] = j;
    }
    for (size_t i = 1; i <= la; i++) {
        size_t prev = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t cur = row[j];
            size_t cost = (a[i - 1] | 32) == (b[j - 1] | 32) ? 0 : 1;
            size_t best = prev + cost;
            if (row[j] + 1 < best) {
                best = row[j] + 1;
            }
            if (row[j - 1] + 1 < best) {
                best = row[j - 1] + 1;
            }
            row[j] = best;
            prev = cur;
        }
    }
    return row[lb];
}

const char *
suggest_nearest(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    size_t best_d = (size_t)-1;
    size_t len = strlen(word);
    /* A third of the word's length, at least 2: "widht" finds "width",
     * "x" does not find "y". */
    size_t limit = len / 3 > 2 ? len / 3 : 2;
    if (len <= 2) {
        limit = 1;
    }
    for (size_t i = 0; i < n && cands[i] != NULL; i++) {
        size_t d = suggest_distance(word, cands[i]);
        if (d < best_d) {
            best_d = d;
            best = cands[i];
        }
    }
    return best_d <= limit ? best : NULL;
}

void
suggest_hint(const char *word, const char *const *cands, size_t n, char *buf,
             size_t size)
{
    const char *s = suggest_nearest(word, cands, n);
    if (s != NULL) {
        snprintf(buf, size, " (did you mean \"%s\"?)", s);
    } else if (size > 0) {
        buf[0] = '\0';
    }
}
