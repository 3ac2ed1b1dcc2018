/* neardup — what the LMDB file walker (src/store_verify.c) costs.
 *
 *   bench_walk DIR [RUNS]
 *
 * Walks DIR/data.mdb RUNS times (default 5) light (what every open reads)
 * and full (what writers, check and backup read), with the file in the
 * page cache (the median and best), then full with the file dropped from
 * the page cache first (posix_fadvise DONTNEED: the cold case). Prints
 * pages, seconds and pages per second. Build an index to walk with e.g.
 *   bench_index -n 100000 -q 10 -c 12:18 -p 1280 --keep 1 --cache DIR */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "store_impl.h"
#include "timing.h"

static int walk(const char *dir, int full, int cold, nd__store_walk_info *wi, double *secs)
{
	nd_error err;
	if (cold) {
		char p[4200];
		snprintf(p, sizeof(p), "%s/data.mdb", dir);
		int fd = open(p, O_RDONLY);
		if (fd >= 0) {
			posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
			close(fd);
		}
	}
	double t0 = bench_now();
	int rc = nd__store_walk(dir, full, 0, wi, &err);
	*secs = bench_now() - t0;
	if (rc)
		fprintf(stderr, "bench_walk: %s\n", err.msg);
	return rc;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fputs("usage: bench_walk DIR [RUNS]\n", stderr);
		return 2;
	}
	int runs = argc > 2 ? atoi(argv[2]) : 5;
	if (runs < 1 || runs > 1000)
		runs = 5;
	double *t = calloc((size_t)runs, sizeof(double));
	nd__store_walk_info wi;
	if (!t)
		return 2;
	printf("| walk | pages | free pages | file MiB | median s | best s | pages/s (median) |\n|---|---|---|---|---|---|---|\n");
	for (int mode = 0; mode < 3; mode++) {
		int full = mode > 0, cold = mode == 2;
		for (int r = 0; r < runs; r++)
			if (walk(argv[1], full, cold, &wi, &t[r]))
				return 1;
		qsort(t, (size_t)runs, sizeof(double), bench_cmp_double);
		double med = t[runs / 2];
		printf("| %s | %llu | %llu | %.1f | %.4f | %.4f | %.0f |\n",
		       mode == 0 ? "light" : mode == 1 ? "full, cached" : "full, cold",
		       (unsigned long long)wi.pages, (unsigned long long)wi.free_pages,
		       (double)wi.file_bytes / 1048576.0, med, t[0], med > 0 ? (double)wi.pages / med : 0.0);
	}
	free(t);
	return 0;
}
