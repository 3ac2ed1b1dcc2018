/* neardup — PNM decoding (PBM, PGM, PPM; plain P1-P3 and raw P4-P6): a
 * small validating parser of our own.
 *
 * The header (magic, width, height, maxval 1..65535, with # comments) is
 * parsed strictly; samples are scaled to 8 bits as v*255/maxval rounded (so
 * maxval 255 is the identity), 16-bit raw samples are big-endian, and in
 * PBM 1 is black. A sample above maxval is corrupt data; a file that ends
 * early is truncated. Only the first image of a multi-image file is read.
 * Rows are read in order through a small buffer: memory is one row plus
 * the output (and the sink's rows). */
#include "image_impl.h"

#include <stdlib.h>
#include <string.h>

struct rd {
	nd_src *s;
	uint8_t buf[4096];
	size_t n, i;
};

/* 0 at the end of the input */
static int rd_fill(struct rd *r)
{
	if (r->s->fp) {
		r->n = fread(r->buf, 1, sizeof(r->buf), r->s->fp);
	} else {
		size_t k = r->s->len - r->s->pos;
		r->n = k < sizeof(r->buf) ? k : sizeof(r->buf);
		memcpy(r->buf, r->s->data + r->s->pos, r->n);
		r->s->pos += r->n;
	}
	r->i = 0;
	return r->n != 0;
}

static int rd_getc(struct rd *r)
{
	if (r->i == r->n && !rd_fill(r))
		return -1;
	return r->buf[r->i++];
}

/* n bytes into out; 0 when the input ends first */
static int rd_read(struct rd *r, uint8_t *out, size_t n)
{
	while (n > 0) {
		if (r->i == r->n && !rd_fill(r))
			return 0;
		size_t k = r->n - r->i < n ? r->n - r->i : n;
		memcpy(out, r->buf + r->i, k);
		r->i += k;
		out += k;
		n -= k;
	}
	return 1;
}

