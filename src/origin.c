/* neardup — the originality record of an image (see neardup/origin.h). */
#include "neardup/origin.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <libexif/exif-data.h>

#define MARGIN_TOL 10    /* per channel: JPEG ringing in a solid frame stays within it */
#define FLAT_TOL 2       /* per channel, 3x3 neighbourhood */
#define COLOUR_SPREAD 16 /* a 2x2 block's channels further apart than this: a colour */
#define GREY_COLOUR 0.1f /* below this fraction of colourful blocks: a greyscale picture */
#define NOISE_BINS 4081  /* |3x3 Laplacian-like kernel| on 8-bit luma is at most 16 * 255 */

void nd_origin_init(nd_origin *o)
{
	memset(o, 0, sizeof(*o));
	o->blockiness = 1.0f;
}

/* ---- pixels ---- */

static inline const uint8_t *px(const nd_image *img, int x, int y)
{
	return img->rgb + ((size_t)y * (size_t)img->width + (size_t)x) * 3;
}

static inline int luma(const nd_image *img, int x, int y)
{
	const uint8_t *p = px(img, x, y);
	return (77 * p[0] + 150 * p[1] + 29 * p[2] + 128) >> 8;
}

static inline int near_rgb(const uint8_t *a, const uint8_t *b, int tol)
{
	return abs(a[0] - b[0]) <= tol && abs(a[1] - b[1]) <= tol && abs(a[2] - b[2]) <= tol;
}

/* Row y from x0 to x1 (exclusive) all within MARGIN_TOL of ref. */
static int row_uniform(const nd_image *img, int y, int x0, int x1, const uint8_t *ref)
{
	for (int x = x0; x < x1; x++)
		if (!near_rgb(px(img, x, y), ref, MARGIN_TOL))
			return 0;
	return 1;
}

static int col_uniform(const nd_image *img, int x, int y0, int y1, const uint8_t *ref)
{
	for (int y = y0; y < y1; y++)
		if (!near_rgb(px(img, x, y), ref, MARGIN_TOL))
			return 0;
	return 1;
}

/* The box inside uniform bands along the sides: top and bottom bands span
 * the whole width, left and right bands the rows between them. Each band is
 * at most half the image. */
static void content_box(const nd_image *img, int *bx0, int *by0, int *bx1, int *by1)
{
	int w = img->width, h = img->height, x0 = 0, y0 = 0, x1 = w, y1 = h;
	uint8_t ref[3];
	memcpy(ref, px(img, 0, 0), 3);
	while (y0 < h / 2 && row_uniform(img, y0, 0, w, ref))
		y0++;
	memcpy(ref, px(img, 0, h - 1), 3);
	while (h - y1 < h / 2 && row_uniform(img, y1 - 1, 0, w, ref))
		y1--;
	memcpy(ref, px(img, 0, y0), 3);
	while (x0 < w / 2 && col_uniform(img, x0, y0, y1, ref))
		x0++;
	memcpy(ref, px(img, w - 1, y0), 3);
	while (w - x1 < w / 2 && col_uniform(img, x1 - 1, y0, y1, ref))
		x1--;
	*bx0 = x0;
	*by0 = y0;
	*bx1 = x1;
	*by1 = y1;
}

