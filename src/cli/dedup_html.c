/* neardup dedup --format html — the review page: one self-contained file
 * (no server, no network) on which the user marks files, compares them and
 * exports the decisions for `neardup apply` (apply.c).
 *
 * The page is the script and style sheet of src/cli/report/ (embedded by
 * report_assets.c) plus the groups as one JSON document in a
 * <script type="application/json"> element; the script renders the cards
 * from it a screenful at a time, so thousands of groups do not freeze the
 * browser. Per file the JSON holds what the card shows (thumbnail as a
 * data: URI, dimensions, size, format, date, path, similarity) and what the
 * exported decision must carry for apply to check it against the index:
 * path (with path_b64, the exact bytes, when the name is not UTF-8),
 * content hash, size, device and inode. The document is also well-formed
 * XML (the JSON escapes '<', '>' and '&'; script and style are CDATA), so
 * `xmllint --noout` checks it in the tests. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jpeglib.h>
#include <libexif/exif-data.h>

#include "cli.h"
#include "dedup.h"
#include "neardup/image.h"
#include "neardup/index.h"
#include "neardup/keep.h"
#include "neardup/prep.h"
#include "output.h"

#define THUMB 480 /* thumbnails fit in THUMB x THUMB: crops and recompression stay visible */

extern const char nd_review_js[], nd_review_css[]; /* report_assets.c */

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
	jpeg_set_quality(&cinfo, 82, TRUE);
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

/* A JSON string that may sit inside a <script> element of an HTML or XML
 * document: '<', '>' and '&' are escaped too, and bytes that are not UTF-8
 * become U+FFFD (the exact bytes go to path_b64). Returns 1 when s is not
 * valid UTF-8. */
static int json_str(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	int lossy = 0;
	putc('"', f);
	for (size_t i = 0; i < n;) {
		unsigned char c = p[i];
		size_t len = out_utf8_len(p + i, n - i);
		if (len == 0) {
			fputs("\\ufffd", f);
			lossy = 1;
			i++;
			continue;
		}
		if (len > 1) {
			fwrite(p + i, 1, len, f);
			i += len;
			continue;
		}
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20 || c == 0x7f || c == '<' || c == '>' || c == '&')
			fprintf(f, "\\u%04x", c);
		else
			putc(c, f);
		i++;
	}
	putc('"', f);
	return lossy;
}

static void hex(FILE *f, const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%02x", b[i]);
}

/* The file's format by its first bytes, as the decoders tell it, in
 * capitals ("JPEG", "WEBP"; "UNKNOWN"). */
static void format_name(const char *path, char *buf, size_t cap)
{
	unsigned char m[ND_IMAGE_SNIFF_BYTES];
	FILE *f = fopen(path, "rb");
	size_t n = f ? fread(m, 1, sizeof(m), f) : 0;
	if (f)
		fclose(f);
	const char *name = nd_image_format_name(n ? nd_image_sniff(m, n) : ND_FMT_UNKNOWN);
	size_t i = 0;
	for (; name[i] && i + 1 < cap; i++)
		buf[i] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 'a' + 'A' : name[i]);
	buf[i] = 0;
}

/* "2024-05-01 12:30:00" into buf: the EXIF capture date (DateTimeOriginal,
 * else DateTime) when the file has one, else the indexed mtime (local
 * time). Returns "EXIF" or "mtime", the source. */
static const char *file_date(const struct dd_node *nd, char *buf, size_t cap)
{
	ExifData *ed = exif_data_new_from_file(nd->path);
	buf[0] = 0;
	if (ed) {
		static const ExifTag tags[] = { EXIF_TAG_DATE_TIME_ORIGINAL, EXIF_TAG_DATE_TIME };
		for (size_t i = 0; i < 2 && !buf[0]; i++) {
			ExifEntry *e = exif_data_get_entry(ed, tags[i]);
			int y, mo, d, h, mi, s;
			if (e && e->format == EXIF_FORMAT_ASCII && e->size >= 19 && e->data &&
			    sscanf((const char *)e->data, "%4d:%2d:%2d %2d:%2d:%2d", &y, &mo, &d, &h, &mi, &s) == 6 &&
			    y > 1800 && mo >= 1 && mo <= 12 && d >= 1 && d <= 31 && h < 25 && mi < 60 && s < 61)
				snprintf(buf, cap, "%04d-%02d-%02d %02d:%02d:%02d", y % 10000, mo % 100, d % 100, h % 100, mi % 100,
					 s % 100);
		}
		exif_data_unref(ed);
		if (buf[0])
			return "EXIF";
	}
	time_t t = (time_t)(nd->mtime_ns / 1000000000);
	struct tm tm;
	if (localtime_r(&t, &tm))
		strftime(buf, cap, "%Y-%m-%d %H:%M:%S", &tm);
	return "mtime";
}

