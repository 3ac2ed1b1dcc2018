/* neardup — the quality benchmark's window on stored embeddings (issue 7).
 *
 *   bench_vectors dump INDEX OUT_PREFIX
 *       Writes every stored vector of INDEX as OUT_PREFIX.f32 (float32
 *       [n][dim], little-endian, the float16 values the index re-ranks with)
 *       and OUT_PREFIX.tsv (id<TAB>path per line, same order), and
 *       OUT_PREFIX.side.tsv (id, background statistic or "-", perceptual hash
 *       as 16 hex digits or "-", per line, same order: what the pair score
 *       reads beside the vector).
 *
 *   bench_vectors lsh INDEX QUERIES.f32 [-k K] [-p P,P,...] [-r REPEAT]
 *       QUERIES.f32 holds query vectors (float32 [q][dim], e.g. a dump of
 *       another index). For every query: the exact top-K over all of INDEX's
 *       stored vectors by brute force, then for each probe count P the index's
 *       own query (nd_index_query, one query at a time, this thread only):
 *       recall@K = fraction of the exact top-K ids it returns, recall@1 = the
 *       exact nearest id is its first result, and the latency (p50/p99 in ms,
 *       the index lookup and re-rank only, no embedding). Prints one JSON
 *       object per probe count on stdout.
 *
 *   bench_vectors join INDEX FLOOR
 *       The candidate pairs of dedup's self-join (nd_index_selfjoin at the
 *       default settings) whose plain cosine is >= FLOOR: one "id<TAB>id<TAB>
 *       cosine" line per pair on stdout, and the join's counters on stderr.
 *
 *   bench_vectors group N MIN_SIM [BRIDGE_MARGIN CUT_RATIO]
 *       Groups nodes 0..N-1 by the scored pairs "a b score" read from stdin
 *       (nd_group_components) and prints each node's group, or -1, one per
 *       line: the grouping of dedup applied to pairs scored elsewhere.
 *
 * Exit status 0, or 2 on any error (message on stderr). */
#include "neardup/group.h"
#include "neardup/index.h"
#include "timing.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
	uint32_t *ids;
	char **paths;
	size_t n, cap;
} idlist;

static int collect(void *ctx, const nd_record *rec)
{
	idlist *l = ctx;
	if (l->n == l->cap) {
		size_t nc = l->cap ? 2 * l->cap : 4096;
		uint32_t *ni = realloc(l->ids, nc * sizeof(*ni));
		if (!ni)
			return ND_ENOMEM;
		l->ids = ni;
		char **np = realloc(l->paths, nc * sizeof(*np));
		if (!np)
			return ND_ENOMEM;
		l->paths = np;
		l->cap = nc;
	}
	l->paths[l->n] = strdup(rec->path);
	if (!l->paths[l->n])
		return ND_ENOMEM;
	l->ids[l->n++] = rec->id;
	return 0;
}

static void idlist_free(idlist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->paths[i]);
	free(l->paths);
	free(l->ids);
}

/* Opens INDEX read-only and loads its ids, paths and vectors ([n][dim]). */
static int load_all(const char *dir, nd_index **ix, idlist *l, float **vecs, uint32_t *dim, nd_error *err)
{
	nd_index_options o;
	nd_index_options_init(&o);
	o.readonly = 1;
	int rc = nd_index_open(ix, dir, &o, err);
	if (rc)
		return rc;
	nd_meta m;
	if ((rc = nd_index_meta(*ix, &m, err)))
		return rc;
	*dim = m.dim;
	if ((rc = nd_index_foreach(*ix, collect, l, err)))
		return rc;
	size_t bytes;
	if (nd_mul_size(l->n ? l->n : 1, (size_t)m.dim * sizeof(float), &bytes))
		return nd_error_set(err, ND_ENOMEM, "too many vectors");
	*vecs = malloc(bytes);
	if (!*vecs)
		return nd_error_set(err, ND_ENOMEM, "out of memory for %zu vectors", l->n);
	for (size_t i = 0; i < l->n; i++)
		if ((rc = nd_index_get_vector(*ix, l->ids[i], *vecs + i * m.dim, err)))
			return rc;
	return 0;
}