int nd_origin_from_pixels(const nd_image *img, int scale_denom, nd_origin *o, nd_error *err)
{
	if (!img || !img->rgb || img->width < 1 || img->height < 1)
		return nd_error_set(err, ND_EINVAL, "empty image");
	if (scale_denom != 1 && scale_denom != 2 && scale_denom != 4 && scale_denom != 8)
		return nd_error_set(err, ND_EINVAL, "decoder scale 1/%d unknown", scale_denom);
	int x0, y0, x1, y1;
	content_box(img, &x0, &y0, &x1, &y1);
	if (x1 - x0 < 2 || y1 - y0 < 2) { /* uniform all over: no margins to tell */
		x0 = y0 = 0;
		x1 = img->width;
		y1 = img->height;
	}
	const double area = (double)img->width * img->height;
	o->margin = (float)(1.0 - (double)(x1 - x0) * (y1 - y0) / area);

	double chroma = 0, lsum = 0, lsq = 0, gx = 0, gy = 0, grid = 0, off = 0;
	uint64_t n = 0, nflat = 0, ngx = 0, ngy = 0, ngrid = 0, noff = 0, ninner = 0;
	uint32_t hist[NOISE_BINS], ghist[256];
	memset(hist, 0, sizeof(hist));
	memset(ghist, 0, sizeof(ghist));
	/* the 8x8 grid of the full-size image, in decoded pixels (gone below 2) */
	const int period = 8 / scale_denom;
	for (int y = y0; y < y1; y++) {
		for (int x = x0; x < x1; x++) {
			const uint8_t *p = px(img, x, y);
			int mx = p[0] > p[1] ? p[0] : p[1], mn = p[0] < p[1] ? p[0] : p[1];
			mx = mx > p[2] ? mx : p[2];
			mn = mn < p[2] ? mn : p[2];
			chroma += mx - mn;
			int l = luma(img, x, y);
			lsum += l;
			lsq += (double)l * l;
			n++;
			if (x + 1 < x1) {
				int d = abs(luma(img, x + 1, y) - l);
				gx += d;
				ghist[d]++;
				ngx++;
				if (period >= 2) {
					if ((x + 1) % period == 0) {
						grid += d;
						ngrid++;
					} else {
						off += d;
						noff++;
					}
				}
			}
			if (y + 1 < y1) {
				int d = abs(luma(img, x, y + 1) - l);
				gy += d;
				ghist[d]++;
				ngy++;
				if (period >= 2) {
					if ((y + 1) % period == 0) {
						grid += d;
						ngrid++;
					} else {
						off += d;
						noff++;
					}
				}
			}
			if (x > x0 && x + 1 < x1 && y > y0 && y + 1 < y1) {
				int flat = 1;
				for (int dy = -1; dy <= 1 && flat; dy++)
					for (int dx = -1; dx <= 1 && flat; dx++)
						flat = near_rgb(px(img, x + dx, y + dy), p, FLAT_TOL);
				nflat += (uint64_t)flat;
				/* Immerkaer's noise kernel [1 -2 1; -2 4 -2; 1 -2 1] */
				int v = luma(img, x - 1, y - 1) + luma(img, x + 1, y - 1) +
					luma(img, x - 1, y + 1) + luma(img, x + 1, y + 1) -
					2 * (luma(img, x, y - 1) + luma(img, x - 1, y) + luma(img, x + 1, y) +
					     luma(img, x, y + 1)) +
					4 * l;
				hist[abs(v)]++;
				ninner++;
			}
		}
	}
	o->chroma = (float)(chroma / (double)n);
	/* colour on 2x2 block means: channel noise and chroma subsampling
	 * ringing average out */
	uint64_t blocks = 0, colourful = 0;
	for (int y = y0; y + 1 < y1; y += 2)
		for (int x = x0; x + 1 < x1; x += 2) {
			int c[3];
			for (int k = 0; k < 3; k++)
				c[k] = px(img, x, y)[k] + px(img, x + 1, y)[k] + px(img, x, y + 1)[k] +
				       px(img, x + 1, y + 1)[k];
			int mx = c[0] > c[1] ? c[0] : c[1], mn = c[0] < c[1] ? c[0] : c[1];
			mx = mx > c[2] ? mx : c[2];
			mn = mn < c[2] ? mn : c[2];
			colourful += mx - mn > 4 * COLOUR_SPREAD;
			blocks++;
		}
	o->colour = blocks ? (float)((double)colourful / (double)blocks) : 0.0f;
	o->flat = ninner ? (float)((double)nflat / (double)ninner) : 0.0f;
	double mgx = ngx ? gx / (double)ngx : 0, mgy = ngy ? gy / (double)ngy : 0;
	o->aniso = (float)log2((mgx + 0.05) / (mgy + 0.05));
	double mean = lsum / (double)n, var = lsq / (double)n - mean * mean;
	double sd = var > 0 ? sqrt(var) : 0;
	/* the mean of the smallest 80% of the luma steps: the picture's own
	 * texture, not the few sharp edges a caption or an icon adds */
	double keep = 0.8 * (double)(ngx + ngy), took = 0, tsum = 0;
	for (int v = 0; v < 256 && took < keep; v++) {
		double t = fmin((double)ghist[v], keep - took);
		tsum += t * v;
		took += t;
	}
	double tmean = took > 0 ? tsum / took : 0;
	o->detail = (float)(tmean / (sd + 1.0) / sqrt((double)scale_denom));
	/* the smoothest tenth of the image: texture and edges leave it alone,
	 * while added noise raises it; for Gaussian noise the 10th percentile
	 * of |kernel| is 0.1257 * 6 sigma */
	uint64_t tenth = ninner / 10, acc = 0;
	int p10 = 0;
	if (ninner > 0)
		for (p10 = 0; p10 < NOISE_BINS - 1; p10++) {
			acc += hist[p10];
			if (acc > tenth)
				break;
		}
	o->noise = (float)(p10 / (0.1257 * 6.0));
	double mg = ngrid ? grid / (double)ngrid : 0, mo = noff ? off / (double)noff : 0;
	o->blockiness = (float)((mg + 0.5) / (mo + 0.5));
	ND_ASSERT(isfinite(o->chroma) && isfinite(o->aniso) && isfinite(o->detail) && isfinite(o->noise) &&
		  isfinite(o->blockiness) && o->margin >= 0 && o->margin <= 1 && o->flat >= 0 &&
		  o->flat <= 1 && o->colour >= 0 && o->colour <= 1);
	return 0;
}

