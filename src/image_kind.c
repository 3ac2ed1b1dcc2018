/* neardup — what a file that is not a decodable image is, from its first
 * bytes: so that ingest can say what it skipped ("ignored 3: 2 text,
 * 1 video"). A short list of well-known signatures, then a UTF-8 check for
 * text; anything else is "other". */
#include "image_impl.h"

#include <string.h>

static int at(const uint8_t *p, size_t len, size_t off, const char *sig, size_t n)
{
	return len >= off + n && !memcmp(p + off, sig, n);
}

/* valid UTF-8 without NUL or other control characters than whitespace;
 * a multi-byte sequence cut by the end of the sample counts as valid */
static int looks_like_text(const uint8_t *p, size_t len)
{
	size_t i = 0;
	if (len >= 3 && p[0] == 0xef && p[1] == 0xbb && p[2] == 0xbf)
		i = 3; /* byte-order mark */
	while (i < len) {
		uint8_t c = p[i];
		if (c < 0x80) {
			if (c < 0x20 && c != '\n' && c != '\r' && c != '\t' && c != '\f' && c != 0x1b)
				return 0;
			if (c == 0x7f)
				return 0;
			i++;
			continue;
		}
		int n = (c & 0xe0) == 0xc0 ? 1 : (c & 0xf0) == 0xe0 ? 2 : (c & 0xf8) == 0xf0 ? 3 : -1;
		if (n < 0 || c == 0xc0 || c == 0xc1)
			return 0;
		for (int k = 1; k <= n; k++) {
			if (i + (size_t)k >= len)
				return 1;
			if ((p[i + (size_t)k] & 0xc0) != 0x80)
				return 0;
		}
		i += (size_t)n + 1;
	}
	return 1;
}

nd_file_kind nd_file_kind_of(const void *data, size_t len)
{
	const uint8_t *p = data;
	if (len == 0)
		return ND_KIND_EMPTY;
	if (nd_image_sniff(p, len) != ND_FMT_UNKNOWN)
		return ND_KIND_IMAGE;
	if (len > 4096)
		len = 4096;
	/* ISO base media (MP4, MOV, 3GP, M4A) */
	if (at(p, len, 4, "ftyp", 4)) {
		if (at(p, len, 8, "M4A ", 4) || at(p, len, 8, "M4B ", 4))
			return ND_KIND_AUDIO;
		if (at(p, len, 8, "jp2 ", 4) || at(p, len, 8, "jxl ", 4) || at(p, len, 8, "crx ", 4))
			return ND_KIND_IMAGE_OTHER;
		return ND_KIND_VIDEO;
	}
	if (at(p, len, 0, "\x1a\x45\xdf\xa3", 4) || at(p, len, 0, "FLV\x01", 4) ||
	    at(p, len, 0, "\x00\x00\x01\xba", 4) || at(p, len, 0, "\x00\x00\x01\xb3", 4) ||
	    at(p, len, 0, "\x30\x26\xb2\x75", 4) || (at(p, len, 0, "RIFF", 4) && at(p, len, 8, "AVI ", 4)) ||
	    (len > 188 && p[0] == 0x47 && p[188] == 0x47))
		return ND_KIND_VIDEO;
	if (at(p, len, 0, "ID3", 3) || at(p, len, 0, "fLaC", 4) || at(p, len, 0, "OggS", 4) ||
	    (at(p, len, 0, "RIFF", 4) && at(p, len, 8, "WAVE", 4)) || at(p, len, 0, "FORM", 4) ||
	    (len >= 2 && p[0] == 0xff && (p[1] & 0xf6) == 0xf2))
		return ND_KIND_AUDIO;
	if (at(p, len, 0, "%PDF", 4) || at(p, len, 0, "\xd0\xcf\x11\xe0", 4) ||
	    at(p, len, 0, "{\\rtf", 5) || at(p, len, 0, "%!PS", 4))
		return ND_KIND_DOCUMENT;
	if (at(p, len, 0, "PK\x03\x04", 4) || at(p, len, 0, "\x1f\x8b", 2) || at(p, len, 0, "BZh", 3) ||
	    at(p, len, 0, "\xfd" "7zXZ", 5) || at(p, len, 0, "7z\xbc\xaf", 4) ||
	    at(p, len, 0, "Rar!", 4) || at(p, len, 0, "\x28\xb5\x2f\xfd", 4) ||
	    at(p, len, 257, "ustar", 5))
		return ND_KIND_ARCHIVE;
	if (at(p, len, 0, "8BPS", 4) || at(p, len, 0, "\x00\x00\x01\x00", 4) ||
	    at(p, len, 0, "\x00\x00\x02\x00", 4) || at(p, len, 0, "\xff\x0a", 2) ||
	    at(p, len, 0, "\x00\x00\x00\x0cjXL ", 8) || at(p, len, 0, "\x00\x00\x00\x0cjP  ", 8) ||
	    at(p, len, 0, "qoif", 4) || at(p, len, 0, "DDS ", 4) || at(p, len, 0, "\x76\x2f\x31\x01", 4) ||
	    at(p, len, 0, "gimp xcf", 8) || at(p, len, 0, "<svg", 4))
		return ND_KIND_IMAGE_OTHER;
	if (at(p, len, 0, "\x7f" "ELF", 4) || at(p, len, 0, "MZ", 2) ||
	    at(p, len, 0, "\xca\xfe\xba\xbe", 4))
		return ND_KIND_PROGRAM;
	if (looks_like_text(p, len))
		return ND_KIND_TEXT;
	return ND_KIND_OTHER;
}

const char *nd_file_kind_name(nd_file_kind k)
{
	static const char *const names[ND_KIND_COUNT] = {
		[ND_KIND_IMAGE] = "image",
		[ND_KIND_EMPTY] = "empty",
		[ND_KIND_TEXT] = "text",
		[ND_KIND_VIDEO] = "video",
		[ND_KIND_AUDIO] = "audio",
		[ND_KIND_DOCUMENT] = "document",
		[ND_KIND_ARCHIVE] = "archive",
		[ND_KIND_IMAGE_OTHER] = "unsupported image",
		[ND_KIND_PROGRAM] = "program",
		[ND_KIND_OTHER] = "other",
	};
	return (unsigned)k < ND_KIND_COUNT ? names[k] : "other";
}
