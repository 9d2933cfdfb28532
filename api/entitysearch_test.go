package api

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestEntitySearchOwnRecords: a search leaves out the server's own
// records (a projection's definition, an entity under strata/) unless its
// prefix names them.
func TestEntitySearchOwnRecords(t *testing.T) {
	h, _ := newEntityLog(t)
	w := serve(h, "POST", "/projections", strings.NewReader(`{"name":"per-type","kind":"counter","by":"type"}`), "Content-Type", "application/json")
	if w.Code != 201 {
		t.Fatalf("POST /projections: %d %s", w.Code, w.Body)
	}
	names := func(target string) []string {
		t.Helper()
		w := serve(h, "GET", target, nil)
		var page []stateAnswer
		if w.Code != 200 || json.Unmarshal(w.Body.Bytes(), &page) != nil {
			t.Fatalf("GET %s: %d %s", target, w.Code, w.Body)
		}
		var out []string
		for _, s := range page {
			out = append(out, s.Entity)
		}
		return out
	}
	if got := strings.Join(names("/entities"), " "); got != "books/42 e x x/history" {
		t.Errorf("every entity: %s", got)
	}
	if got := strings.Join(names("/entities?prefix=strata/"), " "); got != "strata/projections/per-type" {
		t.Errorf("prefix strata/: %s", got)
	}
	w = serve(h, "POST", "/snapshots", strings.NewReader(`{"all":true}`), "Content-Type", "application/json")
	if w.Code != 200 || strings.Contains(w.Body.String(), "strata/") || !strings.Contains(w.Body.String(), `"entity":"x/history"`) {
		t.Errorf("POST /snapshots all: %d %s", w.Code, w.Body)
	}
}