int nd_origin_is_grey(const nd_origin *o)
{
	return o->colour < GREY_COLOUR;
}

/* ---- bytes ---- */

/* The IJG library's standard luminance table (ITU T.81, K.1). */
static const uint16_t std_luma[64] = {
	16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55,
	14, 13, 16, 24, 40, 57, 69, 56, 14, 17, 22, 29, 51, 87, 80, 62,
	18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113, 92,
	49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
};

/* Zigzag (file) order -> natural (row-major) order. */
static const uint8_t natural_order[64] = {
	0,  1,  8,  16, 9,  2,  3,  10, 17, 24, 32, 25, 18, 11, 4,  5,  12, 19, 26, 33, 40, 48,
	41, 34, 27, 20, 13, 6,  7,  14, 21, 28, 35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23,
	30, 37, 44, 51, 58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
};

int nd_origin_jpeg_quality(const uint16_t table[64])
{
	uint32_t sum = 0, std = 0, clamped = 0, any = 0;
	for (int k = 0; k < 64; k++) {
		any |= table[k];
		/* entries IJG clamped (to 1, or to 255 for baseline) tell nothing */
		if (table[k] >= 255)
			clamped++;
		else if (table[k] > 1) {
			sum += table[k];
			std += std_luma[natural_order[k]];
		}
	}
	if (!any)
		return 0;
	if (std == 0)
		return clamped ? 1 : 100;
	/* IJG scales the table by s percent: s = 5000 / q below 50, 200 - 2q above */
	double s = 100.0 * sum / std;
	double q = s <= 100.0 ? (200.0 - s) / 2.0 : 5000.0 / s;
	int qi = (int)lround(q);
	return qi < 1 ? 1 : qi > 100 ? 100 : qi;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
	y -= m <= 2;
	const int64_t era = (y >= 0 ? y : y - 399) / 400;
	const unsigned yoe = (unsigned)(y - era * 400);
	const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (int64_t)doe - 719468;
}