static int do_dump(const char *dir, const char *prefix)
{
	nd_error err = { 0 };
	nd_index *ix = NULL;
	idlist l = { 0 };
	float *v = NULL;
	uint32_t dim = 0;
	int ret = 2;
	FILE *fv = NULL, *fp = NULL, *fs = NULL;
	char path[4096];
	if (load_all(dir, &ix, &l, &v, &dim, &err)) {
		fprintf(stderr, "bench_vectors: '%s': %s\n", dir, err.msg);
		goto done;
	}
	snprintf(path, sizeof(path), "%s.f32", prefix);
	if (!(fv = fopen(path, "wb")) || fwrite(v, sizeof(float) * dim, l.n, fv) != l.n) {
		fprintf(stderr, "bench_vectors: cannot write '%s': %s\n", path, strerror(errno));
		goto done;
	}
	snprintf(path, sizeof(path), "%s.tsv", prefix);
	if (!(fp = fopen(path, "w"))) {
		fprintf(stderr, "bench_vectors: cannot write '%s': %s\n", path, strerror(errno));
		goto done;
	}
	for (size_t i = 0; i < l.n; i++)
		fprintf(fp, "%" PRIu32 "\t%s\n", l.ids[i], l.paths[i]);
	snprintf(path, sizeof(path), "%s.side.tsv", prefix);
	if (!(fs = fopen(path, "w"))) {
		fprintf(stderr, "bench_vectors: cannot write '%s': %s\n", path, strerror(errno));
		goto done;
	}
	for (size_t i = 0; i < l.n; i++) {
		nd_score_side sd;
		if (nd_index_get_side(ix, l.ids[i], &sd, &err)) {
			fprintf(stderr, "bench_vectors: '%s': %s\n", dir, err.msg);
			goto done;
		}
		fprintf(fs, "%" PRIu32 "\t", l.ids[i]);
		if (sd.has_stat)
			fprintf(fs, "%.9g\t", (double)sd.stat);
		else
			fputs("-\t", fs);
		if (sd.has_phash)
			fprintf(fs, "%016" PRIx64 "\n", sd.phash);
		else
			fputs("-\n", fs);
	}
	fprintf(stderr, "bench_vectors: %zu vectors of dim %" PRIu32 " from '%s'\n", l.n, dim, dir);
	ret = 0;
done:
	if (fv && fclose(fv))
		ret = 2;
	if (fp && fclose(fp))
		ret = 2;
	if (fs && fclose(fs))
		ret = 2;
	free(v);
	idlist_free(&l);
	nd_index_close(ix);
	return ret;
}

/* Indices of the k largest values of s[n], best first, into top[k]. */
static void topk(const float *s, size_t n, size_t k, uint32_t *top)
{
	size_t m = 0;
	for (size_t i = 0; i < n; i++) {
		if (m == k && s[i] <= s[top[k - 1]])
			continue;
		size_t j = m < k ? m++ : k - 1;
		while (j > 0 && s[top[j - 1]] < s[i]) {
			top[j] = top[j - 1];
			j--;
		}
		top[j] = (uint32_t)i;
	}
}

