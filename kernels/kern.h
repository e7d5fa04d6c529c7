/*
 * Pixel kernels: pure functions over rows of 8-bit pixels, with no image
 * library under them. Compiled into the core (the fused JPEG thumbnail
 * path, plugins/backend-vips/fused.c) and into the ops-vips plugin (its libvips
 * wrappers, plugins/ops-vips/reducev.c and reduceh.c), so that both
 * compute the same pixels with the same code. The lowest layer: it calls
 * nothing of kiln's.
 *
 * A Lanczos3 reduction by a factor f (1 to KERN_REDUCE_MAX) along one
 * axis, libvips' geometry (8.13 and later): output sample i is centred on
 * input sample (i + 0.5) f - 0.5, the kernel is Lanczos3 stretched by f
 * (an anti-aliasing low-pass), samples past the edges repeat the edge
 * one, round(n / f) samples come out. Weights are normalised to sum to
 * one, in 14-bit fixed point, with 32-bit sums: no rounding between taps.
 */
#ifndef KILN_KERN_H
#define KILN_KERN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KERN_LANCZOS3_SHIFT 14
#define KERN_LANCZOS3_ONE (1 << KERN_LANCZOS3_SHIFT)
/* The largest factor (6 x 20 + 1 taps). */
#define KERN_REDUCE_MAX 20.0
/* Taps of the largest reduction: ceil(6 x KERN_REDUCE_MAX) + 1. */
#define KERN_MAX_TAPS 128

/* One axis' weights (lanczos.c): for each of out_n outputs, its first
 * input sample (may be before 0 or past the end: the caller repeats the
 * edge) and n_taps weights summing to KERN_LANCZOS3_ONE. */
typedef struct kern_lanczos3 {
    int in_n, out_n, n_taps;
    int *first;
    int16_t *weights; /* out_n x n_taps */
} kern_lanczos3;

/* 0, or -1 out of memory; free with kern_lanczos3_free. */
int kern_lanczos3_plan(int in_n, double shrink, kern_lanczos3 *l);
void kern_lanczos3_free(kern_lanczos3 *l);

/* The vertical pass (reducev.c): one output row of ne bytes from the
 * n_taps input rows rows[0..n_taps-1] (the caller repeats edge rows) and
 * their weights; acc is ne int32 of scratch. */
typedef void (*kern_reducev_fn)(const uint8_t *const *rows, const int16_t *w,
                                int n_taps, size_t ne, int32_t *restrict acc,
                                uint8_t *restrict out);
/* The row function for this CPU: AVX2 when it has it, else a loop the
 * compiler vectorises. KILN_REDUCEV_PORTABLE=1 forces the latter. */
kern_reducev_fn kern_reducev_pick(void);

/* The horizontal pass (reduceh.c) for rows of `bands` bytes a pixel. */
typedef struct kern_reduceh {
    kern_lanczos3 l; /* columns */
    int bands;
    /* Each column's weights two by two, the first in the low 16 bits,
     * n_pairs = ceil(n_taps / 2) per column (an odd last one paired with
     * 0): the operand of pmaddwd as it is. */
    int n_pairs;
    int32_t *wpair;
    int simd; /* which path this CPU takes (reduceh.c) */
} kern_reduceh;

/* 0, or -1 out of memory; free with kern_reduceh_free. */
int kern_reduceh_init(kern_reduceh *k, int in_w, int bands, double hshrink);
void kern_reduceh_free(kern_reduceh *k);
/* Output columns left..right-1 of n_rows rows. rows[i] is input row i as
 * if it started at column 0, of which only columns lo..hi need be
 * readable (lo <= first[left], hi >= the last tap of right - 1, or the
 * image's edges: taps outside lo..hi read lo or hi); outs[i] is where
 * output row i's column `left` goes. */
void kern_reduceh_rows(const kern_reduceh *k, const uint8_t *const *rows,
                       uint8_t *const *outs, int n_rows, int lo, int hi,
                       int left, int right);

#endif /* KILN_KERN_H */
