/* neardup CLI — `neardup inspect`: decode + prep a list of files and show
 * format, stored size, EXIF orientation, the DCT/box reduction chosen for the
 * model size, the decoded size, timings and the tensor's per-channel means. */
#include "cli/inspect.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "neardup/image.h"
#include "neardup/prep.h"
#include "cli/cli.h"

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
}

static void usage(FILE *out)
{
	fputs("usage: neardup inspect [--size WxH] [--full] [-q] FILE...\n"
	      "  decodes and preprocesses each file as ingest would and prints what it found\n"
	      "  --size WxH  model input size (default 224x224)\n"
	      "  --full      decode at full size (no DCT/box reduction)\n"
	      "  -q          only the summary line and errors\n",
	      out);
}

int nd_cli_inspect(int argc, char **argv)
{
	/* ImageNet statistics: what the CNN models expect unless they say
	 * otherwise; inspect only reports the resulting means. */
	nd_prep_params p = { 224, 224, { 0.485f, 0.456f, 0.406f }, { 0.229f, 0.224f, 0.225f } };
	int full = 0, quiet = 0, i, nfiles = 0, nok = 0, nerr = 0;
	double t_dec = 0, t_prep = 0;
	float *tensor = NULL;
	void *scratch = NULL;
	nd_image_opts opts;

	for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1]; i++) {
		if (!strcmp(argv[i], "--")) {
			i++;
			break;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--full")) {
			full = 1;
		} else if (!strcmp(argv[i], "-q")) {
			quiet = 1;
		} else if (!strcmp(argv[i], "--size") && i + 1 < argc) {
			if (sscanf(argv[++i], "%dx%d", &p.width, &p.height) != 2 || p.width < 1 ||
			    p.height < 1 || p.width > 8192 || p.height > 8192) {
				fprintf(stderr, "neardup: invalid --size '%s' (want WxH)\n", argv[i]);
				return 2;
			}
		} else {
			fprintf(stderr, "neardup: unknown option '%s'\n", argv[i]);
			usage(stderr);
			return 2;
		}
	}
	if (i >= argc) {
		usage(stderr);
		return 2;
	}
	nd_image_opts_init(&opts);
	if (!full) {
		opts.min_width = p.width;
		opts.min_height = p.height;
	}
	tensor = malloc(sizeof(float) * 3 * (size_t)p.width * (size_t)p.height);
	scratch = malloc(nd_prep_scratch_size(&p));
	if (!tensor || !scratch) {
		fprintf(stderr, "neardup: out of memory\n");
		free(tensor);
		free(scratch);
		return 2;
	}
	for (; i < argc; i++) {
		const char *path = argv[i];
		nd_image img;
		nd_image_info info;
		nd_error err;
		double t0 = now_ms(), t1, t2;
		nfiles++;
		if (nd_image_decode_file(path, &opts, &img, &info, &err) != 0) {
			cli_err_path("cannot decode", path, err.msg);
			nerr++;
			continue;
		}
		t1 = now_ms();
		if (nd_prep_image(&img, &p, tensor, scratch, &err) != 0) {
			cli_err_path("cannot preprocess", path, err.msg);
			nd_image_free(&img);
			nerr++;
			continue;
		}
		t2 = now_ms();
		t_dec += t1 - t0;
		t_prep += t2 - t1;
		nok++;
		if (!quiet) {
			size_t plane = (size_t)p.width * (size_t)p.height;
			double m[3] = { 0, 0, 0 };
			for (int c = 0; c < 3; c++) {
				for (size_t k = 0; k < plane; k++)
					m[c] += tensor[c * plane + k];
				m[c] /= (double)plane;
			}
			printf("%s\t%s %dx%d orient %d scale 1/%d -> %dx%d\tdecode %.2f ms prep %.2f ms"
			       "\tmean %+.3f %+.3f %+.3f\n",
			       path, nd_image_format_name(info.format), info.width, info.height,
			       info.orientation, info.scale_denom, img.width, img.height, t1 - t0, t2 - t1,
			       m[0], m[1], m[2]);
		}
		nd_image_free(&img);
	}
	printf("%d files: %d decoded, %d skipped; decode %.1f ms + prep %.1f ms in total (%.0f images/s)\n",
	       nfiles, nok, nerr, t_dec, t_prep, nok ? nok * 1000.0 / (t_dec + t_prep) : 0.0);
	free(tensor);
	free(scratch);
	return nerr ? 1 : 0;
}
