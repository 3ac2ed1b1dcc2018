/* neardup — builds the index that bench/suite_serve.sh serves: N synthetic
 * embeddings (tests/lib_synth.h: planted near-duplicate clusters) in an index
 * made for a real model (its name, checksum, dimension and calibration), so
 * that `neardup serve --model MODEL` opens it, and Q query bodies for
 * POST /v1/query ({"vector": [...], "k": 10}), each a perturbed copy of a
 * stored vector, one JSON file per line in QUERIES.
 *
 *   bench_serve MODEL INDEX_DIR N QUERIES Q */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "neardup/calib.h"
#include "neardup/cnn.h"
#include "neardup/index.h"
#include "../tests/lib_synth.h"
#include "timing.h"

static void die(const char *what, const nd_error *e)
{
	fprintf(stderr, "bench_serve: %s: %s\n", what, e->msg);
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc != 6) {
		fprintf(stderr, "usage: bench_serve MODEL INDEX_DIR N QUERIES Q\n");
		return 2;
	}
	size_t N = strtoull(argv[3], NULL, 10), Q = strtoull(argv[5], NULL, 10);
	nd_error e;
	nd_model *m;
	nd_model_info mi;
	if (nd_model_load(argv[1], &m, &e))
		die(argv[1], &e);
	nd_model_get_info(m, &mi);
	uint32_t D = (uint32_t)mi.embed_dim;
	nd_calib *cal = NULL;
	nd_model_calib cp;
	nd_index_options o;
	nd_index_options_init(&o);
	o.create = 1;
	o.dim = D;
	o.model_name = mi.name;
	o.model_checksum = mi.checksum;
	o.map_size = (size_t)1 << 30;
	o.nosync = 1; /* a bench fixture: one sync at close is enough */
	if (nd_calib_create(m, &cal, &e) == 0) {
		nd_calib_params(cal, &cp);
		/* as nd_collection_open sets it */
		o.calib = (nd_index_calib){ nd_calib_stat_fn, cal, (uint32_t)nd_calib_dim(cal), cp.beta,
					    cp.offset, cp.phash_weight, cp.phash_bits,
					    nd_score_model_find(mi.checksum) };
	}
	nd_index *ix;
	if (nd_index_open(&ix, argv[2], &o, &e))
		die(argv[2], &e);
	synth s;
	float *X = malloc(sizeof(float) * D * N), *q = malloc(sizeof(float) * D);
	float *bases = NULL;
	size_t nc = 0;
	if (!X || !q || synth_init(&s, D, (uint32_t)(N / 1000 + 1), 42) ||
	    synth_dataset(&s, 4242, N, X, NULL, &bases, &nc)) {
		fprintf(stderr, "bench_serve: out of memory\n");
		return 2;
	}
	enum { B = 1000 };
	static nd_index_item items[B];
	static char paths[B][32];
	double t0 = bench_now();
	for (size_t i = 0; i < N; i += B) {
		size_t n = N - i < B ? N - i : B;
		for (size_t j = 0; j < n; j++) {
			snprintf(paths[j], sizeof(paths[j]), "synth/%08zu.jpg", i + j);
			memset(&items[j], 0, sizeof(items[j]));
			items[j].vec = X + (i + j) * D;
			items[j].rec.path = paths[j];
			items[j].rec.path_len = strlen(paths[j]);
			items[j].rec.size = 100000 + i + j;
			items[j].rec.width = items[j].rec.height = 512;
			uint64_t h = i + j + 1;
			memcpy(items[j].rec.hash, &h, 8);
		}
		if (nd_index_add(ix, items, n, NULL, &e))
			die("add", &e);
	}
	fprintf(stderr, "bench_serve: %zu vectors (D=%u) in %.1f s\n", N, D, bench_now() - t0);
	FILE *f = fopen(argv[4], "w");
	if (!f) {
		perror(argv[4]);
		return 2;
	}
	synth_rng qr = { 777, 0, 0 };
	for (size_t i = 0; i < Q; i++) {
		synth_perturb(&s, &qr, X + (synth_u64(&qr) % N) * D, q);
		fputs("{\"k\": 10, \"vector\": [", f);
		for (uint32_t d = 0; d < D; d++)
			fprintf(f, d ? ",%.6g" : "%.6g", q[d]);
		fputs("]}\n", f);
	}
	fclose(f);
	nd_index_close(ix);
	nd_calib_free(cal);
	nd_model_free(m);
	synth_free(&s);
	free(bases);
	free(X);
	free(q);
	return 0;
}
