package audit

import (
	"fmt"
	"strings"
	"testing"

	"strata/log"
	"strata/query"
)

// TestRecordAndFilter: records written (at once, and queued) are read back
// through the filters GET /audit uses, and the chain verifies.
func TestRecordAndFilter(t *testing.T) {
	for _, async := range []bool{false, true} {
		t.Run(fmt.Sprint("async=", async), func(t *testing.T) {
			dir := t.TempDir() + "/system/audit"
			a, err := Open(dir, log.Options{NoSync: true}, async)
			if err != nil {
				t.Fatal(err)
			}
			recs := []Record{
				{Action: "tenant.create", Principal: "cli:root", Tenant: "shop"},
				{Action: "auth.refused", Principal: "user:bob", Addr: "10.0.0.1", Status: 401},
				{Action: "token.create", Principal: "user:alice", Tenant: "shop", Detail: map[string]any{"id": "abc"}},
				{Action: "blob.put", Principal: "jwt:a/b*c", Tenant: "shop"},
				{Action: "auth.refused", Principal: "user:\x01evil\xff\n" + strings.Repeat("é", 200)},
			}
			for _, r := range recs {
				if err := a.Record(r); err != nil {
					t.Fatal(err)
				}
			}
			a.Flush()
			count := func(p query.Params) int {
				p.Limit = 100
				n := 0
				if _, err := query.Run(a.Events(), p, func(*log.Event) error { n++; return nil }); err != nil {
					t.Fatal(err)
				}
				return n
			}
			for _, c := range []struct {
				tenant, principal, action string
				want                      int
			}{
				{"", "", "", 5},
				{"shop", "", "", 3},
				{"", "user:bob", "", 1},
				{"-", "user:bob", "", 1},
				{"shop", "user:alice", "", 1},
				{"shop", "user:alice", "tenant.create", 0},
				{"", "", "auth.*", 2},
				{"", "jwt:a/b*c", "", 1},
				{"shop", "jwt:a/b*c", "", 1},
			} {
				if got := count(Params(c.tenant, c.principal, c.action)); got != c.want {
					t.Errorf("tenant %q principal %q action %q: %d records, want %d", c.tenant, c.principal, c.action, got, c.want)
				}
			}
			if err := a.Close(); err != nil {
				t.Fatal(err)
			}
			if _, err := log.Verify(dir); err != nil {
				t.Fatal(err)
			}
		})
	}
}
