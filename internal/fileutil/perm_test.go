package fileutil

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func gidOf(t *testing.T, path string) uint32 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Sys().(*syscall.Stat_t).Gid
}

// Without group access nothing strata creates is open to other users.
func TestPermNoWorldBits(t *testing.T) {
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	if on, err := GroupAccess(dir); on || err != nil {
		t.Fatalf("GroupAccess of a 0755 directory: %v, %v", on, err)
	}
	if err := MkdirAll(filepath.Join(dir, "a", "b"), 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(filepath.Join(dir, "a", "f"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := WriteFile(filepath.Join(dir, "a", "w"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a", "a/b", "a/f", "a/w"} {
		fi, _ := os.Stat(filepath.Join(dir, p))
		if fi.Mode().Perm()&0o007 != 0 {
			t.Errorf("%s: mode %v opens it to other users", p, fi.Mode().Perm())
		}
	}
	if got := Problems(dir, true); len(got) != 1 || !strings.Contains(got[0], "open to other users") {
		t.Errorf("Problems of a 0755 data directory: %q", got)
	}
}

// A group-writable data directory shares what strata creates with its
// group: group permissions as the owner's, the directory's group, set-gid
// directories, and still nothing for other users.
func TestPermGroupAccess(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to give files another group")
	}
	old := syscall.Umask(0o022)
	defer func() { groupGID.Store(-1); syscall.Umask(old) }()
	dir := t.TempDir()
	const gid = 4242
	// A directory made before group access was on, in another group.
	stale := filepath.Join(dir, "system")
	if err := os.Mkdir(stale, 0o700); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(stale, "grants"), nil, 0o600)
	if err := os.Chown(dir, -1, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o770); err != nil {
		t.Fatal(err)
	}
	if on, err := GroupAccess(dir); !on || err != nil {
		t.Fatalf("GroupAccess of a 0770 directory: %v, %v", on, err)
	}
	if fi, _ := os.Stat(dir); fi.Mode()&os.ModeSetgid == 0 {
		t.Error("the data directory was not made set-gid")
	}
	if err := MkdirAll(filepath.Join(dir, "tenants", "t"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := CreateFile(filepath.Join(dir, "tenants", "t", "secret"), []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := OpenFile(filepath.Join(stale, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{
		{"tenants", 0o770 | os.ModeSetgid | os.ModeDir},
		{"tenants/t", 0o770 | os.ModeSetgid | os.ModeDir},
		{"tenants/t/secret", 0o660},
		{"system/lock", 0o660},
	} {
		p := filepath.Join(dir, c.path)
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != c.mode {
			t.Errorf("%s: mode %v, want %v", c.path, fi.Mode(), c.mode)
		}
		if g := gidOf(t, p); g != gid {
			t.Errorf("%s: group %d, want the data directory's %d", c.path, g, gid)
		}
	}
	got := Problems(dir, true)
	if len(got) != 1 || !strings.Contains(got[0], "not readable by its group") || !strings.Contains(got[0], filepath.Join("system", "grants")) {
		t.Errorf("Problems: %q, want system/grants named as not shared", got)
	}
}

// BenchmarkProblems: what the start-up check costs a CGI request, in a
// data directory of 20 tenants and 100 tokens.
func BenchmarkProblems(b *testing.B) {
	dir := b.TempDir()
	os.Chmod(dir, 0o700)
	for i := range 20 {
		t := filepath.Join(dir, "tenants", fmt.Sprintf("t%d", i))
		os.MkdirAll(filepath.Join(t, "log"), 0o700)
		os.MkdirAll(filepath.Join(t, "index"), 0o700)
		os.WriteFile(filepath.Join(t, "tenant.json"), nil, 0o600)
		os.WriteFile(filepath.Join(t, "lock"), nil, 0o600)
	}
	os.MkdirAll(filepath.Join(dir, "system", "tokens"), 0o700)
	for i := range 100 {
		os.WriteFile(filepath.Join(dir, "system", "tokens", fmt.Sprintf("%024d.json", i)), nil, 0o600)
	}
	for _, deep := range []bool{false, true} {
		b.Run(fmt.Sprintf("deep=%v", deep), func(b *testing.B) {
			for range b.N {
				if p := Problems(dir, deep); len(p) != 0 {
					b.Fatal(p)
				}
			}
		})
	}
}
