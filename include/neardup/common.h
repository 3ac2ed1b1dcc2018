/* neardup — shared error codes, error buffers and assertions.
 *
 * Every library function returns int: 0 on success, a negative ND_E* code
 * otherwise. A human-readable detail goes into a caller-supplied nd_error
 * (never a global), so calls are thread-safe as long as each thread passes
 * its own buffer. Library code never prints and never exits. */
#ifndef NEARDUP_COMMON_H
#define NEARDUP_COMMON_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define ND_VERSION_STRING "0.1.0"

enum nd_errcode {
	ND_OK = 0,
	ND_ENOMEM = -1,       /* allocation failed */
	ND_EIO = -2,          /* read/write/open failed (errno detail in the message) */
	ND_EFORMAT = -3,      /* not a format we know (bad magic) */
	ND_ECORRUPT = -4,     /* truncated or corrupt data */
	ND_ELIMIT = -5,       /* a configured limit was exceeded (size, scans, chunks) */
	ND_EINVAL = -6,       /* invalid argument */
	ND_EVERSION = -7,     /* unsupported format version */
	ND_EMISMATCH = -8,    /* e.g. an index built with another model */
	ND_EBUSY = -9,        /* another writer holds the index */
	ND_ENOTFOUND = -10,   /* no such record */
	ND_ESTORE = -11,      /* LMDB failure (detail in the message) */
	ND_EUNSUPPORTED = -12,/* valid input that we do not support */
	ND_EOVERFLOW = -13,   /* size arithmetic would overflow */
	ND_EINTERNAL = -14    /* a bug: invariant broken */
};

/* Returns a short static description of an ND_E* code. */
const char *nd_strerror(int code);

#define ND_ERRMSG_MAX 512

/* Caller-owned error detail. code mirrors the return value of the call that
 * filled it; msg is a NUL-terminated sentence fragment such as
 * "truncated PNG data" (lowercase, no full stop, no file name: the caller
 * that knows the file adds it). */
typedef struct nd_error {
	int code;
	char msg[ND_ERRMSG_MAX];
} nd_error;

/* Fills err (which may be NULL) and returns code, so a failing path can say
 * `return nd_error_set(err, ND_ECORRUPT, "truncated PNG data");`. */
int nd_error_set(nd_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Resets err (may be NULL) to ND_OK and an empty message. */
void nd_error_clear(nd_error *err);

/* Always-on assertion for invariants that only a bug can break: prints
 * file:line and aborts. The one place library code may stop the process. */
void nd_assert_fail(const char *expr, const char *file, int line)
	__attribute__((noreturn));
#define ND_ASSERT(x) ((x) ? (void)0 : nd_assert_fail(#x, __FILE__, __LINE__))

/* Overflow-checked size arithmetic: return 0 and store the result, or
 * return ND_EOVERFLOW and leave *out untouched. */
static inline int nd_mul_size(size_t a, size_t b, size_t *out)
{
	size_t r;
	if (__builtin_mul_overflow(a, b, &r))
		return ND_EOVERFLOW;
	*out = r;
	return 0;
}
static inline int nd_add_size(size_t a, size_t b, size_t *out)
{
	size_t r;
	if (__builtin_add_overflow(a, b, &r))
		return ND_EOVERFLOW;
	*out = r;
	return 0;
}

#ifdef __cplusplus
}
#endif
#endif
