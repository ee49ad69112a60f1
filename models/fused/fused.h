/* What the fused kernels share: the instruction-set clones and the split of a block over
 * threads. Included by lif.c, bn.c and pool.c. */
#ifndef BSNN_FUSED_H
#define BSNN_FUSED_H

#include <stdint.h>

/* AVX2 and baseline variants in one library, the machine's picked at load time (GCC, Linux). */
#if defined(__x86_64__) && defined(__linux__) && defined(__GNUC__) && !defined(__clang__)
#define CLONES __attribute__((target_clones("avx2", "default")))
#else
#define CLONES
#endif

/* Items of chunk k of `chunks`: [k * step, (k + 1) * step), a multiple of 16 items (64 bytes of
 * float32) so that chunks start on cache-line boundaries. */
static inline int64_t chunk_step(int64_t n, int chunks) {
    int64_t step = (n + chunks - 1) / chunks;
    return (step + 15) / 16 * 16;
}

/* Run the statements that follow n once per chunk of [0, n) in the calling function's
 * `int chunks` pieces, one OpenMP thread each (the runtime torch loaded, where compiled with
 * -fopenmp; one after the other otherwise), with `int k` the chunk and `int64_t b, e` its
 * bounds, b < e or, for a chunk past the end, b >= e. The split depends on `chunks` alone, so a
 * result summed per chunk does not depend on scheduling. */
#define FOR_CHUNKS(n, ...)                                                                     \
    do {                                                                                       \
        const int64_t n_ = (n), step_ = chunk_step(n_, chunks);                                \
        _Pragma("omp parallel for num_threads(chunks) schedule(static, 1) if(chunks > 1)")    \
        for (int k = 0; k < chunks; ++k) {                                                     \
            const int64_t b = k * step_, e = b + step_ < n_ ? b + step_ : n_;                  \
            __VA_ARGS__                                                                        \
        }                                                                                      \
    } while (0)

#endif
