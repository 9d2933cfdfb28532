#!/usr/bin/env bash
# End-to-end test of strata behind a real Apache: mod_cgid, then mod_fcgid,
# both through the /api rewrite, deployed with the shipped cgi-bin/*.htaccess.
#
#   sudo tests/apache/e2e.sh [path/to/strata]      (default ./strata)
#
# Needs root (Apache drops to www-data as on a real host), apache2,
# libapache2-mod-fcgid, curl, jq, b3sum. Uses its own Apache config on free
# loopback ports (from 8089) and a temp dir; leaves /etc/apache2 alone.
# KEEP=1 keeps the temp dir (logs, data) for a look afterwards.
# Prints "ok - name" / "not ok - name" per check, then "N passed, M failed".
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BIN=${1:-./strata}
[ -x "$BIN" ] || { echo "error: no executable strata binary at $BIN (run make build)" >&2; exit 2; }
BIN=$(realpath "$BIN")
for t in curl jq b3sum; do
	command -v "$t" >/dev/null || { echo "error: $t not installed" >&2; exit 2; }
done

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

WORK=$(mktemp -d /tmp/strata-apache.XXXXXX)
OUT=$WORK/out
mkdir -p "$OUT"
MAX_BODY=1048576 # 1 MiB for event bodies, so that 413 is cheap to provoke
PASS=0 FAIL=0 SKIP=0