static int do_lsh(int argc, char **argv)
{
	const char *dir = argv[2], *qfile = argv[3];
	size_t k = 10;
	int repeat = 1;
	char probes_s[256] = "0,64,256,1280,4096";
	for (int i = 4; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "-k"))
			k = (size_t)atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "-p"))
			snprintf(probes_s, sizeof(probes_s), "%s", argv[i + 1]);
		else if (!strcmp(argv[i], "-r"))
			repeat = atoi(argv[i + 1]);
		else {
			fprintf(stderr, "bench_vectors: unknown option '%s'\n", argv[i]);
			return 2;
		}
	}
	if (k < 1 || k > 1000 || repeat < 1) {
		fprintf(stderr, "bench_vectors: bad -k or -r\n");
		return 2;
	}
	nd_error err = { 0 };
	nd_index *ix = NULL;
	idlist l = { 0 };
	float *v = NULL, *q = NULL, *s = NULL;
	uint32_t dim = 0, *exact = NULL;
	float *esim = NULL;
	nd_hit *hits = NULL;
	double *lat = NULL;
	int ret = 2;
	size_t nq = 0;
	FILE *f = NULL;
	if (load_all(dir, &ix, &l, &v, &dim, &err)) {
		fprintf(stderr, "bench_vectors: '%s': %s\n", dir, err.msg);
		goto done;
	}
	if (k > l.n)
		k = l.n;
	if (!(f = fopen(qfile, "rb")) || fseek(f, 0, SEEK_END)) {
		fprintf(stderr, "bench_vectors: cannot read '%s': %s\n", qfile, strerror(errno));
		goto done;
	}
	long bytes = ftell(f);
	rewind(f);
	if (bytes < 0 || bytes % (long)(dim * sizeof(float))) {
		fprintf(stderr, "bench_vectors: '%s' is not a whole number of %" PRIu32 "-d float32 vectors\n", qfile, dim);
		goto done;
	}
	nq = (size_t)bytes / (dim * sizeof(float));
	q = malloc(bytes ? (size_t)bytes : 1);
	s = malloc((l.n ? l.n : 1) * sizeof(float));
	exact = malloc((nq ? nq : 1) * k * sizeof(uint32_t));
	esim = malloc((nq ? nq : 1) * k * sizeof(float));
	hits = malloc(k * sizeof(nd_hit));
	lat = malloc((nq ? nq : 1) * sizeof(double));
	if (!q || !s || !exact || !esim || !hits || !lat) {
		fprintf(stderr, "bench_vectors: out of memory\n");
		goto done;
	}
	if (fread(q, 1, (size_t)bytes, f) != (size_t)bytes) {
		fprintf(stderr, "bench_vectors: short read on '%s'\n", qfile);
		goto done;
	}
	/* exact top-k by brute force over the stored vectors */
	double t0 = bench_now();
	for (size_t i = 0; i < nq; i++) {
		const float *qi = q + i * dim;
		for (size_t j = 0; j < l.n; j++) {
			const float *vj = v + j * dim;
			float d = 0;
			for (uint32_t c = 0; c < dim; c++)
				d += qi[c] * vj[c];
			s[j] = d;
		}
		topk(s, l.n, k, exact + i * k);
		for (size_t a = 0; a < k; a++)
			esim[i * k + a] = s[exact[i * k + a]];
	}
	double t_exact = bench_now() - t0;
	fprintf(stderr, "bench_vectors: exact top-%zu of %zu queries over %zu vectors in %.2f s\n",
		k, nq, l.n, t_exact);
	if (nd_index_prefault(ix, &err)) {
		fprintf(stderr, "bench_vectors: prefault: %s\n", err.msg);
		goto done;
	}
	for (char *tok = strtok(probes_s, ","); tok; tok = strtok(NULL, ",")) {
		nd_query_params p;
		nd_query_params_init(&p);
		p.k = (uint32_t)k;
		p.probes = (uint32_t)strtoul(tok, NULL, 10);
		size_t found = 0, found1 = 0, want = 0, want5 = 0, found5 = 0, want8 = 0, found8 = 0;
		double cand = 0;
		for (int r = 0; r < repeat; r++) {
			for (size_t i = 0; i < nq; i++) {
				size_t n = 0;
				nd_query_stats st;
				double a = bench_now();
				if (nd_index_query(ix, q + i * dim, &p, hits, &n, &st, &err)) {
					fprintf(stderr, "bench_vectors: query: %s\n", err.msg);
					goto done;
				}
				double b = bench_now() - a;
				if (r == 0 || b < lat[i])
					lat[i] = b;
				if (r)
					continue;
				cand += st.reranked;
				const uint32_t *e = exact + i * k;
				for (size_t a2 = 0; a2 < k; a2++) {
					float es = esim[i * k + a2];
					int hit = 0;
					for (size_t h = 0; h < n && !hit; h++)
						hit = hits[h].id == l.ids[e[a2]];
					want++;
					found += hit;
					want5 += es >= 0.5f;
					found5 += hit && es >= 0.5f;
					want8 += es >= 0.8f;
					found8 += hit && es >= 0.8f;
				}
				if (n && hits[0].id == l.ids[e[0]])
					found1++;
			}
		}
		qsort(lat, nq, sizeof(double), bench_cmp_double);
		printf("{\"probes\": %" PRIu32 ", \"k\": %zu, \"queries\": %zu, \"vectors\": %zu, "
		       "\"recall_at_k\": %.5f, \"recall_at_1\": %.5f, \"recall_sim_ge_0.5\": %.5f, "
		       "\"recall_sim_ge_0.8\": %.5f, \"neighbours_ge_0.5\": %zu, \"reranked_mean\": %.1f, "
		       "\"p50_ms\": %.4f, \"p99_ms\": %.4f, \"exact_ms_per_query\": %.4f}\n",
		       p.probes, k, nq, l.n, want ? (double)found / want : 0, nq ? (double)found1 / nq : 0,
		       want5 ? (double)found5 / want5 : 1, want8 ? (double)found8 / want8 : 1, want5,
		       nq ? cand / nq : 0, nq ? 1e3 * lat[nq / 2] : 0, nq ? 1e3 * lat[(nq * 99) / 100] : 0,
		       nq ? 1e3 * t_exact / nq : 0);
	}
	ret = 0;
