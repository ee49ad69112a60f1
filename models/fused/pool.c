/* 2x2 max pooling, stride 2, no padding (floor), on channels-last maps [N, H, W, C], forward and
 * backward, the way torch's CPU kernel does it: the first maximal element of the window in scan
 * order (row by row) wins, NaN counts as maximal. The window position (0..3) is kept as one
 * byte per output instead of torch's int64 index. Loaded by models/fused/__init__.py; rows of
 * the output (n, oh) are split into `chunks` pieces, one per OpenMP thread.
 *
 * Backward zeroes each pair of rows (and an odd H's last row) with memset, then stores each
 * window's gradient at its winning position: 0 elsewhere, including the last row/column of an
 * odd H/W, which no window covers.
 */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "fused.h"


#define POOL(SUFFIX, REAL)                                                                     \
static inline __attribute__((always_inline)) void pool_rows_##SUFFIX(                          \
                                      const REAL *restrict x, REAL *restrict y,                \
                                      uint8_t *restrict idx, int64_t H, int64_t W, int64_t C, \
                                      int64_t OH, int64_t OW, int64_t r0, int64_t r1) {       \
    for (int64_t r = r0; r < r1; ++r) {                                                        \
        const int64_t n = r / OH, oh = r % OH;                                                 \
        const REAL *top = x + ((n * H + 2 * oh) * W) * C, *bot = top + W * C;                  \
        REAL *out = y + r * OW * C;                                                            \
        uint8_t *at = idx + r * OW * C;                                                        \
        for (int64_t ow = 0; ow < OW; ++ow) {                                                  \
            const REAL *a = top + 2 * ow * C, *b = a + C, *c2 = bot + 2 * ow * C, *d = c2 + C; \
            REAL *o = out + ow * C;                                                            \
            uint8_t *k = at + ow * C;                                                          \
            for (int64_t c = 0; c < C; ++c) {                                                  \
                REAL best = a[c];                                                              \
                uint8_t where = 0;                                                             \
                if (b[c] > best || isnan(b[c])) { best = b[c]; where = 1; }                    \
                if (c2[c] > best || isnan(c2[c])) { best = c2[c]; where = 2; }                 \
                if (d[c] > best || isnan(d[c])) { best = d[c]; where = 3; }                    \
                o[c] = best;                                                                   \
                k[c] = where;                                                                  \
            }                                                                                  \
        }                                                                                      \
    }                                                                                          \
}                                                                                              \
static inline __attribute__((always_inline)) void unpool_rows_##SUFFIX(                        \
                                        const REAL *restrict g, const uint8_t *restrict idx,   \
                                        REAL *restrict dx, int64_t H, int64_t W, int64_t C,   \
                                        int64_t OH, int64_t OW, int64_t r0, int64_t r1) {     \
    const int64_t off[4] = {0, C, W * C, W * C + C};                                           \
    for (int64_t r = r0; r < r1; ++r) {                                                        \
        const int64_t n = r / OH, oh = r % OH;                                                 \
        REAL *top = dx + ((n * H + 2 * oh) * W) * C;                                           \
        /* both rows (and the uncovered last row under the last window row) zeroed, then each \
         * window's gradient stored at its winning position */                                 \
        const int64_t rows = (H > 2 * OH && oh == OH - 1) ? 3 : 2;                             \
        memset(top, 0, (size_t)(rows * W * C) * sizeof(REAL));                                 \
        const REAL *gr = g + r * OW * C;                                                       \
        const uint8_t *at = idx + r * OW * C;                                                  \
        for (int64_t ow = 0; ow < OW; ++ow) {                                                  \
            REAL *a = top + 2 * ow * C;                                                        \
            const REAL *gv = gr + ow * C;                                                      \
            const uint8_t *k = at + ow * C;                                                    \
            for (int64_t c = 0; c < C; ++c) a[c + off[k[c]]] = gv[c];                          \
        }                                                                                      \
    }                                                                                          \
}                                                                                              \
/* The channel loop with C known at compile time for the common widths: unrolled, no per-window \
 * loop set-up (what made the generic loop slower than torch's at 16 channels). */             \
CLONES static void pool_range_##SUFFIX(const REAL *x, REAL *y, uint8_t *idx, int64_t H,       \
                                       int64_t W, int64_t C, int64_t OH, int64_t OW,          \
                                       int64_t r0, int64_t r1) {                              \
    switch (C) {                                                                               \
    case 16: pool_rows_##SUFFIX(x, y, idx, H, W, 16, OH, OW, r0, r1); break;                   \
    case 32: pool_rows_##SUFFIX(x, y, idx, H, W, 32, OH, OW, r0, r1); break;                   \
    case 64: pool_rows_##SUFFIX(x, y, idx, H, W, 64, OH, OW, r0, r1); break;                   \
    case 128: pool_rows_##SUFFIX(x, y, idx, H, W, 128, OH, OW, r0, r1); break;                 \
    default: pool_rows_##SUFFIX(x, y, idx, H, W, C, OH, OW, r0, r1);                           \
    }                                                                                          \
}                                                                                              \
CLONES static void unpool_range_##SUFFIX(const REAL *g, const uint8_t *idx, REAL *dx,          \
                                         int64_t H, int64_t W, int64_t C, int64_t OH,         \
                                         int64_t OW, int64_t r0, int64_t r1) {                \
    switch (C) {                                                                               \
    case 16: unpool_rows_##SUFFIX(g, idx, dx, H, W, 16, OH, OW, r0, r1); break;                \
    case 32: unpool_rows_##SUFFIX(g, idx, dx, H, W, 32, OH, OW, r0, r1); break;                \
    case 64: unpool_rows_##SUFFIX(g, idx, dx, H, W, 64, OH, OW, r0, r1); break;                \
    case 128: unpool_rows_##SUFFIX(g, idx, dx, H, W, 128, OH, OW, r0, r1); break;              \
    default: unpool_rows_##SUFFIX(g, idx, dx, H, W, C, OH, OW, r0, r1);                        \
    }                                                                                          \
}                                                                                              \
void maxpool2_forward_##SUFFIX(const REAL *x, REAL *y, uint8_t *idx, int64_t N, int64_t H,     \
                               int64_t W, int64_t C, int chunks) {                            \
    const int64_t OH = H / 2, OW = W / 2;                                                      \
    FOR_CHUNKS(N * OH, if (b < e) pool_range_##SUFFIX(x, y, idx, H, W, C, OH, OW, b, e););     \
}                                                                                              \
void maxpool2_backward_##SUFFIX(const REAL *g, const uint8_t *idx, REAL *dx, int64_t N,        \
                                int64_t H, int64_t W, int64_t C, int chunks) {                \
    const int64_t OH = H / 2, OW = W / 2;                                                      \
    FOR_CHUNKS(N * OH, if (b < e) unpool_range_##SUFFIX(g, idx, dx, H, W, C, OH, OW, b, e););  \
}

POOL(f32, float)
POOL(f64, double)
