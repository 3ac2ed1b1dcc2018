/* bench_decode — decode+prep throughput (images/s on one core) and peak RSS.
 *
 *   bench_decode [--size WxH] [--full] [--decode-only] [--repeat N] [--per-file] [--mem] FILE...
 *
 * Decodes every FILE as ingest does (scaled decode for the model size, EXIF,
 * limits) and runs prep into one reused tensor, N times over the list, in
 * one thread. Prints a key=value summary line:
 *   images=... seconds=... images_per_s=... ms_per_image=... peak_rss_kb=...
 * --per-file prints one line per file (first pass) with its stored size,
 * scale and time. --decode-only skips prep (for comparison with djpeg).
 * --mem reads each file into memory and decodes it from there, as ingest
 * does (the timing includes the read); PNGs can then take the fast path
 * (src/image_png_fast.c), while a file source always goes through libpng. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "neardup/image.h"
#include "neardup/prep.h"
#include "timing.h"

int main(int argc, char **argv)
{
	nd_prep_params p = { 224, 224, { 0.485f, 0.456f, 0.406f }, { 0.229f, 0.224f, 0.225f } };
	int full = 0, decode_only = 0, repeat = 1, per_file = 0, mem = 0, i, errors = 0;
	long images = 0;
	nd_image_opts opts;

	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		if (!strcmp(argv[i], "--size") && i + 1 < argc) {
			if (sscanf(argv[++i], "%dx%d", &p.width, &p.height) != 2)
				return 2;
		} else if (!strcmp(argv[i], "--full")) {
			full = 1;
		} else if (!strcmp(argv[i], "--decode-only")) {
			decode_only = 1;
		} else if (!strcmp(argv[i], "--per-file")) {
			per_file = 1;
		} else if (!strcmp(argv[i], "--mem")) {
			mem = 1;
		} else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) {
			repeat = atoi(argv[++i]);
		} else {
			fprintf(stderr, "usage: bench_decode [--size WxH] [--full] [--decode-only] "
					"[--repeat N] [--per-file] [--mem] FILE...\n");
			return 2;
		}
	}
	if (i >= argc || repeat < 1) {
		fprintf(stderr, "bench_decode: no files\n");
		return 2;
	}
	nd_image_opts_init(&opts);
	if (!full) {
		opts.min_width = p.width;
		opts.min_height = p.height;
	}
	float *tensor = malloc(sizeof(float) * 3 * (size_t)p.width * (size_t)p.height);
	void *scratch = malloc(nd_prep_scratch_size(&p));
	if (!tensor || !scratch)
		return 2;

	struct rusage ru0;
	getrusage(RUSAGE_SELF, &ru0);
	double cpu0 = (double)ru0.ru_utime.tv_sec + ru0.ru_utime.tv_usec * 1e-6 +
		      (double)ru0.ru_stime.tv_sec + ru0.ru_stime.tv_usec * 1e-6;
	double t0 = bench_now();
	for (int r = 0; r < repeat; r++) {
		for (int f = i; f < argc; f++) {
			nd_image img;
			nd_image_info info;
			nd_error err;
			double a = per_file && r == 0 ? bench_now() : 0;
			int rc;
			if (mem) {
				uint8_t *buf = NULL;
				long len = -1;
				FILE *fp = fopen(argv[f], "rb");
				if (fp && fseek(fp, 0, SEEK_END) == 0 && (len = ftell(fp)) >= 0 &&
				    fseek(fp, 0, SEEK_SET) == 0 && (buf = malloc((size_t)len + 1)) &&
				    fread(buf, 1, (size_t)len, fp) == (size_t)len) {
					rc = nd_image_decode_mem(buf, (size_t)len, &opts, &img, &info, &err);
				} else {
					memset(&img, 0, sizeof(img));
					rc = nd_error_set(&err, ND_EIO, "cannot read");
				}
				if (fp)
					fclose(fp);
				free(buf);
			} else {
				rc = nd_image_decode_file(argv[f], &opts, &img, &info, &err);
			}
			if (rc != 0) {
				if (r == 0)
					fprintf(stderr, "bench_decode: cannot decode '%s': %s\n", argv[f], err.msg);
				errors++;
				continue;
			}
			if (!decode_only && nd_prep_image(&img, &p, tensor, scratch, &err) != 0) {
				fprintf(stderr, "bench_decode: cannot preprocess '%s': %s\n", argv[f], err.msg);
				errors++;
			}
			if (per_file && r == 0)
				printf("file=%s format=%s stored=%dx%d scale=1/%d decoded=%dx%d ms=%.3f\n", argv[f],
				       nd_image_format_name(info.format), info.width, info.height,
				       info.scale_denom, img.width, img.height, (bench_now() - a) * 1e3);
			nd_image_free(&img);
			images++;
		}
	}
	double dt = bench_now() - t0;
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	/* CPU time, not wall time, is the per-core cost on a shared machine. */
	double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 +
		     (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6 - cpu0;
	long n = images ? images : 1;
	printf("images=%ld seconds=%.4f images_per_s=%.1f ms_per_image=%.3f cpu_ms_per_image=%.3f "
	       "images_per_cpu_s=%.1f peak_rss_kb=%ld errors=%d\n",
	       images, dt, images / dt, dt * 1e3 / (double)n, cpu * 1e3 / (double)n,
	       cpu > 0 ? images / cpu : 0.0, ru.ru_maxrss, errors);
	free(tensor);
	free(scratch);
	return errors ? 1 : 0;
}
