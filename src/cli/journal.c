/* neardup CLI — the action journal (see journal.h). */
#define _GNU_SOURCE
#include "journal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "output.h"

static void why_errno(char *why, const char *what, int e)
{
	snprintf(why, SFS_WHY, "%s: %s", what, strerror(e));
}

static void now_iso(char *buf, size_t cap)
{
	time_t t = time(NULL);
	struct tm tm;
	localtime_r(&t, &tm);
	strftime(buf, cap, "%Y-%m-%dT%H:%M:%S%z", &tm);
}

static char *join(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	char *p = malloc(a + b + 2);
	if (p) {
		memcpy(p, dir, a);
		p[a] = '/';
		memcpy(p + a + 1, name, b + 1);
	}
	return p;
}

int journal_open(struct journal *j, const char *index_dir, char *why)
{
	char *path = join(index_dir, JOURNAL_FILE);
	j->fd = -1;
	j->seq = 0;
	if (!path) {
		snprintf(why, SFS_WHY, "out of memory");
		return -1;
	}
	j->fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	free(path);
	if (j->fd < 0) {
		why_errno(why, "cannot open the journal", errno);
		return -1;
	}
	/* a journal just created must survive a crash too: its directory entry */
	int dfd = open(index_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	struct tm tm;
	gmtime_r(&ts.tv_sec, &tm);
	char t[24];
	strftime(t, sizeof(t), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(j->run, sizeof(j->run), "%s-%ld-%06ld", t, (long)getpid(), ts.tv_nsec / 1000);
	return 0;
}

void journal_close(struct journal *j)
{
	if (j->fd >= 0)
		close(j->fd);
	j->fd = -1;
}

/* Appends one line (built in a memory stream) with one write, then fsync. */
static int append(struct journal *j, char *line, size_t len, char *why)
{
	for (size_t o = 0; o < len;) {
		ssize_t w = write(j->fd, line + o, len - o);
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			why_errno(why, "cannot write the journal", errno);
			return -1;
		}
		o += (size_t)w;
	}
	if (fsync(j->fd) != 0) {
		why_errno(why, "cannot write the journal", errno);
		return -1;
	}
	return 0;
}

static void str_field(FILE *f, const char *key, const char *v)
{
	if (!v)
		return;
	fprintf(f, ", \"%s\": ", key);
	out_json_str(f, v);
}

int journal_begin(struct journal *j, struct jentry *e, char *why)
{
	char *line = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&line, &len);
	if (!f) {
		snprintf(why, SFS_WHY, "out of memory");
		return -1;
	}
	e->seq = ++j->seq;
	snprintf(e->run, sizeof(e->run), "%s", j->run);
	now_iso(e->time, sizeof(e->time));
	snprintf(e->state, sizeof(e->state), "begin");
	fprintf(f, "{\"run\": \"%s\", \"seq\": %u, \"time\": \"%s\", \"state\": \"begin\", \"action\": \"%s\"",
		e->run, e->seq, e->time, e->action);
	str_field(f, "source", e->source);
	str_field(f, "dest", e->dest);
	str_field(f, "info", e->info);
	str_field(f, "keep", e->keep);
	fprintf(f, ", \"size\": %llu", (unsigned long long)e->size);
	if (e->has_hash) {
		fputs(", \"hash\": \"", f);
		for (int i = 0; i < 16; i++)
			fprintf(f, "%02x", e->hash[i]);
		putc('"', f);
	}
	if (e->undoes[0])
		fprintf(f, ", \"undoes\": \"%s\", \"undoes_seq\": %u", e->undoes, e->undoes_seq);
	fputs("}\n", f);
	if (fclose(f) != 0 || !line) {
		free(line);
		snprintf(why, SFS_WHY, "out of memory");
		return -1;
	}
	int rc = append(j, line, len, why);
	free(line);
	return rc;
}

int journal_end(struct journal *j, uint32_t seq, int ok, const char *error, char *why)
{
	char *line = NULL, t[40];
	size_t len = 0;
	FILE *f = open_memstream(&line, &len);
	if (!f) {
		snprintf(why, SFS_WHY, "out of memory");
		return -1;
	}
	now_iso(t, sizeof(t));
	fprintf(f, "{\"run\": \"%s\", \"seq\": %u, \"time\": \"%s\", \"state\": \"%s\"", j->run, seq, t,
		ok ? "done" : "failed");
	if (!ok)
		str_field(f, "error", error ? error : "");
	fputs("}\n", f);
	if (fclose(f) != 0 || !line) {
		free(line);
		snprintf(why, SFS_WHY, "out of memory");
		return -1;
	}
	int rc = append(j, line, len, why);
	free(line);
	return rc;
}

