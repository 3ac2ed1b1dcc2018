/* bench_memory — writes decompression-bomb images for the memory benchmark
 * (bench/suite_memory.sh), and decodes files reporting the decoder's memory
 * bound and the process's peak RSS.
 *
 *   bench_memory make DIR N     N files of each kind into DIR/<kind>/
 *   bench_memory decode FILE... one line per file: rc, mem_bytes, message;
 *                               then peak_rss_kb=...
 *
 * The kinds (10000 x 10000 unless stated, a few MB on disk, a smooth pattern that
 * differs per copy so that ingest decodes every one):
 *   progressive  progressive JPEG, 4:4:4 (libjpeg must keep 600 MB of DCT
 *                coefficients whatever the output scale)
 *   multiscan    sequential JPEG with one scan per component (the same)
 *   interlaced   Adam7 PNG, 16-bit RGB (a de-interlacing decoder holds the
 *                whole image)
 *   baseline     baseline JPEG, 4:2:0 (streams; the control)
 *   progressive_ok  progressive JPEG 5400x3600 (19 MP), 4:2:0: just under
 *                the default 64 MiB bound, about the largest such file
 *                accepted
 * Rows are generated on the fly; the encoders' own memory is not measured.
 * Files already there are kept. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <jpeglib.h>
#include <png.h>

#include "neardup/image.h"

#define SIDE 10000

static void fill_row(uint8_t *row, int w, int y, int seed, int comps)
{
	for (int x = 0; x < w; x++) {
		uint8_t *p = row + (size_t)x * comps;
		p[0] = (uint8_t)((x * 255) / w + seed * 37);
		p[1] = (uint8_t)((y * 255) / SIDE);
		p[2] = (uint8_t)(((x + y) / 64 + seed) & 0xff);
	}
}

static int write_jpeg(const char *path, int w, int h, int seed, int progressive, int multiscan,
		      int sub444)
{
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr jerr;
	static jpeg_scan_info scans[3];
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	uint8_t *row = malloc((size_t)w * 3);
	c.err = jpeg_std_error(&jerr);
	jpeg_create_compress(&c);
	jpeg_stdio_dest(&c, f);
	c.image_width = (JDIMENSION)w;
	c.image_height = (JDIMENSION)h;
	c.input_components = 3;
	c.in_color_space = JCS_RGB;
	jpeg_set_defaults(&c);
	jpeg_set_quality(&c, 75, TRUE);
	if (sub444)
		for (int i = 0; i < 3; i++)
			c.comp_info[i].h_samp_factor = c.comp_info[i].v_samp_factor = 1;
	if (progressive)
		jpeg_simple_progression(&c);
	if (multiscan) {
		for (int i = 0; i < 3; i++)
			scans[i] = (jpeg_scan_info){ 1, { i, 0, 0, 0 }, 0, 63, 0, 0 };
		c.scan_info = scans;
		c.num_scans = 3;
	}
	jpeg_start_compress(&c, TRUE);
	while (c.next_scanline < c.image_height) {
		fill_row(row, w, (int)c.next_scanline, seed, 3);
		JSAMPROW r = row;
		jpeg_write_scanlines(&c, &r, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	free(row);
	return fclose(f);
}

static int write_png16(const char *path, int seed)
{
	FILE *f = fopen(path, "wb");
	if (!f)
		return -1;
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	png_infop info = png_create_info_struct(png);
	uint8_t *row8 = malloc((size_t)SIDE * 3), *row = malloc((size_t)SIDE * 6);
	if (setjmp(png_jmpbuf(png))) {
		fclose(f);
		return -1;
	}
	png_init_io(png, f);
	png_set_IHDR(png, info, SIDE, SIDE, 16, PNG_COLOR_TYPE_RGB, PNG_INTERLACE_ADAM7,
		     PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_set_compression_level(png, 6);
	png_write_info(png, info);
	int passes = png_set_interlace_handling(png);
	for (int pass = 0; pass < passes; pass++)
		for (int y = 0; y < SIDE; y++) {
			fill_row(row8, SIDE, y, seed, 3);
			for (size_t i = 0; i < (size_t)SIDE * 3; i++) { /* big-endian 16-bit */
				row[2 * i] = row8[i];
				row[2 * i + 1] = (uint8_t)(row8[i] ^ 0x5a);
			}
			png_write_row(png, row);
		}
	png_write_end(png, NULL);
	png_destroy_write_struct(&png, &info);
	free(row8);
	free(row);
	return fclose(f);
}

static int make(const char *dir, int n)
{
	static const char *kinds[] = { "progressive", "multiscan", "interlaced", "baseline",
				       "progressive_ok" };
	char path[4096];
	mkdir(dir, 0755);
	for (int k = 0; k < 5; k++) {
		snprintf(path, sizeof(path), "%s/%s", dir, kinds[k]);
		if (mkdir(path, 0755) != 0 && errno != EEXIST)
			return -1;
		for (int i = 0; i < n; i++) {
			int rc;
			struct stat st;
			snprintf(path, sizeof(path), "%s/%s/%s%d.%s", dir, kinds[k], kinds[k], i,
				 k == 2 ? "png" : "jpg");
			if (stat(path, &st) == 0)
				continue;
			if (k == 2)
				rc = write_png16(path, i);
			else if (k == 4)
				rc = write_jpeg(path, 5400, 3600, i, 1, 0, 0);
			else
				rc = write_jpeg(path, SIDE, SIDE, i, k == 0, k == 1, k != 3);
			if (rc) {
				fprintf(stderr, "bench_memory: cannot write %s\n", path);
				return -1;
			}
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 4 && !strcmp(argv[1], "make"))
		return make(argv[2], atoi(argv[3])) ? 1 : 0;
	if (argc >= 3 && !strcmp(argv[1], "decode")) {
		nd_image_opts o;
		nd_image_opts_init(&o);
		o.min_width = o.min_height = 224;
		for (int i = 2; i < argc; i++) {
			nd_image img = { 0 };
			nd_image_info info = { 0 };
			nd_error err;
			int rc = nd_image_decode_file(argv[i], &o, &img, &info, &err);
			printf("%s rc=%d mem_bytes=%zu %s\n", argv[i], rc, info.mem_bytes,
			       rc ? err.msg : "");
			nd_image_free(&img);
		}
		struct rusage ru;
		getrusage(RUSAGE_SELF, &ru);
		printf("peak_rss_kb=%ld\n", ru.ru_maxrss);
		return 0;
	}
	fprintf(stderr, "usage: bench_memory make DIR N | bench_memory decode FILE...\n");
	return 2;
}