/* Why members[0] was kept: dedup's reason when it gave one, else what
 * decided by the keep rule
 * (nd_keep_cmp's phrase), against each other member, each phrase once
 * ("colour, less edited, older file"); the rule's name when nothing did. */
static void keep_reason(const struct dd_result *r, const struct dd_group *g, const char *rule, char *buf,
			size_t cap)
{
	const struct dd_node *k = &r->nodes[g->members[0]];
	nd_keep_rule kr;
	size_t len = 0;
	buf[0] = 0;
	if (g->reason[0]) { /* dedup's own (nd_keep_reason) */
		snprintf(buf, cap, "%s", g->reason);
		return;
	}
	if (k->protect) {
		snprintf(buf, cap, "protected");
		return;
	}
	if (nd_keep_rule_parse(rule, &kr) == 0) {
		nd_keep_item ki = { k->id, k->width, k->height, k->size, k->mtime_ns, k->path,
				    k->has_origin ? &k->origin : NULL };
		for (size_t i = 1; i < g->n; i++) {
			const struct dd_node *m = &r->nodes[g->members[i]];
			nd_keep_item mi = { m->id, m->width, m->height, m->size, m->mtime_ns, m->path,
					    m->has_origin ? &m->origin : NULL };
			const char *why = NULL;
			nd_keep_cmp(kr, &ki, &mi, &why);
			if (!why || !*why || m->protect)
				continue;
			/* each phrase once */
			const char *p = buf;
			size_t wl = strlen(why);
			int seen = 0;
			while (!seen && (p = strstr(p, why)) != NULL) {
				seen = (p == buf || p[-1] == ' ') && (p[wl] == ',' || p[wl] == 0);
				p += wl;
			}
			if (!seen && len + wl + 3 < cap)
				len += (size_t)snprintf(buf + len, cap - len, "%s%s", len ? ", " : "", why);
		}
	}
	if (!buf[0])
		snprintf(buf, cap, "keep rule %s", rule);
}

/* The index's identity, which apply checks the decisions against. */
static void write_index(FILE *f, const struct dd_html_opts *o)
{
	char *abs = realpath(o->index_dir, NULL);
	nd_meta m;
	nd_error err;
	nd_error_clear(&err);
	fputs("\"index\":{\"path\":", f);
	json_str(f, abs ? abs : o->index_dir);
	free(abs);
	if (o->ix && nd_index_meta(o->ix, &m, &err) == 0) {
		uint8_t b[8];
		fputs(",\"model\":", f);
		json_str(f, m.model_name);
		for (int i = 0; i < 8; i++)
			b[i] = (uint8_t)(m.model_checksum >> (56 - 8 * i));
		fputs(",\"model_checksum\":\"", f);
		hex(f, b, 8);
		for (int i = 0; i < 8; i++)
			b[i] = (uint8_t)(m.seed >> (56 - 8 * i));
		fputs("\",\"seed\":\"", f);
		hex(f, b, 8);
		fprintf(f, "\",\"dim\":%u,\"images\":%llu", m.dim, (unsigned long long)m.n_images);
	}
	putc('}', f);
}