/* ---- reading: flat objects of strings and non-negative integers ---- */

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n')
		p++;
	return p;
}

static void put_utf8(char **o, unsigned c)
{
	unsigned char *u = (unsigned char *)*o;
	if (c < 0x80) {
		*u++ = (unsigned char)c;
	} else if (c < 0x800) {
		*u++ = (unsigned char)(0xC0 | c >> 6);
		*u++ = (unsigned char)(0x80 | (c & 63));
	} else if (c < 0x10000) {
		*u++ = (unsigned char)(0xE0 | c >> 12);
		*u++ = (unsigned char)(0x80 | (c >> 6 & 63));
		*u++ = (unsigned char)(0x80 | (c & 63));
	} else {
		*u++ = (unsigned char)(0xF0 | c >> 18);
		*u++ = (unsigned char)(0x80 | (c >> 12 & 63));
		*u++ = (unsigned char)(0x80 | (c >> 6 & 63));
		*u++ = (unsigned char)(0x80 | (c & 63));
	}
	*o = (char *)u;
}

static int hex4(const char *p, unsigned *v)
{
	*v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
			     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10)
			     : c >= 'A' && c <= 'F' ? (unsigned)(c - 'A' + 10) : 16;
		if (d == 16)
			return -1;
		*v = *v << 4 | d;
	}
	return 0;
}

/* Parses the JSON string at p (at '"'); *out is malloc-ed. \uDC80..\uDCFF
 * give back the raw byte (output.h's surrogateescape). NULL on error. */
static const char *parse_str(const char *p, char **out)
{
	if (*p++ != '"')
		return NULL;
	const char *e = p;
	while (*e && *e != '"')
		e += (*e == '\\' && e[1]) ? 2 : 1;
	if (*e != '"')
		return NULL;
	char *s = malloc((size_t)(e - p) * 2 + 1), *o = s; /* \uXXXX -> at most 4 bytes */
	if (!s)
		return NULL;
	while (p < e) {
		if (*p != '\\') {
			*o++ = *p++;
			continue;
		}
		p++;
		switch (*p++) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '/': *o++ = '/'; break;
		case 'n': *o++ = '\n'; break;
		case 't': *o++ = '\t'; break;
		case 'r': *o++ = '\r'; break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'u': {
			unsigned c, lo;
			if (e - p < 4 || hex4(p, &c))
				goto bad;
			p += 4;
			if (c >= 0xDC80 && c <= 0xDCFF) {
				*o++ = (char)(c - 0xDC00);
			} else if (c >= 0xD800 && c <= 0xDBFF && e - p >= 6 && p[0] == '\\' && p[1] == 'u' &&
				   !hex4(p + 2, &lo) && lo >= 0xDC00 && lo <= 0xDFFF) {
				put_utf8(&o, 0x10000 + ((c - 0xD800) << 10) + (lo - 0xDC00));
				p += 6;
			} else if (c >= 0xD800 && c <= 0xDFFF) {
				goto bad;
			} else {
				put_utf8(&o, c);
			}
			break;
		}
		default:
			goto bad;
		}
	}
	*o = 0;
	if (memchr(s, 0, (size_t)(o - s))) /* an escaped NUL cannot be a path */
		goto bad;
	*out = s;
	return e + 1;
bad:
	free(s);
	return NULL;
}

static int hash_from_hex(const char *h, uint8_t out[16])
{
	if (strlen(h) != 32)
		return -1;
	for (int i = 0; i < 16; i++) {
		unsigned v = 0;
		for (int k = 0; k < 2; k++) {
			char c = h[2 * i + k];
			unsigned d = c >= '0' && c <= '9' ? (unsigned)(c - '0')
				     : c >= 'a' && c <= 'f' ? (unsigned)(c - 'a' + 10) : 16;
			if (d == 16)
				return -1;
			v = v << 4 | d;
		}
		out[i] = (uint8_t)v;
	}
	return 0;
}

static void copy_small(char *dst, size_t cap, const char *src)
{
	snprintf(dst, cap, "%s", src);
}

/* Parses one line into e (zeroed by the caller). -1 when it is not one of
 * the journal's lines. */
