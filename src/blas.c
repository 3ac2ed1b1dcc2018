/* neardup — finding OpenBLAS and making it use the right kernels.
 *
 * Debian's OpenBLAS is built with DYNAMIC_ARCH: it picks its kernel table in
 * a constructor when it is loaded, from the CPU or from OPENBLAS_CORETYPE.
 * 0.3.21 does not recognise some AVX-512 CPUs and falls back to Haswell
 * kernels, although its SkylakeX sgemm is faster on them
 * (bench/results/cnn.md). Two cases:
 *  - OpenBLAS is not in the process yet (a program that does not link it):
 *    dlopen it with OPENBLAS_CORETYPE=SkylakeX (and OPENBLAS_NUM_THREADS=1)
 *    set just for the call, when the CPU and OS support AVX-512 and the user
 *    set nothing; the environment is restored right after.
 *  - It is already loaded (the Makefile links -lopenblas): if it chose a
 *    pre-AVX-512 core in that case, re-run its core selection with the same
 *    variable set, through the exported gotoblas_dynamic_quit /
 *    gotoblas_dynamic_init pair of DYNAMIC_ARCH builds (what its constructor
 *    calls). That must happen while no BLAS call is running.
 * Either way OpenBLAS is then set to one thread (callers parallelise).
 * Nothing happens at load time: the set-up runs once (pthread_once) at the
 * first nd__blas_init, which nd_cnn_init and nd_workspace_create call, so a
 * program that never embeds never loads or reconfigures BLAS. setenv is not
 * thread-safe, so that first call belongs before a program starts threads
 * (neardup's commands create their workspaces before their workers). */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "blas.h"

enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

typedef void (*sgemm_fn)(int order, int ta, int tb, int m, int n, int k,
			 float alpha, const float *a, int lda, const float *b,
			 int ldb, float beta, float *c, int ldc);
typedef char *(*str_fn)(void);
typedef void (*set_threads_fn)(int);

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;
static int blas_rc;
static char blas_msg[256];
static sgemm_fn blas_sgemm;
static const char *blas_core;
static const char *blas_cfg;

static int cpu_has_avx512(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_cpu_init();
	/* libgcc also checks that the OS saves the AVX-512 state (XCR0). */
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
	       __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl");
#else
	return 0;
#endif
}

/* OpenBLAS core names that already use AVX-512 kernels */
static int is_avx512_core(const char *c)
{
	return !strcasecmp(c, "SkylakeX") || !strcasecmp(c, "Cooperlake") ||
	       !strcasecmp(c, "SapphireRapids");
}

static void blas_load(void)
{
	static const char *const names[] = {
		"libopenblas.so.0", "libopenblas.so", "libcblas.so.3", "libblas.so.3",
	};
	void *h = NULL;
	int set_core = 0, set_threads = 0;

	int want_skx = !getenv("OPENBLAS_CORETYPE") && cpu_has_avx512();
	/* Already in the process (linked, or loaded by another library)? */
	for (size_t i = 0; i < 2 && !h; i++)
		h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
	if (h && want_skx) {
		str_fn core;
		void (*quit)(void), (*init)(void);
		*(void **)&core = dlsym(h, "openblas_get_corename");
		*(void **)&quit = dlsym(h, "gotoblas_dynamic_quit");
		*(void **)&init = dlsym(h, "gotoblas_dynamic_init");
		const char *c = core ? core() : NULL;
		if (c && quit && init && !is_avx512_core(c)) {
			setenv("OPENBLAS_CORETYPE", "SkylakeX", 0);
			quit();
			init();
			unsetenv("OPENBLAS_CORETYPE");
		}
	}
	if (!h) {
		if (want_skx) {
			setenv("OPENBLAS_CORETYPE", "SkylakeX", 0);
			set_core = 1;
		}
		if (!getenv("OPENBLAS_NUM_THREADS")) {
			/* no idle BLAS threads: our callers parallelise */
			setenv("OPENBLAS_NUM_THREADS", "1", 0);
			set_threads = 1;
		}
		for (size_t i = 0; i < sizeof names / sizeof names[0] && !h; i++)
			h = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
		if (set_core)
			unsetenv("OPENBLAS_CORETYPE");
		if (set_threads)
			unsetenv("OPENBLAS_NUM_THREADS");
	}
	if (!h) {
		const char *e = dlerror();
		snprintf(blas_msg, sizeof blas_msg,
			 "cannot load OpenBLAS (libopenblas.so.0): %s", e ? e : "not found");
		blas_rc = ND_EUNSUPPORTED;
		return;
	}
	*(void **)&blas_sgemm = dlsym(h, "cblas_sgemm");
	if (!blas_sgemm) {
		snprintf(blas_msg, sizeof blas_msg, "the BLAS library has no cblas_sgemm");
		blas_rc = ND_EUNSUPPORTED;
		return;
	}
	set_threads_fn st;
	str_fn core, cfg;
	*(void **)&st = dlsym(h, "openblas_set_num_threads");
	*(void **)&core = dlsym(h, "openblas_get_corename");
	*(void **)&cfg = dlsym(h, "openblas_get_config");
	if (st)
		st(1);
	blas_core = core ? core() : "unknown";
	blas_cfg = cfg ? cfg() : "unknown";
	if (!blas_core)
		blas_core = "unknown";
	if (!blas_cfg)
		blas_cfg = "unknown";
	/* the handle stays open for the life of the process */
}

int nd__blas_init(nd_error *err)
{
	pthread_once(&blas_once, blas_load);
	if (blas_rc)
		return nd_error_set(err, blas_rc, "%s", blas_msg);
	return 0;
}

void nd__blas_sgemm(int m, int n, int k, float alpha, const float *a, int lda,
		    const float *b, int ldb, float beta, float *c, int ldc)
{
	ND_ASSERT(blas_sgemm);
	blas_sgemm(CBLAS_ROW_MAJOR, CBLAS_NO_TRANS, CBLAS_NO_TRANS, m, n, k, alpha,
		   a, lda, b, ldb, beta, c, ldc);
}

void nd__blas_sgemm_t(int ta, int tb, int m, int n, int k, float alpha,
		      const float *a, int lda, const float *b, int ldb,
		      float beta, float *c, int ldc)
{
	ND_ASSERT(blas_sgemm);
	blas_sgemm(CBLAS_ROW_MAJOR, ta ? CBLAS_TRANS : CBLAS_NO_TRANS,
		   tb ? CBLAS_TRANS : CBLAS_NO_TRANS, m, n, k, alpha, a, lda, b,
		   ldb, beta, c, ldc);
}

const char *nd__blas_core(void)
{
	return blas_sgemm ? blas_core : NULL;
}

const char *nd__blas_config(void)
{
	return blas_sgemm ? blas_cfg : NULL;
}
