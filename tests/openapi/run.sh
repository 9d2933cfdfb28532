#!/usr/bin/env bash
# The OpenAPI document checked from outside Go: two independent validators
# (@seriousme/openapi-schema-validator: the OpenAPI 3.1 JSON Schema;
# redocly lint: refs, parameters, operation ids), then a typed client
# generated from the document a real `strata serve` serves
# (openapi-typescript + openapi-fetch, type-checked by tsc), run against
# that server (client.ts).
#
#   bash tests/openapi/run.sh [path/to/strata]     (default ./strata)
#
# Needs node and npm (Debian: apt-get install nodejs npm); the packages are
# pinned in package-lock.json and installed here with npm ci.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
BIN=$(realpath "${1:-$REPO/strata}")
[ -x "$BIN" ] || { echo "error: no executable strata binary at $BIN (run make build)" >&2; exit 2; }
command -v npm >/dev/null || { echo "error: npm not installed (apt-get install nodejs npm)" >&2; exit 2; }
cd "$HERE"

# npm ci only when the lock changed since the last install.
if ! cmp -s package-lock.json node_modules/.strata-installed 2>/dev/null; then
	start=$(date +%s)
	npm ci --no-audit --no-fund --loglevel=error
	cp package-lock.json node_modules/.strata-installed
	echo "# npm ci: $(($(date +%s) - start)) s"
fi

echo "# validate: OpenAPI 3.1 schema"
out=$(npx --no-install validate-api "$REPO/api/openapi.json") || true
grep -q '"valid": true' <<<"$out" || { echo "$out" >&2; exit 1; }
echo "# validate: redocly lint"
npx --no-install redocly lint --config redocly.yaml "$REPO/api/openapi.json"

WORK=$(mktemp -d /tmp/strata-openapi.XXXXXX)
PID=
cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	rm -rf "$WORK"
}
trap cleanup EXIT

# A real server on a free port, accounts off (the client is about the API's
# shapes, not its credentials).
"$BIN" serve --addr 127.0.0.1 --port 0 --auth=none --data "$WORK/data" >"$WORK/out" 2>"$WORK/err" &
PID=$!
for _ in $(seq 100); do
	ADDR=$(grep -oE '127\.0\.0\.1:[0-9]+' "$WORK/out" "$WORK/err" | head -1 | cut -d: -f2-) || true
	[ -n "$ADDR" ] && break
	sleep 0.05
done
[ -n "$ADDR" ] || { echo "error: strata serve did not say its address" >&2; cat "$WORK/out" "$WORK/err" >&2; exit 1; }
BASE="http://$ADDR"

echo "# generate: a typed client from $BASE/openapi.json"
curl -fsS "$BASE/openapi.json" -o "$WORK/openapi.json"
cmp -s "$WORK/openapi.json" "$REPO/api/openapi.json" ||
	{ echo "error: the server serves another document than api/openapi.json (an old binary? make build)" >&2; exit 1; }
npx --no-install openapi-typescript "$WORK/openapi.json" -o gen/strata.d.ts
npx --no-install tsc -p tsconfig.json

echo "# run: the client against $BASE"
node dist/client.js "$BASE"
