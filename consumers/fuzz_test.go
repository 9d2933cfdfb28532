package consumers

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParseDefinition: any body is a definition or a field error, never a
// panic; a definition's stored form parses back to the same stored form
// (so "the same definition again" is seen to be the same).
func FuzzParseDefinition(f *testing.F) {
	for _, s := range []string{`{}`, `{"filter":{"types":["order.*"],"entity":"orders/*"},"after":0}`,
		`{"from":"` + zeroHex + `"}`, `{"name":"c","after":18446744073709551615}`, `{"filter":{"types":["a","[b"]}}`, `[]`, `{"after":1,"after":2}`, `{"filter":{"tYpes":[]}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		d, _, err := ParseDefinition(body, "c")
		if err != nil {
			return
		}
		stored := d.Marshal()
		d2, _, err := ParseDefinition(stored, "c")
		if err != nil {
			t.Fatalf("stored form %s does not parse: %v", stored, err)
		}
		if again := d2.Marshal(); !bytes.Equal(again, stored) {
			t.Fatalf("stored form %s parses to %s", stored, again)
		}
	})
}

// FuzzStateFile: whatever a position file holds, reading it answers a
// state or an error, never a panic, and a state it answers is on the
// chain.
func FuzzStateFile(f *testing.F) {
	f.Add([]byte(`{"format":1,"name":"c","start":1,"seq":1,"id":"` + zeroHex + `","acks":[3,2]}` + "\n"))
	f.Add([]byte(`{"format":1,"name":"c","start":1,"seq":0,"id":"` + zeroHex + `","committed_at":"2026-12-02T14:00:00.123456789Z","reader":"r","lease_until":"x"}`))
	f.Add([]byte(`{"format":2}`))
	f.Add([]byte(``))
	l := testLog(f)
	appendOne(f, l, "x", "e", `1`)
	appendOne(f, l, TypeDefined, DefEntity("c"), `{}`)
	r := mustRead(f, l, "c")
	s := Open(l, true)
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, file []byte) {
		if err := os.WriteFile(filepath.Join(s.dir, "c"+stateExt), file, 0o600); err != nil {
			t.Fatal(err)
		}
		st, err := s.State(r)
		if err != nil {
			return
		}
		if p, err := positionAt(l, st.Seq); err != nil || p.ID != st.ID {
			t.Fatalf("state %+v is not on the chain", st)
		}
		s.Done(r, []uint64{1, 2})
	})
}
