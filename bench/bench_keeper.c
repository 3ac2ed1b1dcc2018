/* neardup — how often a keep rule keeps the original (dev set families).
 *
 *   bench_keeper [--min-side N] [--max-originals N] [--dump FILE]
 *                [--index DIR --prefix P [--groups IN --groups-out OUT]] MANIFEST
 *
 * MANIFEST is the dev set's manifest.tsv (bench/corpus/make_devset.py):
 * every original ("ref" rows with an original id >= 0) and its edited
 * copies (one "query" row per edit kind). Each file is measured as ingest
 * measures it (decoded at the smallest scale that keeps both sides >=
 * --min-side, the model's input; originality record from the pixels and
 * the bytes; size and mtime from the file) and the keep rules of
 * neardup/keep.h are applied to
 *   - the ideal family: the original and all its copies (the rule must
 *     rank the original first of all), and
 *   - each pair original + one copy, per edit kind.
 * "original, no file times" is the default rule with every mtime equal:
 * what the image content alone decides. With --index (an index of the
 * dev set's files, each stored under P + its manifest path), the group
 * choice (nd_keep_choose) is measured too, from the stored vectors: its
 * centrality margin is fitted on the even-numbered families and reported
 * on the odd-numbered ones. --groups reads dedup's groups (TSV: group
 * number, path) and writes to OUT, per group, the file the pair rule keeps
 * and the one the group choice keeps without file times. Prints Markdown
 * tables; --dump writes every file's measures as TSV. */
#include "neardup/image.h"
#include "neardup/index.h"
#include "neardup/keep.h"
#include "neardup/origin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_KINDS 32

struct item {
	char *path;
	int orig;     /* family */
	int kind;     /* -1: the original */
	nd_keep_item k;
	nd_origin o;
	char *ipath;  /* as stored in the index */
	float *vec;   /* stored vector; NULL: none */
};

static uint32_t dim;

static char *kinds[MAX_KINDS];
static int nkinds;

static int kind_index(const char *k)
{
	for (int i = 0; i < nkinds; i++)
		if (!strcmp(kinds[i], k))
			return i;
	if (nkinds == MAX_KINDS)
		return -2;
	kinds[nkinds] = strdup(k);
	return kinds[nkinds] ? nkinds++ : -2;
}

static int measure(const char *path, int min_side, struct item *it)
{
	FILE *f = fopen(path, "rb");
	struct stat st;
	if (!f || fstat(fileno(f), &st)) {
		fprintf(stderr, "bench_keeper: cannot open '%s'\n", path);
		if (f)
			fclose(f);
		return -1;
	}
	size_t len = (size_t)st.st_size;
	uint8_t *buf = malloc(len ? len : 1);
	int ok = buf && fread(buf, 1, len, f) == len;
	fclose(f);
	nd_image img = { 0 };
	nd_image_info ii;
	nd_image_opts io;
	nd_error err;
	nd_image_opts_init(&io);
	io.min_width = io.min_height = min_side;
	int rc = ok ? nd_image_decode_mem(buf, len, &io, &img, &ii, &err) : -1;
	nd_origin_init(&it->o);
	if (rc == 0) {
		nd_origin_from_bytes(buf, len, &it->o);
		rc = nd_origin_from_pixels(&img, ii.scale_denom, &it->o, &err);
	}
	free(buf);
	nd_image_free(&img);
	if (rc) {
		fprintf(stderr, "bench_keeper: cannot measure '%s': %s\n", path, ok ? err.msg : "read");
		return -1;
	}
	int swap = ii.orientation >= 5;
	it->k.width = (uint32_t)(swap ? ii.height : ii.width);
	it->k.height = (uint32_t)(swap ? ii.width : ii.height);
	it->k.size = (uint64_t)st.st_size;
	it->k.mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec;
	it->k.path = it->path;
	return 0;
}

/* Rules measured: the group choice (default), the same on content alone,
 * the pair rule alone, the same on content alone, resolution. */
