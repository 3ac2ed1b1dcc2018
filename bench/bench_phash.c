/* neardup — cost of the perceptual hash of the score fusion.
 *
 *   bench_phash [-n N] [-r RUNS]     (default 5000, 5)
 *
 * Times nd_phash_tensor on a 128x128 model input (what ingest and query
 * add per image: luma of the prepared tensor, 32x32 area average, 8x8 DCT,
 * median), one thread, the caller's scratch. Prints the median of RUNS
 * runs. */
#include "neardup/phash.h"
#include "timing.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv)
{
	int n = 5000, runs = 5;
	for (int i = 1; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "-n"))
			n = atoi(argv[i + 1]);
		else if (!strcmp(argv[i], "-r"))
			runs = atoi(argv[i + 1]);
	}
	if (n < 1 || runs < 1 || runs > 100) {
		fprintf(stderr, "usage: bench_phash [-n N] [-r RUNS]\n");
		return 2;
	}
	enum { S = 128 };
	static float t[3 * S * S], lum[S * S];
	const float mean[3] = { 0.485f, 0.456f, 0.406f }, std[3] = { 0.229f, 0.224f, 0.225f };
	for (int i = 0; i < 3 * S * S; i++)
		t[i] = (float)((i * 7919) % 255) / 255.0f;
	double us[100];
	uint64_t acc = 0;
	nd_error err;
	for (int r = 0; r < runs; r++) {
		double t0 = bench_now();
		for (int i = 0; i < n; i++) {
			uint64_t h;
			t[(i * 131) % (3 * S * S)] += 0.01f; /* not the same input every time */
			if (nd_phash_tensor(t, S, S, mean, std, lum, &h, &err)) {
				fprintf(stderr, "bench_phash: %s\n", err.msg);
				return 1;
			}
			acc ^= h;
		}
		us[r] = (bench_now() - t0) / n * 1e6;
	}
	qsort(us, (size_t)runs, sizeof(double), bench_cmp_double);
	printf("| step | us per image (median of %d runs of %d) |\n|---|---:|\n", runs, n);
	printf("| nd_phash_tensor, 128x128 input | %.1f |\n", us[runs / 2]);
	return acc == 42; /* keeps the loop */
}
