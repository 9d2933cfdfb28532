#!/usr/bin/env bash
# Latency of strata behind a real Apache, one client, Connection: close:
#   - single-event appends under mod_cgid (300) and mod_fcgid (2000),
#   - GET /events?from=<id 1000 before head> under mod_cgid, log of 10,000,
#   - GET /projections/<a counter>/result under mod_cgid, nothing to catch up,
#   - GET /entities/<entity> of an entity with 100,000 events under mod_cgid,
#   - "cgi longpoll wake": a GET /events?…&wait=20 under mod_cgid, waiting,
#     answered by an append (another CGI process): from the append's start
#     to the long-poll's answer (100 rounds, each waits 200 ms first),
#   - "cgi mutex lock+unlock": POST /mutex/<key>/lock then …/unlock with
#     its token under mod_cgid, two CGI processes a round, timed together.
# Accounts are on, as on a real host: every request carries the writer
# token setup_apache made (Authorization: Bearer, through CGIPassAuth), so
# "cgi append", "fcgid append" and "cgi read …" are token-authenticated.
# (tests/bench/cgi.go reads those three labels: keep them as they are.)
# For comparison, CGI appends with the other credentials of a user:
#   - "cgi append (basic)": HTTP Basic, a bcrypt check (cost 10, as strata
#     user add writes) in every process (needs htpasswd, apache2-utils),
#   - "cgi append (session)": the session token from POST /session.
#
#   sudo tests/apache/bench.sh [path/to/strata]      (default ./strata)
#
# Same setup as e2e.sh (see lib.sh); needs go to build loadgen. Prints one
# line per figure beside its target; targets are reported, never enforced.
# CGI_N, FCGID_N, READ_N, BASIC_N, SESSION_N, ENTITY_N, WAKE_N, MUTEX_N override the request counts.
set -u

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BIN=${1:-./strata}
[ -x "$BIN" ] || { echo "error: no executable strata binary at $BIN (run make build)" >&2; exit 2; }
BIN=$(realpath "$BIN")
for t in curl jq go; do
	command -v "$t" >/dev/null || { echo "error: $t not installed" >&2; exit 2; }
done

# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$HERE/lib.sh"

