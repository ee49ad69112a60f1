/* Batch normalization in training, on a [M, C] block with C innermost (a channels-last conv map
 * or an FC layer's [rows, features]), forward and backward in one call each. Loaded by
 * models/fused/__init__.py, which checks dtypes and layouts. Rows are split into `chunks`
 * pieces, one per OpenMP thread (the runtime torch already loaded), each summing into its own
 * slice of the workspace `ws` [chunks][2][C]; the pieces are then added in chunk order, so the
 * result depends on `chunks` but not on scheduling.
 *
 * Forward, n = M:
 *   mean = sum(x) / n, var = sum(x^2) / n - mean^2   (biased; float sums over ROWS rows, then
 *                                                      double), inv = 1 / sqrt(var + eps)
 *   G, R = gamma, inv             (shift == 0)
 *        = AP2(gamma), AP2(inv)   (shift == 1; AP2(v) = sign(v) 2^round(log2|v|))
 *   y = x * (G R) + (beta - mean * G R)
 *   running_mean = momentum * mean + (1 - momentum) * running_mean, running_var likewise with
 *   the unbiased variance var * n / (n - 1)  (either pointer may be NULL)
 * Backward, with d = sum(g * (x - mean)):
 *   dx = G R (g - sum(g) / n) - G inv^3 (x - mean) d / n
 *   dgamma = R d, dbeta = sum(g)
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "fused.h"


#define ROWS 64
#define MAX_C 4096

#define KERNELS(SUFFIX, REAL, SQRT, FREXP, LDEXP, COPYSIGN)                                     \
static inline REAL ap2_##SUFFIX(REAL v) {                                                      \
    if (v == 0) return v;                                                                      \
    int e;                                                                                     \
    REAL m = FREXP(v < 0 ? -v : v, &e);                                                        \
    if (m < (REAL)0.70710678118654752440) e -= 1;                                              \
    return COPYSIGN(LDEXP((REAL)1, e), v);                                                     \
}                                                                                              \
CLONES static void sums_##SUFFIX(const REAL *restrict x, const REAL *restrict g,              \
                                 const REAL *restrict mean, int64_t C, int64_t begin,         \
                                 int64_t end, double *restrict s1, double *restrict s2) {     \
    REAL p1[MAX_C], p2[MAX_C];                                                                 \
    for (int64_t c = 0; c < C; ++c) s1[c] = s2[c] = 0;                                         \
    for (int64_t m0 = begin; m0 < end; m0 += ROWS) {                                           \
        const int64_t m1 = m0 + ROWS < end ? m0 + ROWS : end;                                  \
        for (int64_t c = 0; c < C; ++c) p1[c] = p2[c] = 0;                                     \
        if (g == NULL) {                                                                       \
            for (int64_t m = m0; m < m1; ++m) {                                                \
                const REAL *restrict row = x + m * C;                                          \
                for (int64_t c = 0; c < C; ++c) {                                              \
                    p1[c] += row[c];                                                           \
                    p2[c] += row[c] * row[c];                                                  \
                }                                                                              \
            }                                                                                  \
        } else {                                                                               \
            for (int64_t m = m0; m < m1; ++m) {                                                \
                const REAL *restrict row = x + m * C, *restrict gr = g + m * C;                \
                for (int64_t c = 0; c < C; ++c) {                                              \
                    p1[c] += gr[c];                                                            \
                    p2[c] += gr[c] * (row[c] - mean[c]);                                       \
                }                                                                              \
            }                                                                                  \
        }                                                                                      \
        for (int64_t c = 0; c < C; ++c) { s1[c] += p1[c]; s2[c] += p2[c]; }                    \
    }                                                                                          \
}                                                                                              \
/* Partial sums of every chunk into ws, then their totals (chunk order) into ws[0]. */         \
static void reduce_##SUFFIX(const REAL *x, const REAL *g, const REAL *mean, int64_t M,        \
                            int64_t C, int chunks, double *ws) {                              \
    FOR_CHUNKS(M,                                                                              \
        double *s1 = ws + (int64_t)k * 2 * C, *s2 = s1 + C;                                    \
        if (b < e) sums_##SUFFIX(x, g, mean, C, b, e, s1, s2);                                 \
        else for (int64_t c = 0; c < C; ++c) s1[c] = s2[c] = 0;);                              \
    for (int k = 1; k < chunks; ++k)                                                           \
        for (int64_t c = 0; c < 2 * C; ++c) ws[c] += ws[(int64_t)k * 2 * C + c];               \
}                                                                                              \
CLONES static void affine_##SUFFIX(const REAL *restrict x, REAL *restrict y, int64_t C,        \
                                   int64_t begin, int64_t end, const REAL *restrict scale,    \
                                   const REAL *restrict shift) {                              \
    for (int64_t m = begin; m < end; ++m) {                                                    \
        const REAL *restrict row = x + m * C;                                                  \
        REAL *restrict out = y + m * C;                                                        \
        for (int64_t c = 0; c < C; ++c) out[c] = row[c] * scale[c] + shift[c];                 \
    }                                                                                          \
}                                                                                              \
CLONES static void grad_x_##SUFFIX(const REAL *restrict g, const REAL *restrict x,             \
                                   REAL *restrict dx, int64_t C, int64_t begin, int64_t end,  \
                                   const REAL *restrict mean, const REAL *restrict a,         \
                                   const REAL *restrict gmean, const REAL *restrict b) {      \
    for (int64_t m = begin; m < end; ++m) {                                                    \
        const REAL *restrict gr = g + m * C, *restrict row = x + m * C;                        \
        REAL *restrict out = dx + m * C;                                                       \
        for (int64_t c = 0; c < C; ++c)                                                        \
            out[c] = a[c] * (gr[c] - gmean[c]) + b[c] * (row[c] - mean[c]);                    \
    }                                                                                          \
}                                                                                              \
/* consts: 4 * C of REAL scratch; saved: mean, inv, G, R (4 * C REAL, kept for backward). */   \
void bn_forward_##SUFFIX(const REAL *x, REAL *y, int64_t M, int64_t C, int chunks,            \
                         const REAL *gamma, const REAL *beta, REAL *running_mean,             \
                         REAL *running_var, double momentum, double eps, int shift,           \
                         REAL *saved, REAL *consts, double *ws) {                             \
    reduce_##SUFFIX(x, NULL, NULL, M, C, chunks, ws);                                          \
    REAL *mean = saved, *inv = saved + C, *G = saved + 2 * C, *R = saved + 3 * C;              \
    REAL *scale = consts, *offset = consts + C;                                                \
    const double n = (double)M;                                                                \
    for (int64_t c = 0; c < C; ++c) {                                                          \
        const double mu = ws[c] / n;                                                           \
        double var = ws[C + c] / n - mu * mu;                                                  \
        if (var < 0) var = 0;                                                                  \
        mean[c] = (REAL)mu;                                                                    \
        inv[c] = (REAL)1 / SQRT((REAL)var + (REAL)eps);                                        \
        G[c] = shift ? ap2_##SUFFIX(gamma[c]) : gamma[c];                                      \
        R[c] = shift ? ap2_##SUFFIX(inv[c]) : inv[c];                                          \
        scale[c] = G[c] * R[c];                                                                \
        offset[c] = beta[c] - mean[c] * scale[c];                                              \
        if (running_mean)                                                                      \
            running_mean[c] = (REAL)(momentum * mu + (1 - momentum) * running_mean[c]);        \
        if (running_var) {                                                                     \
            const double unbiased = M > 1 ? var * n / (n - 1) : var;                           \
            running_var[c] = (REAL)(momentum * unbiased + (1 - momentum) * running_var[c]);    \
        }                                                                                      \
    }                                                                                          \
    FOR_CHUNKS(M, if (b < e) affine_##SUFFIX(x, y, C, b, e, scale, offset););                 \
}                                                                                              \
/* dx may be NULL (no input gradient needed); dgamma and dbeta receive C values each. */       \
void bn_backward_##SUFFIX(const REAL *g, const REAL *x, REAL *dx, int64_t M, int64_t C,       \
                          int chunks, const REAL *saved, REAL *dgamma, REAL *dbeta,           \
                          REAL *consts, double *ws) {                                         \
    const REAL *mean = saved, *inv = saved + C, *G = saved + 2 * C, *R = saved + 3 * C;        \
    reduce_##SUFFIX(x, g, mean, M, C, chunks, ws);                                             \
    REAL *a = consts, *gmean = consts + C, *slope = consts + 2 * C;                            \
    const double n = (double)M;                                                                \
    for (int64_t c = 0; c < C; ++c) {                                                          \
        const double sum = ws[c], d = ws[C + c], r = inv[c];                                   \
        a[c] = (REAL)((double)G[c] * (double)R[c]);                                            \
        gmean[c] = (REAL)(sum / n);                                                            \
        slope[c] = (REAL)(-(double)G[c] * r * r * r * d / n);                                  \
        dgamma[c] = (REAL)((double)R[c] * d);                                                  \
        dbeta[c] = (REAL)sum;                                                                  \
    }                                                                                          \
    if (dx == NULL) return;                                                                    \
    FOR_CHUNKS(M, if (b < e) grad_x_##SUFFIX(g, x, dx, C, b, e, mean, a, gmean, slope););       \
}

KERNELS(f32, float, sqrtf, frexpf, ldexpf, copysignf)
KERNELS(f64, double, sqrt, frexp, ldexp, copysign)
