/* neardup — cost of the calibrated similarity.
 *
 *   bench_calib [MODEL.ndm] [-n N] [-r RUNS]     (default models/neardup.ndm, 2000, 5)
 *
 * Times, on one thread: nd_calib_create (the float16 -> float32 background
 * set, once per process), nd_calib_stat per image (one image at a time, as
 * ingest and query call it), and, for comparison, one float16 re-rank dot
 * product. The embeddings are the model's own background vectors with
 * noise, renormalised. Prints the median of RUNS runs in a Markdown table. */
#include "neardup/calib.h"
#include "neardup/store.h"
#include "timing.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(double), bench_cmp_double);
	return v[n / 2];
}

int main(int argc, char **argv)
{
	const char *path = "models/neardup.ndm";
	int n = 2000, runs = 5;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-n") && i + 1 < argc)
			n = atoi(argv[++i]);
		else if (!strcmp(argv[i], "-r") && i + 1 < argc)
			runs = atoi(argv[++i]);
		else
			path = argv[i];
	}
	if (n < 1 || runs < 1 || runs > 99) {
		fprintf(stderr, "usage: bench_calib [MODEL.ndm] [-n N] [-r RUNS]\n");
		return 2;
	}
	nd_error err;
	nd_model *m = NULL;
	nd_calib *c = NULL;
	if (nd_model_load(path, &m, &err)) {
		fprintf(stderr, "bench_calib: %s\n", err.msg);
		return 1;
	}
	double t_create[99], t_stat[99], t_dot[99];
	for (int r = 0; r < runs; r++) {
		double t0 = bench_now();
		if (nd_calib_create(m, &c, &err)) {
			fprintf(stderr, "bench_calib: %s\n", err.msg);
			return 1;
		}
		t_create[r] = bench_now() - t0;
		if (r + 1 < runs)
			nd_calib_free(c);
	}
	const uint16_t *bg;
	size_t cnt;
	int d;
	nd_model_background(m, &bg, &cnt, &d);
	float *x = malloc(sizeof(float) * (size_t)n * d), *st = malloc(sizeof(float) * (size_t)n);
	uint8_t *enc = malloc(nd_vector_encoded_size(d, ND_VEC_F16) * (size_t)n);
	size_t vlen = nd_vector_encoded_size(d, ND_VEC_F16), len;
	uint64_t s = 1;
	for (int i = 0; i < n; i++) {
		float *v = x + (size_t)i * d;
		nd_vec_view vv = { .dim = (uint32_t)d, .format = ND_VEC_F16, .scale = 1.0f,
				   .data = (const uint8_t *)(bg + (i % cnt) * (size_t)d) };
		nd_vector_dequant(&vv, v);
		double nn = 0;
		for (int j = 0; j < d; j++) {
			s = s * 6364136223846793005ull + 1442695040888963407ull;
			v[j] += (float)(((double)(s >> 11) / 9007199254740992.0 - 0.5) * 0.1);
			nn += (double)v[j] * v[j];
		}
		for (int j = 0; j < d; j++)
			v[j] = (float)(v[j] / sqrt(nn));
		nd_vector_encode(v, (uint32_t)d, ND_VEC_F16, enc + (size_t)i * vlen, vlen, &len, &err);
	}
	volatile float sink = 0;
	for (int r = 0; r < runs; r++) {
		double t0 = bench_now();
		for (int i = 0; i < n; i++)
			nd_calib_stat(c, x + (size_t)i * d, 1, st + i, &err);
		t_stat[r] = (bench_now() - t0) / n;
		t0 = bench_now();
		for (int i = 0; i < n; i++) {
			nd_vec_view vv;
			nd_vector_decode(enc + (size_t)i * vlen, vlen, (uint32_t)d, &vv, &err);
			sink += nd_vector_dot(&vv, x + (size_t)((i + 1) % n) * d);
		}
		t_dot[r] = (bench_now() - t0) / n;
	}
	(void)sink;
	nd_model_calib p;
	nd_calib_params(c, &p);
	printf("| model | background | k | calib setup ms (once per process) | statistic ms per image | "
	       "one f16 re-rank dot us |\n|---|---:|---:|---:|---:|---:|\n");
	printf("| %s | %zu x %d | %d | %.3f | %.4f | %.3f |\n", path, cnt, d, p.k,
	       1e3 * median(t_create, runs), 1e3 * median(t_stat, runs), 1e6 * median(t_dot, runs));
	free(x);
	free(st);
	free(enc);
	nd_calib_free(c);
	nd_model_free(m);
	return 0;
}