done:
	if (f)
		fclose(f);
	free(v);
	free(q);
	free(s);
	free(exact);
	free(esim);
	free(hits);
	free(lat);
	idlist_free(&l);
	nd_index_close(ix);
	return ret;
}

static int print_pair(void *ctx, uint32_t a, uint32_t b, float sim)
{
	fprintf(ctx, "%" PRIu32 "\t%" PRIu32 "\t%.6f\n", a, b, (double)sim);
	return 0;
}

static int do_join(const char *dir, const char *floor_s)
{
	nd_error err = { 0 };
	nd_index *ix = NULL;
	nd_index_options o;
	nd_index_options_init(&o);
	o.readonly = 1;
	nd_selfjoin_params p;
	nd_selfjoin_params_init(&p);
	p.min_sim = strtof(floor_s, NULL);
	p.raw = 1;
	nd_selfjoin_stats st;
	if (nd_index_open(&ix, dir, &o, &err) || nd_index_selfjoin(ix, &p, print_pair, stdout, &st, &err)) {
		fprintf(stderr, "bench_vectors: '%s': %s\n", dir, err.msg);
		nd_index_close(ix);
		return 2;
	}
	fprintf(stderr, "compared %" PRIu64 " emitted %" PRIu64 " candidates %" PRIu64 "\n", st.pairs_compared,
		st.pairs_emitted, st.pairs_candidates);
	nd_index_close(ix);
	return 0;
}

static int do_group(int argc, char **argv)
{
	size_t n = strtoull(argv[2], NULL, 10), ne = 0, cap = 1 << 16;
	nd_group_params p;
	nd_group_params_init(&p);
	p.min_sim = strtof(argv[3], NULL);
	if (argc >= 6) {
		p.bridge_margin = strtof(argv[4], NULL);
		p.cut_ratio = strtof(argv[5], NULL);
	}
	nd_group_edge *e = malloc(cap * sizeof(*e));
	uint32_t *comp = malloc((n ? n : 1) * sizeof(*comp));
	unsigned a, b;
	float s;
	nd_error err = { 0 };
	size_t ng = 0;
	int ret = 2;
	while (e && comp && scanf("%u %u %f", &a, &b, &s) == 3) {
		if (ne == cap) {
			nd_group_edge *x = realloc(e, 2 * cap * sizeof(*e));
			if (!x)
				goto done;
			e = x;
			cap *= 2;
		}
		e[ne++] = (nd_group_edge){ a, b, s };
	}
	if (!e || !comp || nd_group_components(n, e, ne, &p, comp, &ng, &err)) {
		fprintf(stderr, "bench_vectors: group: %s\n", err.msg[0] ? err.msg : "out of memory");
		goto done;
	}
	for (size_t i = 0; i < n; i++)
		printf("%d\n", comp[i] == ND_GROUP_NONE ? -1 : (int)comp[i]);
	ret = 0;
done:
	free(e);
	free(comp);
	return ret;
}

int main(int argc, char **argv)
{
	if (argc >= 4 && !strcmp(argv[1], "group"))
		return do_group(argc, argv);
	if (argc == 4 && !strcmp(argv[1], "join"))
		return do_join(argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "dump"))
		return do_dump(argv[2], argv[3]);
	if (argc >= 4 && !strcmp(argv[1], "lsh"))
		return do_lsh(argc, argv);
	fprintf(stderr, "usage: bench_vectors dump INDEX OUT_PREFIX\n"
			"       bench_vectors lsh INDEX QUERIES.f32 [-k K] [-p P,P,...] [-r REPEAT]\n"
			"       bench_vectors join INDEX FLOOR\n"
			"       bench_vectors group N MIN_SIM [BRIDGE_MARGIN CUT_RATIO] <PAIRS\n");
	return 2;
}
