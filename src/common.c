/* neardup — error codes and assertions shared by every module. */
#include "neardup/common.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

const char *nd_strerror(int code)
{
	switch (code) {
	case ND_OK: return "success";
	case ND_ENOMEM: return "out of memory";
	case ND_EIO: return "input/output error";
	case ND_EFORMAT: return "unknown format";
	case ND_ECORRUPT: return "corrupt or truncated data";
	case ND_ELIMIT: return "limit exceeded";
	case ND_EINVAL: return "invalid argument";
	case ND_EVERSION: return "unsupported version";
	case ND_EMISMATCH: return "mismatch";
	case ND_EBUSY: return "resource busy";
	case ND_ENOTFOUND: return "not found";
	case ND_ESTORE: return "storage error";
	case ND_EUNSUPPORTED: return "unsupported";
	case ND_EOVERFLOW: return "size overflow";
	case ND_EINTERNAL: return "internal error";
	}
	return "unknown error";
}

int nd_error_set(nd_error *err, int code, const char *fmt, ...)
{
	if (err) {
		va_list ap;
		err->code = code;
		va_start(ap, fmt);
		vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
		va_end(ap);
	}
	return code;
}

void nd_error_clear(nd_error *err)
{
	if (err) {
		err->code = ND_OK;
		err->msg[0] = '\0';
	}
}

void nd_assert_fail(const char *expr, const char *file, int line)
{
	fprintf(stderr, "neardup: assertion failed at %s:%d: %s\n", file, line, expr);
	abort();
}
