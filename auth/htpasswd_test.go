package auth

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
)

// The passwords of testdata/users.
var fixturePasswords = map[string]string{
	"alice":   "secret",
	"bob":     "bobpass",
	"carol":   "carolpass",
	"dave":    "hunter2",
	"mallory": "apr1pass",
	"sha":     "sha1pass",
	"des":     "despass",
	"sha512":  "sha512pass",
}

func mustLoadUsers(tb testing.TB, path string) *Users {
	tb.Helper()
	u, err := LoadUsers(path)
	if err != nil {
		tb.Fatal(err)
	}
	return u
}

func TestVerifyFixture(t *testing.T) {
	u := mustLoadUsers(t, "testdata/users")
	accepted := map[string]bool{"alice": true, "bob": true, "carol": true, "dave": true}
	for name, pw := range fixturePasswords {
		if got := u.Verify(name, pw); got != accepted[name] {
			t.Errorf("Verify(%s, right password) = %v, want %v", name, got, accepted[name])
		}
		if u.Verify(name, pw+"x") || u.Verify(name, "") {
			t.Errorf("Verify(%s, wrong password) = true", name)
		}
	}
	if u.Verify("nobody", "secret") {
		t.Error("Verify of an unknown user = true")
	}
	// Of alice's two lines the first counts: the second is the dummy
	// hash, which no password matches.
	if !u.Verify("alice", "secret") {
		t.Error("alice's first line did not count")
	}
	want := []string{"alice", "bob", "carol", "dave", "des", "mallory", "sha", "sha512"}
	if got := u.Names(); !slices.Equal(got, want) {
		t.Errorf("Names() = %v, want %v", got, want)
	}
	if got, want := u.Unsupported(), []string{"des", "mallory", "sha", "sha512"}; !slices.Equal(got, want) {
		t.Errorf("Unsupported() = %v, want %v", got, want)
	}
}

// TestVerifyHtpasswdTool checks a file made just now by Apache's htpasswd.
func TestVerifyHtpasswdTool(t *testing.T) {
	tool, err := exec.LookPath("htpasswd")
	if err != nil {
		t.Skip("htpasswd (apache2-utils) is not installed")
	}
	path := filepath.Join(t.TempDir(), "users")
	for i, args := range [][]string{
		{"-B", "-C", "5", "-b", "-c", path, "alice", "secret"},
		{"-B", "-C", "4", "-b", path, "bob", "pä ss:word"},
		{"-m", "-b", path, "mallory", "secret"}, // $apr1$: refused
	} {
		if out, err := exec.Command(tool, args...).CombinedOutput(); err != nil {
			t.Fatalf("htpasswd %d: %v\n%s", i, err, out)
		}
	}
	u := mustLoadUsers(t, path)
	for _, tc := range []struct {
		name, pw string
		want     bool
	}{
		{"alice", "secret", true},
		{"alice", "Secret", false},
		{"bob", "pä ss:word", true},
		{"bob", "pä ss", false},
		{"mallory", "secret", false},
	} {
		if got := u.Verify(tc.name, tc.pw); got != tc.want {
			t.Errorf("Verify(%s, %q) = %v, want %v", tc.name, tc.pw, got, tc.want)
		}
	}
	// And Apache's tool reads what SetUser writes.
	h, err := HashPassword("from strata")
	if err != nil {
		t.Fatal(err)
	}
	if err := SetUser(path, "carol", h); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(tool, "-v", "-b", path, "carol", "from strata").CombinedOutput(); err != nil {
		t.Errorf("htpasswd -v does not accept HashPassword's hash: %v\n%s", err, out)
	}
}

