/* neardup — how often a keep rule keeps the original (dev set families).
 *
 *   bench_keeper [--min-side N] [--max-originals N] [--dump FILE] MANIFEST
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
 * what the image content alone decides. Prints a Markdown table; --dump
 * writes every file's measures as TSV. */
#include "neardup/image.h"
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
};

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

/* Rules measured: the default, the default on content alone, resolution. */
enum { R_ORIGINAL, R_CONTENT, R_RESOLUTION, R_N };
static const char *const rule_title[R_N] = { "original (default)", "original, no file times",
					     "resolution (old default)" };

static int keeps_first(int r, const struct item *a, const struct item *b)
{
	nd_keep_item ka = a->k, kb = b->k;
	if (r == R_CONTENT)
		ka.mtime_ns = kb.mtime_ns = 0;
	return nd_keep_cmp(r == R_RESOLUTION ? ND_KEEP_RESOLUTION : ND_KEEP_ORIGINAL, &ka, &kb, NULL) < 0;
}

int main(int argc, char **argv)
{
	const char *manifest = NULL, *dump = NULL;
	int min_side = 128, max_orig = 1 << 30;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--min-side") && i + 1 < argc)
			min_side = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--max-originals") && i + 1 < argc)
			max_orig = atoi(argv[++i]);
		else if (!strcmp(argv[i], "--dump") && i + 1 < argc)
			dump = argv[++i];
		else if (!manifest && argv[i][0] != '-')
			manifest = argv[i];
		else
			manifest = NULL, i = argc;
	}
	if (!manifest || min_side < 1) {
		fprintf(stderr, "usage: bench_keeper [--min-side N] [--max-originals N] [--dump FILE] MANIFEST\n");
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
		it->orig = orig;
		it->kind = strcmp(f[3], "original") ? kind_index(f[3]) : -1;
		if (it->kind == -2 || measure(it->path, min_side, it)) {
			free(it->path);
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
	long pairs[MAX_KINDS] = { 0 }, won[R_N][MAX_KINDS] = { { 0 } };
	long fam = 0, fam_won[R_N] = { 0 };
	for (int f = 0; f < nf; f++) {
		if (orig_of[f] < 0)
			continue;
		const struct item *o = &items[orig_of[f]];
		int full = 1, first[R_N] = { 1, 1, 1 };
		for (int k = 0; k < nkinds; k++) {
			long c = copy_of[(size_t)f * MAX_KINDS + k];
			if (c < 0) {
				full = 0;
				continue;
			}
			pairs[k]++;
			for (int r = 0; r < R_N; r++) {
				int w = keeps_first(r, o, &items[c]);
				won[r][k] += w;
				if (!w)
					first[r] = 0;
			}
		}
		if (full && nkinds > 0) {
			fam++;
			for (int r = 0; r < R_N; r++)
				fam_won[r] += first[r];
		}
	}

	printf("| group | groups |");
	for (int r = 0; r < R_N; r++)
		printf(" %s |", rule_title[r]);
	printf("\n|---|---:|");
	for (int r = 0; r < R_N; r++)
		printf("---:|");
	printf("\n| **ideal family** (original + all %d copies) | %ld |", nkinds, fam);
	for (int r = 0; r < R_N; r++)
		printf(" **%.1f%%** |", fam ? 100.0 * fam_won[r] / fam : 0.0);
	printf("\n");
	long all = 0, all_won[R_N] = { 0 };
	for (int k = 0; k < nkinds; k++) {
		printf("| pair: original + %s | %ld |", kinds[k], pairs[k]);
		for (int r = 0; r < R_N; r++)
			printf(" %.1f%% |", pairs[k] ? 100.0 * won[r][k] / pairs[k] : 0.0);
		printf("\n");
		all += pairs[k];
		for (int r = 0; r < R_N; r++)
			all_won[r] += won[r][k];
	}
	printf("| **all pairs** | %ld |", all);
	for (int r = 0; r < R_N; r++)
		printf(" **%.1f%%** |", all ? 100.0 * all_won[r] / all : 0.0);
	printf("\n");
	if (failed)
		fprintf(stderr, "bench_keeper: %d files could not be measured\n", failed);
	for (size_t i = 0; i < n; i++)
		free(items[i].path);
	free(items);
	free(orig_of);
	free(copy_of);
	for (int k = 0; k < nkinds; k++)
		free(kinds[k]);
	return failed ? 1 : 0;
}
