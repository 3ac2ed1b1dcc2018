/* neardup — benchmark of the LSH index on synthetic clustered embeddings.
 *
 *   bench_index [-n N] [-d DIM] [-q QUERIES] [-c L:K,L:K,...] [-p P,P,...]
 *               [-b BATCH] [-j L:K] [-J R/B/T,...] [-f f16|i8] [--cache DIR] [--faiss SCRIPT]
 *               [--phash 1]
 *
 * Generates N vectors with bench/synth.h (planted near-duplicate clusters),
 * exact top-10 of every query by brute force (OpenBLAS sgemm), then for each
 * (L, K): ingests into a fresh index under the cache directory (rate), index
 * size and bytes per posting, and for each probe count the query latency
 * (p50/p99, one query at a time on one thread) and recall@10 of the
 * neighbours with cosine >= 0.8 (also >= 0.7 and >= 0.9). Then the self-join
 * of the config given by -j (time, pairs, recall on a sample of ids) for
 * each variant of -J (radius/bits/threads; 0 = the default), the
 * re-rank error of float16 and int8 vectors, and FAISS IndexFlatIP on the
 * same data and queries through bench/faiss_flat.py. Prints a Markdown
 * report on stdout.
 *
 * --phash 1: the index scores with the perceptual-hash term (a calibration
 * whose statistic is 0, so scores are cosine + term) and every image gets a
 * random 64-bit hash, stored with it and listed in the hash postings; each
 * query brings its exact nearest neighbour's hash with one bit flipped. What
 * the hash postings cost: ingest rate, size, query latency. */
#include "neardup/index.h"
#include "neardup/lsh.h"
#include "timing.h"

#include "synth.h"
#include "blas.h"

#include <cblas.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TOPK 10

static uint64_t synth_phash(size_t i)
{
	uint64_t z = (uint64_t)i * 0x9E3779B97F4A7C15ull + 0x1234567ull;
	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

/* The statistic of --phash's calibration: 0 for every vector. */
static int zero_stat(void *ctx, const float *vecs, size_t n, float *out, nd_error *err)
{
	memset(out, 0, n * sizeof(float));
	return 0;
}

static void die(const char *what, const nd_error *e)
{
	fprintf(stderr, "bench_index: %s: %s\n", what, e ? e->msg : strerror(errno));
	exit(2);
}

static void rm_index(const char *dir)
{
	const char *f[] = { "data.mdb", "lock.mdb", "neardup.lock" };
	char p[1024];
	for (int i = 0; i < 3; i++) {
		snprintf(p, sizeof(p), "%s/%s", dir, f[i]);
		unlink(p);
	}
	rmdir(dir);
}

static double pct(double *v, size_t n, double p)
{
	qsort(v, n, sizeof(double), bench_cmp_double);
	size_t i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i];
}

/* exact top-k of Q[nq][d] over X[n][d]: ids (0-based) and sims */
static void exact_topk(const float *X, size_t n, const float *Q, size_t nq, uint32_t d, uint32_t *ids,
		       float *sims)
{
	const size_t CH = 8192;
	float *S = malloc(sizeof(float) * nq * CH);
	for (size_t i = 0; i < nq * TOPK; i++) {
		ids[i] = UINT32_MAX;
		sims[i] = -2;
	}
	for (size_t c0 = 0; c0 < n; c0 += CH) {
		size_t cn = n - c0 < CH ? n - c0 : CH;
		cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nq, (int)cn, (int)d, 1.0f, Q, (int)d,
			    X + c0 * d, (int)d, 0.0f, S, (int)cn);
		for (size_t q = 0; q < nq; q++) {
			float *ts = sims + q * TOPK;
			uint32_t *ti = ids + q * TOPK;
			for (size_t j = 0; j < cn; j++) {
				float s = S[q * cn + j];
				if (s <= ts[TOPK - 1])
					continue;
				int p = TOPK - 1;
				while (p > 0 && ts[p - 1] < s) {
					ts[p] = ts[p - 1];
					ti[p] = ti[p - 1];
					p--;
				}
				ts[p] = s;
				ti[p] = (uint32_t)(c0 + j);
			}
		}
	}
	free(S);
}