static int parse_line(const char *p, struct jentry *e)
{
	p = skip_ws(p);
	if (*p++ != '{')
		return -1;
	int have_run = 0, have_seq = 0;
	for (;;) {
		p = skip_ws(p);
		if (*p == '}')
			break;
		char *key = NULL, *sval = NULL;
		unsigned long long nval = 0;
		int is_num = 0;
		if (!(p = parse_str(p, &key)))
			return -1;
		p = skip_ws(p);
		if (*p++ != ':') {
			free(key);
			return -1;
		}
		p = skip_ws(p);
		if (*p == '"') {
			p = parse_str(p, &sval);
		} else if (*p >= '0' && *p <= '9') {
			char *end;
			errno = 0;
			nval = strtoull(p, &end, 10);
			p = errno ? NULL : end;
			is_num = 1;
		} else {
			p = NULL;
		}
		if (!p) {
			free(key);
			return -1;
		}
		int ok = 1;
		if (!strcmp(key, "run") && sval) {
			copy_small(e->run, sizeof(e->run), sval);
			have_run = 1;
		} else if (!strcmp(key, "seq") && is_num && nval <= UINT32_MAX) {
			e->seq = (uint32_t)nval;
			have_seq = 1;
		} else if (!strcmp(key, "time") && sval) {
			copy_small(e->time, sizeof(e->time), sval);
		} else if (!strcmp(key, "state") && sval) {
			copy_small(e->state, sizeof(e->state), sval);
		} else if (!strcmp(key, "action") && sval) {
			copy_small(e->action, sizeof(e->action), sval);
		} else if (!strcmp(key, "undoes") && sval) {
			copy_small(e->undoes, sizeof(e->undoes), sval);
		} else if (!strcmp(key, "undoes_seq") && is_num && nval <= UINT32_MAX) {
			e->undoes_seq = (uint32_t)nval;
		} else if (!strcmp(key, "size") && is_num) {
			e->size = nval;
		} else if (!strcmp(key, "hash") && sval) {
			ok = hash_from_hex(sval, e->hash) == 0;
			e->has_hash = ok;
		} else if (sval && (!strcmp(key, "source") || !strcmp(key, "dest") || !strcmp(key, "info") ||
				    !strcmp(key, "keep") || !strcmp(key, "error"))) {
			char **slot = key[0] == 's' ? &e->source : key[0] == 'd' ? &e->dest
				      : key[0] == 'i' ? &e->info : key[0] == 'k' ? &e->keep : &e->error;
			free(*slot);
			*slot = sval;
			sval = NULL;
		}
		free(key);
		free(sval);
		if (!ok)
			return -1;
		p = skip_ws(p);
		if (*p == ',')
			p++;
		else if (*p != '}')
			return -1;
	}
	return have_run && have_seq && e->state[0] ? 0 : -1;
}

static void entry_clear(struct jentry *e)
{
	free(e->source);
	free(e->dest);
	free(e->info);
	free(e->keep);
	free(e->error);
	memset(e, 0, sizeof(*e));
}

void journal_free(struct jentry *e, size_t n)
{
	for (size_t i = 0; i < n; i++)
		entry_clear(&e[i]);
	free(e);
}

int journal_read(const char *index_dir, struct jentry **out, size_t *n_out, size_t *bad, char *why)
{
	char *path = join(index_dir, JOURNAL_FILE), *line = NULL;
	size_t cap = 0, n = 0, lcap = 0;
	struct jentry *v = NULL;
	*out = NULL;
	*n_out = 0;
	*bad = 0;
	if (!path) {
		snprintf(why, SFS_WHY, "out of memory");
		return -1;
	}
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	free(path);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		why_errno(why, "cannot open the journal", errno);
		return -1;
	}
	FILE *f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		why_errno(why, "cannot read the journal", errno);
		return -1;
	}
	ssize_t len;
	while ((len = getline(&line, &lcap, f)) > 0) {
		struct jentry e;
		memset(&e, 0, sizeof(e));
		if ((size_t)len != strlen(line) || parse_line(line, &e) != 0) {
			entry_clear(&e);
			++*bad;
			continue;
		}
		if (strcmp(e.state, "begin") != 0) {
			/* an end line: the latest begin line of the same entry */
			size_t i = n;
			while (i > 0 && !(v[i - 1].seq == e.seq && !strcmp(v[i - 1].run, e.run)))
				i--;
			if (i == 0) {
				++*bad;
			} else {
				copy_small(v[i - 1].state, sizeof(v[i - 1].state), e.state);
				if (e.error) {
					free(v[i - 1].error);
					v[i - 1].error = e.error;
					e.error = NULL;
				}
			}
			entry_clear(&e);
			continue;
		}
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 64;
			struct jentry *nv = realloc(v, nc * sizeof(*nv));
			if (!nv) {
				entry_clear(&e);
				journal_free(v, n);
				free(line);
				fclose(f);
				snprintf(why, SFS_WHY, "out of memory");
				return -1;
			}
			v = nv;
			cap = nc;
		}
		v[n++] = e;
	}
	int err = ferror(f);
	free(line);
	fclose(f);
	if (err) {
		journal_free(v, n);
		snprintf(why, SFS_WHY, "cannot read the journal: read error");
		return -1;
	}
	*out = v;
	*n_out = n;
	return 0;
}
