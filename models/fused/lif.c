/* The LIF recurrence over a time-major [T, N] block, forward and backward, in one pass each.
 *
 * Loaded by models/fused/__init__.py with ctypes; the Python side checks shapes, dtypes and
 * layouts. Every pointer is to T * N elements laid out as t * N + i. The N elements are split
 * into `chunks` pieces, one per OpenMP thread (where compiled with OpenMP: the runtime torch
 * already loaded); elements are independent, so the split changes no result.
 *
 * Forward (the same operations, in the same order, as the torch loop in models/neurons.py, so
 * float results are bit-equal):
 *   U_0 = I_0
 *   subtract: U_t = (U_{t-1} * beta + I_t) - theta * S_{t-1}
 *   zero:     U_t = (U_{t-1} * (1 - S_{t-1})) * beta + I_t
 *   none:     U_t = U_{t-1} * beta + I_t
 *   S_t = U_t > theta                  (not stored when fire == 0)
 *
 * Backward, from the last step, with x = U_t - theta and g the spike function's derivative:
 *   dU_t = gS_t * g(x) + gU_t + c_{t+1} * dU_{t+1},  c = beta, or beta * (1 - S_t) (zero reset)
 * gS or gU may be NULL (no gradient reached that output).
 *
 * Compiled with -ffp-contract=off: no fused multiply-adds, so every clone below rounds alike.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "fused.h"

#define PI_D 3.14159265358979323846


/* Elements per tile: every step of a tile runs before the next tile, so the previous step's
 * membrane, spikes and gradient are read back from L1, not from memory. */
#define TILE 1024

enum { RESET_SUBTRACT = 0, RESET_ZERO = 1, RESET_NONE = 2 };
enum {
    SG_ATAN = 0, SG_RECTANGLE = 1, SG_SIGMOID = 2, SG_FAST_SIGMOID = 3, SG_TRIANGLE = 4,
    SG_ERF = 5, SG_PIECEWISE_EXP = 6, SG_STE = 7
};

/* Each step's membrane and spikes are written in one loop; RESET selects the update. */
#define FORWARD_LOOP(REAL, UPDATE)                                                             \
    for (int64_t t = 1; t < T; ++t) {                                                          \
        const REAL *c = cur + t * N, *up = mem + (t - 1) * N;                                  \
        const REAL *sp = spk + (t - 1) * N;                                                    \
        (void)sp; /* unused by the update without reset */                                     \
        REAL *u = mem + t * N, *s = spk + t * N;                                               \
        for (int64_t i = begin; i < end; ++i) {                                                \
            const REAL v = UPDATE;                                                             \
            u[i] = v;                                                                          \
            s[i] = v > theta ? 1 : 0;                                                          \
        }                                                                                      \
    }

#define FORWARD(NAME, REAL)                                                                    \
static inline void NAME##_tile(const REAL *cur, REAL *mem, REAL *spk, int64_t T, int64_t N,    \
                               int64_t begin, int64_t end, REAL beta, REAL theta, int reset,   \
                               int fire) {                                                     \
    if (!fire) {                                                                               \
        for (int64_t i = begin; i < end; ++i) mem[i] = cur[i];                                 \
        for (int64_t t = 1; t < T; ++t) {                                                      \
            const REAL *c = cur + t * N, *up = mem + (t - 1) * N;                              \
            REAL *u = mem + t * N;                                                             \
            for (int64_t i = begin; i < end; ++i) u[i] = up[i] * beta + c[i];                  \
        }                                                                                      \
        return;                                                                                \
    }                                                                                          \
    for (int64_t i = begin; i < end; ++i) {                                                    \
        mem[i] = cur[i];                                                                       \
        spk[i] = cur[i] > theta ? 1 : 0;                                                       \
    }                                                                                          \
    if (reset == RESET_SUBTRACT) {                                                             \
        FORWARD_LOOP(REAL, (up[i] * beta + c[i]) - theta * sp[i])                              \
    } else if (reset == RESET_ZERO) {                                                          \
        FORWARD_LOOP(REAL, (up[i] * (1 - sp[i])) * beta + c[i])                                \
    } else {                                                                                   \
        FORWARD_LOOP(REAL, up[i] * beta + c[i])                                                \
    }                                                                                          \
}                                                                                              \
CLONES static void NAME##_range(const REAL *cur, REAL *mem, REAL *spk, int64_t T, int64_t N, \
                                int64_t begin, int64_t end, double beta_d, double theta_d,     \
                                int reset, int fire) {                                         \
    for (int64_t i = begin; i < end; i += TILE)                                                \
        NAME##_tile(cur, mem, spk, T, N, i, i + TILE < end ? i + TILE : end, (REAL)beta_d,     \
                    (REAL)theta_d, reset, fire);                                               \
}                                                                                              \
void NAME(const REAL *cur, REAL *mem, REAL *spk, int64_t T, int64_t N, int chunks,            \
          double beta_d, double theta_d, int reset, int fire) {                               \
    FOR_CHUNKS(N, if (b < e) NAME##_range(cur, mem, spk, T, N, b, e, beta_d, theta_d, reset,  \
                                          fire););                                             \
}