# shellcheck disable=SC2317 # called by trap
cleanup() {
	stop_apache
	if [ -n "${KEEP:-}" ]; then echo "# kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

ok() { PASS=$((PASS + 1)); echo "ok - $1"; }
nok() {
	FAIL=$((FAIL + 1))
	echo "not ok - $1"
	[ -n "${2:-}" ] && echo "#   $2"
	return 0
}
skip() { SKIP=$((SKIP + 1)); echo "ok - $1 # SKIP $2"; }

# http METHOD URL [curl args...]: body in $OUT/body, headers in $OUT/hdr,
# status in $ST (000 when there was no HTTP answer at all).
http() {
	local method=$1 url=$2 m
	shift 2
	if [ "$method" = HEAD ]; then m=(--head); else m=(-X "$method"); fi
	: >"$OUT/body"
	: >"$OUT/hdr"
	ST=$(curl -sS --max-time 120 -o "$OUT/body" -D "$OUT/hdr" -w '%{http_code}' \
		"${m[@]}" "$@" "$url" 2>"$OUT/curlerr")
	[ -n "$ST" ] || ST=000
}

# hdr NAME: value of a response header of the last request.
hdr() {
	grep -i "^$1:" "$OUT/hdr" | tail -n 1 | cut -d: -f2- | tr -d '\r' | sed 's/^ *//'
}

# what: a one-line account of the last answer, for "not ok" lines.
what() {
	local b
	b=$(head -c 300 "$OUT/body" | tr '\n\r' '  ' | tr -c '[:print:]' '?')
	echo "got $ST, Content-Type '$(hdr Content-Type)', body '$b'$( [ -s "$OUT/curlerr" ] && echo ", curl: $(tr '\n' ' ' <"$OUT/curlerr")")"
}

# expect NAME STATUS-REGEX [JQ-FILTER]: the last answer had that status and
# the filter is true of its JSON body.
expect() {
	local name=$1 want=$2 filter=${3:-}
	if [[ $ST =~ ^($want)$ ]] &&
		{ [ -z "$filter" ] || jq -e "$filter" "$OUT/body" >/dev/null 2>&1; }; then
		ok "$name"
	else
		nok "$name" "want $want${filter:+ with $filter}; $(what)"
	fi
}

# expect_error NAME STATUS-REGEX: a JSON error body {"error":{"code","message"}}.
expect_error() {
	expect "$1" "$2" '.error.code|type=="string" and length>0'
}

jqb() { jq -r "($1) // empty" "$OUT/body" 2>/dev/null; }

FIRST='(if type=="array" then .[0] else . end)'
ZERO=0000000000000000000000000000000000000000000000000000000000000000
CT_JSON=(-H 'Content-Type: application/json')
CT_BIN=(-H 'Content-Type: application/octet-stream')

# Files shared by both modes.
head -c 52428800 /dev/urandom >"$WORK/big.bin"
BIG_HASH=$(b3sum --no-names "$WORK/big.bin")
head -c 1048576 /dev/urandom >"$WORK/1m.bin"
ONE_HASH=$(b3sum --no-names "$WORK/1m.bin")
head -c 2097152 /dev/urandom >"$WORK/2m.bin"
TWO_HASH=$(b3sum --no-names "$WORK/2m.bin")
head -c 5000000 /dev/urandom >"$WORK/5m.bin"
printf 'small blob %s\n' "$RANDOM" >"$WORK/small.bin"
SMALL_HASH=$(b3sum --no-names "$WORK/small.bin")
printf 'other content\n' >"$WORK/other.bin"
dd if="$WORK/big.bin" of="$WORK/range.bin" bs=1000 skip=1 count=1 status=none
cat >"$WORK/chunked-events.json" <<'EOF'
[{"type":"invoice.sent","entity":"invoice-1","data":{"total":"12.50"}},
 {"type":"invoice.paid","entity":"invoice-1","data":{"total":"12.50"}}]
EOF

# smoke MODE BASE DATA: the smoke set against BASE (http://host:port/api).
smoke() {
	local mode=$1 base=$2 data=$3 site=${2%/api} n=0 id1 head h etag t0 t1 out
	echo "# ---- $mode: $base, data in $data"

	http GET "$base/head"
	if [[ $(hdr Content-Type) == application/json* ]]; then
		ok "$mode: /api/head answers JSON, not the binary as a download"
	else
		nok "$mode: /api/head answers JSON, not the binary as a download" "$(what)"
	fi

	# --- appends
	http POST "$base/events" "${CT_JSON[@]}" --data-binary \
		'{"type":"order.placed","entity":"order-1","data":{"sku":"A-1","qty":3,"big":12345678901234567890},"expected_version":0,"key":"k1"}'
	# One event object in: one receipt object out (an array in: an array out).
	expect "$mode: single append → 201, seq 1, version 1" 201 \
		"$FIRST | .seq==1 and .version==1 and (.id|test(\"^[0-9a-f]{64}\$\"))
		 and (.time|test(\"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\\\.[0-9]{9}Z\$\"))"
	expect "$mode: append answers a receipt for the stored event (id, seq, time, entity, version)" 201 \
		'type=="object" and .seq==1 and (.id|length)==64 and .entity=="order-1" and .version==1 and (.time|test("^[0-9-]+T[0-9:]+\\.[0-9]{9}Z$"))'
	id1=$(jqb "$FIRST | .id")
	[ "$ST" = 201 ] && n=1
	if [ -n "$id1" ] && [ "$(hdr Strata-Head)" = "$id1" ]; then
		ok "$mode: Strata-Head header is the new head"
	else
		nok "$mode: Strata-Head header is the new head" "Strata-Head '$(hdr Strata-Head)', id '$id1'"
	fi

	http POST "$base/events" "${CT_JSON[@]}" --data-binary \
		'{"type":"order.placed","entity":"order-1","data":{"sku":"A-1","qty":3,"big":12345678901234567890},"expected_version":0,"key":"k1"}'
	expect "$mode: retry with the same key → the same event, no duplicate" '200|201' \
		"$FIRST | .id==\"$id1\" and .seq==1"

	http GET "$base/events/$id1"
	expect "$mode: GET /events/<id> → the event" 200 \
		".id==\"$id1\" and .seq==1 and .prev==(\"0\"*64) and .type==\"order.placed\" and .key==\"k1\""
	if grep -q '"data":{"sku":"A-1","qty":3,"big":12345678901234567890}' "$OUT/body"; then
		ok "$mode: data served as sent (20-digit integer intact)"
	else
		nok "$mode: data served as sent (20-digit integer intact)" "$(what)"
	fi

	http POST "$base/events" "${CT_JSON[@]}" --data-binary \
		'[{"type":"order.line-added","entity":"order-1","data":{"n":1}},
		  {"type":"order.line-added","entity":"order-1","data":{"n":2}},
		  {"type":"order.placed","entity":"order-2","data":{}}]'
	expect "$mode: batch append (JSON array) → 201, 3 events in order" 201 \
		'length==3 and ([.[].seq]==[2,3,4]) and ([.[].version]==[2,3,1])'
	[ "$ST" = 201 ] && n=$((n + 3))

	http POST "$base/events" -H 'Content-Type: application/x-ndjson' --data-binary \
		$'{"type":"order.shipped","entity":"order-1","data":{"carrier":"dhl"}}\n{"type":"order.shipped","entity":"order-2","data":null}\n'
	expect "$mode: batch append (NDJSON) → 201, 2 events" 201 \
		'length==2 and ([.[].seq]==[5,6])'
	[ "$ST" = 201 ] && n=$((n + 2))
	head=$(hdr Strata-Head)

	# --- reads
	http GET "$base/events?from=$id1"
	expect "$mode: GET /events?from=<id> → the events after it, chained" 200 \
		"type==\"array\" and length==5 and .[0].seq==2 and .[0].prev==\"$id1\" and .[-1].id==\"$head\"
		 and ([range(1;length) as \$i | .[\$i].prev == .[\$i-1].id] | all)"
	http GET "$base/events?from=$id1&limit=2"
	expect "$mode: GET /events?from=<id>&limit=2 → 2 events" 200 'length==2 and .[0].seq==2'
	http GET "$base/events/${ZERO%?}1"
	expect_error "$mode: GET /events/<unknown id> → 404 JSON" 404
	http GET "$base/head"
	expect "$mode: GET /head → {id, seq, time}" 200 ".id==\"$head\" and .seq==6 and (.time|type==\"string\")"

	# --- preconditions
	http POST "$base/events" "${CT_JSON[@]}" -H "If-Match: \"$id1\"" --data-binary \
		'{"type":"order.cancelled","entity":"order-1","data":{}}'
	expect_error "$mode: If-Match with a stale head → 409 JSON" 409
	http POST "$base/events" "${CT_JSON[@]}" -H "If-Match: \"$head\"" --data-binary \
		'{"type":"order.cancelled","entity":"order-1","data":{}}'
	expect "$mode: If-Match with the current head → 201" 201 "$FIRST | .seq==7"
	[ "$ST" = 201 ] && n=$((n + 1)) && head=$(hdr Strata-Head)
	http POST "$base/events" "${CT_JSON[@]}" --data-binary \
		'{"type":"order.placed","entity":"order-2","data":{},"expected_version":0}'
	expect_error "$mode: expected_version mismatch → 409 JSON" 409
	http POST "$base/events" "${CT_JSON[@]}" --data-binary \
		'[{"type":"order.placed","entity":"order-9","data":{}},
		  {"type":"order.placed","entity":"order-2","data":{},"expected_version":1}]'
	expect_error "$mode: batch with one conflict → 409 JSON" 409
	http GET "$base/head"
	expect "$mode: a refused batch writes nothing" 200 ".id==\"$head\" and .seq==7"

	# --- bad input
	http POST "$base/events" "${CT_JSON[@]}" --data-binary '{"type":"order.placed","entity":'
	expect_error "$mode: bad JSON → 400 JSON" 400
	http POST "$base/events" "${CT_JSON[@]}" --data-binary '{"type":"Order Placed","entity":"order-3","data":{}}'
	expect_error "$mode: invalid type → 400 JSON" 400
	http GET "$base/no-such-route"
	expect_error "$mode: unknown path → 404 JSON" 404

	# --- chunked request bodies (Apache sends no CONTENT_LENGTH)
	http PUT "$base/events" "${CT_JSON[@]}" -H 'Transfer-Encoding: chunked' -T "$WORK/chunked-events.json"
	expect "$mode: chunked PUT of events → 201, 2 events" 201 'length==2 and .[0].seq==8'
	[ "$ST" = 201 ] && n=$((n + 2)) && head=$(hdr Strata-Head)
	# (curl -T appends the file name to a URL ending in /, hence --data-binary)
	http PUT "$base/storage/" -H 'Transfer-Encoding: chunked' "${CT_BIN[@]}" --data-binary @"$WORK/1m.bin"
	expect "$mode: chunked PUT /storage/ of a 1 MiB blob → 201, hash = b3sum" 201 \
		".hash==\"$ONE_HASH\" and .size==1048576"
	http PUT "$base/storage/$TWO_HASH" -H 'Transfer-Encoding: chunked' -T "$WORK/2m.bin"
	expect "$mode: chunked PUT /storage/<hash> (curl -T) → 2xx, hash = b3sum" '200|201' \
		".hash==\"$TWO_HASH\" and .size==2097152"

	# --- blobs
	t0=$(date +%s%N)
	http PUT "$base/storage/" "${CT_BIN[@]}" --data-binary @"$WORK/big.bin"
	t1=$(date +%s%N)
	expect "$mode: PUT /storage/ 50 MB → 201, hash = b3sum ($(((t1 - t0) / 1000000)) ms)" 201 \
		".hash==\"$BIG_HASH\" and .size==52428800"
	http GET "$base/storage/$BIG_HASH"
	if [ "$ST" = 200 ] && cmp -s "$OUT/body" "$WORK/big.bin"; then
		ok "$mode: GET /storage/<hash> → the same 50 MB"
	else
		nok "$mode: GET /storage/<hash> → the same 50 MB" "got $ST, $(stat -c %s "$OUT/body") bytes"
	fi
	etag=$(hdr ETag)
	http HEAD "$base/storage/$BIG_HASH"
	# Apache drops a CGI program's Content-Length on HEAD (it counts the
	# body it saw: none), so only a wrong length is an error.
	h=$(hdr Content-Length)
	if [ "$ST" = 200 ] && { [ "$h" = 52428800 ] || { [ -z "$h" ] && [ "$mode" = cgi ]; }; }; then
		ok "$mode: HEAD /storage/<hash> → 200${h:+, Content-Length}"
	else
		nok "$mode: HEAD /storage/<hash> → 200, Content-Length" "got $ST, Content-Type '$(hdr Content-Type)', Content-Length '$h'"
	fi
	http GET "$base/storage/$BIG_HASH" -H 'Range: bytes=1000-1999'
	if [ "$ST" = 206 ] && cmp -s "$OUT/body" "$WORK/range.bin" &&
		[ "$(hdr Content-Range)" = "bytes 1000-1999/52428800" ]; then
		ok "$mode: Range request → 206, the right bytes"
	else
		nok "$mode: Range request → 206, the right bytes" "got $ST, Content-Range '$(hdr Content-Range)', $(stat -c %s "$OUT/body") bytes"
	fi
	if [ -n "$etag" ]; then
		http GET "$base/storage/$BIG_HASH" -H "If-None-Match: $etag"
		expect "$mode: If-None-Match with the ETag → 304" 304
	else
		nok "$mode: blob GET has an ETag" "no ETag header"
	fi
	http PUT "$base/storage/$SMALL_HASH" -T "$WORK/small.bin"
	expect "$mode: PUT /storage/<hash> with matching content → 2xx" '200|201' ".hash==\"$SMALL_HASH\""
	http PUT "$base/storage/$SMALL_HASH" -T "$WORK/other.bin"
	expect_error "$mode: PUT /storage/<hash> with other content → 4xx JSON" '400|409|422'
	http DELETE "$base/storage/$SMALL_HASH"
	expect "$mode: DELETE /storage/<hash> → 2xx" '200|204'
	http GET "$base/storage/$SMALL_HASH"
	expect_error "$mode: GET a deleted blob → 404 JSON" 404

	# --- early errors with an unread request body (mod_cgid drops the
	# answer of a program that exits without reading its body)
	http POST "$base/events" "${CT_JSON[@]}" --data-binary @"$WORK/5m.bin"
	expect_error "$mode: 5 MB event body over STRATA_MAX_BODY → 413 JSON" 413
	http POST "$base/events" "${CT_JSON[@]}" -H 'Transfer-Encoding: chunked' --data-binary @"$WORK/5m.bin"
	expect_error "$mode: 5 MB chunked event body over STRATA_MAX_BODY → 413 JSON" 413
	# (PUT /storage/<file name> stores under a name, as curl -T sends it:
	# a bad hash is one in upper case)
	http PUT "$base/storage/${BIG_HASH^^}" -T "$WORK/5m.bin"
	expect_error "$mode: PUT /storage/<upper-case hash> with 5 MB body → 400 JSON" 400

	# --- deployment hygiene
	http GET "$site/cgi-bin/.htaccess"
	expect "$mode: cgi-bin/.htaccess not served" 403
	if [ -f "$(dirname "$data")/www-$mode/cgi-bin/strata.conf" ]; then
		http GET "$site/cgi-bin/strata.conf"
		expect "$mode: cgi-bin/strata.conf not served" 403
	fi
	local script=strata.cgi
	[ "$mode" = fcgid ] && script=strata.fcgi
	http GET "$site/cgi-bin/$script/head"
	expect "$mode: the script's own URL works too (/cgi-bin/$script/head)" 200 ".id==\"$head\""
	skip "$mode: Authorization header reaches the program" "no auth yet"

	# --- the log on disk
	# (the deployed copy: www-data may not reach $BIN's directory)
	if out=$(as_apache_user "$WWW_CGI/cgi-bin/strata.cgi" verify --data "$data" 2>&1); then
		if [[ $out == "OK $n events, head $head"* ]]; then
			ok "$mode: strata verify → OK $n events"
		else
			nok "$mode: strata verify → OK $n events" "output: $out"
		fi
	else
		nok "$mode: strata verify → OK $n events" "exit $?: $out"
	fi
}

setup_apache "$BIN"
start_apache
echo "# apache up: mod_cgid on :$PORT_CGI, mod_fcgid on :$PORT_FCGID, work dir $WORK"

smoke cgi "http://127.0.0.1:$PORT_CGI/api" "$DATA_CGI"
smoke fcgid "http://127.0.0.1:$PORT_FCGID/api" "$DATA_FCGID"

# Denied requests (AH01630) are expected; anything else at error level is not.
if [ "$FAIL" -gt 0 ] ||
	grep -v AH01630 "$WORK/logs/error.log" | grep -qE ':(error|crit|alert|emerg)\]|panic'; then
	dump_apache_log 80
fi
echo "$PASS passed, $FAIL failed, $SKIP skipped"
[ "$FAIL" -eq 0 ]
