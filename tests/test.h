/* neardup — a tiny test harness shared by every tests/test_*.c program.
 *
 *   static void test_something(void) { CHECK(x == 1); CHECK_EQ_INT(a, b); }
 *   int main(int argc, char **argv)
 *   {
 *           test_select(argc, argv);
 *           RUN(test_something);
 *           return test_summary();
 *   }
 *
 * Each RUN prints "PASS name" or "FAIL name"; each failed CHECK prints
 * file:line and the expression. tests/run.sh adds the PASS/FAIL lines of all
 * programs into the final "N passed, N failed" line.
 *
 * One case by name: `build/rel/tests/test_index test_recall` (or `recall`),
 * or `make test T=test_index C=recall` ($ND_TEST_CASE): the other RUNs are
 * skipped, and naming no case there is a failure. Shared fixtures live in
 * tests/lib_*.c (lib_fs.h: files, scratch directories). */
#ifndef NEARDUP_TEST_H
#define NEARDUP_TEST_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int test_case_failed_;
static int test_passed_;
static int test_failed_;
static const char *test_only_; /* the one case to run, or NULL for all */
static int test_only_seen_;

/* Takes the case to run from argv[1], else $ND_TEST_CASE. */
static inline void test_select(int argc, char **argv)
{
	test_only_ = argc > 1 ? argv[1] : getenv("ND_TEST_CASE");
	if (test_only_ && !*test_only_)
		test_only_ = NULL;
}

/* name is "test_x": selected by "test_x" or "x". */
static inline int test_selected_(const char *name)
{
	if (!test_only_)
		return 1;
	if (!strcmp(name, test_only_) || (!strncmp(name, "test_", 5) && !strcmp(name + 5, test_only_)))
		return test_only_seen_ = 1;
	return 0;
}

#define CHECK(x)                                                              \
	do {                                                                  \
		if (!(x)) {                                                   \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, \
				__LINE__, #x);                                \
			test_case_failed_ = 1;                                \
		}                                                             \
	} while (0)

#define CHECK_MSG(x, ...)                                                     \
	do {                                                                  \
		if (!(x)) {                                                   \
			fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, \
				__LINE__, #x);                                \
			fprintf(stderr, __VA_ARGS__);                         \
			fputc('\n', stderr);                                  \
			test_case_failed_ = 1;                                \
		}                                                             \
	} while (0)

#define CHECK_EQ_INT(a, b)                                                    \
	do {                                                                  \
		long long a_ = (long long)(a), b_ = (long long)(b);           \
		if (a_ != b_) {                                               \
			fprintf(stderr, "%s:%d: check failed: %s == %s (%lld != %lld)\n", \
				__FILE__, __LINE__, #a, #b, a_, b_);          \
			test_case_failed_ = 1;                                \
		}                                                             \
	} while (0)

#define CHECK_NEAR(a, b, tol)                                                 \
	do {                                                                  \
		double a_ = (double)(a), b_ = (double)(b);                    \
		if (!(fabs(a_ - b_) <= (tol))) {                              \
			fprintf(stderr, "%s:%d: check failed: |%s - %s| <= %g (%g vs %g)\n", \
				__FILE__, __LINE__, #a, #b, (double)(tol), a_, b_); \
			test_case_failed_ = 1;                                \
		}                                                             \
	} while (0)

#define RUN(fn)                                                               \
	do {                                                                  \
		if (!test_selected_(#fn))                                     \
			break;                                                \
		test_case_failed_ = 0;                                        \
		fn();                                                         \
		if (test_case_failed_) {                                      \
			printf("FAIL %s\n", #fn);                             \
			test_failed_++;                                       \
		} else {                                                      \
			printf("PASS %s\n", #fn);                             \
			test_passed_++;                                       \
		}                                                             \
		fflush(stdout);                                               \
	} while (0)

static inline int test_summary(void)
{
	if (test_only_ && !test_only_seen_) {
		printf("FAIL no case named '%s'\n", test_only_);
		return 1;
	}
	return test_failed_ ? 1 : 0;
}

/* Directory holding committed test inputs (tests/data), set by the Makefile. */
#ifndef TEST_DATA_DIR
#define TEST_DATA_DIR "tests/data"
#endif

#endif