enum { R_GROUP, R_GROUP_CONTENT, R_ORIGINAL, R_CONTENT, R_RESOLUTION, R_N };
static const char *const rule_title[R_N] = {
	"original, group (default)", "original, group, no file times", "original, pair rule (before)",
	"original, pair rule, no file times", "resolution"
};

static double dot(const float *a, const float *b)
{
	double s = 0;
	for (uint32_t j = 0; j < dim; j++)
		s += (double)a[j] * b[j];
	return s;
}

/* The member rule r keeps of g[0..n) (items), margin for the group rules;
 * -1 when the group rules lack a vector. */
static long keeper(int r, struct item *const *g, size_t n, float margin)
{
	nd_keep_member m[ND_KEEP_CENTRAL_MAX];
	static float sim[ND_KEEP_CENTRAL_MAX * ND_KEEP_CENTRAL_MAX];
	int group = r == R_GROUP || r == R_GROUP_CONTENT;
	if (n > ND_KEEP_CENTRAL_MAX) { /* the pair rule, as nd_keep_choose does */
		if (group)
			return -1;
		size_t b = 0;
		for (size_t i = 1; i < n; i++)
			if (nd_keep_cmp(r == R_RESOLUTION ? ND_KEEP_RESOLUTION : ND_KEEP_ORIGINAL, &g[i]->k,
					&g[b]->k, NULL) < 0)
				b = i;
		return (long)b;
	}
	for (size_t i = 0; i < n; i++) {
		m[i].item = g[i]->k;
		m[i].can_keep = 1;
		if (r == R_CONTENT || r == R_GROUP_CONTENT)
			m[i].item.mtime_ns = 0;
		if (group && !g[i]->vec)
			return -1;
		for (size_t j = 0; group && j < i; j++)
			sim[i * n + j] = sim[j * n + i] = (float)dot(g[i]->vec, g[j]->vec);
	}
	nd_keep_choice c;
	if (nd_keep_choose(m, n, group ? sim : NULL, r == R_RESOLUTION ? ND_KEEP_RESOLUTION : ND_KEEP_ORIGINAL,
			   margin, &c))
		return -1;
	return (long)c.keeper;
}

