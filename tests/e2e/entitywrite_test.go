package e2e_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestEntityWriteEverywhere: the entity API through the real binary,
// standalone and as a CGI program on the same data: the same writes
// answer the same states, each stored as one event with its type, its
// marker and meta.by, and either server reads what the other wrote.
func TestEntityWriteEverywhere(t *testing.T) {
	t.Parallel()
	data := t.TempDir()
	s := startServer(t, data)
	c := cgiServer(t, data)
	for _, base := range []string{s.url, c.URL + "/api"} {
		ent := "carts/" + map[bool]string{true: "standalone", false: "cgi"}[base == s.url]
		steps := []struct {
			method, path, body string
			status             int
			state              string
		}{
			{"PUT", "/entities/" + ent + "?expected_version=0", `{"sku":"A-1","qty":3}`, 201, `{"sku":"A-1","qty":3}`},
			{"PATCH", "/entities/" + ent, `{"qty":4,"note":"gift"}`, 200, `{"sku":"A-1","qty":4,"note":"gift"}`},
			{"POST", "/entities/" + ent + "/revert", `{"version":1}`, 200, `{"sku":"A-1","qty":3}`},
			{"PUT", "/entities?entity=" + ent + "&type=cart.replaced", `["x"]`, 200, `["x"]`},
			{"DELETE", "/entities/" + ent + "?expected_version=4", "", 200, `null`},
		}
		for i, st := range steps {
			var body any
			if st.body != "" {
				body = st.body
			}
			r := do(t, st.method, base+st.path, body).want(t, st.status)
			got := decode[entityState](t, r.body)
			if got.Entity != ent || got.Version != uint64(i+1) || string(got.State) != st.state || got.Deleted != (st.method == "DELETE") || r.header.Get("Strata-Head") != got.ID || r.header.Get("Location") != "" {
				t.Errorf("%s %s %s: %s, want version %d state %s", st.method, base, st.path, r.body, i+1, st.state)
			}
			if st.method == "DELETE" {
				continue
			}
			// the other server reads the same state
			other := c.URL + "/api"
			if base != s.url {
				other = s.url
			}
			if g := do(t, "GET", other+"/entities/"+ent, nil).want(t, 200); string(g.body) != string(r.body) {
				t.Errorf("after %s: GET through the other server %s, the write answered %s", st.method, g.body, r.body)
			}
		}
		do(t, "GET", base+"/entities/"+ent, nil).wantError(t, 410, "gone")
		do(t, "PATCH", base+"/entities/"+ent, `{"a":1}`).wantError(t, 410, "gone")
		if e := do(t, "PUT", base+"/entities/"+ent+"?expected_version=1", `{}`).wantError(t, 409, "version_conflict"); e["current_version"] != 5.0 {
			t.Errorf("conflict: %v", e)
		}
		if e := do(t, "POST", base+"/entities/"+ent+"/revert", `{"version":"one"}`).wantError(t, 400, "invalid_body"); e["field"] != "version" {
			t.Errorf("bad revert: %v", e)
		}
	}
	var types []string
	for _, e := range readAll(t, s.url) {
		var meta map[string]string
		json.Unmarshal(e.Meta, &meta)
		types = append(types, fmt.Sprintf("%s:%s:%s", e.Type, meta["strata"], meta["by"]))
	}
	one := "entity.put:put:anonymous entity.patched::anonymous entity.reverted:put:anonymous cart.replaced:put:anonymous entity.deleted:delete:anonymous"
	if got := strings.Join(types, " "); got != one+" "+one {
		t.Errorf("stored events %s", got)
	}
	mustVerify(t, data, 10)
}