static void write_file(FILE *f, const struct dd_result *r, const struct dd_group *g, size_t k)
{
	const struct dd_node *nd = &r->nodes[g->members[k]];
	const char *slash = strrchr(nd->path, '/');
	char date[40];
	const char *date_src = file_date(nd, date, sizeof(date));
	fputs("{\"path\":", f);
	if (json_str(f, nd->path)) {
		fputs(",\"path_b64\":\"", f);
		out_base64(f, (const uint8_t *)nd->path, strlen(nd->path));
		putc('"', f);
	}
	fputs(",\"name\":", f);
	json_str(f, slash && slash[1] ? slash + 1 : nd->path);
	fputs(",\"hash\":\"", f);
	hex(f, nd->hash, 16);
	fprintf(f, "\",\"size\":%llu", (unsigned long long)nd->size);
	if (nd->dev || nd->ino)
		/* strings: a JavaScript number loses digits above 2^53 */
		fprintf(f, ",\"dev\":\"%llu\",\"ino\":\"%llu\"", (unsigned long long)nd->dev,
			(unsigned long long)nd->ino);
	char fmt[16];
	format_name(nd->path, fmt, sizeof(fmt));
	fprintf(f, ",\"w\":%u,\"h\":%u,\"format\":", nd->width, nd->height);
	json_str(f, fmt);
	fputs(",\"date\":", f);
	json_str(f, date);
	fprintf(f, ",\"date_src\":\"%s\",\"sim\":%.4f,\"raw\":%.4f,\"exact\":%s,\"protect\":%s", date_src,
		k ? g->sims[k] : 1.0, k ? g->raws[k] : 1.0, k && dd_exact(r, g, k) ? "true" : "false",
		nd->protect ? "true" : "false");
	unsigned char *jpg = NULL;
	unsigned long jlen = 0;
	if (thumbnail(nd->path, &jpg, &jlen) == 0) {
		fputs(",\"thumb\":\"data:image/jpeg;base64,", f);
		out_base64(f, jpg, jlen);
		putc('"', f);
	}
	free(jpg);
	putc('}', f);
}

int dd_write_html(FILE *f, const struct dd_result *r, const struct dd_html_opts *o)
{
	static const char *const action_name[] = { "report", "hardlink", "move", "delete", "trash" };
	size_t dups = 0;
	for (size_t i = 0; i < r->n_groups; i++)
		dups += r->groups[i].n - 1;
	fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"/>"
		   "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\"/>"
		   "<title>neardup review: %zu groups</title>\n<style>/*<![CDATA[*/\n%s/*]]>*/</style></head>\n"
		   "<body>\n<noscript><p>This page needs JavaScript to show the groups.</p></noscript>\n",
		r->n_groups, nd_review_css);
	fputs("<script type=\"application/json\" id=\"nd-data\">{\"format\":\"neardup-decisions\","
	      "\"version\":1,", f);
	write_index(f, o);
	char *cwd = getcwd(NULL, 0);
	if (cwd) {
		fputs(",\"cwd\":", f);
		json_str(f, cwd);
		free(cwd);
	}
	char when[40] = "";
	time_t now = time(NULL);
	struct tm tm;
	if (localtime_r(&now, &tm))
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	fprintf(f, ",\"created\":\"%s\",\"min_sim\":%.4f,\"score\":\"%s\",\"keep_rule\":", when, o->min_sim,
		o->raw ? "cosine" : "normalized");
	json_str(f, o->keep_rule);
	fprintf(f, ",\"action\":\"%s\",\"duplicates\":%zu,\"groups\":[", action_name[o->action], dups);
	for (size_t i = 0; i < r->n_groups; i++) {
		const struct dd_group *g = &r->groups[i];
		char reason[160];
		keep_reason(r, g, o->keep_rule, reason, sizeof(reason));
		fprintf(f, "%s\n{\"group\":%zu,\"reason\":", i ? "," : "", i + 1);
		json_str(f, reason);
		fputs(",\"files\":[", f);
		for (size_t k = 0; k < g->n; k++) {
			if (k)
				putc(',', f);
			write_file(f, r, g, k);
		}
		fputs("]}", f);
	}
	fprintf(f, "]}</script>\n<script>/*<![CDATA[*/\n%s/*]]>*/</script>\n</body></html>\n", nd_review_js);
	return ferror(f) ? -1 : 0;
}
