/* Benchmark of the CNN engine on one model file:
 *   1. OpenBLAS sgemm GFLOP/s on a large square product (one thread), the
 *      reference rate for the convolutions;
 *   2. per-layer time and GFLOP/s at a given batch (one thread);
 *   3. whole-model images/s on T worker threads (one workspace each) at
 *      batch B, for each T in --threads and B in --batches.
 * Prints markdown. Usage:
 *   bench_cnn MODEL.ndm [--seconds S] [--threads 1,2] [--batches 1,16]
 *             [--sgemm N] [--layer-batch B] [--no-layers] [--embed OUT.f32]
 * --embed writes the embeddings of a fixed deterministic input batch
 * (bench/torch_infer.py --check compares PyTorch's with them). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "blas.h"
#include "cnn_impl.h"
#include "neardup/cnn.h"
#include "timing.h"

#define WINDOW 0.5

static int parse_list(const char *s, int *v, int max)
{
	int n = 0;
	while (*s && n < max) {
		v[n++] = atoi(s);
		s = strchr(s, ',');
		if (!s)
			break;
		s++;
	}
	return n;
}

/* deterministic input in [-2, 2): the same generator as torch_infer.py */
static void fill_input(float *x, size_t n)
{
	uint32_t s = 12345;
	for (size_t i = 0; i < n; i++) {
		s = s * 1664525u + 1013904223u;
		x[i] = (float)(s >> 8) / (float)(1u << 24) * 4.0f - 2.0f;
	}
}

static double bench_sgemm(int n, double seconds)
{
	float *a = malloc(sizeof(float) * (size_t)n * n), *b = malloc(sizeof(float) * (size_t)n * n);
	float *c = malloc(sizeof(float) * (size_t)n * n);
	for (size_t i = 0; i < (size_t)n * n; i++)
		a[i] = (float)(i % 13) * 0.1f, b[i] = (float)(i % 7) * 0.1f;
	nd__blas_sgemm(n, n, n, 1.0f, a, n, b, n, 0.0f, c, n); /* warm-up */
	/* the fastest of >= 5 products over >= `seconds` (a shared machine) */
	double best = 1e30, start = bench_now();
	for (int r = 0; r < 5 || bench_now() - start < seconds; r++) {
		double t0 = bench_now();
		nd__blas_sgemm(n, n, n, 1.0f, a, n, b, n, 0.0f, c, n);
		double t = bench_now() - t0;
		if (t < best)
			best = t;
	}
	free(a), free(b), free(c);
	return 2.0 * n * (double)n * n / best / 1e9;
}

struct worker {
	const nd_model *m;
	int batch;
	double seconds;
	long images;
	double best, cpu;
	int rc;
	pthread_barrier_t *bar;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	nd_workspace *ws = NULL;
	nd_error err;
	nd_model_info info;
	nd_model_get_info(w->m, &info);
	size_t per = (size_t)3 * info.input_h * info.input_w;
	float *in = malloc(sizeof(float) * per * (size_t)w->batch);
	float *out = malloc(sizeof(float) * (size_t)info.embed_dim * (size_t)w->batch);
	fill_input(in, per * (size_t)w->batch);
	w->rc = nd_workspace_create(w->m, w->batch, &ws, &err);
	if (!w->rc)
		w->rc = nd_model_forward(w->m, ws, in, w->batch, out, &err); /* warm-up */
	pthread_barrier_wait(w->bar);
	/* windows of at least WINDOW s; the best window's rate counts (the
	 * machine is shared), the mean is kept too */
	struct timespec c0, c1;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c0);
	double t0 = bench_now(), tw = t0, total = w->seconds;
	long imgs = 0;
	w->images = 0;
	w->best = 0;
	while (!w->rc && bench_now() - t0 < total) {
		w->rc = nd_model_forward(w->m, ws, in, w->batch, out, &err);
		w->images += w->batch;
		imgs += w->batch;
		double t = bench_now();
		if (t - tw >= WINDOW) {
			if (imgs / (t - tw) > w->best)
				w->best = imgs / (t - tw);
			imgs = 0;
			tw = t;
		}
	}
	w->seconds = bench_now() - t0;
	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &c1);
	w->cpu = (double)(c1.tv_sec - c0.tv_sec) + (double)(c1.tv_nsec - c0.tv_nsec) * 1e-9;
	if (w->best == 0)
		w->best = w->images / w->seconds;
	if (w->rc)
		fprintf(stderr, "bench_cnn: %s\n", err.msg);
	nd_workspace_free(ws);
	free(in), free(out);
	return NULL;
}

