/* neardup — OpenBLAS, loaded at run time (see the top of neardup/cnn.h for
 * why: the SkylakeX kernels must be chosen before the library loads).
 * Nothing runs at load time: modules needing BLAS call nd__blas_init (cheap,
 * idempotent; the first call sets the library up) and then nd__blas_sgemm,
 * or cblas_* directly. */
#ifndef NEARDUP_BLAS_H
#define NEARDUP_BLAS_H

#include "neardup/common.h"

/* Loads the BLAS library once per process (thread-safe, idempotent).
 * Returns 0, or ND_EUNSUPPORTED with a message when none can be loaded. */
int nd__blas_init(nd_error *err);

/* Row-major C[M][N] = alpha * A[M][K] * B[K][N] + beta * C (no transposes),
 * with leading dimensions lda, ldb, ldc. Only after nd__blas_init succeeded. */
void nd__blas_sgemm(int m, int n, int k, float alpha, const float *a, int lda,
		    const float *b, int ldb, float beta, float *c, int ldc);

/* The same with A transposed or B transposed (ta/tb = 1). */
void nd__blas_sgemm_t(int ta, int tb, int m, int n, int k, float alpha,
		      const float *a, int lda, const float *b, int ldb,
		      float beta, float *c, int ldc);

/* The core OpenBLAS reports (NULL before init, "unknown" if not OpenBLAS). */
const char *nd__blas_core(void);

/* The library's configuration string ("OpenBLAS 0.3.21 DYNAMIC_ARCH ..."),
 * or "unknown"; NULL before init. */
const char *nd__blas_config(void);

#endif
