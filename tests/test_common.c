/* Tests for common.c: error buffers, codes, overflow-checked arithmetic. */
#include "neardup/common.h"
#include "test.h"

#include <stdint.h>

static void test_error_set_formats_and_returns_code(void)
{
	nd_error e;
	nd_error_clear(&e);
	CHECK_EQ_INT(e.code, ND_OK);
	int rc = nd_error_set(&e, ND_ECORRUPT, "truncated %s data at byte %d", "PNG", 18342);
	CHECK_EQ_INT(rc, ND_ECORRUPT);
	CHECK_EQ_INT(e.code, ND_ECORRUPT);
	CHECK(!strcmp(e.msg, "truncated PNG data at byte 18342"));
	/* A NULL buffer is allowed: the code still comes back. */
	CHECK_EQ_INT(nd_error_set(NULL, ND_ENOMEM, "x"), ND_ENOMEM);
}

static void test_long_message_is_truncated_not_overflowed(void)
{
	nd_error e;
	char big[4 * ND_ERRMSG_MAX];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	nd_error_set(&e, ND_EINVAL, "%s", big);
	CHECK_EQ_INT(strlen(e.msg), ND_ERRMSG_MAX - 1);
}

static void test_every_code_has_text(void)
{
	for (int c = ND_OK; c >= ND_EINTERNAL; c--)
		CHECK_MSG(strcmp(nd_strerror(c), "unknown error") != 0, "code %d", c);
	CHECK(!strcmp(nd_strerror(-999), "unknown error"));
}

static void test_size_arithmetic_detects_overflow(void)
{
	size_t r = 7;
	CHECK_EQ_INT(nd_mul_size(1000, 1000, &r), 0);
	CHECK_EQ_INT(r, 1000000);
	CHECK_EQ_INT(nd_mul_size(SIZE_MAX / 2 + 1, 2, &r), ND_EOVERFLOW);
	CHECK_EQ_INT(r, 1000000);
	CHECK_EQ_INT(nd_add_size(SIZE_MAX, 1, &r), ND_EOVERFLOW);
	CHECK_EQ_INT(nd_add_size(1, 2, &r), 0);
	CHECK_EQ_INT(r, 3);
}

int main(int argc, char **argv)
{
	test_select(argc, argv);
	RUN(test_error_set_formats_and_returns_code);
	RUN(test_long_message_is_truncated_not_overflowed);
	RUN(test_every_code_has_text);
	RUN(test_size_arithmetic_detects_overflow);
	return test_summary();
}
