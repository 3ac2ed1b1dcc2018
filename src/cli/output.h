/* neardup CLI — escaping for the output formats.
 *
 * JSON: strings are valid JSON for any path bytes. Valid UTF-8 passes
 * through; '"', '\\' and the control characters U+0000..U+001F and U+007F
 * are escaped (\n, \t, \r, \b, \f or \u00XX); every byte that is not part of
 * a valid UTF-8 sequence becomes the lone surrogate \uDCXX, XX being the
 * byte (PEP 383's "surrogateescape": in Python,
 * os.fsencode(json.loads(line)["path"]) gives back the exact bytes).
 *
 * TSV (and the paths in messages on stderr): backslash, tab, newline and
 * carriage return are written as \\, \t, \n and \r; the other control
 * characters (U+0000..U+001F, U+007F, and U+0080..U+009F, whose UTF-8 bytes
 * some terminals obey) and every byte that is not part of valid UTF-8 as
 * \xNN, one per byte; valid UTF-8 text passes through. So a terminal never
 * receives a raw control character, and the exact bytes can be restored
 * (a C-style unescape).
 *
 * HTML: &, <, >, " and ' become entities; control characters and bytes that
 * are not valid UTF-8 become U+FFFD (the HTML report is for reading; the
 * exact bytes are in the JSONL output). */
#ifndef NEARDUP_CLI_OUTPUT_H
#define NEARDUP_CLI_OUTPUT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Length of the valid UTF-8 sequence at p (1 for ASCII), 0 when the bytes
 * at p do not start one (stray continuation, overlong form, surrogate,
 * beyond U+10FFFF, truncated). n >= 1. */
size_t out_utf8_len(const unsigned char *p, size_t n);

void out_json_str(FILE *f, const char *s);
void out_tsv_str(FILE *f, const char *s);
/* The TSV escaping of s into buf (cap >= 1 bytes, NUL-terminated), cut at a
 * character boundary when it does not fit; returns its length. */
size_t out_escape(const char *s, char *buf, size_t cap);
void out_html_str(FILE *f, const char *s);
void out_base64(FILE *f, const uint8_t *data, size_t n);

/* The output formats of the commands' --format, by their names. */
typedef enum { OUT_FMT_TSV = 0, OUT_FMT_JSONL = 1, OUT_FMT_HTML = 2 } out_format;
#define OUT_FMT_BIT(f) (1u << (f))
/* The format named s if it is among allowed (OUT_FMT_BIT(...) | ...), else
 * -1. */
int out_format_parse(const char *s, unsigned allowed);
/* The name of f ("tsv", "jsonl", "html"). */
const char *out_format_name(out_format f);

#endif