WORK=$(mktemp -d /tmp/strata-bench.XXXXXX)
# shellcheck disable=SC2317 # called by trap
cleanup() {
	remove_cli_user
	stop_apache
	if [ -n "${KEEP:-}" ]; then echo "# kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

(cd "$REPO" && CGO_ENABLED=0 go build -o "$WORK/loadgen" ./tests/apache/loadgen) ||
	die "cannot build tests/apache/loadgen"
LG=$WORK/loadgen

setup_apache "$BIN"
start_apache
CGI=http://127.0.0.1:$PORT_CGI/api
FCGID=http://127.0.0.1:$PORT_FCGID/api
AUTH_CGI=(-H "Authorization: Bearer $TOKEN_CGI")
AUTH_FCGID=(-H "Authorization: Bearer $TOKEN_FCGID")
echo "# apache: mod_cgid on :$PORT_CGI, mod_fcgid on :$PORT_FCGID; $(nproc) cores; $(stat -c %s "$BIN") byte binary; requests token-authenticated (Authorization: Bearer)"
rc=0

# Bulk-load 10,000 events into the CGI log: 20 batches of 500 through Apache.
: >"$WORK/ids"
for b in $(seq 0 19); do
	{
		printf '['
		for i in $(seq 0 499); do
			[ "$i" -gt 0 ] && printf ','
			printf '{"type":"bench.loaded","entity":"load-%d","data":{"batch":%d,"i":%d,"pad":"0123456789abcdef0123456789abcdef"}}' \
				$((b * 500 + i)) "$b" "$i"
		done
		printf ']'
	} >"$WORK/batch.json"
	st=$(curl -sS -o "$WORK/batch.out" -w '%{http_code}' -X POST -H 'Content-Type: application/json' \
		"${AUTH_CGI[@]}" --data-binary @"$WORK/batch.json" "$CGI/events")
	if [ "$st" != 201 ]; then
		echo "error: bulk load batch $b: status $st: $(head -c 300 "$WORK/batch.out")" >&2
		dump_apache_log 20
		exit 1
	fi
	jq -r '.[] | "\(.seq) \(.id)"' "$WORK/batch.out" >>"$WORK/ids"
done
head_seq=$(curl -sS "${AUTH_CGI[@]}" "$CGI/head" | jq -r .seq)
from_seq=$((head_seq - 1000))
from_id=$(awk -v s="$from_seq" '$1 == s { print $2 }' "$WORK/ids")
[ -n "$from_id" ] || die "no id for seq $from_seq (head seq $head_seq)"
got=$(curl -sS "${AUTH_CGI[@]}" "$CGI/events?from=$from_id" | jq length)
echo "# loaded $head_seq events; GET /events?from=<seq $from_seq> returns $got events"

"$LG" -label "cgi read from=<head-1000>" -n "${READ_N:-200}" -method GET -want 200 "${AUTH_CGI[@]}" \
	"$CGI/events?from=$from_id" || rc=1

# A projection over those events, caught up by one untimed read: every
# timed read finds nothing new to catch up (its cached result, checked
# against the chain, served as it is).
st=$(curl -sS -o "$WORK/proj.out" -w '%{http_code}' -X POST -H 'Content-Type: application/json' "${AUTH_CGI[@]}" \
	--data-binary '{"name":"bench-per-type","kind":"counter","by":"type"}' "$CGI/projections")
[ "$st" = 201 ] || die "POST /projections: status $st: $(head -c 300 "$WORK/proj.out")"
curl -sS -o /dev/null "${AUTH_CGI[@]}" "$CGI/projections/bench-per-type/result"
"$LG" -label "cgi projection result" -n "${PROJ_N:-300}" -target 4 -method GET -want 200 "${AUTH_CGI[@]}" \
	"$CGI/projections/bench-per-type/result" || rc=1
# For comparison: the cheapest authenticated read, GET /head (process
# start, credentials, the log opened, its head).
"$LG" -label "cgi head" -n "${PROJ_N:-300}" -method GET -want 200 "${AUTH_CGI[@]}" "$CGI/head" || rc=1

# Entity state of an entity with 100,000 events (figure 11e): loaded
# through Apache in 20 NDJSON batches of 5,000; one untimed read folds it
# and writes its snapshots and latest-state cache, as the first reader on
# a real host would.
for b in $(seq 0 19); do
	awk -v b="$b" 'BEGIN { for (i = b * 5000; i < (b + 1) * 5000; i++) printf "{\"type\":\"item.changed\",\"entity\":\"big\",\"data\":{\"n\":%d,\"k%d\":\"v\",\"status\":\"s%d\"}}\n", i, i % 10, i % 3 }' >"$WORK/big.ndjson"
	st=$(curl -sS -o "$WORK/big.out" -w '%{http_code}' -X POST -H 'Content-Type: application/x-ndjson' \
		"${AUTH_CGI[@]}" --data-binary @"$WORK/big.ndjson" "$CGI/events")
	if [ "$st" != 201 ]; then
		echo "cgi entity state: no successful request (loading batch $b: status $st: $(head -c 200 "$WORK/big.out"))"
		rc=1
		break
	fi
done
first=$(curl -sS -o /dev/null -w '%{time_total}' "${AUTH_CGI[@]}" "$CGI/entities/big")
echo "# entity big loaded (100,000 events); the first GET /entities/big took ${first}s (folds them, writes the snapshots)"
"$LG" -label "cgi entity state" -n "${ENTITY_N:-200}" -target 5 -method GET -want 200 "${AUTH_CGI[@]}" \
	"$CGI/entities/big" || rc=1

BODY='{"type":"bench.appended","entity":"bench-{i}","data":{"i":{i},"sku":"A-1","qty":3}}'
"$LG" -label "cgi append" -n "${CGI_N:-300}" -target 5 -method POST -want 201 -body "$BODY" \
	"${AUTH_CGI[@]}" "$CGI/events" || rc=1
"$LG" -label "cgi longpoll wake" -n "${WAKE_N:-100}" -warmup 2 -target 100 -method POST -want 201 \
	-body '{"type":"bench.wake","entity":"wake","data":{"i":{i}}}' -wake "$CGI/events?type=bench.wake&wait=20" \
	"${AUTH_CGI[@]}" "$CGI/events" || rc=1
"$LG" -label "cgi mutex lock+unlock" -n "${MUTEX_N:-300}" -target 8 -method POST -want 200 \
	-then "$CGI/mutex/bench/unlock" -then-body '{"token":{token}}' \
	"${AUTH_CGI[@]}" "$CGI/mutex/bench/lock?ttl=10" || rc=1
"$LG" -label "fcgid append" -n "${FCGID_N:-2000}" -target 1 -method POST -want 201 -body "$BODY" \
	"${AUTH_FCGID[@]}" "$FCGID/events" || rc=1

# The same CGI append as a user with a password: Basic on every request,
# then the session token a login answers. USERS_CGI is the users file the
# deployed cgi-bin/.htaccess names (SetEnv STRATA_USERS).
if command -v htpasswd >/dev/null; then
	pw=bench-$RANDOM$RANDOM
	if htpasswd -B -C 10 -c -b "$USERS_CGI" bench "$pw" 2>"$WORK/htpasswd.err" &&
		chown "$(cli_user):$(id -gn "$(apache_user)")" "$USERS_CGI" && chmod 640 "$USERS_CGI" &&
		strata_cli user grant bench --tenant default --role writer --data "$DATA_CGI" >"$WORK/grant.out" 2>&1; then
		"$LG" -label "cgi append (basic)" -n "${BASIC_N:-50}" -method POST -want 201 -body "$BODY" \
			-H "Authorization: Basic $(printf 'bench:%s' "$pw" | base64 -w0)" "$CGI/events" || rc=1
		session=$(curl -sS -X POST -H 'Content-Type: application/json' \
			--data-binary "{\"user\":\"bench\",\"password\":\"$pw\"}" "$CGI/session" | jq -r '.token // empty')
		if [ -n "$session" ]; then
			"$LG" -label "cgi append (session)" -n "${SESSION_N:-300}" -method POST -want 201 -body "$BODY" \
				-H "Authorization: Bearer $session" "$CGI/events" || rc=1
		else
			echo "cgi append (session): no successful request (POST /session gave no token)"
			rc=1
		fi
	else
		echo "# cgi append (basic): not measured: $(cat "$WORK/htpasswd.err" "$WORK/grant.out" 2>/dev/null | tr '\n' ' ')"
	fi
else
	echo "# cgi append (basic), (session): not measured (no htpasswd: apt-get install apache2-utils)"
fi

if [ "$rc" != 0 ]; then dump_apache_log 30; fi
exit "$rc"