func TestLoadUsers(t *testing.T) {
	dir := t.TempDir()
	u, err := LoadUsers(filepath.Join(dir, "missing"))
	if err != nil || len(u.Names()) != 0 {
		t.Fatalf("missing file: %v, %v; want no users, no error", u, err)
	}
	for _, tc := range []struct {
		content string
		names   []string
		bad     bool
	}{
		{"", nil, false},
		{"\n\n# only a comment\n", nil, false},
		{"alice:" + dummyBcrypt[0] + "\r\n", []string{"alice"}, false}, // CRLF
		{"  # indented comment\nalice:" + dummyBcrypt[0], []string{"alice"}, false},
		{"alice " + dummyBcrypt[0] + "\n", nil, true},
		{"alice:x\n:hash\n", nil, true},
	} {
		path := filepath.Join(dir, "users")
		os.WriteFile(path, []byte(tc.content), 0o600)
		u, err := LoadUsers(path)
		if (err != nil) != tc.bad {
			t.Errorf("LoadUsers(%q): %v, want error %v", tc.content, err, tc.bad)
			continue
		}
		if err == nil && !slices.Equal(u.Names(), tc.names) {
			t.Errorf("LoadUsers(%q) names %v, want %v", tc.content, u.Names(), tc.names)
		}
	}
}

// TestUnknownUserDummy checks that an unknown user is checked against a
// hash of the cost most of the file's users have.
func TestUnknownUserDummy(t *testing.T) {
	dir := t.TempDir()
	for _, tc := range []struct {
		hashes []string
		want   string
	}{
		{nil, dummyBcrypt[6]},
		{[]string{dummyBcrypt[0], dummyBcrypt[1], dummyBcrypt[1]}, dummyBcrypt[1]},
		{[]string{refArgon2id, refArgon2id, dummyBcrypt[2]}, dummyFor(refArgon2id)},
		{[]string{"{SHA}s3lY8hvguXyCP2PMxFsSNoI1V18="}, dummyBcrypt[6]},
	} {
		var b strings.Builder
		for i, h := range tc.hashes {
			fmt.Fprintf(&b, "user%d:%s\n", i, h)
		}
		path := filepath.Join(dir, "users")
		os.WriteFile(path, []byte(b.String()), 0o600)
		if u := mustLoadUsers(t, path); u.dummy != tc.want {
			t.Errorf("hashes %v: dummy %q, want %q", tc.hashes, u.dummy, tc.want)
		}
	}
}

func TestFingerprint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	h1, _ := HashPassword("one")
	if err := SetUser(path, "alice", h1); err != nil {
		t.Fatal(err)
	}
	fp1, ok := mustLoadUsers(t, path).Fingerprint("alice")
	if !ok || len(fp1) != 16 || strings.Trim(fp1, "0123456789abcdef") != "" {
		t.Fatalf("Fingerprint = %q, %v; want 16 hex digits", fp1, ok)
	}
	if again, _ := mustLoadUsers(t, path).Fingerprint("alice"); again != fp1 {
		t.Errorf("fingerprint changed on reload: %s, %s", fp1, again)
	}
	h2, _ := HashPassword("two")
	SetUser(path, "alice", h2)
	if fp2, _ := mustLoadUsers(t, path).Fingerprint("alice"); fp2 == fp1 {
		t.Error("fingerprint unchanged after a password change")
	}
	if _, ok := mustLoadUsers(t, path).Fingerprint("bob"); ok {
		t.Error("Fingerprint of an unknown user reported ok")
	}
}