int main(int argc, char **argv)
{
	const char *manifest = NULL, *dump = NULL, *index_dir = NULL, *prefix = "", *groups_in = NULL,
		   *groups_out = NULL;
	int min_side = 128, max_orig = 1 << 30;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--min-side") && i + 1 < argc)
			min_side = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--max-originals") && i + 1 < argc)
			max_orig = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--dump") && i + 1 < argc)
			dump = argv[++i];
		else if (!strcmp(argv[i], "--index") && i + 1 < argc)
			index_dir = argv[++i];
		else if (!strcmp(argv[i], "--prefix") && i + 1 < argc)
			prefix = argv[++i];
		else if (!strcmp(argv[i], "--groups") && i + 1 < argc)
			groups_in = argv[++i];
		else if (!strcmp(argv[i], "--groups-out") && i + 1 < argc)
			groups_out = argv[++i];
		else if (!manifest && argv[i][0] != '-')
			manifest = argv[i];
		else
			manifest = NULL, i = argc;
	}
	if (!manifest || min_side < 1 || (groups_in && (!index_dir || !groups_out))) {
		fprintf(stderr, "usage: bench_keeper [--min-side N] [--max-originals N] [--dump FILE]\n"
				"                    [--index DIR --prefix P [--groups IN --groups-out OUT]] MANIFEST\n");
		return 2;
	}
	FILE *mf = fopen(manifest, "r");
	if (!mf) {
		fprintf(stderr, "bench_keeper: cannot open '%s'\n", manifest);
		return 2;
	}
	char dir[4096];
	snprintf(dir, sizeof(dir), "%s", manifest);
	char *slash = strrchr(dir, '/');
	if (slash)
		*slash = 0;
	else
		snprintf(dir, sizeof(dir), ".");

	struct item *items = NULL;
	size_t n = 0, cap = 0;
	int max_id = -1, failed = 0;
	char line[8192];
	while (fgets(line, sizeof(line), mf)) {
		char *f[6] = { 0 }, *save = NULL, *s = line;
		line[strcspn(line, "\n")] = 0;
		for (int k = 0; k < 6 && (f[k] = strtok_r(s, "\t", &save)); k++)
			s = NULL;
		if (!f[3] || !strcmp(f[0], "role"))
			continue;
		int orig = atoi(f[2]);
		if (orig < 0 || orig >= max_orig)
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 1024;
			struct item *ni = realloc(items, cap * sizeof(*ni));
			if (!ni)
				return 2;
			items = ni;
		}
		struct item *it = &items[n];
		memset(it, 0, sizeof(*it));
		size_t pl = strlen(dir) + strlen(f[1]) + 2;
		it->path = malloc(pl);
		if (!it->path)
			return 2;
		snprintf(it->path, pl, "%s/%s", dir, f[1]);
		pl = strlen(prefix) + strlen(f[1]) + 1;
		if (!(it->ipath = malloc(pl)))
			return 2;
		snprintf(it->ipath, pl, "%s%s", prefix, f[1]);
		it->orig = orig;
		it->kind = strcmp(f[3], "original") ? kind_index(f[3]) : -1;
		if (it->kind == -2 || measure(it->path, min_side, it)) {
			free(it->path);
			free(it->ipath);
			failed++;
			continue;
		}
		it->k.id = (uint32_t)n + 1;
		if (orig > max_id)
			max_id = orig;
		n++;
	}
	fclose(mf);
	for (size_t i = 0; i < n; i++) /* items moved while growing */
		items[i].k.origin = &items[i].o;

	if (dump) {
		FILE *df = fopen(dump, "w");
		if (!df) {
			fprintf(stderr, "bench_keeper: cannot write '%s'\n", dump);
			return 2;
		}
		fprintf(df, "path\toriginal\tkind\twidth\theight\tsize\tcolour\tmargin\tflat\taniso\tdetail\t"
			    "noise\tblockiness\tquality\tscore\n");
		for (size_t i = 0; i < n; i++) {
			const struct item *it = &items[i];
			const nd_origin *o = &it->o;
			fprintf(df, "%s\t%d\t%s\t%u\t%u\t%llu\t%.4f\t%.4f\t%.4f\t%.3f\t%.4f\t%.2f\t%.3f\t%u\t%.3f\n",
				it->path, it->orig, it->kind < 0 ? "original" : kinds[it->kind], it->k.width,
				it->k.height, (unsigned long long)it->k.size, o->colour, o->margin, o->flat,
				o->aniso, o->detail, o->noise, o->blockiness, o->quality,
				nd_origin_score(o, it->k.width, it->k.height));
		}
		fclose(df);
	}

	nd_index *ix = NULL;
	long no_vec = 0;
	if (index_dir) {
		nd_index_options io;
		nd_error err;
		nd_meta meta;
		nd_index_options_init(&io);
		io.readonly = 1;
		if (nd_index_open(&ix, index_dir, &io, &err) || nd_index_meta(ix, &meta, &err)) {
			fprintf(stderr, "bench_keeper: cannot open the index '%s': %s\n", index_dir, err.msg);
			return 2;
		}
		dim = meta.dim;
		for (size_t i = 0; i < n; i++) {
			uint32_t id;
			float *v = malloc(dim * sizeof(*v));
			if (!v)
				return 2;
			if (nd_index_lookup_path(ix, items[i].ipath, &id, &err) ||
			    nd_index_get_vector(ix, id, v, &err)) {
				free(v);
				no_vec++;
				continue;
			}
			items[i].vec = v;
		}
		if (no_vec)
			fprintf(stderr, "bench_keeper: %ld files have no vector in the index\n", no_vec);
	}
	int nr = R_N, r0 = ix ? 0 : R_ORIGINAL; /* the group rules need the vectors */

	/* per family: the original's index and each kind's copy */
	int nf = max_id + 1;
	long *orig_of = malloc(sizeof(long) * (size_t)(nf > 0 ? nf : 1));
	long *copy_of = malloc(sizeof(long) * (size_t)(nf > 0 ? nf : 1) * MAX_KINDS);
	if (!orig_of || !copy_of)
		return 2;
	for (int f = 0; f < nf; f++) {
		orig_of[f] = -1;
		for (int k = 0; k < MAX_KINDS; k++)
			copy_of[(size_t)f * MAX_KINDS + k] = -1;
	}
	for (size_t i = 0; i < n; i++) {
		if (items[i].kind < 0)
			orig_of[items[i].orig] = (long)i;
		else
			copy_of[(size_t)items[i].orig * MAX_KINDS + items[i].kind] = (long)i;
	}
	/* margins tried for the group choice; fitted on the even families */
	static const float margins[] = { 0.0f, 0.001f, 0.002f, 0.003f, 0.005f, 0.0075f, 0.01f, 0.015f,
					 0.02f, 0.03f, 0.05f, 0.1f, 1.0f };
	enum { NM = sizeof(margins) / sizeof(margins[0]) };
	long pairs[MAX_KINDS] = { 0 }, won[R_N][MAX_KINDS] = { { 0 } }, lost_to[R_N][MAX_KINDS] = { { 0 } };
	long fam = 0, fam_won[R_N] = { 0 }, fam_par[2] = { 0 }, fam_won_par[R_N][2] = { { 0 } };
	long sweep[NM][2][2] = { { { 0 } } }; /* margin, times/no times, even/odd */
	for (int f = 0; f < nf; f++) {
		if (orig_of[f] < 0)
			continue;
		struct item *g[MAX_KINDS + 1];
		size_t gn = 0;
		g[gn++] = &items[orig_of[f]];
		int full = 1;
		for (int k = 0; k < nkinds; k++) {
			long c = copy_of[(size_t)f * MAX_KINDS + k];
			if (c < 0) {
				full = 0;
				continue;
			}
			pairs[k]++;
			struct item *pg[2] = { g[0], &items[c] };
			g[gn++] = &items[c];
			for (int r = r0; r < nr; r++)
				won[r][k] += keeper(r, pg, 2, ND_KEEP_CENTRAL_MARGIN) == 0;
		}
		if (!full || nkinds == 0)
			continue;
		fam++;
		fam_par[f & 1]++;
		for (int r = r0; r < nr; r++) {
			long w = keeper(r, g, gn, ND_KEEP_CENTRAL_MARGIN);
			fam_won[r] += w == 0;
			fam_won_par[r][f & 1] += w == 0;
			if (w > 0)
				lost_to[r][g[w]->kind]++;
		}
		for (int mi = 0; ix && mi < NM; mi++) {
			sweep[mi][0][f & 1] += keeper(R_GROUP, g, gn, margins[mi]) == 0;
			sweep[mi][1][f & 1] += keeper(R_GROUP_CONTENT, g, gn, margins[mi]) == 0;
		}
	}