static double throughput(const nd_model *m, int threads, int batch, double seconds, double *mean,
			 double *per_cpu)
{
	struct worker w[64];
	pthread_t id[64];
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, (unsigned)threads);
	for (int i = 0; i < threads; i++) {
		w[i] = (struct worker){ .m = m, .batch = batch, .seconds = seconds, .bar = &bar };
		pthread_create(&id[i], NULL, worker_main, &w[i]);
	}
	double ips = 0;
	*mean = 0;
	*per_cpu = 0;
	for (int i = 0; i < threads; i++) {
		pthread_join(id[i], NULL);
		if (w[i].rc)
			return -1;
		ips += w[i].best;
		*mean += (double)w[i].images / w[i].seconds;
		*per_cpu += (double)w[i].images / w[i].cpu;
	}
	pthread_barrier_destroy(&bar);
	return ips;
}

static const char *op_name(int op)
{
	static const char *const names[] = { "?", "conv", "linear", "affine", "act", "maxpool",
					     "avgpool", "gap", "gem", "add", "flatten", "l2norm" };
	return op > 0 && op < NDM_OP_COUNT_ ? names[op] : "?";
}

int main(int argc, char **argv)
{
	const char *path = NULL, *embed = NULL;
	double seconds = 3;
	int threads[8] = { 1, 2 }, nthreads = 2, batches[8] = { 1, 16 }, nbatches = 2;
	int sgemm_n = 2048, layer_batch = 16, layers = 1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--seconds") && i + 1 < argc)
			seconds = atof(argv[++i]);
		else if (!strcmp(argv[i], "--threads") && i + 1 < argc)
			nthreads = parse_list(argv[++i], threads, 8);
		else if (!strcmp(argv[i], "--batches") && i + 1 < argc)
			nbatches = parse_list(argv[++i], batches, 8);
		else if (!strcmp(argv[i], "--sgemm") && i + 1 < argc)
			sgemm_n = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--layer-batch") && i + 1 < argc)
			layer_batch = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--no-layers"))
			layers = 0;
		else if (!strcmp(argv[i], "--embed") && i + 1 < argc)
			embed = argv[++i];
		else if (argv[i][0] != '-' && !path)
			path = argv[i];
		else {
			fprintf(stderr, "usage: bench_cnn MODEL.ndm [--seconds S] [--threads 1,2] "
					"[--batches 1,16] [--sgemm N] [--layer-batch B] [--no-layers] [--embed OUT.f32]\n");
			return 2;
		}
	}
	if (!path) {
		fprintf(stderr, "bench_cnn: no model file\n");
		return 2;
	}
	nd_model *m = NULL;
	nd_error err;
	if (nd_model_load(path, &m, &err)) {
		fprintf(stderr, "bench_cnn: %s\n", err.msg);
		return 2;
	}
	if (nd__blas_init(&err)) {
		fprintf(stderr, "bench_cnn: %s\n", err.msg);
		return 2;
	}
	nd_model_info info;
	nd_model_get_info(m, &info);
	printf("model `%s`: input 3x%dx%d, D=%d, %d layers, %.3f GFLOP/image, %.2f MB weights\n\n",
	       info.name, info.input_h, info.input_w, info.embed_dim, info.layer_count, info.flops / 1e9,
	       (double)info.weight_bytes / 1e6);
	printf("OpenBLAS core: **%s** (%s)\n\n", nd_cnn_blas_core(), nd__blas_config());

	/* a large square product, and a 1024 one: ~20 ms a run, so its best run
	 * is rarely preempted on a shared machine; the larger is the reference */
	double p1 = bench_sgemm(1024, seconds), peak = bench_sgemm(sgemm_n, seconds);
	printf("sgemm 1 thread, best run: %dx%dx%d **%.1f GFLOP/s**; 1024x1024x1024 %.1f GFLOP/s\n\n",
	       sgemm_n, sgemm_n, sgemm_n, peak, p1);
	if (p1 > peak)
		peak = p1;

	/* per layer, one thread */
	nd_workspace *ws = NULL;
	int B = layer_batch;
	if (nd_workspace_create(m, B, &ws, &err)) {
		fprintf(stderr, "bench_cnn: %s\n", err.msg);
		return 2;
	}
	size_t per = (size_t)3 * info.input_h * info.input_w;
	float *in = malloc(sizeof(float) * per * (size_t)B);
	float *out = malloc(sizeof(float) * (size_t)info.embed_dim * (size_t)B);
	fill_input(in, per * (size_t)B);
	nd_model_forward(m, ws, in, B, out, &err);
	/* the machine is shared: each layer's time is its minimum over runs */
	ws->prof_ns = calloc((size_t)m->nlayers, sizeof(double));
	double *best = malloc(sizeof(double) * (size_t)m->nlayers);
	for (int i = 0; i < m->nlayers; i++)
		best[i] = 1e30;
	int reps = 0;
	double t0 = bench_now();
	while (bench_now() - t0 < seconds || reps < 3) {
		memset(ws->prof_ns, 0, sizeof(double) * (size_t)m->nlayers);
		nd_model_forward(m, ws, in, B, out, &err);
		for (int i = 0; i < m->nlayers; i++)
			if (ws->prof_ns[i] < best[i])
				best[i] = ws->prof_ns[i];
		reps++;
	}
	if (layers) {
		printf("per layer, batch %d, 1 thread (best of %d runs):\n\n", B, reps);
		printf("| # | layer | op | kernel | output | MFLOP/img | ms/batch | GFLOP/s |\n");
		printf("|---|---|---|---|---|---:|---:|---:|\n");
	}
	double conv_flops = 0, conv_ns = 0, all_ns = 0;
	for (int i = 0; i < m->nlayers; i++) {
		const nd_layer *L = &m->layers[i];
		double ns = best[i], fl = L->flops * B;
		char kern[32] = "";
		if (L->op == NDM_OP_CONV)
			snprintf(kern, sizeof kern, "%dx%d/%d%s", L->p[1], L->p[2], L->p[3],
				 L->p[9] > 1 ? (L->ic / L->p[9] == 1 ? " dw" : " grp") : "");
		if (layers)
			printf("| %d | %s | %s | %s | %dx%dx%d | %.2f | %.3f | %.1f |\n", i, L->name,
			       op_name(L->op), kern, L->c, L->h, L->w_, L->flops / 1e6, ns / 1e6, fl / ns);
		if (L->op == NDM_OP_CONV)
			conv_flops += fl, conv_ns += ns;
		all_ns += ns;
	}
	printf("%sconvolutions together (batch %d, 1 thread): **%.1f GFLOP/s** = %.0f%% of the best sgemm rate; whole forward %.2f ms per batch of %d\n\n",
	       layers ? "\n" : "", B, conv_flops / conv_ns, 100.0 * conv_flops / conv_ns / peak, all_ns / 1e6, B);
	if (embed) {
		int ne = B < 4 ? B : 4;
		nd_model_forward(m, ws, in, ne, out, &err);
		FILE *f = fopen(embed, "wb");
		if (!f || fwrite(out, sizeof(float) * (size_t)info.embed_dim, (size_t)ne, f) != (size_t)ne)
			fprintf(stderr, "bench_cnn: cannot write %s\n", embed);
		if (f)
			fclose(f);
	}
	free(ws->prof_ns);
	free(best);
	ws->prof_ns = NULL;
	nd_workspace_free(ws);
	free(in), free(out);

	printf("whole model, images/s (%.0f s per point; best %.1f s window, mean, and images per\n"
	       "CPU-second of each worker thread, summed: what the threads would do with a core each):\n\n"
	       "| threads | batch | images/s best | images/s mean | images/CPU-s |\n|---:|---:|---:|---:|---:|\n",
	       seconds, WINDOW);
	for (int t = 0; t < nthreads; t++)
		for (int b = 0; b < nbatches; b++) {
			double mean, cpu, ips = throughput(m, threads[t], batches[b], seconds, &mean, &cpu);
			printf("| %d | %d | %.1f | %.1f | %.1f |\n", threads[t], batches[b], ips, mean, cpu);
			fflush(stdout);
		}
	nd_model_free(m);
	return 0;
}