/* "YYYY:MM:DD HH:MM:SS" -> seconds, or 0 when malformed or before 1970. */
static int64_t exif_time(const unsigned char *s, size_t n)
{
	static const char shape[] = "dddd:dd:dd dd:dd:dd";
	int v[6] = { 0 }, k = 0;
	if (n < 19)
		return 0;
	for (int i = 0; i < 19; i++) {
		if (shape[i] == 'd') {
			if (s[i] < '0' || s[i] > '9')
				return 0;
			v[k] = v[k] * 10 + (s[i] - '0');
		} else {
			if (s[i] != shape[i] && !(i == 10 && s[i] == 'T'))
				return 0;
			k++;
		}
	}
	if (v[0] < 1970 || v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[3] > 23 || v[4] > 59 ||
	    v[5] > 60)
		return 0;
	return days_from_civil(v[0], (unsigned)v[1], (unsigned)v[2]) * 86400 + v[3] * 3600 + v[4] * 60 +
	       v[5];
}

static int ascii_entry_set(ExifEntry *e)
{
	if (!e || e->format != EXIF_FORMAT_ASCII || !e->data || e->size == 0)
		return 0;
	for (unsigned i = 0; i < e->size; i++)
		if (e->data[i] != 0 && e->data[i] != ' ')
			return 1;
	return 0;
}

static void read_exif(const uint8_t *p, size_t n, nd_origin *o)
{
	if (n < 6 || n > 0xffffffffu)
		return;
	ExifData *ed = exif_data_new();
	if (!ed)
		return;
	exif_data_unset_option(ed, EXIF_DATA_OPTION_FOLLOW_SPECIFICATION);
	exif_data_load_data(ed, p, (unsigned int)n);
	o->camera = ascii_entry_set(exif_content_get_entry(ed->ifd[EXIF_IFD_0], EXIF_TAG_MAKE)) ||
		    ascii_entry_set(exif_content_get_entry(ed->ifd[EXIF_IFD_0], EXIF_TAG_MODEL));
	ExifEntry *e = exif_content_get_entry(ed->ifd[EXIF_IFD_EXIF], EXIF_TAG_DATE_TIME_ORIGINAL);
	if (e && e->format == EXIF_FORMAT_ASCII && e->data)
		o->taken = exif_time(e->data, e->size);
	exif_data_unref(ed);
}

/* Walks the JPEG markers before the first scan: the luminance (first,
 * id 0) quantisation table and the first EXIF block. */
static void jpeg_bytes(const uint8_t *b, size_t len, nd_origin *o)
{
	size_t pos = 2;
	int have_exif = 0;
	while (pos + 4 <= len) {
		if (b[pos] != 0xFF)
			return;
		uint8_t mk = b[pos + 1];
		if (mk == 0xFF) {
			pos++;
			continue;
		}
		if (mk == 0x01 || (mk >= 0xD0 && mk <= 0xD7)) {
			pos += 2;
			continue;
		}
		if (mk == 0xDA || mk == 0xD9)
			return;
		size_t seg = (size_t)b[pos + 2] << 8 | b[pos + 3];
		if (seg < 2 || seg > len - pos - 2)
			return;
		const uint8_t *p = b + pos + 4;
		size_t n = seg - 2;
		if (mk == 0xDB) {
			while (n >= 1) {
				int wide = p[0] >> 4, id = p[0] & 15;
				size_t need = 1 + (wide ? 128 : 64);
				if (n < need)
					break;
				if (id == 0 && o->quality == 0) {
					uint16_t t[64];
					for (int i = 0; i < 64; i++)
						t[i] = wide ? (uint16_t)(p[1 + 2 * i] << 8 | p[2 + 2 * i]) : p[1 + i];
					o->quality = (uint8_t)nd_origin_jpeg_quality(t);
				}
				p += need;
				n -= need;
			}
		} else if (mk == 0xE1 && !have_exif && n >= 6 && !memcmp(p, "Exif\0\0", 6)) {
			have_exif = 1;
			read_exif(p, n, o);
		}
		pos += 2 + seg;
	}
}

