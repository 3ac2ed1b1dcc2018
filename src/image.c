/* neardup — image decoding: the codec table and format detection, and the
 * file/memory entry points. Each codec lives in image_<format>.c (see
 * image_impl.h for how to add one); the limits and the row sink they share
 * in image_sink.c, EXIF parsing in image_exif.c. */
#include "image_impl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

void nd_image_opts_init(nd_image_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->max_width = 65535;
	o->max_height = 65535;
	o->max_pixels = 100000000u;
	o->max_scans = 100;
	o->max_memory = (size_t)64 << 20;
	o->png_chunk_malloc_max = (size_t)8 << 20;
	o->png_chunk_cache_max = 1000;
	o->min_width = 0;
	o->min_height = 0;
	o->background[0] = o->background[1] = o->background[2] = 128;
}

/* The codec table: one row per format, in sniffing order. */
static const nd__image_codec *const codecs[] = {
	&nd__image_codec_jpeg,
	&nd__image_codec_png,
	&nd__image_codec_webp,
	&nd__image_codec_gif,
	&nd__image_codec_tiff,
	&nd__image_codec_bmp,
	&nd__image_codec_pnm,
	&nd__image_codec_heif,
	&nd__image_codec_avif,
};
#define NCODECS (sizeof(codecs) / sizeof(codecs[0]))

static const nd__image_codec *codec_of(nd_image_format fmt)
{
	for (size_t i = 0; i < NCODECS; i++)
		if (codecs[i]->format == fmt)
			return codecs[i];
	return NULL;
}

nd_image_format nd_image_sniff(const void *data, size_t len)
{
	if (!data)
		return ND_FMT_UNKNOWN;
	if (len > ND_IMAGE_SNIFF_BYTES)
		len = ND_IMAGE_SNIFF_BYTES;
	for (size_t i = 0; i < NCODECS; i++)
		if (codecs[i]->sniff(data, len) == ND__SNIFF_YES)
			return codecs[i]->format;
	return ND_FMT_UNKNOWN;
}

const char *nd_image_format_name(nd_image_format fmt)
{
	const nd__image_codec *c = codec_of(fmt);
	return c ? c->name : "unknown";
}

nd_image_format nd_image_format_from_name(const char *path)
{
	const char *slash = strrchr(path, '/');
	const char *dot = strrchr(slash ? slash + 1 : path, '.');
	size_t n;
	if (!dot || !dot[1])
		return ND_FMT_UNKNOWN;
	dot++;
	n = strlen(dot);
	for (size_t i = 0; i < NCODECS; i++) {
		const char *e = codecs[i]->exts;
		while (*e) {
			size_t k = strcspn(e, " ");
			if (k == n && !strncasecmp(e, dot, n))
				return codecs[i]->format;
			e += k;
			e += strspn(e, " ");
		}
	}
	return ND_FMT_UNKNOWN;
}

/* ---- entry points ---- */

/* errno text without the non-thread-safe strerror (XSI strerror_r). */
static const char *errtext(int e, char *buf, size_t n)
{
	if (strerror_r(e, buf, n) != 0)
		snprintf(buf, n, "error %d", e);
	return buf;
}


static int decode_src(nd_src *src, nd_image_format fmt, const nd_image_opts *opts,
		      nd_image *out, nd_image_info *info, nd_error *err)
{
	nd_image_opts defaults;
	nd_image_info dummy;
	const nd__image_codec *c = codec_of(fmt);
	int rc;
	if (!opts) {
		nd_image_opts_init(&defaults);
		opts = &defaults;
	}
	if (!info)
		info = &dummy;
	memset(info, 0, sizeof(*info));
	info->format = fmt;
	info->orientation = 1;
	info->scale_denom = 1;
	if (c)
		rc = c->decode(src, opts, out, info, err);
	else
		rc = nd_error_set(err, ND_EFORMAT, "not a supported image format");
	if (rc)
		nd_image_free(out);
	return rc;
}

/* A file that ends inside a format's signature is a truncated file of that
 * format, not an unknown one. */
static int short_input(const uint8_t *p, size_t len, nd_error *err)
{
	if (len == 0)
		return nd_error_set(err, ND_EFORMAT, "empty file");
	if (len > ND_IMAGE_SNIFF_BYTES)
		len = ND_IMAGE_SNIFF_BYTES;
	for (size_t i = 0; i < NCODECS; i++)
		if (codecs[i]->sniff(p, len) == ND__SNIFF_SHORT)
			return nd_error_set(err, ND_ECORRUPT, "truncated %s data", codecs[i]->label);
	return nd_error_set(err, ND_EFORMAT, "not a supported image format");
}

int nd_image_decode_mem(const void *data, size_t len, const nd_image_opts *opts,
			nd_image *out, nd_image_info *info, nd_error *err)
{
	nd_src src = { .data = data, .len = len };
	nd_image_format fmt;
	ND_ASSERT(out != NULL);
	memset(out, 0, sizeof(*out));
	nd_error_clear(err);
	if (!data && len)
		return nd_error_set(err, ND_EINVAL, "no data");
	fmt = nd_image_sniff(data, len);
	if (fmt == ND_FMT_UNKNOWN)
		return short_input(data, len, err);
	return decode_src(&src, fmt, opts, out, info, err);
}

int nd_image_decode_file(const char *path, const nd_image_opts *opts,
			 nd_image *out, nd_image_info *info, nd_error *err)
{
	uint8_t head[ND_IMAGE_SNIFF_BYTES];
	size_t n;
	struct stat st;
	nd_src src = { 0 };
	nd_image_format fmt;
	char ebuf[128];
	int rc;
	ND_ASSERT(out != NULL && path != NULL);
	memset(out, 0, sizeof(*out));
	nd_error_clear(err);
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return nd_error_set(err, ND_EIO, "%s", errtext(errno, ebuf, sizeof(ebuf)));
	if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
		rc = nd_error_set(err, ND_EIO, "is a directory");
		goto done;
	}
	n = fread(head, 1, sizeof(head), fp);
	if (n < sizeof(head) && ferror(fp)) {
		rc = nd_error_set(err, ND_EIO, "%s", errtext(errno, ebuf, sizeof(ebuf)));
		goto done;
	}
	fmt = nd_image_sniff(head, n);
	if (fmt == ND_FMT_UNKNOWN) {
		rc = short_input(head, n, err);
		goto done;
	}
	if (fseek(fp, 0, SEEK_SET) != 0) {
		rc = nd_error_set(err, ND_EIO, "cannot seek: %s", errtext(errno, ebuf, sizeof(ebuf)));
		goto done;
	}
	src.fp = fp;
	rc = decode_src(&src, fmt, opts, out, info, err);
done:
	fclose(fp);
	return rc;
}