struct cfg {
	uint32_t L, K;
};

static int parse_cfgs(const char *s, struct cfg *out, int max)
{
	int n = 0;
	while (*s && n < max) {
		unsigned L, K;
		int used;
		if (sscanf(s, "%u:%u%n", &L, &K, &used) != 2)
			break;
		out[n++] = (struct cfg){ L, K };
		s += used;
		if (*s == ',')
			s++;
	}
	return n;
}

/* self-join pair collector: keeps pairs that involve a sampled id */
struct joinacc {
	const uint8_t *sampled; /* [N+1] */
	uint64_t *pairs;
	size_t n, cap;
};

static int on_pair(void *ctx, uint32_t a, uint32_t b, float sim)
{
	struct joinacc *j = ctx;
	if (!j->sampled[a] && !j->sampled[b])
		return 0;
	if (j->n == j->cap) {
		j->cap = j->cap ? j->cap * 2 : 4096;
		j->pairs = realloc(j->pairs, j->cap * sizeof(uint64_t));
		if (!j->pairs)
			return 1;
	}
	j->pairs[j->n++] = (uint64_t)a << 32 | b;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	size_t N = 100000, NQ = 1000, B = 10000;
	uint32_t vfmt = ND_INDEX_DEFAULT_VEC_FORMAT;
	int keep = 0, with_phash = 0;
	uint32_t D = 256;
	const char *cfgs_s = "16:14", *probes_s = "0,16,64,128", *cache = "cache/bench_index",
		   *faiss = "bench/faiss_flat.py", *join_s = NULL, *jvar_s = "0/0/0";
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		if (!v) {
			fprintf(stderr, "bench_index: option %s needs a value\n", a);
			return 2;
		}
		if (!strcmp(a, "-n"))
			N = strtoul(v, NULL, 10);
		else if (!strcmp(a, "-d"))
			D = (uint32_t)strtoul(v, NULL, 10);
		else if (!strcmp(a, "-q"))
			NQ = strtoul(v, NULL, 10);
		else if (!strcmp(a, "-b"))
			B = strtoul(v, NULL, 10);
		else if (!strcmp(a, "-c"))
			cfgs_s = v;
		else if (!strcmp(a, "-p"))
			probes_s = v;
		else if (!strcmp(a, "-f"))
			vfmt = !strcmp(v, "f16") ? ND_VEC_F16 : ND_VEC_I8;
		else if (!strcmp(a, "--keep"))
			keep = atoi(v);
		else if (!strcmp(a, "-j"))
			join_s = v;
		else if (!strcmp(a, "-J"))
			jvar_s = v;
		else if (!strcmp(a, "--cache"))
			cache = v;
		else if (!strcmp(a, "--faiss"))
			faiss = v;
		else if (!strcmp(a, "--phash"))
			with_phash = atoi(v);
		else {
			fprintf(stderr, "bench_index: unknown option %s\n", a);
			return 2;
		}
		i++;
	}
	struct cfg cfgs[32], jc = { 0, 0 };
	int ncfg = parse_cfgs(cfgs_s, cfgs, 32);
	if (join_s)
		parse_cfgs(join_s, &jc, 1);
	uint32_t probes[32], minhits[32];
	int npr = 0;
	for (const char *s = probes_s; *s && npr < 32;) {
		minhits[npr] = 1;
		probes[npr] = (uint32_t)strtoul(s, (char **)&s, 10);
		if (*s == '/')
			minhits[npr] = (uint32_t)strtoul(s + 1, (char **)&s, 10);
		npr++;
		if (*s == ',')
			s++;
	}
	if (nd_blas_init(NULL)) /* the CPU's kernels for the exact search (see src/blas.h) */
		fprintf(stderr, "bench_index: OpenBLAS not set up, exact search runs on the default kernels\n");
	mkdir("cache", 0755);
	if (mkdir(cache, 0755) && errno != EEXIST)
		die(cache, NULL);

	/* data (cached in the cache directory: generation and exact search are slow at 1M) */
	double t0 = bench_now();
	synth s;
	size_t nc = 0;
	float *X = malloc(sizeof(float) * D * N), *Q = malloc(sizeof(float) * D * NQ), *bases = NULL;
	uint32_t *eid = malloc(sizeof(uint32_t) * NQ * TOPK);
	float *esim = malloc(sizeof(float) * NQ * TOPK);
	if (!X || !Q || !eid || !esim || synth_init(&s, D, (uint32_t)(N / 1000 + 1), 42))
		die("out of memory for the data", NULL);
	synth_rng qr = { 777, 0, 0 };
	size_t nq_dup = NQ * 8 / 10;
	char fdata[1024];
	snprintf(fdata, sizeof(fdata), "%s/data_%zu_%u_%zu.bin", cache, N, D, NQ);
	FILE *fd = fopen(fdata, "rb");
	double tgen = 0, texact = 0;
	if (fd && fread(&nc, sizeof(nc), 1, fd) == 1 && fread(X, sizeof(float) * D, N, fd) == N &&
	    fread(Q, sizeof(float) * D, NQ, fd) == NQ && fread(eid, sizeof(uint32_t) * TOPK, NQ, fd) == NQ &&
	    fread(esim, sizeof(float) * TOPK, NQ, fd) == NQ) {
		fclose(fd);
		fprintf(stderr, "data and exact neighbours from %s\n", fdata);
		for (size_t i = 0; i < 2 * NQ; i++) /* keep the rng stream as if generated */
			synth_u64(&qr);
	} else {
		if (fd)
			fclose(fd);
		if (synth_dataset(&s, 4242, N, X, NULL, &bases, &nc))
			die("out of memory for the data", NULL);
		for (size_t i = 0; i < NQ; i++) {
			if (i < nq_dup)
				synth_perturb(&s, &qr, bases + (synth_u64(&qr) % nc) * D, Q + i * D);
			else
				synth_background(&s, &qr, Q + i * D);
		}
		tgen = bench_now() - t0;
		t0 = bench_now();
		exact_topk(X, N, Q, NQ, D, eid, esim);
		texact = bench_now() - t0;
		fd = fopen(fdata, "wb");
		if (!fd || fwrite(&nc, sizeof(nc), 1, fd) != 1 || fwrite(X, sizeof(float) * D, N, fd) != N ||
		    fwrite(Q, sizeof(float) * D, NQ, fd) != NQ || fwrite(eid, sizeof(uint32_t) * TOPK, NQ, fd) != NQ ||
		    fwrite(esim, sizeof(float) * TOPK, NQ, fd) != NQ || fclose(fd))
			die(fdata, NULL);
	}
	/* similarity distribution of the data (a sample of pairs) */
	double hist_bg[4] = { 0 };
	for (size_t i = 0; i < 20000; i++) {
		size_t a = synth_u64(&qr) % N, b = synth_u64(&qr) % N;
		float sm = cblas_sdot((int)D, X + a * D, 1, X + b * D, 1);
		hist_bg[sm < 0.2 ? 0 : sm < 0.4 ? 1 : sm < 0.6 ? 2 : 3]++;
	}
	size_t ntrue[3] = { 0 };
	const float taus[3] = { 0.8f, 0.7f, 0.9f };
	for (size_t q = 0; q < NQ; q++)
		for (int k = 0; k < TOPK; k++)
			for (int t = 0; t < 3; t++)
				ntrue[t] += esim[q * TOPK + k] >= taus[t];

	printf("# Index benchmark: %zu vectors, dimension %u, stored vectors %s%s\n\n", N, D,
	       vfmt == ND_VEC_F16 ? "float16" : "int8",
	       with_phash ? ", with perceptual hashes (random) and their postings" : "");
	printf("Data: bench/synth.h, %zu near-duplicate clusters (about a third of the vectors), %u topics; "
	       "random pairs: %.1f%% cos<0.2, %.1f%% 0.2-0.4, %.1f%% 0.4-0.6, %.2f%% >=0.6. "
	       "Queries: %zu (%zu new near-duplicates of cluster bases, %zu unrelated). "
	       "Exact neighbours in the queries' top-10: %zu with cos >= 0.8, %zu >= 0.7, %zu >= 0.9. "
	       "Generation %.1f s, exact search (OpenBLAS sgemm) %.1f s (0: cached).\n\n",
	       nc, s.topics, 100 * hist_bg[0] / 20000, 100 * hist_bg[1] / 20000, 100 * hist_bg[2] / 20000,
	       100 * hist_bg[3] / 20000, NQ, nq_dup, NQ - nq_dup, ntrue[0], ntrue[1], ntrue[2], tgen,
	       texact);
	fflush(stdout);

	/* vectors and queries for FAISS */
	char fx[1024], fq[1024], fr[1024];
	snprintf(fx, sizeof(fx), "%s/base_%zu_%u.f32", cache, N, D);
	snprintf(fq, sizeof(fq), "%s/queries_%zu_%u.f32", cache, N, D);
	snprintf(fr, sizeof(fr), "%s/faiss_%zu_%u.txt", cache, N, D);
	FILE *f = fopen(fx, "wb");
	if (!f || fwrite(X, sizeof(float) * D, N, f) != N || fclose(f))
		die(fx, NULL);
	f = fopen(fq, "wb");
	if (!f || fwrite(Q, sizeof(float) * D, NQ, f) != NQ || fclose(f))
		die(fq, NULL);

	/* re-rank accuracy of the two vector formats */
	printf("## Stored vector format (re-rank accuracy)\n\n"
	       "| format | bytes/vector | max abs cos error | mean abs cos error | queries whose top-10 (cos >= 0.8) set and order are unchanged |\n|---|---|---|---|---|\n");
	uint32_t fmts[2] = { ND_VEC_F16, ND_VEC_I8 };
	for (int fi = 0; fi < 2; fi++) {
		uint8_t buf[ND_VEC_HDR_V1 + 2 * 8192];
		float deq[8192];
		double maxe = 0, sume = 0;
		size_t cnt = 0, same = 0, nqv = 0;
		nd_error e;
		for (size_t q = 0; q < NQ; q++) {
			float qs[TOPK];
			int any = 0;
			for (int k = 0; k < TOPK; k++) {
				size_t len;
				nd_vec_view vv;
				if (nd_vector_encode(X + (size_t)eid[q * TOPK + k] * D, D, fmts[fi], buf, sizeof(buf),
						     &len, &e) ||
				    nd_vector_decode(buf, len, D, &vv, &e))
					die("vector codec", &e);
				qs[k] = nd_vector_dot(&vv, Q + q * D);
				double er = fabs(qs[k] - esim[q * TOPK + k]);
				maxe = er > maxe ? er : maxe;
				sume += er;
				cnt++;
				any |= esim[q * TOPK + k] >= 0.8f;
				(void)deq;
			}
			if (!any)
				continue;
			nqv++;
			int ok = 1;
			for (int k = 0; k + 1 < TOPK; k++)
				if (esim[q * TOPK + k + 1] >= 0.8f && qs[k] < qs[k + 1])
					ok = 0;
			for (int k = 0; k < TOPK; k++)
				if ((esim[q * TOPK + k] >= 0.8f) != (qs[k] >= 0.8f))
					ok = 0;
			same += ok;
		}
		printf("| %s | %zu | %.5f | %.6f | %.2f%% (%zu/%zu) |\n", fi == 0 ? "float16" : "int8 + scale",
		       nd_vector_encoded_size(D, fmts[fi]), maxe, sume / (double)cnt,
		       100.0 * (double)same / (double)nqv, same, nqv);
	}
	printf("\n");

	/* index configurations */
	printf("## Query speed and recall\n\n"
	       "Ingest in batches of %zu (one transaction each); queries one at a time on one thread, page cache warm. "
	       "recall@10 = found / exact among each query's exact top-10 with cos >= threshold.\n\n"
	       "| L | K | ingest vec/s | index MiB | bytes/posting (payload) | bytes/posting (LMDB pages) | probes | min hits | p50 ms | p99 ms | candidates | re-ranked | recall@10 >=0.8 | >=0.7 | >=0.9 |\n"
	       "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
	       B);
	fflush(stdout);
	char (*paths)[24] = malloc(sizeof(*paths) * B);
	nd_index_item *items = calloc(B, sizeof(*items));
	for (int ci = 0; ci < ncfg; ci++) {
		char dir[1100];
		nd_index *ix = NULL;
		nd_index_options o;
		nd_error e;
		snprintf(dir, sizeof(dir), "%s/ix_%u_%u_%s%s", cache, cfgs[ci].L, cfgs[ci].K,
			 vfmt == ND_VEC_F16 ? "f16" : "i8", with_phash ? "_phash" : "");
		char dm[1200];
		snprintf(dm, sizeof(dm), "%s/data.mdb", dir);
		int reuse = keep && access(dm, F_OK) == 0;
		if (!reuse)
			rm_index(dir);
		nd_index_options_init(&o);
		o.create = 1;
		o.dim = D;
		o.tables = cfgs[ci].L;
		o.bits = cfgs[ci].K;
		o.map_size = (size_t)1 << 30;
		o.vec_format = vfmt;
		if (with_phash)
			o.calib = (nd_index_calib){ zero_stat, NULL, D, 0.0f, 0.0f, 0.04f, 11.0f, NULL };
		if (nd_index_open(&ix, dir, &o, &e))
			die(dir, &e);
		t0 = bench_now();
		for (size_t i = 0; i < N && !reuse; i += B) {
			size_t n = N - i < B ? N - i : B;
			for (size_t j = 0; j < n; j++) {
				snprintf(paths[j], sizeof(paths[j]), "img/%08zu.jpg", i + j);
				items[j].vec = X + (i + j) * D;
				items[j].rec.path = paths[j];
				items[j].rec.path_len = strlen(paths[j]);
				items[j].rec.size = 100000 + i + j;
				memcpy(items[j].rec.hash, &(uint64_t){ i + j }, 8);
				items[j].has_phash = with_phash;
				items[j].phash = synth_phash(i + j);
			}
			if (nd_index_add(ix, items, n, NULL, &e))
				die("add", &e);
		}
		double ting = bench_now() - t0;
		/* a query process opens the index afresh and maps it */
		nd_index_close(ix);
		o.create = 0;
		if (nd_index_open(&ix, dir, &o, &e) || nd_index_prefault(ix, &e))
			die(dir, &e);
		nd_index_stats st;
		if (nd_index_stats_get(ix, &st, &e))
			die("stats", &e);
		for (int pi = 0; pi < npr; pi++) {
			nd_query_params qp;
			nd_query_params_init(&qp);
			qp.k = TOPK;
			qp.probes = probes[pi];
			qp.min_hits = minhits[pi];
			qp.has_phash = with_phash;
			double *lat = malloc(sizeof(double) * NQ), cands = 0, rer = 0;
			size_t found[3] = { 0 };
			nd_hit hits[TOPK];
			size_t nh;
			for (size_t q = 0; q < NQ && q < 100; q++) /* warm-up */
				nd_index_query(ix, Q + q * D, &qp, hits, &nh, NULL, &e);
			for (size_t q = 0; q < NQ; q++) {
				nd_query_stats qs;
				qp.phash = synth_phash(eid[q * TOPK]) ^ 0x100;
				double a = bench_now();
				if (nd_index_query(ix, Q + q * D, &qp, hits, &nh, &qs, &e))
					die("query", &e);
				lat[q] = (bench_now() - a) * 1e3;
				cands += qs.candidates;
				rer += qs.reranked;
				for (int k = 0; k < TOPK; k++)
					for (size_t h = 0; h < nh; h++)
						if (hits[h].id == eid[q * TOPK + k] + 1)
							for (int t = 0; t < 3; t++)
								found[t] += esim[q * TOPK + k] >= taus[t];
			}
			printf("| %u | %u | %.0f | %.0f | %.2f | %.2f | %u | %u | %.3f | %.3f | %.0f | %.0f | %.4f | %.4f | %.4f |\n",
			       cfgs[ci].L, cfgs[ci].K, reuse ? 0.0 : (double)N / ting, (double)st.file_bytes / 1048576.0,
			       st.bytes_per_posting, st.disk_bytes_per_posting, probes[pi], minhits[pi],
			       pct(lat, NQ, 0.5), pct(lat, NQ, 0.99), cands / (double)NQ, rer / (double)NQ, (double)found[0] / (double)ntrue[0],
			       (double)found[1] / (double)ntrue[1], (double)found[2] / (double)ntrue[2]);
			fflush(stdout);
			free(lat);
		}
		fprintf(stderr, "L=%u K=%u: ingest %.1f s; postings %llu MiB, vectors %llu MiB, records %llu MiB, paths %llu MiB, hashes %llu MiB\n",
			cfgs[ci].L, cfgs[ci].K, ting, (unsigned long long)(st.postings_db_bytes >> 20),
			(unsigned long long)(st.vectors_db_bytes >> 20), (unsigned long long)(st.records_db_bytes >> 20),
			(unsigned long long)(st.paths_db_bytes >> 20), (unsigned long long)(st.hashes_db_bytes >> 20));

		if (jc.L == cfgs[ci].L && jc.K == cfgs[ci].K) {
			/* self-join, recall on a sample of ids against exact pairs >= 0.8 */
			const size_t S = 500;
			uint8_t *sampled = calloc(N + 1, 1);
			uint32_t *sid = malloc(sizeof(uint32_t) * S);
			float *SQ = malloc(sizeof(float) * S * D), *SS = malloc(sizeof(float) * S * 8192);
			for (size_t i = 0; i < S; i++) {
				sid[i] = (uint32_t)(synth_u64(&qr) % N);
				sampled[sid[i] + 1] = 1;
				memcpy(SQ + i * D, X + (size_t)sid[i] * D, sizeof(float) * D);
			}
			/* exact pairs (a, b), a sampled, cos >= 0.8 */
			uint64_t *tp = NULL, *tp9 = NULL;
			size_t ntp = 0, ctp = 0, ntp9 = 0;
			tp9 = malloc(sizeof(uint64_t) * 1);
			for (size_t c0 = 0; c0 < N; c0 += 8192) {
				size_t cn = N - c0 < 8192 ? N - c0 : 8192;
				cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)S, (int)cn, (int)D, 1.0f, SQ,
					    (int)D, X + c0 * D, (int)D, 0.0f, SS, (int)cn);
				for (size_t i = 0; i < S; i++)
					for (size_t j = 0; j < cn; j++) {
						uint32_t a = sid[i] + 1, b = (uint32_t)(c0 + j) + 1;
						if (a == b || SS[i * cn + j] < 0.8f)
							continue;
						if (ntp == ctp) {
							ctp = ctp ? ctp * 2 : 4096;
							tp = realloc(tp, ctp * sizeof(uint64_t));
							tp9 = realloc(tp9, ctp * sizeof(uint64_t));
						}
						tp[ntp++] = a < b ? (uint64_t)a << 32 | b : (uint64_t)b << 32 | a;
						if (SS[i * cn + j] >= 0.9f)
							tp9[ntp9++] = tp[ntp - 1];
					}
			}
			qsort(tp, ntp, sizeof(uint64_t), cmp_u64);
			size_t u = 0;
			for (size_t i = 0; i < ntp; i++)
				if (!i || tp[i] != tp[i - 1])
					tp[u++] = tp[i];
			ntp = u;
			qsort(tp9, ntp9, sizeof(uint64_t), cmp_u64);
			u = 0;
			for (size_t i = 0; i < ntp9; i++)
				if (!i || tp9[i] != tp9[i - 1])
					tp9[u++] = tp9[i];
			ntp9 = u;
			printf("\n## Self-join (L=%u, K=%u), pairs with cos >= 0.8\n\n"
			       "Recall: of the exact pairs >= 0.8 that involve %zu sampled ids (%zu pairs; %zu of them >= 0.9), the fraction emitted. "
			       "Candidates: pairs of images whose buckets differ in <= radius of the bits used, in some table; compared: exact cosines computed after the signature filter.\n\n"
			       "| radius | bits | threads | max group | time s | candidates | compared | emitted | buckets capped | pairs skipped | largest bucket | recall >=0.8 | recall >=0.9 |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|\n",
			       jc.L, jc.K, S, ntp, ntp9);
			for (const char *js_ = jvar_s; *js_;) {
				nd_selfjoin_params jp;
				nd_selfjoin_stats js;
				struct joinacc acc = { sampled, NULL, 0, 0 };
				nd_selfjoin_params_init(&jp);
				jp.min_sim = 0.8f;
				unsigned long r_ = strtoul(js_, (char **)&js_, 10), b_ = 0, t_ = 0;
				if (*js_ == '/')
					b_ = strtoul(js_ + 1, (char **)&js_, 10);
				if (*js_ == '/')
					t_ = strtoul(js_ + 1, (char **)&js_, 10);
				if (*js_ == ',')
					js_++;
				if (r_)
					jp.radius = (uint32_t)r_;
				jp.bits = (uint32_t)b_;
				jp.threads = (uint32_t)t_;
				t0 = bench_now();
				if (nd_index_selfjoin(ix, &jp, on_pair, &acc, &js, &e))
					die("self-join", &e);
				double tj = bench_now() - t0;
				qsort(acc.pairs, acc.n, sizeof(uint64_t), cmp_u64);
				size_t hit = 0, hit9 = 0;
				for (size_t i = 0; i < ntp; i++)
					hit += bsearch(&tp[i], acc.pairs, acc.n, sizeof(uint64_t), cmp_u64) != NULL;
				for (size_t i = 0; i < ntp9; i++)
					hit9 += bsearch(&tp9[i], acc.pairs, acc.n, sizeof(uint64_t), cmp_u64) != NULL;
				long nth_ = jp.threads ? (long)jp.threads : sysconf(_SC_NPROCESSORS_ONLN);
				printf("| %u | %u | %ld | %u | %.1f | %llu | %llu | %llu | %llu | %llu | %llu | %.4f | %.4f |\n",
				       jp.radius, jp.bits ? jp.bits : jc.K, nth_, jp.max_group, tj,
				       (unsigned long long)js.pairs_candidates, (unsigned long long)js.pairs_compared,
				       (unsigned long long)js.pairs_emitted, (unsigned long long)js.groups_capped,
				       (unsigned long long)js.pairs_skipped, (unsigned long long)js.largest_group,
				       ntp ? (double)hit / (double)ntp : 0, ntp9 ? (double)hit9 / (double)ntp9 : 0);
				fflush(stdout);
				free(acc.pairs);
			}
			printf("\n");
			free(tp);
			free(tp9);
			free(sampled);
			free(sid);
			free(SQ);
			free(SS);
		}
		nd_index_close(ix);
		if (!keep)
			rm_index(dir);
	}

	/* FAISS reference */
	if (faiss && *faiss && strcmp(faiss, "none") != 0) { /* "none": skip it */
		char cmd[4096];
		snprintf(cmd, sizeof(cmd), "/usr/bin/python3 %s %s %s %u %s", faiss, fx, fq, D, fr);
		fprintf(stderr, "running %s\n", cmd);
		FILE *p = popen(cmd, "r");
		char line[512];
		double fp50 = 0, fp99 = 0, fbatch = 0;
		while (p && fgets(line, sizeof(line), p))
			sscanf(line, "faiss p50_ms=%lf p99_ms=%lf batch_ms_per_query=%lf", &fp50, &fp99, &fbatch);
		int st = p ? pclose(p) : -1;
		size_t agree = 0, tot = 0;
		f = fopen(fr, "r");
		for (size_t q = 0; f && q < NQ; q++)
			for (int k = 0; k < TOPK; k++) {
				long id;
				if (fscanf(f, "%ld", &id) != 1)
					break;
				tot++;
				for (int k2 = 0; k2 < TOPK; k2++)
					agree += (uint32_t)id == eid[q * TOPK + k2];
			}
		if (f)
			fclose(f);
		printf("## FAISS IndexFlatIP (exact), same data and queries\n\n");
		if (st != 0 || fp50 == 0)
			printf("FAISS run failed (status %d)\n\n", st);
		else
			printf("| single-query p50 ms | p99 ms | batched ms/query | top-10 agreement with our exact search |\n|---|---|---|---|\n"
			       "| %.2f | %.2f | %.3f | %.4f |\n\n",
			       fp50, fp99, fbatch, tot ? (double)agree / (double)tot : 0);
	}
	unlink(fx);
	unlink(fq);
	unlink(fr);
	free(paths);
	free(items);
	free(X);
	free(Q);
	free(bases);
	free(eid);
	free(esim);
	synth_free(&s);
	return 0;
}
