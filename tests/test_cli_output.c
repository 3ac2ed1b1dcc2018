/* Tests of the CLI's output escaping (src/cli/output.c, linked from the CLI's objects:
 * the CLI is not part of libneardup): JSON strings stay valid JSON for any
 * bytes, TSV fields never contain a raw tab or newline, HTML text holds no
 * markup. A small strict JSON string checker (RFC 8259 grammar) checks the
 * JSON output. */
#include "test.h"

#include "cli/output.h"

static char *capture(void (*fn)(FILE *, const char *), const char *s)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);
	fn(f, s);
	fclose(f);
	return buf;
}

/* 1 when s is exactly one JSON string literal with only ASCII escapes or
 * valid UTF-8 inside. Decodes \\uDCXX lone surrogates into raw bytes
 * (surrogateescape) into out. */
static int json_string_ok(const char *s, char *out, size_t cap)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0;
	if (*p++ != '"')
		return 0;
	while (*p != '"') {
		if (*p == 0 || *p < 0x20 || o + 5 > cap)
			return 0;
		if (*p == '\\') {
			p++;
			const char *simple = "\"\\/bfnrt", *val = "\"\\/\b\f\n\r\t";
			const char *k = *p ? strchr(simple, *p) : NULL;
			if (k) {
				out[o++] = val[k - simple];
				p++;
				continue;
			}
			if (*p != 'u')
				return 0;
			unsigned v = 0;
			for (int i = 1; i <= 4; i++) {
				int c = p[i];
				if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')))
					return 0;
				v = v * 16 + (unsigned)(c <= '9' ? c - '0' : (c | 32) - 'a' + 10);
			}
			p += 5;
			if (v >= 0xDC80 && v <= 0xDCFF)
				out[o++] = (char)(v - 0xDC00);
			else if (v < 0x80)
				out[o++] = (char)v;
			else
				return 0; /* not produced by our writer */
			continue;
		}
		size_t l = out_utf8_len(p, strlen((const char *)p));
		if (l == 0)
			return 0;
		memcpy(out + o, p, l);
		o += l;
		p += l;
	}
	out[o] = 0;
	return p[1] == 0;
}

static void test_utf8(void)
{
	CHECK_EQ_INT(out_utf8_len((const unsigned char *)"a", 1), 1);
	CHECK_EQ_INT(out_utf8_len((const unsigned char *)"\xc3\xa9", 2), 2);       /* é */
	CHECK_EQ_INT(out_utf8_len((const unsigned char *)"\xe2\x82\xac", 3), 3);   /* € */
	CHECK_EQ_INT(out_utf8_len((const unsigned char *)"\xf0\x9f\x98\x80", 4), 4);
	CHECK_EQ_INT(out_utf8_len((const unsigned char *)"\xc0\xaf", 2), 0);       /* overlong */
	CHECK_EQ_INT(out_utf8_len((const unsigned char *)"\xe0\x80\xaf", 3), 0);   /* overlong */
	CHECK_EQ_INT(out_utf8_len((const unsigned char *)"\xed\xa0\x80", 3), 0);   /* surrogate */
	CHECK_EQ_INT(out_utf8_len((const unsigned char *)"\xf4\x90\x80\x80", 4), 0); /* > U+10FFFF */
	CHECK_EQ_INT(out_utf8_len((const unsigned char *)"\x80", 1), 0);
	CHECK_EQ_INT(out_utf8_len((const unsigned char *)"\xe2\x82", 2), 0);       /* truncated */
	CHECK_EQ_INT(out_utf8_len((const unsigned char *)"\xff", 1), 0);
}

static void test_json(void)
{
	static const char *cases[] = {
		"plain/path.jpg", "with space.jpg", "new\nline.jpg", "tab\there", "quote\"back\\slash",
		"ctl\x01\x1f\x7f", "latin1 \xe9t\xe9.jpg", "utf8 \xc3\xa9t\xc3\xa9 \xe2\x82\xac.png",
		"trunc \xe2\x82", "\xff\xfe\x80", "cr\rff\fbs\b",
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *j = capture(out_json_str, cases[i]);
		char back[256];
		CHECK_MSG(json_string_ok(j, back, sizeof(back)), "case %zu: %s", i, j);
		CHECK_MSG(!strcmp(back, cases[i]), "case %zu does not round-trip: %s", i, j);
		free(j);
	}
	char *j = capture(out_json_str, "a\xff" "b\n");
	CHECK(!strcmp(j, "\"a\\udcffb\\n\""));
	free(j);
}

