package api

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"slices"
	"strconv"

	"strata/jsonx"
	"strata/log"
)

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// appendAny appends a small value of an error answer as JSON.
func appendAny(b []byte, v any) []byte {
	switch v := v.(type) {
	case string:
		return jsonx.AppendString(b, v)
	case int:
		return strconv.AppendInt(b, int64(v), 10)
	case uint64:
		return strconv.AppendUint(b, v, 10)
	case rawJSON:
		return append(b, v...)
	}
	j, _ := json.Marshal(v)
	return append(b, j...)
}

// rawJSON is already-encoded JSON.
type rawJSON []byte

func headJSON(h log.Head) rawJSON {
	b := []byte(`{"id":"`)
	b = hex.AppendEncode(b, h.ID[:])
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, h.Seq, 10)
	b = append(b, `,"time":`...)
	if h.Seq == 0 {
		b = append(b, `null`...)
	} else {
		b = append(b, '"')
		b = log.AppendTime(b, h.Time)
		b = append(b, '"')
	}
	return append(b, '}')
}

// writeJSON sends a complete JSON body.
func writeJSON(w http.ResponseWriter, status int, body []byte) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(status)
	w.Write(append(body, '\n'))
}
