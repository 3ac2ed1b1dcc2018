#!/bin/sh
# Code hygiene, one PASS or FAIL line each (make test runs it):
#  - src/banned.h turns strcpy, strcat, sprintf and vsprintf into compile
#    errors (the Makefile force-includes it into every C file);
#  - comments and code under src/ include/ tests/ bench/ name no issue
#    numbers and no "this machine": those belong in commit messages and
#    bench/results/;
#  - every global symbol of the library's objects ($ND_BUILD_DIR, default
#    build/rel) is public (nd_*, declared in include/neardup/) or private
#    with the one prefix nd__<module>_.
cd "$(dirname "$0")/.." || exit 2
cc=${CC:-cc}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
status=0

for f in 'strcpy(b, a)' 'strcat(b, a)' 'sprintf(b, "%s", a)' 'vsprintf(b, a, ap)'; do
	cat >"$tmp/t.c" <<C
#define _GNU_SOURCE
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
void t(char *b, const char *a, va_list ap);
void t(char *b, const char *a, va_list ap) { (void)ap; $f; }
C
	if ! $cc -std=gnu11 -fsyntax-only "$tmp/t.c" 2>/dev/null; then
		echo "FAIL banned.h: the probe for '$f' does not compile even without banned.h"
		status=1
	elif $cc -std=gnu11 -fsyntax-only -Isrc -include src/banned.h "$tmp/t.c" 2>/dev/null; then
		echo "FAIL banned.h: '$f' compiles with src/banned.h"
		status=1
	fi
done
[ $status -eq 0 ] && echo "PASS banned.h rejects strcpy, strcat, sprintf, vsprintf"

hits=$(grep -rnIE -i '\bissues? ?#?[0-9]+|this machine' src include tests bench \
	--include='*.c' --include='*.h' --include='*.py' --include='*.sh' --include='*.js' --include='*.css' |
	grep -v '^bench/results/')
if [ -n "$hits" ]; then
	echo "$hits" | sed 's/^/  /'
	echo "FAIL issue numbers or machine remarks in code or comments (above)"
	status=1
else
	echo "PASS no issue numbers or machine remarks in src/ include/ tests/ bench/"
fi
build=${ND_BUILD_DIR:-build/rel}
objs=$(find "$build/src" -maxdepth 1 -name '*.o' 2>/dev/null)
if [ -z "$objs" ]; then
	echo "FAIL no library objects under $build/src: build first"
	status=1
else
	grep -ohE '\bnd_[a-z0-9_]+\b' include/neardup/*.h | sort -u >"$tmp/public"
	for o in $objs; do
		# a removed source's stale object does not count
		[ -f "src/$(basename "$o" .o).c" ] && nm -g --defined-only -P "$o"
	done | awk '$1 !~ /^__/ {print $1}' | sort -u >"$tmp/defined"  # __: the compiler's (ASan's __odr_asan.*)
	stray=$(grep -v '^nd__[a-z0-9]*_' "$tmp/defined" | comm -23 - "$tmp/public")
	if [ -n "$stray" ]; then
		echo "$stray" | sed 's/^/  /'
		echo "FAIL library symbols neither public (include/neardup/) nor nd__<module>_ (above)"
		status=1
	else
		echo "PASS every library symbol is public or nd__<module>_"
	fi
fi
exit $status
