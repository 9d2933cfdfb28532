package api

import (
	"net/url"
	"os"
	"path/filepath"
	"testing"

	"strata/auth"
)

// TestLookAlikeUserNames: a new user's name is held to a safe ASCII set,
// and may not differ from an existing one only in case, so that no two
// users can pass for one another in a list, the audit log or meta.by. A
// user already in the users file with another name (made with htpasswd)
// keeps working and can be changed.
func TestLookAlikeUserNames(t *testing.T) {
	f := newAuthHandler(t, Config{})
	root := tok(f.tokens["own/admin"])
	put := func(name string) int {
		return f.do("PUT", "/admin/users/"+url.PathEscape(name), `{"password":"correct horse","tenant":"own","role":"reader"}`, root...).Code
	}
	if c := put("alice"); c != 200 {
		t.Fatalf("alice: %d", c)
	}
	for _, name := range []string{
		"\u0430lice",     // Cyrillic а
		"alic\u0435",     // Cyrillic е
		"Alice",          // alice but for case
		"ali\u200bce",    // a zero-width space
		"\u0251lice",     // Latin alpha
		"élodie",         // not a look-alike, but outside the safe set
		".alice", "-bob", // punctuation first
	} {
		if c := put(name); c != 400 {
			t.Errorf("new user %q: %d, want 400", name, c)
		}
	}
	for _, name := range []string{"bob", "alice.smith@example.com", "ci_bot-2", "x+y"} {
		if c := put(name); c != 200 {
			t.Errorf("new user %q: %d, want 200", name, c)
		}
	}
	// A user made outside strata, with a name strata would not make now.
	hash, err := auth.HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	users := filepath.Join(f.data, systemDir, "users")
	b, _ := os.ReadFile(users)
	if err := os.WriteFile(users, append(b, "élodie:"+hash+"\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	if c := put("élodie"); c != 200 {
		t.Errorf("an existing user with a name outside the safe set: %d, want 200", c)
	}
	// Users made outside strata with look-alike names of others: a new
	// user may not take the plain name they pass for.
	for _, n := range []string{"b\u043eb2", "\uff43\uff41\uff52\uff4f\uff4c", "da\u200bve", "\u0395ve", "z\u00f6e", "\u0441\u0430\u0440\u0430"} {
		b, _ := os.ReadFile(users)
		os.WriteFile(users, append(b, n+":"+hash+"\n"...), 0o600)
	}
	for _, name := range []string{"bob2", "carol", "dave", "eve", "EVE", "zoe", "capa"} {
		if c := put(name); c != 400 {
			t.Errorf("new user %q beside a look-alike made with htpasswd: %d, want 400", name, c)
		}
	}
	for _, name := range []string{"bob3", "carl", "davey", "eva", "zed"} {
		if c := put(name); c != 200 {
			t.Errorf("new user %q: %d, want 200", name, c)
		}
	}
}
