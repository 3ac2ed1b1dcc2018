/* neardup dedup --format html — a self-contained report: one row per group,
 * thumbnails embedded as base64 JPEG (decoded with the library, shrunk with
 * the prep module's area filter, compressed with libjpeg-turbo), sizes,
 * dimensions, similarity to the kept image, the kept image marked. It is
 * also well-formed XML (void elements closed, numeric entities only), so
 * `xmllint --noout` checks it in the tests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jpeglib.h>
#include <time.h>

#include "cli.h"
#include "dedup.h"
#include "neardup/image.h"
#include "neardup/prep.h"
#include "output.h"

#define THUMB 160 /* thumbnails fit in THUMB x THUMB */

/* JPEG bytes of a thumbnail of path into *jpg (malloc'd by libjpeg's
 * memory destination; the caller frees it). Returns 0 or -1. */
static int thumbnail(const char *path, unsigned char **jpg, unsigned long *jlen)
{
	nd_image_opts o;
	nd_image_opts_init(&o);
	o.min_width = THUMB;
	o.min_height = THUMB;
	nd_image img = { 0 };
	float *chw = NULL;
	uint8_t *rgb = NULL;
	int rc = -1;
	if (nd_image_decode_file(path, &o, &img, NULL, NULL))
		return -1;
	nd_prep_params pp;
	double s = (double)THUMB / (img.width > img.height ? img.width : img.height);
	if (s > 1)
		s = 1;
	pp.width = (int)(img.width * s + 0.5);
	pp.height = (int)(img.height * s + 0.5);
	if (pp.width < 1)
		pp.width = 1;
	if (pp.height < 1)
		pp.height = 1;
	for (int c = 0; c < 3; c++) { /* out = pixel value, 0..255 */
		pp.mean[c] = 0.0f;
		pp.std[c] = 1.0f / 255.0f;
	}
	size_t plane = (size_t)pp.width * pp.height;
	chw = malloc(3 * plane * sizeof(float));
	rgb = malloc(3 * plane);
	if (!chw || !rgb || nd_prep_image(&img, &pp, chw, NULL, NULL))
		goto done;
	for (size_t i = 0; i < plane; i++)
		for (int c = 0; c < 3; c++) {
			float v = chw[c * plane + i] + 0.5f;
			rgb[3 * i + c] = (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v);
		}
	struct jpeg_compress_struct cinfo;
	struct jpeg_error_mgr jerr;
	cinfo.err = jpeg_std_error(&jerr); /* errors here can only be bugs: exit is fine */
	jpeg_create_compress(&cinfo);
	*jpg = NULL;
	*jlen = 0;
	jpeg_mem_dest(&cinfo, jpg, jlen);
	cinfo.image_width = (JDIMENSION)pp.width;
	cinfo.image_height = (JDIMENSION)pp.height;
	cinfo.input_components = 3;
	cinfo.in_color_space = JCS_RGB;
	jpeg_set_defaults(&cinfo);
	jpeg_set_quality(&cinfo, 80, TRUE);
	jpeg_start_compress(&cinfo, TRUE);
	while (cinfo.next_scanline < cinfo.image_height) {
		JSAMPROW row = rgb + (size_t)cinfo.next_scanline * 3 * pp.width;
		jpeg_write_scanlines(&cinfo, &row, 1);
	}
	jpeg_finish_compress(&cinfo);
	jpeg_destroy_compress(&cinfo);
	rc = 0;
done:
	nd_image_free(&img);
	free(chw);
	free(rgb);
	return rc;
}

static void human_size(char *buf, size_t cap, uint64_t n)
{
	if (n >= (1u << 20))
		snprintf(buf, cap, "%.1f MiB", n / 1048576.0);
	else if (n >= 1024)
		snprintf(buf, cap, "%.1f KiB", n / 1024.0);
	else
		snprintf(buf, cap, "%llu B", (unsigned long long)n);
}

