// Package jsonx checks, compacts and parses the JSON that clients send to
// strata, without encoding/json in the hot path.
//
// What it promises:
//
//   - Strict RFC 8259. Exactly one value per document; whitespace is only
//     space, tab, CR and LF; no leading zeros, no "1.", ".5", "1e", no NaN,
//     no comments, no trailing commas, no byte order mark. Raw control
//     characters and invalid UTF-8 inside strings are errors.
//   - Byte for byte preservation. Compact removes insignificant whitespace
//     and nothing else: number text, string escapes and member order come
//     back exactly as sent, because the event hash covers the data bytes as
//     served: the server never rewrites a client's data.
//   - Readable by every client. The log is append-only, so JSON that one
//     strict parser cannot read would break every page that holds it for
//     ever. RFC 8259 grammar allows some such; they are refused:
//     an escaped lone surrogate ("\ud800", "\udc00\ud800": jq and
//     serde_json fail on it); a number whose magnitude is past float64's
//     (1e999999, a 400-digit integer: JavaScript reads Infinity, Go's
//     encoding/json fails) — underflow such as 1e-999999 is accepted, every
//     parser reads 0; number text longer than MaxNumberLen (Python
//     refuses integers past 4,300 digits); and nesting deeper than MaxDepth
//     (32: .NET reads 64 levels, jq 1.6 256, Python about 1,000, and a page
//     wraps each value in two more). Duplicate member names in data
//     and meta are accepted and kept as sent: every parser reads them (most
//     keep the last), and the server does not interpret data.
//   - Speed. One pass over the input, no reflection, a handful of
//     allocations per request rather than per event: ParseEvents copies all
//     events' data and meta into one buffer and all their strings into one
//     string, and hands out slices of those. Nothing returned aliases the
//     request body, so the caller may reuse the body at once.
//
// ParseEvents reads the body of PUT /events (one object, an array of
// objects, or NDJSON) into Input values and reports problems as *FieldError
// naming the event and the field. It checks JSON shape only; content rules
// (the type pattern, entity length) belong to the caller.
//
// MergePatch applies an RFC 7386 JSON merge patch, the default reduction of
// an entity's events to its state; MergeDiff computes the merge patch
// between two states (GET /entities/<entity>/diff). Both work on compact
// JSON as stored, in one pass over each object they reach, and keep the
// promise above: members a patch does not name keep their bytes and place;
// a replaced member keeps its place and its name's spelling (names are
// compared decoded, so "\u0061" is "a"); added members follow in the
// patch's order. Duplicate names, which the log keeps as sent, are read as
// most parsers read them, the last one wins: in an object a patch changes,
// a duplicated name comes out once, at its first place (as JavaScript and
// Python order it); objects the patch does not reach keep their duplicates.
// A result is never deeper than the deeper input, so never past MaxDepth,
// and recursion follows the input's nesting. RFC 7386 cannot say "this
// member is null" (a null in a patch deletes): MergeDiff reports such a
// diff as not exact, so that a caller can answer the full state instead.
// Still to come with read models: JSON Patch (RFC 6902) is not offered,
// and jq reducers live in projections, not here.
//
// AppendString is the encoder's half: it writes a Go string as a JSON string
// literal for serving events.
package jsonx
