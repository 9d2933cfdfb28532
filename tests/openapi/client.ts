// A client generated from strata's OpenAPI document (gen/strata.d.ts, by
// openapi-typescript; calls through openapi-fetch) against a running
// strata: append an event, read it back, get the head, and an error in the
// one error shape. tsc type-checks every call against the document first,
// so a request or an answer the document describes wrongly fails twice:
// at compile time (shapes) or here (values).
//
//   node dist/client.js http://127.0.0.1:PORT
import createClient from "openapi-fetch";
import type { paths } from "./gen/strata.js";

const base = process.argv[2];
if (!base) {
	console.error("usage: node dist/client.js BASE_URL");
	process.exit(2);
}
// An entity is the rest of the path (x-strata-rest): its slashes travel as
// they are, never as %2F, which Apache refuses; every other character is
// encoded as usual.
const client = createClient<paths>({
	baseUrl: base,
	pathSerializer: (path: string, params: Record<string, unknown>) =>
		path.replace(/\{([^}]+)\}/g, (_, name: string) => String(params[name]).split("/").map(encodeURIComponent).join("/")),
});

let passed = 0;
let failed = 0;
function check(name: string, ok: boolean, detail?: unknown): void {
	if (ok) {
		passed++;
		console.log(`ok - ${name}`);
	} else {
		failed++;
		console.log(`not ok - ${name}`);
		if (detail !== undefined) console.log(`#   ${JSON.stringify(detail)}`);
	}
}

const entity = `orders/${process.pid}`;

// Append one event: a receipt.
const put = await client.PUT("/events", {
	body: { type: "order.placed", entity, data: { sku: "A-1", qty: 3 }, meta: { source: "openapi-client" } },
});
const receipt = put.data;
const single = receipt !== undefined && !Array.isArray(receipt) && "id" in receipt ? receipt : undefined;
check("PUT /events answers 201 and a receipt", put.response.status === 201 && single?.entity === entity && single.version === 1, put.data ?? put.error);
const id = single?.id ?? "0".repeat(64);

// A batch: a receipt each.
const batch = await client.POST("/events", {
	body: [
		{ type: "order.paid", entity, data: { amount: "12.50" } },
		{ type: "order.shipped", entity, data: null, expected_version: 2 },
	],
});
check("POST /events with an array answers a receipt per event", batch.response.status === 201 && Array.isArray(batch.data) && batch.data.length === 2, batch.data ?? batch.error);

// Read the first one back, by id and in a filtered page.
const got = await client.GET("/events/{id}", { params: { path: { id } } });
check("GET /events/{id} is the event as appended", got.data?.id === id && got.data.type === "order.placed" && JSON.stringify(got.data.data) === '{"sku":"A-1","qty":3}', got.data ?? got.error);
const page = await client.GET("/events", { params: { query: { entity, limit: 10 } } });
const events = Array.isArray(page.data) ? page.data : [];
check("GET /events?entity= pages the entity's events in order", events.map((e) => e.version).join(",") === "1,2,3", page.data ?? page.error);

// The head is the last of them.
const head = await client.GET("/head");
const last = events[events.length - 1];
check("GET /head is the newest event", head.data !== undefined && last !== undefined && head.data.id === last.id && head.data.seq === last.seq, head.data ?? head.error);

// The entity's state, through a rest-of-path parameter holding a slash.
const state = await client.GET("/entities/{entity}", { params: { path: { entity } } });
check("GET /entities/{entity} with a / in the entity, sent as a real slash", state.response.url.endsWith(`/entities/${entity}`) && state.response.status === 200 && state.data?.entity === entity && state.data.version === 3, state.data ?? state.error);

// Errors: the one shape, typed.
const bad = await client.GET("/events", { params: { query: { limit: 0 } } });
check("a bad parameter is 400 invalid_parameter in the error shape", bad.response.status === 400 && bad.error?.error.code === "invalid_parameter", bad.error);
const stale = await client.PUT("/events", {
	params: { header: { "If-Match": `"${"0".repeat(64)}"` } },
	body: { type: "order.placed", entity, data: {} },
});
check("If-Match on a stale head is 409 head_conflict", stale.response.status === 409 && stale.error?.error.code === "head_conflict", stale.error);

// The document itself.
const doc = await client.GET("/openapi.json");
check("GET /openapi.json is served with an ETag", doc.response.status === 200 && (doc.response.headers.get("ETag") ?? "") !== "", doc.response.status);

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 ? 0 : 1);