static const char style[] =
	"body{font-family:sans-serif;margin:1em;background:#f4f4f4;color:#222}"
	"h1{font-size:1.3em}.meta{color:#555}"
	"section{background:#fff;margin:1em 0;padding:.6em;border-radius:6px;"
	"box-shadow:0 1px 3px #0002}"
	"section h2{font-size:1em;margin:0 0 .4em}"
	".row{display:flex;flex-wrap:wrap;gap:.8em}"
	"figure{margin:0;width:180px;padding:6px;border:3px solid #ddd;border-radius:6px}"
	"figure.keep{border-color:#2a9d3a;background:#eefbea}"
	"figure img{display:block;max-width:160px;max-height:160px;margin:auto}"
	".noimg{width:160px;height:100px;display:flex;align-items:center;justify-content:center;"
	"background:#eee;color:#888}"
	"figcaption{font-size:.8em;word-break:break-all;margin-top:4px}"
	".path{color:#666;font-size:.9em}"
	".tag{display:inline-block;font-size:.75em;font-weight:bold;padding:1px 5px;"
	"border-radius:3px;margin-right:3px;color:#fff}"
	".k{background:#2a9d3a}.e{background:#1d6fb8}.p{background:#8a5a00}";

int dd_write_html(FILE *f, const struct dd_result *r, float min_sim, const char *keep_rule)
{
	size_t dups = 0;
	for (size_t i = 0; i < r->n_groups; i++)
		dups += r->groups[i].n - 1;
	fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>"
		   "<title>neardup report</title><style>%s</style></head><body>\n",
		style);
	fprintf(f, "<h1>neardup: %zu groups, %zu duplicates</h1>\n"
		   "<p class=\"meta\">min-sim %.3f, keep rule: %s. The kept image of each group "
		   "is marked KEEP; similarity is to the kept image.</p>\n",
		r->n_groups, dups, min_sim, keep_rule);
	for (size_t i = 0; i < r->n_groups; i++) {
		const struct dd_group *g = &r->groups[i];
		fprintf(f, "<section id=\"g%zu\"><h2>group %zu (%zu images)</h2><div class=\"row\">\n",
			i + 1, i + 1, g->n);
		for (size_t k = 0; k < g->n; k++) {
			const struct dd_node *nd = &r->nodes[g->members[k]];
			unsigned char *jpg = NULL;
			unsigned long jlen = 0;
			fprintf(f, "<figure%s>", k == 0 ? " class=\"keep\"" : "");
			if (thumbnail(nd->path, &jpg, &jlen) == 0) {
				fputs("<img alt=\"\" src=\"data:image/jpeg;base64,", f);
				out_base64(f, jpg, jlen);
				fputs("\"/>", f);
			} else {
				fputs("<div class=\"noimg\">cannot read</div>", f);
			}
			free(jpg);
			char sz[32];
			human_size(sz, sizeof(sz), nd->size);
			fputs("<figcaption>", f);
			if (k == 0)
				fputs("<span class=\"tag k\">KEEP</span>", f);
			if (k > 0 && dd_exact(r, g, k))
				fputs("<span class=\"tag e\">EXACT</span>", f);
			if (nd->protect)
				fputs("<span class=\"tag p\">PROTECTED</span>", f);
			const char *slash = strrchr(nd->path, '/');
			fputs("<br/><b>", f);
			out_html_str(f, slash && slash[1] ? slash + 1 : nd->path);
			fputs("</b><br/><span class=\"path\">", f);
			out_html_str(f, nd->path);
			fputs("</span>", f);
			fprintf(f, "<br/>%u&#215;%u, %s", nd->width, nd->height, sz);
			if (k == 0 && g->reason[0]) {
				fputs("<br/>kept: ", f);
				out_html_str(f, g->reason);
			}
			if (k > 0)
				fprintf(f, "<br/>similarity %.4f (cosine %.4f)", g->sims[k], g->raws[k]);
			fputs("</figcaption></figure>\n", f);
		}
		fputs("</div></section>\n", f);
	}
	if (r->n_groups == 0)
		fputs("<p>No near-duplicates found.</p>\n", f);
	fputs("</body></html>\n", f);
	return ferror(f) ? -1 : 0;
}
