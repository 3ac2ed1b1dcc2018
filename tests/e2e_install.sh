#!/bin/bash
# make install into a scratch DESTDIR, then examples/find_dups.c compiled
# against the installed tree, once through pkg-config (the shared library)
# and once statically, each run on data/ to index it and print its groups,
# which must be the command line's; the same with a Python script on the
# installed package. Also: the shared library exports only
# the public nd_ functions, all of them.
. "$(dirname "$0")/lib_e2e.sh"
root=$(pwd)
bin=${NEARDUP_BIN:?}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prefix=/usr/local
dest=$tmp/root
# the sanitizer runtime must come first in a program using a sanitized library
excflags=${SANITIZE:+-fsanitize=$SANITIZE}

install_tree() {
	make --no-print-directory -C "$root" install PREFIX=$prefix DESTDIR="$dest" \
		SANITIZE="${SANITIZE:-}" >"$tmp/install.log" 2>&1 ||
		{ fail "make install: $(tail -c 1500 "$tmp/install.log")"; return; }
	for f in lib/libneardup.a lib/libneardup.so lib/libneardup.so.0 include/neardup/neardup.h \
		 lib/pkgconfig/neardup.pc share/neardup/models/neardup.ndm bin/neardup; do
		[ -e "$dest$prefix/$f" ] || fail "not installed: $prefix/$f"
	done
	ls "$dest$prefix"/lib/python3*/dist-packages/neardup/__init__.py >/dev/null 2>&1 ||
		fail "Python package not installed"
}

pc() {
	PKG_CONFIG_PATH="$dest$prefix/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$dest" pkg-config "$@"
}

# the groups of data/ as the command line finds them
expected() {
	"$bin" ingest -q --index "$tmp/cli.db" "$root/data" && "$bin" dedup -q --index "$tmp/cli.db"
}

test_dynamic() {
	[ -f "$dest$prefix/lib/libneardup.so" ] || { fail "no installed tree"; return; }
	pc --libs neardup | grep -q -- '-lneardup' || fail "pkg-config --libs: $(pc --libs neardup)"
	pc --libs neardup | grep -q -- '-ljpeg' && fail "private dependencies in Libs: $(pc --libs neardup)"
	pc --static --libs neardup | grep -q -- '-ljpeg' || fail "--static lacks -ljpeg"
	cc -std=c99 -Wall -Werror $excflags "$root/examples/find_dups.c" $(pc --cflags --libs neardup) \
		-o "$tmp/find_dups" 2>"$tmp/cc.log" || { fail "compile: $(head -c 1500 "$tmp/cc.log")"; return; }
	readelf -d "$tmp/find_dups" | grep -q 'NEEDED.*libneardup.so.0' || fail "not linked with libneardup.so.0"
	expected >"$tmp/want" || fail "the CLI failed"
	cd "$tmp" && expect 0 env LD_LIBRARY_PATH="$dest$prefix/lib" ./find_dups "$tmp/dyn.db" "$root/data"
	cd "$root"
	[ -s "$tmp/want" ] || fail "no groups found by the CLI"
	diff "$tmp/want" "$tmp/out" >/dev/null || fail "groups differ from the CLI's: $(diff "$tmp/want" "$tmp/out" | head -20)"
	# the model was found beside the library (the installed share/)
	grep -q data/coffee_web.webp "$tmp/out" || fail "no coffee group: $(cat "$tmp/out")"
}

test_static() {
	[ -f "$dest$prefix/lib/libneardup.a" ] || { fail "no installed tree"; return; }
	# the archive itself, then what pkg-config --static says it needs
	cc -std=c99 -Wall -Werror $excflags "$root/examples/find_dups.c" $(pc --cflags neardup) \
		"$dest$prefix/lib/libneardup.a" $(pc --static --libs neardup | sed 's/-lneardup//') \
		-o "$tmp/find_dups_static" 2>"$tmp/cc.log" ||
		{ fail "compile: $(head -c 1500 "$tmp/cc.log")"; return; }
	readelf -d "$tmp/find_dups_static" | grep -q 'libneardup' && fail "static build needs libneardup.so"
	cd "$tmp" && NEARDUP_MODEL="$dest$prefix/share/neardup/models/neardup.ndm" \
		expect 0 ./find_dups_static "$tmp/static.db" "$root/data"
	cd "$root"
	expected >"$tmp/want2" 2>/dev/null
	diff "$tmp/want2" "$tmp/out" >/dev/null || fail "groups differ from the CLI's: $(diff "$tmp/want2" "$tmp/out" | head -20)"
}

test_exports() {
	local so="$dest$prefix/lib/libneardup.so"
	[ -f "$so" ] || { fail "no installed tree"; return; }
	readelf -d "$so" | grep -q 'SONAME.*\[libneardup.so.0\]' || fail "soname: $(readelf -d "$so" | grep SONAME)"
	nm -D --defined-only "$so" | awk '$2 ~ /^[TDBRVW]$/ {print $3}' | sed 's/@.*//' | sort -u >"$tmp/exported"
	local bad
	bad=$(grep -v '^nd_' "$tmp/exported"; grep '^nd__' "$tmp/exported")
	[ -z "$bad" ] || fail "exported beyond the public nd_ names: $(echo $bad | head -c 600)"
	# every function a public header declares is exported
	sed 's|/\*.*\*/||' "$root"/include/neardup/*.h | grep -oE '^[a-z].*[ *](nd_[a-z0-9_]+)\(' |
		grep -v 'static inline' | grep -oE 'nd_[a-z0-9_]+\($' | tr -d '(' | sort -u >"$tmp/declared"
	[ "$(wc -l <"$tmp/declared")" -gt 50 ] || fail "few declarations found: $(wc -l <"$tmp/declared")"
	local missing
	missing=$(comm -23 "$tmp/declared" "$tmp/exported")
	[ -z "$missing" ] || fail "declared but not exported: $(echo $missing | head -c 600)"
}

# the README's workflow with Debian's python3 on the installed package, which
# finds the installed library beside it and the model beside that
test_python() {
	local pkg
	pkg=$(ls -d "$dest$prefix"/lib/python3*/dist-packages 2>/dev/null | head -1)
	[ -n "$pkg" ] || { fail "no installed Python package"; return; }
	cat >"$tmp/dups.py" <<'PY'
import sys
import neardup
with neardup.Collection(sys.argv[1]) as c:
    report = c.add([sys.argv[2]])
    for path, what, why in report["errors"]:
        print(f"{what} {path}: {why}", file=sys.stderr)
    for group in c.dedup():
        print("\t".join(m["path"] for m in group["members"]))
    print(neardup.__file__, file=sys.stderr)
PY
	local pre=
	case ${SANITIZE:-} in *address*) pre=$(${CC:-cc} -print-file-name=libasan.so) ;; esac
	cd "$tmp" && PYTHONPATH="$pkg" LD_PRELOAD="$pre" ASAN_OPTIONS="${ASAN_OPTIONS}:detect_leaks=0" \
		expect 0 "${PYTHON:-/usr/bin/python3}" "$tmp/dups.py" "$tmp/py.db" "$root/data"
	cd "$root"
	grep -q "^$dest" "$tmp/err" || fail "not the installed package: $(tail -c 300 "$tmp/err")"
	expected >"$tmp/want3" 2>/dev/null
	diff "$tmp/want3" "$tmp/out" >/dev/null || fail "groups differ from the CLI's: $(diff "$tmp/want3" "$tmp/out" | head -20)"
}

install_tree
run test_dynamic
run test_static
run test_exports
run test_python
