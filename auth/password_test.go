package auth

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"os/exec"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// refArgon2id is the output of the reference implementation
// (github.com/P-H-C/phc-winner-argon2):
//
//	echo -n password | argon2 somesalt -id -t 2 -m 6 -p 1 -l 24
//
// whose hash, 068d62b2…, is also a test vector of x/crypto/argon2.
const refArgon2id = "$argon2id$v=19$m=64,t=2,p=1$c29tZXNhbHQ$Bo1ismRVk2qm6+YAYLCmWHDb+j3fjUH3"

func TestArgon2idReferenceVector(t *testing.T) {
	h, ok := parseArgon2id(refArgon2id)
	if !ok {
		t.Fatalf("parseArgon2id(%q) failed", refArgon2id)
	}
	if h.memory != 64 || h.time != 2 || h.threads != 1 || string(h.salt) != "somesalt" ||
		hex.EncodeToString(h.key) != "068d62b26455936aa6ebe60060b0a65870dbfa3ddf8d41f7" {
		t.Fatalf("parsed %+v", h)
	}
	if !verifyHash(refArgon2id, "password") {
		t.Error("the reference hash does not verify its password")
	}
	if verifyHash(refArgon2id, "Password") {
		t.Error("the reference hash verifies a wrong password")
	}
	if got := h.String(); got != refArgon2id {
		t.Errorf("re-encoded as %q", got)
	}
}

// TestArgon2idTool checks hashes made by the reference argon2 tool, when it
// is installed (Debian: apt install argon2).
func TestArgon2idTool(t *testing.T) {
	tool, err := exec.LookPath("argon2")
	if err != nil {
		t.Skip("the argon2 tool is not installed")
	}
	for _, pw := range []string{"correct horse", "ünïcødé", "x"} {
		salt := make([]byte, 16)
		rand.Read(salt)
		cmd := exec.Command(tool, base64.RawStdEncoding.EncodeToString(salt), "-id", "-t", "2", "-m", "10", "-p", "2", "-l", "32", "-e")
		cmd.Stdin = strings.NewReader(pw)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("argon2: %v", err)
		}
		hash := strings.TrimSpace(string(out))
		if !verifyHash(hash, pw) {
			t.Errorf("%q does not verify %q", hash, pw)
		}
		if verifyHash(hash, pw+"!") {
			t.Errorf("%q verifies a wrong password", hash)
		}
	}
}

func TestParseArgon2id(t *testing.T) {
	const salt, key = "c29tZXNhbHQ", "Bo1ismRVk2qm6+YAYLCmWHDb+j3fjUH3"
	for _, tc := range []struct {
		hash string
		ok   bool
	}{
		{"$argon2id$v=19$m=64,t=2,p=1$" + salt + "$" + key, true},
		{"$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key, true},
		{"$argon2i$v=19$m=64,t=2,p=1$" + salt + "$" + key, false},   // argon2i
		{"$argon2d$v=19$m=64,t=2,p=1$" + salt + "$" + key, false},   // argon2d
		{"$argon2id$v=16$m=64,t=2,p=1$" + salt + "$" + key, false},  // old version
		{"$argon2id$m=64,t=2,p=1$" + salt + "$" + key, false},       // no version
		{"$argon2id$v=19$t=2,m=64,p=1$" + salt + "$" + key, false},  // order
		{"$argon2id$v=19$m=64,t=2$" + salt + "$" + key, false},      // no p
		{"$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key, false},  // t=0
		{"$argon2id$v=19$m=64,t=2,p=0$" + salt + "$" + key, false},  // p=0
		{"$argon2id$v=19$m=064,t=2,p=1$" + salt + "$" + key, false}, // leading zero
		{"$argon2id$v=19$m=64,t=2,p=9$" + salt + "$" + key, false},  // m < 8p
		{"$argon2id$v=19$m=64,t=2,p=256$" + salt + "$" + key, false},
		{"$argon2id$v=19$m=99999999,t=2,p=1$" + salt + "$" + key, false}, // 95 GiB
		{"$argon2id$v=19$m=64,t=65,p=1$" + salt + "$" + key, false},
		{"$argon2id$v=19$m=64,t=-2,p=1$" + salt + "$" + key, false},
		{"$argon2id$v=19$m=64,t=2,p=1$" + salt + "==$" + key, false}, // padding
		{"$argon2id$v=19$m=64,t=2,p=1$c2FsdA$" + key, false},         // 4-byte salt
		{"$argon2id$v=19$m=64,t=2,p=1$" + salt + "$AAAA", false},     // 3-byte key
		{"$argon2id$v=19$m=64,t=2,p=1$" + salt + "$" + key + "$", false},
		{"$argon2id$v=19$m=64,t=2,p=1$" + salt, false},
		{"", false},
	} {
		if _, ok := parseArgon2id(tc.hash); ok != tc.ok {
			t.Errorf("parseArgon2id(%q) ok = %v, want %v", tc.hash, ok, tc.ok)
		}
	}
}

func TestHashPassword(t *testing.T) {
	h, err := HashPassword("s3cret")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$2y$10$") || len(h) != 60 {
		t.Errorf("HashPassword = %q, want $2y$10$… of 60 bytes", h)
	}
	if !verifyHash(h, "s3cret") || verifyHash(h, "s3cret ") {
		t.Error("the hash does not verify exactly its password")
	}
	h2, _ := HashPassword("s3cret")
	if h2 == h {
		t.Error("two hashes of one password are equal: no salt")
	}
	if _, err := HashPassword(strings.Repeat("x", 73)); err == nil {
		t.Error("a 73-byte password was hashed (bcrypt would ignore its end)")
	}
}

// TestDummyBcrypt checks the dummy hashes are valid bcrypt hashes of the
// cost their place says, matching no plausible password.
func TestDummyBcrypt(t *testing.T) {
	for i, h := range dummyBcrypt {
		c, err := bcrypt.Cost([]byte(h))
		if err != nil || c != i+4 || bcryptCostOf(h) != i+4 {
			t.Errorf("dummyBcrypt[%d] = %q: cost %d, %v", i, h, c, err)
		}
		if i < 4 && (verifyHash(h, "") || verifyHash(h, "password")) {
			t.Errorf("dummyBcrypt[%d] matches a guessable password", i)
		}
	}
}

func TestDummyFor(t *testing.T) {
	for _, tc := range []struct{ hash, want string }{
		{"$2y$05$4iXSB/l4RzNubWYIe5ig7uH487WXy1nk/POOp4U1YekZz8DklLt5i", dummyBcrypt[1]},
		{"$2a$12$4iXSB/l4RzNubWYIe5ig7uH487WXy1nk/POOp4U1YekZz8DklLt5i", dummyBcrypt[8]},
		{"$2a$20$4iXSB/l4RzNubWYIe5ig7uH487WXy1nk/POOp4U1YekZz8DklLt5i", dummyBcrypt[10]},
		{"", dummyBcrypt[6]},
		{"$apr1$mba6DFMj$3ahkQgBIx0CHfXaClXrQc.", dummyBcrypt[6]},
		{refArgon2id, "$argon2id$v=19$m=64,t=2,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"},
	} {
		if got := dummyFor(tc.hash); got != tc.want {
			t.Errorf("dummyFor(%q) = %q, want %q", tc.hash, got, tc.want)
		}
	}
}
