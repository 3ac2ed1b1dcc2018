# Shared harness of the end-to-end shell tests (sourced by tests/e2e_*.sh;
# not a test itself): fail / run / expect, and sanitizer reports that must
# never pass for an expected exit status.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}exitcode=86"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}exitcode=86:print_stacktrace=1"

t_fail=0
t_skip=0
fail() {
	echo "  $*"
	t_fail=1
}
# run TEST_FUNCTION: PASS or FAIL line (none when the test said SKIP)
run() {
	t_fail=0
	t_skip=0
	"$1"
	if [ "$t_fail" != 0 ]; then
		echo "FAIL $1"
	elif [ "$t_skip" = 0 ]; then
		echo "PASS $1"
	fi
}
# expect RC CMD...: runs CMD (stdout -> out, stderr -> err) and checks its status
expect() {
	local want=$1
	shift
	"$@" >out 2>err
	local rc=$?
	[ "$rc" = "$want" ] || fail "exit status $rc, want $want: $* (stderr: $(head -c 600 err))"
	! grep -qE 'runtime error:|Sanitizer' err || fail "sanitizer report: $* $(head -c 2000 err)"
}
