package projections

import (
	"errors"
	"testing"
)

// TestParseDefinition: the examples pass as written; each bad
// definition names its bad field.
func TestParseDefinition(t *testing.T) {
	for _, ok := range []string{
		`{"name":"per-type","kind":"counter","by":"type"}`,
		`{"name":"revenue","kind":"timeseries","path":".amount","op":"sum","bucket":"day","filter":{"types":["order.paid"]}}`,
		`{"name":"signup","kind":"funnel","steps":["user.created","user.verified","order.placed"],"window":"7d"}`,
		`{"name":"n","kind":"counter","by":"week","filter":{"types":["order.*","strata.projection.*"],"entity":"orders/*"}}`,
		`{"name":"n","kind":"timeseries","op":"count","bucket":"month"}`,
		`{"name":"n","kind":"funnel","steps":["a","b"]}`,
		`{"name":"n","kind":"funnel","steps":["a","b"],"window":"36h"}`,
		`{"name":"n.v2_x-y","kind":"counter","by":"entity","filter":{}}` + "\n",
	} {
		if _, err := ParseDefinition([]byte(ok)); err != nil {
			t.Errorf("ParseDefinition(%s): %v", ok, err)
		}
	}
	for _, c := range []struct{ body, field string }{
		{`{"kind":"counter","by":"type"}`, "name"},
		{`{"name":"Per","kind":"counter","by":"type"}`, "name"},
		{`{"name":"a..b","kind":"counter","by":"type"}`, "name"},
		{`{"name":"a/b","kind":"counter","by":"type"}`, "name"},
		{`{"name":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","kind":"counter","by":"type"}`, "name"},
		{`{"name":"n"}`, "kind"},
		{`{"name":"n","kind":"nope"}`, "kind"},
		{`{"name":"n","kind":"counter","by":"year"}`, "by"},
		{`{"name":"n","kind":"counter","by":"type","path":".a"}`, "path"},
		{`{"name":"n","kind":"counter","by":"type","filter":{"types":["Order"]}}`, "filter.types[0]"},
		{`{"name":"n","kind":"counter","by":"type","filter":{"types":["a","[b"]}}`, "filter.types[1]"},
		{`{"name":"n","kind":"counter","by":"type","filter":{"entity":"[x"}}`, "filter.entity"},
		{`{"name":"n","kind":"counter","by":"type","filter":{"typo":1}}`, "typo"},
		{`{"name":"n","kind":"counter","by":"type","extra":1}`, "extra"},
		{`{"name":"n","kind":"counter","by":7}`, "by"},
		{`{"name":"n","kind":"timeseries","op":"sum","bucket":"day"}`, "path"},
		{`{"name":"n","kind":"timeseries","path":"amount","op":"sum","bucket":"day"}`, "path"},
		{`{"name":"n","kind":"timeseries","path":".a","op":"median","bucket":"day"}`, "op"},
		{`{"name":"n","kind":"timeseries","path":".a","op":"sum","bucket":"year"}`, "bucket"},
		{`{"name":"n","kind":"funnel","steps":["a"]}`, "steps"},
		{`{"name":"n","kind":"funnel","steps":["a","b*"]}`, "steps[1]"},
		{`{"name":"n","kind":"funnel","steps":["a","b"],"window":"0d"}`, "window"},
		{`{"name":"n","kind":"funnel","steps":["a","b"],"window":"soon"}`, "window"},
		{`{"name":"n","kind":"counter","by":"type"} {}`, "body"},
		{`[1]`, "body"},
		{`{`, "body"},
	} {
		_, err := ParseDefinition([]byte(c.body))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != c.field {
			t.Errorf("ParseDefinition(%s) = %v; want a FieldError naming %s", c.body, err, c.field)
		}
	}
}
