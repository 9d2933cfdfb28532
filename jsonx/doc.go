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
// AppendString is the encoder's half: it writes a Go string as a JSON string
// literal for serving events.
package jsonx
