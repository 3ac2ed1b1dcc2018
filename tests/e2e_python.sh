#!/bin/sh
# The Python binding's tests (tests/test_python.py) with Debian's python3 on
# the shared library of this build.
libdir=${NEARDUP_LIBDIR:-build/rel}
export NEARDUP_LIB="$libdir/libneardup.so.0"
[ -f "$NEARDUP_LIB" ] || { echo "FAIL python: no $NEARDUP_LIB (make shared)"; exit 1; }
if [ -n "${SANITIZE:-}" ]; then
	# the sanitizer runtimes must be loaded first; Python itself leaks by design
	preload=
	case $SANITIZE in *address*) preload=$(${CC:-cc} -print-file-name=libasan.so) ;; esac
	export LD_PRELOAD="$preload"
	export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
fi
exec "${PYTHON:-/usr/bin/python3}" "$(dirname "$0")/test_python.py" "$@"
