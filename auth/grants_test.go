package auth

import (
	"maps"
	"os"
	"path/filepath"
	"testing"
)

func TestLoadGrants(t *testing.T) {
	dir := t.TempDir()
	if g, err := LoadGrants(filepath.Join(dir, "missing")); err != nil || len(g) != 0 {
		t.Fatalf("missing file: %v, %v", g, err)
	}
	for _, tc := range []struct {
		content string
		want    map[string]Grant
		bad     bool
	}{
		{"# name tenant role\nalice acme writer\n\troot\t*\tadmin \n\nbob acme-2 reader\n", map[string]Grant{
			"alice": {"acme", RoleWriter, ""}, "root": {"*", RoleAdmin, ""}, "bob": {"acme-2", RoleReader, ""},
		}, false},
		{"alice acme writer\nalice other reader\n", map[string]Grant{"alice": {"acme", RoleWriter, ""}}, false},
		{"alice acme writer 0123456789abcdef0123456789abcdef\n", map[string]Grant{"alice": {"acme", RoleWriter, "0123456789abcdef0123456789abcdef"}}, false},
		{"alice acme\n", nil, true},
		{"alice acme writer extra\n", nil, true},
		{"alice acme boss\n", nil, true},
		{"alice * writer\n", nil, true},
		{"alice Acme writer\n", nil, true},
		{"alice ../x writer\n", nil, true},
	} {
		path := filepath.Join(dir, "grants")
		os.WriteFile(path, []byte(tc.content), 0o600)
		got, err := LoadGrants(path)
		if (err != nil) != tc.bad {
			t.Errorf("LoadGrants(%q): %v, want error %v", tc.content, err, tc.bad)
			continue
		}
		if err == nil && !maps.Equal(got, tc.want) {
			t.Errorf("LoadGrants(%q) = %v, want %v", tc.content, got, tc.want)
		}
	}
}

func TestSetAndDeleteGrant(t *testing.T) {
	path := filepath.Join(t.TempDir(), "grants")
	os.WriteFile(path, []byte("# grants\nalice acme reader\n"), 0o600)
	for _, tc := range []struct {
		name string
		g    Grant
		ok   bool
	}{
		{"alice", Grant{"acme", RoleWriter, ""}, true},
		{"root", Grant{"*", RoleAdmin, ""}, true},
		{"ops", Grant{"", RoleAdmin, ""}, true}, // "" is "*"
		{"bob", Grant{"acme", RoleAppender, "0123456789abcdef0123456789abcdef"}, true},
		{"eve", Grant{"acme", RoleAppender, "../x"}, false},
		{"eve", Grant{"*", RoleWriter, ""}, false},
		{"eve", Grant{"", RoleReader, ""}, false},
		{"eve", Grant{"acme", "boss", ""}, false},
		{"eve", Grant{"ACME", RoleReader, ""}, false},
		{"e ve", Grant{"acme", RoleReader, ""}, false},
	} {
		if err := SetGrant(path, tc.name, tc.g); (err == nil) != tc.ok {
			t.Errorf("SetGrant(%q, %v): %v, want ok %v", tc.name, tc.g, err, tc.ok)
		}
	}
	want := "# grants\nalice acme writer\nroot * admin\nops * admin\nbob acme appender 0123456789abcdef0123456789abcdef\n"
	if b, _ := os.ReadFile(path); string(b) != want {
		t.Errorf("file:\n%s\nwant:\n%s", b, want)
	}
	for _, tc := range []struct {
		name  string
		found bool
	}{{"root", true}, {"root", false}, {"eve", false}} {
		if found, err := DeleteGrant(path, tc.name); err != nil || found != tc.found {
			t.Errorf("DeleteGrant(%s) = %v, %v; want %v", tc.name, found, err, tc.found)
		}
	}
	got, err := LoadGrants(path)
	want2 := map[string]Grant{"alice": {"acme", RoleWriter, ""}, "ops": {"*", RoleAdmin, ""}, "bob": {"acme", RoleAppender, "0123456789abcdef0123456789abcdef"}}
	if err != nil || !maps.Equal(got, want2) {
		t.Errorf("LoadGrants after edits = %v, %v; want %v", got, err, want2)
	}
}
