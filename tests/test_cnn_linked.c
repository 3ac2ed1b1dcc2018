/* The cnn module's OpenBLAS set-up when the program itself links OpenBLAS
 * (as the neardup binary does, through other modules calling cblas_*): the
 * library is loaded before main with Debian's default kernel choice, and
 * nd__blas_init must switch it to SkylakeX on an AVX-512 CPU unless the user
 * set OPENBLAS_CORETYPE. tests/test_cnn.c covers the other case (OpenBLAS
 * not linked: loaded with dlopen). */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "blas.h"
#include "neardup/cnn.h"
#include "test.h"

char *openblas_get_corename(void);

static int avx512(void)
{
	__builtin_cpu_init();
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
	       __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
}

static void test_switch_core_when_linked(void)
{
	const char *user = getenv("OPENBLAS_CORETYPE");
	/* a direct call: OpenBLAS is in the process from the start */
	float a[4] = { 1, 2, 3, 4 }, b[4] = { 1, 0, 0, 1 }, c[4];
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
	CHECK(c[0] == 1 && c[1] == 2 && c[2] == 3 && c[3] == 4);
	const char *before = openblas_get_corename();
	printf("openblas core at start: %s\n", before);
	nd_error err;
	CHECK_EQ_INT(nd__blas_init(&err), 0);
	const char *after = openblas_get_corename();
	printf("openblas core after nd__blas_init: %s (nd_cnn_blas_core: %s)\n", after, nd_cnn_blas_core());
	CHECK(strcmp(after, nd_cnn_blas_core()) == 0);
	if (!user && avx512())
		CHECK_MSG(!strcasecmp(after, "SkylakeX") || !strcasecmp(after, "Cooperlake") ||
				  !strcasecmp(after, "SapphireRapids"),
			  "AVX-512 CPU, core %s", after);
	if (user)
		CHECK_MSG(!strcasecmp(after, user), "OPENBLAS_CORETYPE=%s, core %s", user, after);
	CHECK_EQ_INT(getenv("OPENBLAS_CORETYPE") != NULL, user != NULL);
	/* still computes correctly after the switch, directly and through us */
	cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, 2, 2, 2, 1.0f, a, 2, b, 2, 0.0f, c, 2);
	CHECK(c[0] == 1 && c[1] == 2 && c[2] == 3 && c[3] == 4);
	enum { N = 700 }; /* past the kernels' block sizes: packing buffers used in full */
	static float x[N * N], y[N * N], z[N * N];
	for (int i = 0; i < N * N; i++)
		x[i] = (float)(i % 7) - 3, y[i] = (float)(i % 5) - 2;
	nd__blas_sgemm(N, N, N, 1.0f, x, N, y, N, 0.0f, z, N);
	double maxerr = 0;
	for (int i = 0; i < N; i += 37)
		for (int j = 0; j < N; j += 29) {
			double s = 0;
			for (int k = 0; k < N; k++)
				s += (double)x[i * N + k] * y[k * N + j];
			maxerr = fmax(maxerr, fabs(s - z[i * N + j]));
		}
	CHECK_NEAR(maxerr, 0, 1e-3);
}

int main(int argc, char **argv)
{
	test_select(argc, argv);
	RUN(test_switch_core_when_linked);
	return test_summary();
}