void nd_origin_from_bytes(const void *data, size_t len, nd_origin *o)
{
	const uint8_t *b = data;
	if (len >= 4 && b[0] == 0xFF && b[1] == 0xD8)
		jpeg_bytes(b, len, o);
}

/* ---- the score ---- */

float nd_origin_score(const nd_origin *o, uint32_t w, uint32_t h)
{
	double px = (double)(w ? w : 1) * (h ? h : 1);
	double content = 1.0 - o->margin;
	if (!(content > 0.01))
		content = 0.01;
	/* flat area an edit may have added: frames, canvas, rotation corners;
	 * uniform bands along the sides (frames, padding) count more */
	double flat = o->margin + (1.0 - o->margin) * o->flat;
	double s = log2(px * content) - 0.5 * flat - o->margin;
	/* blurred and resampled copies have less detail per pixel */
	s += 0.5 * log2(o->detail + 1e-3);
	/* added noise: the smoothest tenth of the image is no longer smooth
	 * (on a log scale: fine texture also reads as some noise) */
	if (o->noise > 2.0f)
		s -= 0.6 * log2(o->noise - 1.0);
	return isfinite(s) ? (float)s : 0.0f;
}

int nd_origin_lossy(const nd_origin *o)
{
	if (o->quality > 0)
		return o->quality < 50 ? 2 : o->quality < 80 ? 1 : 0;
	/* JPEG blocks in a lossless file: it was a JPEG before */
	return o->blockiness > 1.5f;
}

/* ---- stored form ---- */

struct origin_disk {
	float chroma, margin, flat, aniso, detail, noise, blockiness, colour;
	uint8_t quality, camera;
	uint16_t reserved;
	uint32_t reserved2;
	int64_t taken;
};
_Static_assert(sizeof(struct origin_disk) == ND_ORIGIN_SIZE, "origin record layout");

void nd_origin_encode(const nd_origin *o, uint8_t out[ND_ORIGIN_SIZE])
{
	struct origin_disk d = { o->chroma,     o->margin, o->flat,   o->aniso, o->detail, o->noise,
				 o->blockiness, o->colour, o->quality, o->camera, 0,     0,
				 o->taken };
	memcpy(out, &d, sizeof(d)); /* little-endian hosts only, as every stored value */
}

int nd_origin_decode(const uint8_t in[ND_ORIGIN_SIZE], nd_origin *o, nd_error *err)
{
	struct origin_disk d;
	memcpy(&d, in, sizeof(d));
	const float f[8] = { d.chroma, d.margin, d.flat,       d.aniso,
			     d.detail, d.noise,  d.blockiness, d.colour };
	for (int i = 0; i < 8; i++)
		if (!isfinite(f[i]))
			return nd_error_set(err, ND_ECORRUPT, "originality field %d is not finite", i);
	if (d.chroma < 0 || d.chroma > 255 || d.margin < 0 || d.margin > 1 || d.flat < 0 || d.flat > 1 ||
	    d.detail < 0 || d.noise < 0 || d.blockiness < 0 || d.colour < 0 || d.colour > 1 ||
	    d.quality > 100 || d.camera > 1 ||
	    d.taken < 0)
		return nd_error_set(err, ND_ECORRUPT, "originality record out of range");
	o->chroma = d.chroma;
	o->margin = d.margin;
	o->flat = d.flat;
	o->aniso = d.aniso;
	o->detail = d.detail;
	o->noise = d.noise;
	o->blockiness = d.blockiness;
	o->colour = d.colour;
	o->quality = d.quality;
	o->camera = d.camera;
	o->taken = d.taken;
	return 0;
}
