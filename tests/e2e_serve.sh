#!/bin/bash
# End-to-end tests of `neardup serve`: real servers on ephemeral loopback
# ports (port 0; the bound port is read from the server's first line),
# driven with curl. Every reply is recorded and checked against
# doc/openapi.yaml at the end (tests/serve_openapi.py). Run by `make test`
# with the binary in $NEARDUP_BIN, from the repository root; prints
# PASS/FAIL per test.
set -u
B=${NEARDUP_BIN:?NEARDUP_BIN must name the neardup binary}
ROOT=$(pwd)
DATA=$ROOT/data
export NEARDUP_MODEL=$ROOT/tests/data/cli/tiny.ndm
unset NEARDUP_INDEX NEARDUP_SERVE_TEST_PAUSE
. "$ROOT/tests/lib_e2e.sh"
T=$(mktemp -d "${TMPDIR:-/tmp}/neardup-serve.XXXXXX")
SRV_PID=
stop_server() {
	if [ -n "$SRV_PID" ]; then
		kill -9 "$SRV_PID" 2>/dev/null
		wait "$SRV_PID" 2>/dev/null
	fi
	SRV_PID=
}
trap 'stop_server; rm -rf "$T"' EXIT
cd "$T" || exit 1
mkdir ex

TOKEN=e2e-token-5f1c0c2d9a7b4e38
echo "$TOKEN" >tok
AUTH="Authorization: Bearer $TOKEN"
for f in "$DATA"/*.jpg; do cp "$f" .; done
# ppm N: a distinct 64x64 noise image
ppm() { { printf 'P6\n64 64\n255\n'; head -c 12288 /dev/urandom; } >"img$1.ppm"; }

# start_server ARGS...: neardup serve on 127.0.0.1, port 0; sets U and
# SRV_PID, or returns 1 (the server's stderr is in srv.err)
start_server() {
	"$B" serve --listen 127.0.0.1:0 --access-log access.log "$@" >srv.out 2>srv.err &
	SRV_PID=$!
	local port=
	for _ in $(seq 1 600); do
		port=$(sed -n 's|.*serving index .* on http://127\.0\.0\.1:\([0-9]*\)/.*|\1|p' srv.err)
		[ -n "$port" ] && break
		kill -0 "$SRV_PID" 2>/dev/null || break
		sleep 0.1
	done
	if [ -z "$port" ]; then
		fail "the server did not start: $(cat srv.err)"
		stop_server
		return 1
	fi
	U=http://127.0.0.1:$port
}

# call METHOD ROUTE PATH [CURL ARGS...]: one request, recorded for the spec
# check; the status goes to $code, the body to the file 'body'
N=0
call() {
	local m=$1 route=$2 path=$3 out
	shift 3
	N=$((N + 1))
	: >"ex/$N"
	: >"ex/$N.h"
	out=$(curl -s --max-time 300 -o "ex/$N" -D "ex/$N.h" -w '%{http_code} %{content_type}' -X "$m" "$@" "$U$path")
	code=${out%% *}
	local ctype=${out#* }
	cp "ex/$N" body
	cp "ex/$N.h" headers
	printf '{"method": "%s", "route": "%s", "status": %s, "ctype": "%s", "body": "%s"}\n' \
		"$m" "$route" "$code" "$ctype" "$T/ex/$N" >>exchanges.jsonl
}
want() { [ "$code" = "$1" ] || fail "$2: status $code, want $1: $(head -c 400 body)"; }
jwant() { jq -e "$1" body >/dev/null 2>&1 || fail "$2: $(head -c 600 body)"; }

"$B" ingest -q --index db "$DATA"/*.jpg "$DATA"/*.png || { echo "FAIL ingest"; exit 1; }

test_endpoints() {
	start_server --index db --token-file tok --allow-root "$T" || return
	call GET /healthz /healthz
	want 200 healthz
	jwant '.status == "ok" and .images > 0' healthz
	call GET /v1/info /v1/info
	want 200 info
	jwant '.model.name == "neardup-tiny-test" and (.model.checksum | length) == 16 and .index.images > 0
		and .server.writes and .server.allow_root' info
	call POST /v1/query '/v1/query?k=3' -H 'Content-Type: image/jpeg' --data-binary @chelsea.jpg
	want 200 "query by bytes"
	jwant '.results | length == 3 and (.[0].path | endswith("/chelsea.jpg")) and .[0].raw_similarity >= 0.999' \
		"query by bytes"
	call POST /v1/query /v1/query -F image=@chelsea.jpg -F k=2 -F views=none
	want 200 "query by multipart"
	jwant '.results | length == 2 and (.[0].path | endswith("/chelsea.jpg")) and (.[0] | has("view") | not)' \
		"query by multipart, views none"
	call POST /v1/query /v1/query -H 'Content-Type: application/json' -d "{\"path\": \"chelsea.jpg\", \"k\": 1}"
	want 200 "query by a server-side path"
	jwant ".query == \"$T/chelsea.jpg\" and (.results[0].path | endswith(\"/chelsea.jpg\"))" "query by path"
	local id=$(jq '.results[0].id' body)
	local vec=$(awk 'BEGIN { printf "["; for (i = 0; i < 64; i++) printf "%s%d", i ? "," : "", i == 3; printf "]" }')
	call POST /v1/query /v1/query -H 'Content-Type: application/json' -d "{\"vector\": $vec, \"k\": 4}"
	want 200 "query by vector"
	jwant '.results | length >= 1 and length <= 4' "query by vector"

	ppm 1
	call POST /v1/images '/v1/images?name=moderation/one.ppm' -H "$AUTH" -H 'Content-Type: image/x-portable-pixmap' \
		--data-binary @img1.ppm
	want 201 "add by bytes"
	jwant '.existing == false and .path == "moderation/one.ppm"' "add by bytes"
	local new=$(jq .id body)
	call POST /v1/images '/v1/images?name=other-name.ppm' -H "$AUTH" -H 'Content-Type: application/octet-stream' \
		--data-binary @img1.ppm
	want 200 "add an identical image"
	jwant ".existing == true and .id == $new" "an identical image gives the existing id"
	ppm 2
	call POST /v1/images /v1/images -H "$AUTH" -F image=@img2.ppm -F name=form.ppm
	want 201 "add by multipart"
	jwant '.path == "form.ppm"' "add by multipart"
	ppm 3
	call POST /v1/images /v1/images -H "$AUTH" -H 'Content-Type: application/json' -d '{"path": "img3.ppm"}'
	want 201 "add a server-side path"
	jwant ".path == \"$T/img3.ppm\"" "add by path: stored under its real path"
	local byname=$(jq .id body)
	call GET '/v1/images/{id}' "/v1/images/$new"
	want 200 "get an image"
	jwant ".id == $new and .path == \"moderation/one.ppm\" and .width == 64 and .height == 64
		and .size == $(stat -c %s img1.ppm)" "the record"
	call POST /v1/query '/v1/query?k=1&views=none' -H 'Content-Type: image/x-portable-pixmap' --data-binary @img1.ppm
	jwant ".results[0].id == $new" "a posted image is found at once"
	cp img1.ppm img1b.ppm
	printf '\n# copy' >>img1b.ppm # same pixels, other bytes: a near-duplicate
	call POST /v1/images '/v1/images?name=one-copy.ppm' -H "$AUTH" -H 'Content-Type: image/x-portable-pixmap' \
		--data-binary @img1b.ppm
	want 201 "add a near copy"
	call GET /v1/duplicates '/v1/duplicates?min_sim=0.9&per_page=1'
	want 200 duplicates
	jwant '.page == 1 and .per_page == 1 and .total >= 2 and .pages == .total and (.groups | length) == 1' \
		"duplicates, paged"
	local total=$(jq .total body) found=0 p
	for p in $(seq 1 "$total"); do
		call GET /v1/duplicates "/v1/duplicates?min_sim=0.9&per_page=1&page=$p"
		jq -e '[.groups[0].members[].path] | sort == ["moderation/one.ppm", "one-copy.ppm"]' body \
			>/dev/null && found=1
	done
	[ "$found" = 1 ] || fail "the uploaded near copy is not grouped with its original"
	call GET /v1/duplicates "/v1/duplicates?min_sim=0.9&page=$((total + 1))"
	want 200 "a page past the end"
	jwant '.groups == []' "a page past the end is empty"
	call DELETE '/v1/images/{id}' "/v1/images/$new" -H "$AUTH"
	want 200 delete
	jwant ".id == $new and .removed" delete
	call GET '/v1/images/{id}' "/v1/images/$new"
	want 404 "a removed image"
	call DELETE '/v1/images/{id}' "/v1/images/$new" -H "$AUTH"
	want 404 "removing twice"
	call GET /metrics /metrics
	want 200 metrics
	for m in 'neardup_http_requests_total{route="/v1/query",method="POST",status="200"} 5' \
		'neardup_http_requests_total{route="/v1/images/{id}",method="DELETE",status="404"} 1' \
		neardup_decode_seconds_bucket neardup_embed_seconds_count neardup_index_seconds_sum \
		neardup_request_seconds_bucket 'neardup_query_best_similarity_bucket{le="+Inf"} 5' \
		'neardup_images_added_total 4' 'neardup_images_existing_total 1' 'neardup_images ' \
		'neardup_decode_failures_total 0'; do
		grep -qF -- "$m" body || fail "metrics: no '$m'"
	done
	grep -q '^# TYPE neardup_request_seconds histogram$' body || fail "metrics: no histogram TYPE line"
	# the access log: JSON lines, no token, no names or bodies
	jq -e -s 'length >= 20 and all(.[]; has("route") and has("status") and has("ms"))' access.log >/dev/null ||
		fail "access log: $(head -c 400 access.log)"
	! grep -qF -e "$TOKEN" -e one.ppm -e form.ppm -e img3 access.log || fail "the access log shows a token or a name"
	stop_server
}

# the same pair scores as `neardup query` (the server holds the writer
# lock; the command reads beside it)
test_same_scores() {
	start_server --index db || return
	local f
	for f in chelsea.jpg astronaut_crop.jpg; do
		"$B" query --index db -k 5 --format jsonl "$f" >cli.jsonl || fail "neardup query $f"
		call POST /v1/query '/v1/query?k=5' -H 'Content-Type: image/jpeg' --data-binary @"$f"
		want 200 "query $f"
		jq -e -s --slurpfile c cli.jsonl '.[0].results == $c[0].results' body >/dev/null ||
			fail "$f: server $(head -c 500 body) / CLI $(head -c 500 cli.jsonl)"
		"$B" query --index db -k 5 --views none --min-sim 0.5 --format jsonl "$f" >cli.jsonl
		call POST /v1/query '/v1/query?k=5&views=none&min_sim=0.5' -H 'Content-Type: image/jpeg' --data-binary @"$f"
		jq -e -s --slurpfile c cli.jsonl '.[0].results == $c[0].results' body >/dev/null ||
			fail "$f, views none, min_sim: server $(head -c 500 body) / CLI $(head -c 500 cli.jsonl)"
	done
	stop_server
}

test_bad_requests() {
	start_server --index db --token-file tok --max-body 100k || return
	call POST /v1/query /v1/query -H 'Content-Type: application/json' -d '{"k": 3,'
	want 400 "malformed JSON"
	jwant '.error.code == 400 and (.error.message | test("malformed JSON"))' "malformed JSON"
	call POST /v1/query /v1/query -H 'Content-Type: application/json' -d '[1]'
	want 400 "JSON that is not an object"
	call POST /v1/query /v1/query -H 'Content-Type: text/plain' --data-binary @chelsea.jpg
	want 415 "wrong content type"
	call POST /v1/query /v1/query --data-binary @chelsea.jpg # curl's default form type
	want 415 "form-urlencoded"
	head -c 150000 /dev/urandom >big.bin
	call POST /v1/query /v1/query -H 'Content-Type: image/jpeg' --data-binary @big.bin
	want 413 "oversized body (Content-Length)"
	call POST /v1/query /v1/query -H 'Content-Type: image/jpeg' -H 'Transfer-Encoding: chunked' --data-binary @big.bin
	want 413 "oversized body (chunked)"
	call POST /v1/query /v1/query -H 'Content-Type: image/jpeg' --data-binary 'not a jpeg at all'
	want 422 "not an image"
	head -c 3000 chelsea.jpg >trunc.jpg
	call POST /v1/query /v1/query -H 'Content-Type: image/jpeg' --data-binary @trunc.jpg
	want 422 "truncated JPEG"
	jwant '.error.message | test("cannot decode the image: .+")' "422 carries the decoder's message"
	call POST /v1/images '/v1/images?name=x' -H "$AUTH" -H 'Content-Type: image/jpeg' --data-binary @trunc.jpg
	want 422 "adding a truncated JPEG"
	call POST /v1/query /v1/query -H 'Content-Type: image/jpeg'
	want 400 "no image"
	call POST /v1/query '/v1/query?k=0' -H 'Content-Type: image/jpeg' --data-binary @chelsea.jpg
	want 400 "k out of range"
	call POST /v1/query '/v1/query?views=sideways' -H 'Content-Type: image/jpeg' --data-binary @chelsea.jpg
	want 400 "bad views"
	call POST /v1/query /v1/query -H 'Content-Type: application/json' -d '{"vector": [1, 2]}'
	want 400 "vector of the wrong length"
	call POST /v1/images /v1/images -H 'Content-Type: image/jpeg' --data-binary @chelsea.jpg
	want 401 "write without a token"
	grep -qi '^WWW-Authenticate: Bearer' headers || fail "401 without WWW-Authenticate"
	call POST /v1/images /v1/images -H 'Authorization: Bearer wrong-token-0000000000' -H 'Content-Type: image/jpeg' \
		--data-binary @chelsea.jpg
	want 401 "write with a wrong token"
	call DELETE '/v1/images/{id}' /v1/images/1 -H "Authorization: Bearer ${TOKEN}x"
	want 401 "delete with a token that is one character longer"
	call DELETE '/v1/images/{id}' /v1/images/1
	want 401 "delete without a token"
	call GET '/v1/images/{id}' /v1/images/1 # reads on loopback need no token
	want 200 "read without a token on loopback"
	call GET '/v1/images/{id}' /v1/images/999999
	want 404 "unknown id"
	call GET '/v1/images/{id}' /v1/images/abc
	want 404 "an id that is not a number"
	call GET '/v1/images/{id}' /v1/images/-1
	want 404 "a negative id"
	call POST '/v1/images/{id}' /v1/images/1 -H "$AUTH" -H 'Content-Type: image/jpeg' --data-binary @chelsea.jpg
	[ "$code" = 405 ] || fail "POST on an image: $code"
	sed -i '$d' exchanges.jsonl # not an operation of the spec
	call GET /v1/query /v1/query
	[ "$code" = 405 ] || fail "GET /v1/query: $code"
	grep -qi '^Allow: POST' headers || fail "405 without Allow"
	sed -i '$d' exchanges.jsonl
	call GET /nope /nope
	[ "$code" = 404 ] || fail "unknown route: $code"
	sed -i '$d' exchanges.jsonl
	call GET /v1/duplicates '/v1/duplicates?min_sim=abc'
	want 400 "bad min_sim"
	call GET /v1/duplicates '/v1/duplicates?page=0'
	want 400 "page 0"
	call POST /v1/images /v1/images -H "$AUTH" -H 'Content-Type: application/json' -d '{"path": "chelsea.jpg"}'
	want 403 "server-side paths without --allow-root"
	stop_server
}

test_traversal() {
	mkdir -p root/sub outside
	cp chelsea.jpg root/in.jpg
	cp grass.jpg outside/secret.jpg
	ln -s ../outside/secret.jpg root/link.jpg
	ln -s ../outside root/linkdir
	ln -s "$T/root" rootlink
	start_server --index db --token-file tok --allow-root root || return
	local p
	for p in ../outside/secret.jpg sub/../../outside/secret.jpg "$T/outside/secret.jpg" link.jpg \
		linkdir/secret.jpg "$T/root/../outside/secret.jpg" "$T/rootlink/in.jpg" /etc/passwd; do
		call POST /v1/images /v1/images -H "$AUTH" -H 'Content-Type: application/json' -d "{\"path\": \"$p\"}"
		want 403 "add '$p'"
		call POST /v1/query /v1/query -H 'Content-Type: application/json' -d "{\"path\": \"$p\"}"
		want 403 "query '$p'"
	done
	call POST /v1/images /v1/images -H "$AUTH" -H 'Content-Type: application/json' -d '{"path": "missing.jpg"}'
	want 404 "a file that does not exist"
	call POST /v1/images /v1/images -H "$AUTH" -H 'Content-Type: application/json' -d '{"path": "sub"}'
	want 404 "a directory"
	call POST /v1/images /v1/images -H "$AUTH" -H 'Content-Type: application/json' -d '{"path": "in.jpg"}'
	[ "$code" = 200 ] || [ "$code" = 201 ] || fail "a file inside the root: $code $(cat body)"
	call POST /v1/images /v1/images -H "$AUTH" -H 'Content-Type: application/json' -d "{\"path\": \"$T/root/./sub/../in.jpg\"}"
	want 403 "'..' even when it stays inside"
	stop_server
}

test_read_only_and_remote() {
	start_server --index db || return
	call POST /v1/images /v1/images -H "$AUTH" -H 'Content-Type: image/jpeg' --data-binary @chelsea.jpg
	want 403 "writes without --token-file"
	call POST /v1/query '/v1/query?k=1' -H 'Content-Type: image/jpeg' --data-binary @chelsea.jpg
	want 200 "queries without --token-file"
	stop_server
	start_server --index db --token-file tok --token-all || return
	call GET /v1/info /v1/info
	want 401 "a read with --token-all and no token"
	call GET /v1/info /v1/info -H "$AUTH"
	want 200 "a read with --token-all and the token"
	stop_server
	expect 2 "$B" serve --index db --token-all
	expect 2 "$B" serve --index db --listen 0.0.0.0:0
	grep -q "not a loopback address, needs --token-file" err || fail "non-loopback without a token: $(cat err)"
	expect 2 "$B" serve --index db --listen 127.0.0.1:99999
	expect 2 "$B" serve --index db --token-file missing-file
	echo short >short.tok
	expect 2 "$B" serve --index db --token-file short.tok
	# off loopback every request needs the token (reached here through 127.0.0.1)
	"$B" serve --index db --listen 0.0.0.0:0 --token-file tok --access-log access.log >srv.out 2>srv.err &
	SRV_PID=$!
	local port=
	for _ in $(seq 1 600); do
		port=$(sed -n 's|.*on http://0\.0\.0\.0:\([0-9]*\)/.*|\1|p' srv.err)
		[ -n "$port" ] && break
		kill -0 "$SRV_PID" 2>/dev/null || break
		sleep 0.1
	done
	[ -n "$port" ] || { fail "no server on 0.0.0.0: $(cat srv.err)"; stop_server; return; }
	U=http://127.0.0.1:$port
	call GET /healthz /healthz
	want 401 "healthz off loopback without a token"
	call GET /healthz /healthz -H "$AUTH"
	want 200 "healthz off loopback with the token"
	call POST /v1/query /v1/query -H 'Content-Type: image/jpeg' --data-binary @chelsea.jpg
	want 401 "a query off loopback without a token"
	stop_server
}

test_timeout() {
	start_server --index db --timeout 1 || return
	head -c 4000 chelsea.jpg >slow.jpg
	call POST /v1/query /v1/query -H 'Content-Type: image/jpeg' --limit-rate 1000 --data-binary @slow.jpg
	# the body takes ~4 s to arrive at 1000 bytes/s: 408, or the idle
	# timeout closed the connection (000) between two bursts
	[ "$code" = 408 ] || [ "$code" = 000 ] || fail "a slow body: $code $(cat body)"
	[ "$code" = 000 ] && sed -i '$d' exchanges.jsonl
	call GET /healthz /healthz
	want 200 "the server goes on after a slow client"
	stop_server
}

test_queue_full() {
	local i pids=
	export NEARDUP_SERVE_TEST_PAUSE=$T/pause
	touch pause
	start_server --index db --token-file tok --threads 4 --queue 2 || { unset NEARDUP_SERVE_TEST_PAUSE; return; }
	unset NEARDUP_SERVE_TEST_PAUSE
	for i in 11 12; do
		ppm $i
		curl -s -o "q$i.out" -w '%{http_code}' -H "$AUTH" -H 'Content-Type: image/x-portable-pixmap' \
			--data-binary @img$i.ppm "$U/v1/images?name=q$i" >"q$i.code" &
		pids="$pids $!"
	done
	for _ in $(seq 1 600); do
		curl -s "$U/metrics" | grep -qx 'neardup_write_queue 2' && break
		sleep 0.1
	done
	ppm 13
	call POST /v1/images '/v1/images?name=q13' -H "$AUTH" -H 'Content-Type: image/x-portable-pixmap' --data-binary @img13.ppm
	want 429 "a write with the queue full"
	grep -qi '^Retry-After: 1' headers || fail "429 without Retry-After"
	rm -f pause
	wait $pids
	[ "$(cat q11.code)" = 201 ] && [ "$(cat q12.code)" = 201 ] ||
		fail "queued writes: $(cat q11.code q11.out q12.code q12.out)"
	call GET /metrics /metrics
	grep -q '^neardup_queue_full_total 1$' body || fail "queue_full metric"
	stop_server
}

# kill -9 during a burst of writes: every acknowledged image is there
# after a restart, and the index checks clean
test_kill9() {
	cp -r db db9
	start_server --index db9 --token-file tok --threads 4 || return
	local i
	for i in $(seq 100 139); do ppm $i; done
	seq 100 139 | xargs -P 8 -I{} sh -c "curl -s -o ack{}.out -w '%{http_code}' -H '$AUTH' \
		-H 'Content-Type: image/x-portable-pixmap' --data-binary @img{}.ppm \
		'$U/v1/images?name=burst/{}.ppm' >ack{}.code 2>/dev/null" &
	local burst=$!
	# kill once a few writes were acknowledged (whatever the speed)
	for _ in $(seq 1 1200); do
		[ "$(grep -l '^201$' ack*.code 2>/dev/null | wc -l)" -ge 5 ] && break
		sleep 0.05
	done
	kill -9 "$SRV_PID"
	wait "$SRV_PID" 2>/dev/null
	SRV_PID=
	wait $burst
	local acked=0 lost=0
	start_server --index db9 || return
	for i in $(seq 100 139); do
		[ "$(cat ack$i.code 2>/dev/null)" = 201 ] || continue
		acked=$((acked + 1))
		local id=$(jq .id ack$i.out)
		call GET '/v1/images/{id}' "/v1/images/$id"
		jq -e ".path == \"burst/$i.ppm\"" body >/dev/null || lost=$((lost + 1))
	done
	[ "$acked" -ge 5 ] || fail "only $acked writes acknowledged before the kill"
	[ "$lost" = 0 ] || fail "$lost of $acked acknowledged images missing after kill -9"
	stop_server
	expect 0 "$B" check --index db9
}

# SIGTERM: the request in flight is answered, its image committed, exit 0
test_sigterm() {
	cp -r db dbt
	start_server --index dbt --token-file tok || return
	ppm 200
	# ~3 s of body at 4000 bytes/s
	curl -s -o term.out -w '%{http_code}' --limit-rate 4000 -H "$AUTH" -H 'Content-Type: image/x-portable-pixmap' \
		--data-binary @img200.ppm "$U/v1/images?name=late.ppm" >term.code &
	local c=$!
	for _ in $(seq 1 600); do
		curl -s "$U/metrics" | grep -qx 'neardup_requests_in_flight 2' && break
		sleep 0.05
	done
	kill -TERM "$SRV_PID"
	wait "$SRV_PID"
	local rc=$?
	SRV_PID=
	wait $c
	[ "$rc" = 0 ] || fail "exit status $rc after SIGTERM: $(cat srv.err)"
	[ "$(cat term.code)" = 201 ] || fail "the request in flight: $(cat term.code) $(cat term.out)"
	expect 0 "$B" stats --index dbt
	"$B" query --index dbt -k 1 --views none --format jsonl img200.ppm >q.jsonl
	jq -e '.results[0].path == "late.ppm"' q.jsonl >/dev/null || fail "not committed: $(cat q.jsonl)"
	expect 0 "$B" check --index dbt
}

test_spec() {
	if ! /usr/bin/python3 -c 'import yaml' 2>/dev/null; then
		echo "SKIP test_spec (no python3-yaml)"
		t_skip=1
		return
	fi
	/usr/bin/python3 "$ROOT/tests/serve_openapi.py" "$ROOT/doc/openapi.yaml" exchanges.jsonl >spec.out 2>&1 ||
		fail "replies against doc/openapi.yaml: $(cat spec.out)"
}

# tests/e2e_serve.sh [TEST...]: only these (test_spec checks the replies of those run)
for t in ${*:-test_endpoints test_same_scores test_bad_requests test_traversal test_read_only_and_remote \
	test_timeout test_queue_full test_kill9 test_sigterm test_spec}; do
	run "$t"
done
