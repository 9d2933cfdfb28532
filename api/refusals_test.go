package api

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"strata/auth"
	"strata/quota"
	"strata/tenants"
)

// TestRefusalsAreRateLimited: a request refused by access control counts
// against the credential's rate like any other, so a flood of forbidden
// requests is held back (429) after the burst, as a flood of allowed ones
// is.
func TestRefusalsAreRateLimited(t *testing.T) {
	f := newAuthHandler(t, Config{})
	rps, burst := 5.0, 10
	if _, err := f.svc.UpdateTenant("own", "quota.update", nil, func(c *tenants.Config) error {
		c.Quota = quota.Overrides{RequestsPerSecond: &rps, Burst: &burst}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	f.h.forget("own")
	// A stopped clock: no budget comes back while the test runs.
	at := time.Now()
	timeNow = func() time.Time { return at }
	t.Cleanup(func() { timeNow = time.Now })
	reader := tok(f.tokens["own/reader"])
	codes := map[int]int{}
	for range 300 {
		// A reader may not append, nor reach another tenant.
		codes[f.do("POST", "/events", `{"type":"a","entity":"x","data":1}`, reader...).Code]++
		codes[f.do("GET", "/t/other/head", "", reader...).Code]++
	}
	if codes[403] != burst || codes[429] != 600-burst {
		t.Fatalf("600 forbidden requests at rps %v, burst %d: %v", rps, burst, codes)
	}
}

// TestRefusalsAggregated: repeated refusals of one principal on one route
// make one audit record a minute, which carries the count of the previous
// minute's refusals that were not recorded one by one.
func TestRefusalsAggregated(t *testing.T) {
	f := newAuthHandler(t, Config{})
	rootSecret, _, err := f.svc.CreateToken("", auth.RoleAdmin, "root", 0)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now()
	timeNow = func() time.Time { return at }
	t.Cleanup(func() { timeNow = time.Now })
	reader := tok(f.tokens["own/reader"])
	const n = 3000
	for range n {
		if w := f.do("POST", "/events", `{"type":"a","entity":"x","data":1}`, reader...); w.Code != 403 {
			t.Fatalf("%d %s", w.Code, w.Body)
		}
	}
	// Another route is another record.
	f.do("DELETE", "/storage/"+strings.Repeat("b", 64), "", reader...)
	at = at.Add(time.Minute)
	f.do("POST", "/events", `{"type":"a","entity":"x","data":1}`, reader...)

	w := f.do("GET", "/audit?action=access.denied", "", append(tok(rootSecret), "Accept", "application/x-ndjson")...)
	var recs []struct {
		Data struct {
			Detail map[string]any `json:"detail"`
		} `json:"data"`
	}
	for _, line := range strings.Split(strings.TrimSpace(w.Body.String()), "\n") {
		var r struct {
			Data struct {
				Detail map[string]any `json:"detail"`
			} `json:"data"`
		}
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%v: %s", err, line)
		}
		recs = append(recs, r)
	}
	if len(recs) != 3 {
		t.Fatalf("%d access.denied records for %d refusals on two routes over two minutes; want 3:\n%s", len(recs), n+2, w.Body)
	}
	if got := recs[2].Data.Detail["repeated"]; got != float64(n-1) {
		t.Fatalf("the record of the second minute says repeated=%v; want %d: %v", got, n-1, recs[2].Data.Detail)
	}
}