FORWARD(lif_forward_f32, float)
FORWARD(lif_forward_f64, double)

/* One backward loop per surrogate, so each inner loop is branch-free and vectorizes. */
#define BACKWARD_LOOP(REAL, DERIV)                                                             \
    for (int64_t t = T - 1; t >= 0; --t) {                                                     \
        const REAL *u = mem + t * N;                                                           \
        const REAL *gs = g_spk ? g_spk + t * N : NULL;                                         \
        const REAL *gm = g_mem ? g_mem + t * N : NULL;                                         \
        const REAL *s = gated ? spk + t * N : NULL;                                            \
        const REAL *carry = t + 1 < T ? grad + (t + 1) * N : NULL;                             \
        REAL *g = grad + t * N;                                                                \
        for (int64_t i = begin; i < end; ++i) {                                                \
            REAL acc = 0;                                                                      \
            if (gs) { const REAL x = u[i] - theta; acc = gs[i] * (DERIV); }                    \
            if (gm) acc = acc + gm[i];                                                         \
            if (carry) acc = acc + (gated ? beta * (1 - s[i]) : beta) * carry[i];              \
            g[i] = acc;                                                                        \
        }                                                                                      \
    }

#define BACKWARD(NAME, REAL, EXP)                                                              \
static inline void NAME##_tile(const REAL *mem, const REAL *spk, const REAL *g_spk,           \
                               const REAL *g_mem, REAL *grad, int64_t T, int64_t N,            \
                               int64_t begin, int64_t end, double beta_d, double theta_d,      \
                               int reset, int fire, int kind, double alpha_d) {                \
    const REAL beta = (REAL)beta_d, theta = (REAL)theta_d, a = (REAL)alpha_d;                  \
    const int gated = fire && reset == RESET_ZERO;                                             \
    if (!fire) g_spk = NULL;                                                                   \
    switch (kind) {                                                                            \
    case SG_ATAN: {                                                                            \
        const REAL k = (REAL)(PI_D / 2 * alpha_d), h = a / 2;                                  \
        BACKWARD_LOOP(REAL, h / (1 + (k * x) * (k * x)))                                       \
        break; }                                                                               \
    case SG_RECTANGLE: {                                                                       \
        const REAL half = a / 2, inv = 1 / a;                                                  \
        BACKWARD_LOOP(REAL, (x < half && x > -half) ? inv : (REAL)0)                           \
        break; }                                                                               \
    case SG_SIGMOID:                                                                           \
        BACKWARD_LOOP(REAL, a * (1 / (1 + EXP(-a * x))) * (1 - 1 / (1 + EXP(-a * x))))         \
        break;                                                                                 \
    case SG_FAST_SIGMOID:                                                                      \
        BACKWARD_LOOP(REAL, 1 / ((a * (x < 0 ? -x : x) + 1) * (a * (x < 0 ? -x : x) + 1)))     \
        break;                                                                                 \
    case SG_TRIANGLE: {                                                                        \
        BACKWARD_LOOP(REAL, a * ((1 - a * (x < 0 ? -x : x)) > 0 ? (1 - a * (x < 0 ? -x : x))   \
                                                                : (REAL)0))                    \
        break; }                                                                               \
    case SG_ERF: {                                                                             \
        const REAL c = (REAL)(alpha_d / sqrt(PI_D));                                           \
        BACKWARD_LOOP(REAL, c * EXP(-(a * x) * (a * x)))                                       \
        break; }                                                                               \
    case SG_PIECEWISE_EXP: {                                                                   \
        const REAL h = a / 2;                                                                  \
        BACKWARD_LOOP(REAL, h * EXP(-a * (x < 0 ? -x : x)))                                    \
        break; }                                                                               \
    default:                                                                                   \
        BACKWARD_LOOP(REAL, ((void)x, (REAL)1))                                                \
        break;                                                                                 \
    }                                                                                          \
}                                                                                              \
CLONES static void NAME##_range(const REAL *mem, const REAL *spk, const REAL *g_spk,          \
                                const REAL *g_mem, REAL *grad, int64_t T, int64_t N,           \
                                int64_t begin, int64_t end, double beta_d, double theta_d,     \
                                int reset, int fire, int kind, double alpha_d) {               \
    for (int64_t i = begin; i < end; i += TILE)                                                \
        NAME##_tile(mem, spk, g_spk, g_mem, grad, T, N, i, i + TILE < end ? i + TILE : end,    \
                    beta_d, theta_d, reset, fire, kind, alpha_d);                              \
}                                                                                              \
void NAME(const REAL *mem, const REAL *spk, const REAL *g_spk, const REAL *g_mem, REAL *grad, \
          int64_t T, int64_t N, int chunks, double beta_d, double theta_d, int reset,         \
          int fire, int kind, double alpha_d) {                                               \
    FOR_CHUNKS(N, if (b < e) NAME##_range(mem, spk, g_spk, g_mem, grad, T, N, b, e, beta_d,   \
                                          theta_d, reset, fire, kind, alpha_d););              \
}

BACKWARD(lif_backward_f32, float, expf)
BACKWARD(lif_backward_f64, double, exp)

int lif_abi_version(void) { return 1; }
