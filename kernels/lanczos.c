/*
 * The weights of a one-dimensional Lanczos3 reduction, shared by the
 * vertical and horizontal passes (reducev.c, reduceh.c). libvips'
 * geometry: output sample i is centred on input sample (i + 0.5) x
 * shrink - 0.5, the kernel is Lanczos3 stretched by shrink (an
 * anti-aliasing low-pass), round(n / shrink) samples out. The weights of
 * each output sample are normalised to sum to one and kept in 14-bit
 * fixed point, the rounding left over given to the largest, so that a
 * flat image stays flat exactly.
 */
#include "kern.h"

#include <math.h>
#include <stdlib.h>

static double
lanczos3(double x)
{
    x = fabs(x);
    if (x < 1e-9) {
        return 1.0;
    }
    if (x >= 3.0) {
        return 0.0;
    }
    double px = 3.14159265358979323846 * x;
    return 3.0 * sin(px) * sin(px / 3.0) / (px * px);
}

void
kern_lanczos3_free(kern_lanczos3 *l)
{
    free(l->first);
    free(l->weights);
    l->first = NULL;
    l->weights = NULL;
}

int
kern_lanczos3_plan(int in_n, double shrink, kern_lanczos3 *l)
{
    double support = 3.0 * shrink;
    l->in_n = in_n;
    l->out_n = (int)rint(in_n / shrink);
    if (l->out_n < 1) {
        l->out_n = 1;
    }
    l->n_taps = (int)ceil(2.0 * support) + 1;
    l->first = calloc((size_t)l->out_n, sizeof *l->first);
    l->weights =
        calloc((size_t)l->out_n * (size_t)l->n_taps, sizeof *l->weights);
    double *w = calloc((size_t)l->n_taps, sizeof *w);
    if (l->first == NULL || l->weights == NULL || w == NULL) {
        free(w);
        kern_lanczos3_free(l);
        return -1;
    }
    for (int i = 0; i < l->out_n; i++) {
        double centre = (i + 0.5) * shrink - 0.5;
        int first = (int)ceil(centre - support);
        double sum = 0;
        for (int t = 0; t < l->n_taps; t++) {
            w[t] = lanczos3((first + t - centre) / shrink);
            sum += w[t];
        }
        /* 14 bits: every weight fits 16 (at most KERN_LANCZOS3_ONE). */
        int16_t *iw = &l->weights[(size_t)i * l->n_taps];
        int isum = 0, big = 0;
        for (int t = 0; t < l->n_taps; t++) {
            iw[t] = (int16_t)lrint(w[t] / sum * KERN_LANCZOS3_ONE);
            isum += iw[t];
            if (iw[t] > iw[big]) {
                big = t;
            }
        }
        iw[big] = (int16_t)(iw[big] + KERN_LANCZOS3_ONE - isum);
        l->first[i] = first;
    }
    free(w);
    return 0;
}