static int is_space(int c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* next non-negative decimal, skipping whitespace and comments; -1 at end of
 * file, -2 on a bad character or a value over limit. *after gets the
 * character that ended the number. */
static long rd_uint(struct rd *r, long limit, int *after)
{
	int c = rd_getc(r);
	for (;;) {
		if (c == '#') {
			while (c >= 0 && c != '\n' && c != '\r')
				c = rd_getc(r);
		} else if (is_space(c)) {
			c = rd_getc(r);
		} else {
			break;
		}
	}
	if (c < 0)
		return -1;
	if (c < '0' || c > '9')
		return -2;
	long v = 0;
	while (c >= '0' && c <= '9') {
		v = v * 10 + (c - '0');
		if (v > limit)
			return -2;
		c = rd_getc(r);
	}
	*after = c;
	return v;
}

static int decode_pnm(nd_src *src, const nd_image_opts *opts, nd_image *out,
		      nd_image_info *info, nd_error *err)
{
	struct rd *r = calloc(1, sizeof(*r));
	uint8_t *rgb = NULL, *raw = NULL;
	nd_sink sink;
	int rc = 0, sink_live = 0, after = 0;
	if (!r)
		return nd_error_set(err, ND_ENOMEM, "out of memory");
	r->s = src;
	int c0 = rd_getc(r), kind = rd_getc(r) - '0';
	if (c0 != 'P' || kind < 1 || kind > 6) {
		rc = nd_error_set(err, ND_ECORRUPT, "corrupt PNM data: bad magic");
		goto done;
	}
	long w = rd_uint(r, 0x7fffffffL, &after), h = w >= 0 ? rd_uint(r, 0x7fffffffL, &after) : w;
	long maxval = 1;
	if (h >= 0 && kind != 1 && kind != 4)
		maxval = rd_uint(r, 65535, &after);
	if (w == -1 || h == -1 || maxval == -1) {
		rc = nd_error_set(err, ND_ECORRUPT, "truncated PNM data");
		goto done;
	}
	if (w < 0 || h < 0 || maxval <= 0 || !is_space(after)) {
		rc = nd_error_set(err, ND_ECORRUPT, "corrupt PNM data: bad header");
		goto done;
	}
	info->width = (int)(w > 0x7fffffff ? 0x7fffffff : w);
	info->height = (int)(h > 0x7fffffff ? 0x7fffffff : h);
	if ((rc = nd__image_check_limits((uint64_t)w, (uint64_t)h, opts, "PNM", err)))
		goto done;
	int chans = (kind == 3 || kind == 6) ? 3 : 1, wide = maxval > 255;
	size_t rowbytes = kind == 4 ? ((size_t)w + 7) / 8 : (size_t)w * (size_t)chans * (wide ? 2 : 1);
	int f = nd__image_pick_scale((uint64_t)w, (uint64_t)h, 1, opts);
	info->scale_denom = f;
	uint64_t need = nd__image_out_bytes((uint64_t)w, (uint64_t)h, f) + rowbytes + (uint64_t)w * 3 +
			(uint64_t)w / (uint64_t)f * 15 + sizeof(*r) + 65536;
	info->mem_bytes = (size_t)need;
	if (need > opts->max_memory) {
		char what[64];
		snprintf(what, sizeof(what), "PNM %ldx%ld", w, h);
		rc = nd__image_check_memory(need, opts, what, err);
		goto done;
	}
	rgb = malloc((size_t)w * 3);
	raw = malloc(rowbytes);
	if (!rgb || !raw) {
		rc = nd_error_set(err, ND_ENOMEM, "out of memory");
		goto done;
	}
	if ((rc = nd__image_sink_init(&sink, (int)w, (int)h, f, 1, out, err)))
		goto done;
	sink_live = 1;
	for (long y = 0; y < h; y++) {
		if (kind >= 4 && !rd_read(r, raw, rowbytes)) { /* raw: after the header's last whitespace */
			rc = nd_error_set(err, ND_ECORRUPT, "truncated PNM data");
			goto done;
		}
		if (kind == 6 && maxval == 255) { /* the common PPM: the row is RGB already */
			nd__image_sink_put(&sink, raw);
			continue;
		}
		for (long x = 0; x < w; x++) {
			uint8_t *o = rgb + (size_t)x * 3;
			if (kind == 1 || kind == 4) {
				int bit;
				if (kind == 4) {
					bit = (raw[x / 8] >> (7 - x % 8)) & 1;
				} else {
					int c;
					do
						c = rd_getc(r);
					while (is_space(c));
					if (c < 0) {
						rc = nd_error_set(err, ND_ECORRUPT, "truncated PNM data");
						goto done;
					}
					if (c != '0' && c != '1') {
						rc = nd_error_set(err, ND_ECORRUPT, "corrupt PNM data: bad bit");
						goto done;
					}
					bit = c - '0';
				}
				o[0] = o[1] = o[2] = bit ? 0 : 255;
				continue;
			}
			for (int k = 0; k < chans; k++) {
				long v;
				if (kind >= 4) {
					size_t i = ((size_t)x * (size_t)chans + (size_t)k) * (wide ? 2 : 1);
					v = wide ? (long)raw[i] << 8 | raw[i + 1] : raw[i];
				} else {
					v = rd_uint(r, 65535, &after);
					if (v == -1) {
						rc = nd_error_set(err, ND_ECORRUPT, "truncated PNM data");
						goto done;
					}
				}
				if (v < 0 || v > maxval) {
					rc = nd_error_set(err, ND_ECORRUPT, "corrupt PNM data: sample above maxval");
					goto done;
				}
				o[k] = (uint8_t)((v * 255 + maxval / 2) / maxval);
			}
			if (chans == 1)
				o[1] = o[2] = o[0];
		}
		nd__image_sink_put(&sink, rgb);
	}
done:
	if (sink_live)
		nd__image_sink_release(&sink);
	free(rgb);
	free(raw);
	free(r);
	return rc;
}

static int sniff_pnm(const uint8_t *p, size_t len)
{
	/* "P1".."P6" and whitespace: a text starting with "P3" and a letter
	 * is not one */
	if (len < 3) {
		if (len >= 1 && p[0] != 'P')
			return ND__SNIFF_NO;
		if (len >= 2 && (p[1] < '1' || p[1] > '6'))
			return ND__SNIFF_NO;
		return ND__SNIFF_SHORT;
	}
	return p[0] == 'P' && p[1] >= '1' && p[1] <= '6' && is_space(p[2]) ? ND__SNIFF_YES
									  : ND__SNIFF_NO;
}

const nd__image_codec nd__image_codec_pnm = {
	ND_FMT_PNM, "pnm", "PNM", "pnm pbm pgm ppm", sniff_pnm, decode_pnm,
};
