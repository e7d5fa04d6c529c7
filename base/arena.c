/*
 * Arena allocation for compile-time data (nginx pools): the tree, the IR,
 * strings and params of one request live in one arena and are freed in
 * one call when the request is done. Never freed piecemeal.
 */
#include "host.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define ARENA_BLOCK 16384
#define ARENA_ALIGN 16

typedef struct arena_block {
    struct arena_block *next;
    size_t used, size;
    _Alignas(ARENA_ALIGN) unsigned char data[];
} arena_block;

struct arena {
    arena_block *head;
};

arena *
arena_new(void)
{
    return calloc(1, sizeof(arena));
}

void
arena_free(arena *a)
{
    if (a == NULL) {
        return;
    }
    arena_block *b = a->head;
    while (b != NULL) {
        arena_block *next = b->next;
        free(b);
        b = next;
    }
    free(a);
}

void *
arena_alloc(arena *a, size_t n)
{
    n = (n + ARENA_ALIGN - 1) & ~(size_t)(ARENA_ALIGN - 1);
    if (n == 0) {
        n = ARENA_ALIGN;
    }
    arena_block *b = a->head;
    if (b == NULL || b->size - b->used < n) {
        /* Large requests get a block of their own, so a 1 MiB string does
         * not waste the rest of a shared block. */
        size_t size = n > ARENA_BLOCK / 4 ? n : ARENA_BLOCK;
        b = malloc(sizeof(arena_block) + size);
        if (b == NULL) {
            return NULL;
        }
        b->used = 0;
        b->size = size;
        if (size == ARENA_BLOCK || a->head == NULL) {
            b->next = a->head;
            a->head = b;
        } else {
            /* Keep the current block in front: it still has room. */
            b->next = a->head->next;
            a->head->next = b;
        }
    }
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *
arena_strndup(arena *a, const char *s, size_t n)
{
    char *p = arena_alloc(a, n + 1);
    if (p != NULL) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

char *
arena_strdup(arena *a, const char *s)
{
    return s == NULL ? NULL : arena_strndup(a, s, strlen(s));
}

char *
arena_printf(arena *a, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) {
        return NULL;
    }
    char *p = arena_alloc(a, (size_t)n + 1);
    if (p == NULL) {
        return NULL;
    }
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}