func TestSetAndDeleteUser(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "users")
	hA, hB := dummyBcrypt[0], dummyBcrypt[1]
	os.WriteFile(path, []byte("# admins\nroot:"+hA+"\n\n# others\nalice:"+hA+"\nalice:"+hB+"\n"), 0o640)

	if err := SetUser(path, "alice", hB); err != nil {
		t.Fatal(err)
	}
	if err := SetUser(path, "bob", refArgon2id); err != nil {
		t.Fatal(err)
	}
	want := "# admins\nroot:" + hA + "\n\n# others\nalice:" + hB + "\nbob:" + refArgon2id + "\n"
	if b, _ := os.ReadFile(path); string(b) != want {
		t.Errorf("file after SetUser:\n%s\nwant:\n%s", b, want)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v, want the file's own 0640 kept", fi.Mode().Perm())
	}
	if !mustLoadUsers(t, path).Verify("bob", "password") {
		t.Error("bob's argon2id hash does not verify")
	}

	for _, tc := range []struct {
		name  string
		found bool
	}{{"alice", true}, {"alice", false}, {"nobody", false}} {
		found, err := DeleteUser(path, tc.name)
		if err != nil || found != tc.found {
			t.Errorf("DeleteUser(%s) = %v, %v; want %v", tc.name, found, err, tc.found)
		}
	}
	want = "# admins\nroot:" + hA + "\n\n# others\nbob:" + refArgon2id + "\n"
	if b, _ := os.ReadFile(path); string(b) != want {
		t.Errorf("file after DeleteUser:\n%s\nwant:\n%s", b, want)
	}
	if matches, _ := filepath.Glob(filepath.Join(dir, ".*")); len(matches) != 0 {
		t.Errorf("temporary files left: %v", matches)
	}

	// A new file is 0600; DeleteUser on a missing file creates none.
	fresh := filepath.Join(dir, "fresh")
	if found, err := DeleteUser(fresh, "x"); found || err != nil {
		t.Errorf("DeleteUser on a missing file = %v, %v", found, err)
	}
	if _, err := os.Stat(fresh); !os.IsNotExist(err) {
		t.Error("DeleteUser created the file")
	}
	if err := SetUser(fresh, "x", hA); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(fresh); fi.Mode().Perm() != 0o600 {
		t.Errorf("new file mode %v, want 0600", fi.Mode().Perm())
	}
}

func TestSetUserRefuses(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	for _, tc := range []struct{ name, hash string }{
		{"", dummyBcrypt[0]},
		{"a:b", dummyBcrypt[0]},
		{"#root", dummyBcrypt[0]},
		{"al ice", dummyBcrypt[0]},
		{"alice\nroot", dummyBcrypt[0]},
		{"alice", "$apr1$mba6DFMj$3ahkQgBIx0CHfXaClXrQc."},
		{"alice", "plain"},
		{"alice", dummyBcrypt[0] + "\nroot:" + dummyBcrypt[0]},
		{"alice", ""},
	} {
		if err := SetUser(path, tc.name, tc.hash); err == nil {
			t.Errorf("SetUser(%q, %q) succeeded", tc.name, tc.hash)
		}
	}
	if _, err := os.Stat(path); !os.IsNotExist(err) {
		t.Error("a refused SetUser wrote the file")
	}
}

// TestSetUserConcurrent checks that concurrent edits are serialised: each
// one's user is in the file at the end.
func TestSetUserConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	var wg sync.WaitGroup
	for i := range 16 {
		wg.Go(func() {
			if err := SetUser(path, fmt.Sprintf("user%02d", i), dummyBcrypt[0]); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if n := len(mustLoadUsers(t, path).Names()); n != 16 {
		t.Errorf("%d users after 16 concurrent SetUser, want 16", n)
	}
}

func TestValidUserName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"alice", true},
		{"alice@example.org", true},
		{"Ünïcode", true},
		{"a", true},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"", false},
		{"a:b", false},
		{"a b", false},
		{"a\tb", false},
		{"a\x00b", false},
		{"a\x7f", false},
		{"a\u00a0b", false}, // no-break space
		{"#root", false},
		{"\xff", false},
	} {
		if got := ValidUserName(tc.name); got != tc.ok {
			t.Errorf("ValidUserName(%q) = %v, want %v", tc.name, got, tc.ok)
		}
	}
}

func TestCheckNewUserName(t *testing.T) {
	for _, ok := range []string{"alice", "Bob", "a", "alice.smith@example.com", "ci_bot-2", "x+y", "0day"} {
		if err := CheckNewUserName(ok); err != nil {
			t.Errorf("CheckNewUserName(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "\u0430lice", "ali\u200bce", "élodie", ".a", "-a", "a b", "a:b", "a/b", string(make([]byte, 65))} {
		if err := CheckNewUserName(bad); err == nil {
			t.Errorf("CheckNewUserName(%q) accepted", bad)
		}
	}
}
