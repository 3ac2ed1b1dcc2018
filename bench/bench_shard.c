/* neardup — builds a sharded collection of synthetic embeddings for the
 * scaling measurements of neardup-mpi (bench/results/scale.md).
 *
 *   bench_shard -n N -s SHARDS -o DIR [-m MODEL] [-b BATCH]
 *
 * N vectors from tests/lib_synth.h (planted near-duplicate clusters, the data
 * of bench/results/index.md) under the identity and calibration of MODEL
 * (default models/neardup.ndm), so that neardup and neardup-mpi open the
 * collection as their own; the records name files that do not exist
 * (/nonexistent/synth/I.jpg), which dedup leaves out of its groups after
 * the self-join being measured. Prints the build time. */
#include "neardup/calib.h"
#include "neardup/cnn.h"
#include "neardup/index.h"
#include "neardup/score.h"
#include "timing.h"

#include "../tests/lib_synth.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

static void die(const char *what, const nd_error *e)
{
	fprintf(stderr, "bench_shard: %s: %s\n", what, e ? e->msg : "");
	exit(2);
}

int main(int argc, char **argv)
{
	size_t n = 1000000, batch = 50000;
	uint32_t shards = 4;
	const char *out = NULL, *model = "models/neardup.ndm";
	int c;
	while ((c = getopt(argc, argv, "n:s:o:m:b:")) != -1) {
		switch (c) {
		case 'n': n = strtoull(optarg, NULL, 10); break;
		case 's': shards = (uint32_t)atoi(optarg); break;
		case 'o': out = optarg; break;
		case 'm': model = optarg; break;
		case 'b': batch = strtoull(optarg, NULL, 10); break;
		default:
			fprintf(stderr, "usage: bench_shard -n N -s SHARDS -o DIR [-m MODEL] [-b BATCH]\n");
			return 2;
		}
	}
	if (!out || n == 0 || batch == 0) {
		fprintf(stderr, "usage: bench_shard -n N -s SHARDS -o DIR [-m MODEL] [-b BATCH]\n");
		return 2;
	}
	nd_error err;
	nd_model *m;
	nd_calib *cal;
	nd_model_info mi;
	nd_model_calib cp;
	if (nd_model_load(model, &m, &err))
		die(model, &err);
	if (nd_calib_create(m, &cal, &err))
		die("calibration", &err);
	nd_model_get_info(m, &mi);
	nd_calib_params(cal, &cp);
	const uint32_t d = (uint32_t)mi.embed_dim;
	synth s;
	float *X = malloc(sizeof(float) * d * n);
	size_t nc;
	if (!X || synth_init(&s, d, 1000, 1) || synth_dataset(&s, 42, n, X, NULL, NULL, &nc))
		die("out of memory", NULL);
	nd_index_options o;
	nd_index_options_init(&o);
	o.create = 1;
	o.shards = shards;
	o.dim = d;
	o.model_name = mi.name;
	o.model_checksum = mi.checksum;
	o.nosync = 1;
	o.calib = (nd_index_calib){ nd_calib_stat_fn, cal, (uint32_t)nd_calib_dim(cal), cp.beta, cp.offset,
				    cp.phash_weight, cp.phash_bits, nd_score_model_find(mi.checksum) };
	nd_index *ix;
	if (nd_index_open(&ix, out, &o, &err))
		die(out, &err);
	nd_index_item *items = calloc(batch, sizeof(*items));
	char (*paths)[48] = calloc(batch, sizeof(*paths));
	double t0 = bench_now();
	for (size_t i = 0; i < n; i += batch) {
		size_t k = n - i < batch ? n - i : batch;
		for (size_t j = 0; j < k; j++) {
			size_t g = i + j;
			nd_index_item *it = &items[j];
			memset(it, 0, sizeof(*it));
			snprintf(paths[j], sizeof(paths[j]), "/nonexistent/synth/%zu.jpg", g);
			it->rec.path = paths[j];
			it->rec.path_len = strlen(paths[j]);
			it->rec.size = 1000 + g;
			it->rec.mtime_ns = 1700000000000000000ll + (int64_t)g;
			it->rec.width = 640;
			it->rec.height = 480;
			XXH128_canonical_t hc;
			XXH128_canonicalFromHash(&hc, XXH3_128bits(&g, sizeof(g)));
			memcpy(it->rec.hash, hc.digest, 16);
			it->vec = X + g * d;
		}
		if (nd_index_add(ix, items, k, NULL, &err))
			die("add", &err);
	}
	printf("built %zu vectors in %u shards in %.1f s\n", n, shards, bench_now() - t0);
	nd_index_close(ix);
	free(items);
	free(paths);
	free(X);
	synth_free(&s);
	nd_calib_free(cal);
	nd_model_free(m);
	return 0;
}