#define PCT(a, b) ((b) ? 100.0 * (double)(a) / (double)(b) : 0.0)
	printf("| group | groups |");
	for (int r = r0; r < nr; r++)
		printf(" %s |", rule_title[r]);
	printf("\n|---|---:|");
	for (int r = r0; r < nr; r++)
		printf("---:|");
	printf("\n| **ideal family** (original + all %d copies) | %ld |", nkinds, fam);
	for (int r = r0; r < nr; r++)
		printf(" **%.1f%%** |", PCT(fam_won[r], fam));
	printf("\n| ideal family, odd-numbered (held out) | %ld |", fam_par[1]);
	for (int r = r0; r < nr; r++)
		printf(" %.1f%% |", PCT(fam_won_par[r][1], fam_par[1]));
	printf("\n| ideal family, even-numbered | %ld |", fam_par[0]);
	for (int r = r0; r < nr; r++)
		printf(" %.1f%% |", PCT(fam_won_par[r][0], fam_par[0]));
	printf("\n");
	long all = 0, all_won[R_N] = { 0 };
	for (int k = 0; k < nkinds; k++) {
		printf("| pair: original + %s | %ld |", kinds[k], pairs[k]);
		for (int r = r0; r < nr; r++)
			printf(" %.1f%% |", PCT(won[r][k], pairs[k]));
		printf("\n");
		all += pairs[k];
		for (int r = r0; r < nr; r++)
			all_won[r] += won[r][k];
	}
	printf("| **all pairs** | %ld |", all);
	for (int r = r0; r < nr; r++)
		printf(" **%.1f%%** |", PCT(all_won[r], all));
	printf("\n\nIdeal families whose kept file is a copy, by the copy's edit kind:\n\n| kept instead |");
	for (int r = r0; r < nr; r++)
		printf(" %s |", rule_title[r]);
	printf("\n|---|");
	for (int r = r0; r < nr; r++)
		printf("---:|");
	printf("\n");
	for (int k = 0; k < nkinds; k++) {
		printf("| %s |", kinds[k]);
		for (int r = r0; r < nr; r++)
			printf(" %ld |", lost_to[r][k]);
		printf("\n");
	}
	if (ix) {
		int best = 0;
		for (int mi = 1; mi < NM; mi++)
			if (sweep[mi][0][0] > sweep[best][0][0])
				best = mi;
		printf("\nThe group choice's centrality margin (ND_KEEP_CENTRAL_MARGIN = %g), ideal families kept "
		       "right: fitted on the even-numbered families (best: %g), held out on the odd-numbered.\n\n"
		       "| margin | even | odd (held out) | all | even, no file times | odd, no file times | "
		       "all, no file times |\n|---:|---:|---:|---:|---:|---:|---:|\n",
		       (double)ND_KEEP_CENTRAL_MARGIN, (double)margins[best]);
		for (int mi = 0; mi < NM; mi++) {
			printf("| %g%s |", (double)margins[mi], mi == best ? " (fit)" : "");
			for (int t = 0; t < 2; t++)
				printf(" %.1f%% | %.1f%% | %.1f%% |", PCT(sweep[mi][t][0], fam_par[0]),
				       PCT(sweep[mi][t][1], fam_par[1]),
				       PCT(sweep[mi][t][0] + sweep[mi][t][1], fam));
			printf("\n");
		}
	}
	if (groups_in) {
		/* dedup's groups: the pair rule's keeper and the content-only group choice */
		FILE *gi = fopen(groups_in, "r"), *go = fopen(groups_out, "w");
		if (!gi || !go) {
			fprintf(stderr, "bench_keeper: cannot open '%s' or '%s'\n", groups_in, groups_out);
			return 2;
		}
		struct item **g = malloc(n * sizeof(*g));
		if (!g)
			return 2;
		size_t gn = 0;
		long cur = -1;
		int more = 1;
		while (more) {
			long gno = -1;
			char *path = NULL;
			more = fgets(line, sizeof(line), gi) != NULL;
			if (more) {
				line[strcspn(line, "\n")] = 0;
				char *tab = strchr(line, '\t');
				if (!tab)
					continue;
				*tab = 0;
				gno = atol(line);
				path = tab + 1;
			}
			if (gno != cur && gn) {
				long p = keeper(R_ORIGINAL, g, gn, 0), c = keeper(R_GROUP_CONTENT, g, gn,
										  ND_KEEP_CENTRAL_MARGIN);
				fprintf(go, "%ld\t%s\t%s\n", cur, p < 0 ? "" : g[p]->ipath, c < 0 ? "" : g[c]->ipath);
				gn = 0;
			}
			cur = gno;
			for (size_t i = 0; path && i < n; i++)
				if (!strcmp(items[i].ipath, path)) {
					g[gn++] = &items[i];
					break;
				}
		}
		free(g);
		fclose(gi);
		fclose(go);
	}
	if (failed)
		fprintf(stderr, "bench_keeper: %d files could not be measured\n", failed);
	if (ix)
		nd_index_close(ix);
	for (size_t i = 0; i < n; i++) {
		free(items[i].path);
		free(items[i].ipath);
		free(items[i].vec);
	}
	free(items);
	free(orig_of);
	free(copy_of);
	for (int k = 0; k < nkinds; k++)
		free(kinds[k]);
	return failed ? 1 : 0;
}
