/* neardup CLI — JSON, TSV and HTML escaping; base64. */
#include "output.h"

#include <stdio.h>
#include <string.h>

size_t out_utf8_len(const unsigned char *p, size_t n)
{
	unsigned c = p[0];
	if (c < 0x80)
		return 1;
	size_t len;
	unsigned lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
	if (c >= 0xC2 && c <= 0xDF) {
		len = 2;
	} else if (c >= 0xE0 && c <= 0xEF) {
		len = 3;
		if (c == 0xE0)
			lo = 0xA0; /* overlong */
		else if (c == 0xED)
			hi = 0x9F; /* surrogates */
	} else if (c >= 0xF0 && c <= 0xF4) {
		len = 4;
		if (c == 0xF0)
			lo = 0x90; /* overlong */
		else if (c == 0xF4)
			hi = 0x8F; /* > U+10FFFF */
	} else {
		return 0;
	}
	if (n < len || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (p[i] < 0x80 || p[i] > 0xBF)
			return 0;
	return len;
}

void out_json_str(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	putc('"', f);
	for (size_t i = 0; i < n;) {
		unsigned char c = p[i];
		size_t len = out_utf8_len(p + i, n - i);
		if (len == 0) {
			fprintf(f, "\\udc%02x", c);
			i++;
			continue;
		}
		if (len > 1) {
			fwrite(p + i, 1, len, f);
			i += len;
			continue;
		}
		switch (c) {
		case '"': fputs("\\\"", f); break;
		case '\\': fputs("\\\\", f); break;
		case '\n': fputs("\\n", f); break;
		case '\t': fputs("\\t", f); break;
		case '\r': fputs("\\r", f); break;
		case '\b': fputs("\\b", f); break;
		case '\f': fputs("\\f", f); break;
		default:
			if (c < 0x20 || c == 0x7f)
				fprintf(f, "\\u%04x", c);
			else
				putc(c, f);
		}
		i++;
	}
	putc('"', f);
}

/* The escaped form of the character at p (n bytes left) into out (at least
 * OUT_ESC_MAX bytes, NUL-terminated); returns the bytes of p it stands for. */
#define OUT_ESC_MAX 17
static size_t escape_next(const unsigned char *p, size_t n, char *out)
{
	size_t len = out_utf8_len(p, n);
	/* U+0080..U+009F: C1 controls, which some terminals obey in UTF-8 too */
	int c1 = len == 2 && p[0] == 0xC2 && p[1] < 0xA0;
	if (len > 1 && !c1) {
		memcpy(out, p, len);
		out[len] = 0;
		return len;
	}
	if (c1) {
		snprintf(out, OUT_ESC_MAX, "\\x%02x\\x%02x", p[0], p[1]);
		return 2;
	}
	switch (p[0]) {
	case '\\': memcpy(out, "\\\\", 3); break;
	case '\t': memcpy(out, "\\t", 3); break;
	case '\n': memcpy(out, "\\n", 3); break;
	case '\r': memcpy(out, "\\r", 3); break;
	default:
		if (len == 0 || p[0] < 0x20 || p[0] == 0x7f) {
			snprintf(out, OUT_ESC_MAX, "\\x%02x", p[0]);
		} else {
			out[0] = (char)p[0];
			out[1] = 0;
		}
	}
	return 1;
}

void out_tsv_str(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	char tmp[OUT_ESC_MAX];
	for (size_t i = 0; i < n;) {
		i += escape_next(p + i, n - i, tmp);
		fputs(tmp, f);
	}
}

size_t out_escape(const char *s, char *buf, size_t cap)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s), o = 0;
	char tmp[OUT_ESC_MAX];
	if (cap == 0)
		return 0;
	for (size_t i = 0; i < n;) {
		size_t used = escape_next(p + i, n - i, tmp), l = strlen(tmp);
		if (o + l + 1 > cap)
			break;
		memcpy(buf + o, tmp, l);
		o += l;
		i += used;
	}
	buf[o] = 0;
	return o;
}

void out_html_str(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = strlen(s);
	for (size_t i = 0; i < n;) {
		unsigned char c = p[i];
		size_t len = out_utf8_len(p + i, n - i);
		if (len == 0 || c < 0x20 || c == 0x7f) {
			fputs("&#xFFFD;", f);
			i++;
			continue;
		}
		if (len > 1) {
			fwrite(p + i, 1, len, f);
			i += len;
			continue;
		}
		switch (c) {
		case '&': fputs("&amp;", f); break;
		case '<': fputs("&lt;", f); break;
		case '>': fputs("&gt;", f); break;
		case '"': fputs("&quot;", f); break;
		case '\'': fputs("&#39;", f); break;
		default: putc(c, f);
		}
		i++;
	}
}

void out_base64(FILE *f, const uint8_t *d, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i = 0;
	for (; i + 3 <= n; i += 3) {
		uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8 | d[i + 2];
		putc(tab[v >> 18], f);
		putc(tab[v >> 12 & 63], f);
		putc(tab[v >> 6 & 63], f);
		putc(tab[v & 63], f);
	}
	if (n - i == 1) {
		uint32_t v = (uint32_t)d[i] << 16;
		putc(tab[v >> 18], f);
		putc(tab[v >> 12 & 63], f);
		fputs("==", f);
	} else if (n - i == 2) {
		uint32_t v = (uint32_t)d[i] << 16 | (uint32_t)d[i + 1] << 8;
		putc(tab[v >> 18], f);
		putc(tab[v >> 12 & 63], f);
		putc(tab[v >> 6 & 63], f);
		putc('=', f);
	}
}

static const char *const format_names[] = {
	[OUT_FMT_TSV] = "tsv",
	[OUT_FMT_JSONL] = "jsonl",
	[OUT_FMT_HTML] = "html",
};

int out_format_parse(const char *s, unsigned allowed)
{
	for (int f = 0; f < (int)(sizeof(format_names) / sizeof(format_names[0])); f++)
		if ((allowed & OUT_FMT_BIT(f)) && !strcmp(s, format_names[f]))
			return f;
	return -1;
}

const char *out_format_name(out_format f)
{
	return (unsigned)f < sizeof(format_names) / sizeof(format_names[0]) ? format_names[f] : "?";
}