static void test_tsv(void)
{
	char *t = capture(out_tsv_str, "a\tb\nc\\d\re");
	CHECK(!strcmp(t, "a\\tb\\nc\\\\d\\re"));
	free(t);
	/* bytes that are not UTF-8, and control characters, as \xNN; UTF-8 as it is */
	t = capture(out_tsv_str, "caf\xe9 \xc3\xa9t\xc3\xa9.jpg");
	CHECK_MSG(!strcmp(t, "caf\\xe9 \xc3\xa9t\xc3\xa9.jpg"), "%s", t);
	free(t);
	t = capture(out_tsv_str, "\x1b[31mred\x07\x7f\x01\xc2\x9b" "2J\xc2\xa0x");
	CHECK_MSG(!strcmp(t, "\\x1b[31mred\\x07\\x7f\\x01\\xc2\\x9b2J\xc2\xa0x"), "%s", t);
	free(t);
}

/* No control byte survives TSV escaping, whatever the input, and the
 * escapes decode back to the exact bytes. */
static void test_tsv_any_bytes(void)
{
	unsigned seed = 12345;
	for (int round = 0; round < 2000; round++) {
		char in[40], back[40];
		size_t n = 1 + (size_t)round % 38, b = 0;
		for (size_t i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			in[i] = (char)(1 + (seed >> 16) % 255);
		}
		in[n] = 0;
		char *t = capture(out_tsv_str, in);
		int ok = 1;
		for (const unsigned char *c = (const unsigned char *)t; *c; c++) {
			if (*c < 0x20 || *c == 0x7f || (c[0] == 0xc2 && c[1] >= 0x80 && c[1] < 0xa0))
				ok = 0;
			if (*c != '\\') {
				back[b++] = (char)*c;
				continue;
			}
			c++;
			if (*c == 'x') {
				unsigned v;
				sscanf((const char *)c + 1, "%2x", &v);
				back[b++] = (char)v;
				c += 2;
			} else {
				back[b++] = *c == 't' ? '\t' : *c == 'n' ? '\n' : *c == 'r' ? '\r' : (char)*c;
			}
		}
		back[b] = 0;
		CHECK_MSG(ok && !strcmp(back, in), "round %d: %s", round, t);
		/* the same escaping into a buffer, cut at a character boundary */
		char buf[24];
		size_t l = out_escape(in, buf, sizeof(buf));
		CHECK(l == strlen(buf) && l < sizeof(buf) && !strncmp(buf, t, l));
		free(t);
		if (test_case_failed_)
			break;
	}
}

static void test_html(void)
{
	char *h = capture(out_html_str, "<b>&\"'\n\xff\xc3\xa9");
	CHECK(!strcmp(h, "&lt;b&gt;&amp;&quot;&#39;&#xFFFD;&#xFFFD;\xc3\xa9"));
	free(h);
}

static void test_base64(void)
{
	static const struct { const char *in, *out; } v[] = {
		{ "", "" }, { "f", "Zg==" }, { "fo", "Zm8=" }, { "foo", "Zm9v" },
		{ "foob", "Zm9vYg==" }, { "fooba", "Zm9vYmE=" }, { "foobar", "Zm9vYmFy" },
	};
	for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
		char *buf = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&buf, &len);
		out_base64(f, (const uint8_t *)v[i].in, strlen(v[i].in));
		fclose(f);
		CHECK_MSG(!strcmp(buf, v[i].out), "base64(%s) = %s", v[i].in, buf);
		free(buf);
	}
}

static void test_formats(void)
{
	const unsigned qf = OUT_FMT_BIT(OUT_FMT_TSV) | OUT_FMT_BIT(OUT_FMT_JSONL);
	CHECK_EQ_INT(out_format_parse("tsv", qf), OUT_FMT_TSV);
	CHECK_EQ_INT(out_format_parse("jsonl", qf), OUT_FMT_JSONL);
	CHECK_EQ_INT(out_format_parse("html", qf), -1); /* not allowed there */
	CHECK_EQ_INT(out_format_parse("html", qf | OUT_FMT_BIT(OUT_FMT_HTML)), OUT_FMT_HTML);
	CHECK_EQ_INT(out_format_parse("JSONL", qf), -1);
	CHECK_EQ_INT(out_format_parse("", qf), -1);
	for (int f = OUT_FMT_TSV; f <= OUT_FMT_HTML; f++)
		CHECK_EQ_INT(out_format_parse(out_format_name((out_format)f), ~0u), f);
}

int main(int argc, char **argv)
{
	test_select(argc, argv);
	RUN(test_utf8);
	RUN(test_json);
	RUN(test_tsv);
	RUN(test_tsv_any_bytes);
	RUN(test_html);
	RUN(test_base64);
	RUN(test_formats);
	return test_summary();
}
