package auth

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"strata/internal/blake3"
)

// Users is a users file as loaded: the format Apache's htpasswd writes, one
// "name:hash" a line, with blank lines and '#' comments ignored. When a name
// appears twice the first line counts, as in Apache. A Users is not changed
// after loading and is safe for concurrent use.
type Users struct {
	hashes map[string]string
	// dummy is checked in place of the hash of a user who does not exist,
	// so that the answer takes as long as for one who does: it has the
	// kind and cost of most of the file's hashes.
	dummy string
}

// LoadUsers reads the users file at path. A missing file is an empty set of
// users, so an installation starts with none; a line without ':' is an
// error naming it.
func LoadUsers(path string) (*Users, error) {
	lines, err := readLines(path)
	if err != nil {
		return nil, fmt.Errorf("read users: %w", err)
	}
	u := &Users{hashes: make(map[string]string, len(lines))}
	kinds := map[string]int{}
	best, bestN := "", 0
	for i, line := range lines {
		if ignored(line) {
			continue
		}
		name, hash, ok := strings.Cut(line, ":")
		if !ok || name == "" {
			return nil, fmt.Errorf("users file %s, line %d: want name:hash", path, i+1)
		}
		if _, dup := u.hashes[name]; dup {
			continue
		}
		hash = strings.TrimSpace(hash)
		u.hashes[name] = hash
		if k := hashKind(hash); k != "" {
			kinds[k]++
			if kinds[k] > bestN {
				best, bestN = hash, kinds[k]
			}
		}
	}
	u.dummy = dummyFor(best)
	return u, nil
}

// Verify reports whether password is name's password. It takes about as
// long whether or not the user exists (an unknown user's password is
// checked against a dummy hash like the file's own), so the time of a
// refusal does not tell which user names exist. Hashes of a refused kind
// (see password.go) never match.
func (u *Users) Verify(name, password string) bool {
	hash, ok := u.hashes[name]
	if !ok || !supportedHash(hash) {
		verifyHash(u.dummy, password)
		return false
	}
	return verifyHash(hash, password)
}

// Fingerprint returns 16 hex digits of a digest of name's line in the file.
// A session token carries it, so that changing the password (or removing
// and re-adding the user) ends the sessions opened before.
func (u *Users) Fingerprint(name string) (string, bool) {
	hash, ok := u.hashes[name]
	if !ok {
		return "", false
	}
	d := blake3.Sum256([]byte("strata user fingerprint\x00" + name + ":" + hash))
	return hex.EncodeToString(d[:8]), true
}

// Names returns the user names, sorted.
func (u *Users) Names() []string {
	names := make([]string, 0, len(u.hashes))
	for n := range u.hashes {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Unsupported returns, sorted, the users whose hash is of a refused kind
// ($apr1$, {SHA}, crypt or unrecognised): they cannot log in until their
// password is set again.
func (u *Users) Unsupported() []string {
	var names []string
	for n, h := range u.hashes {
		if !supportedHash(h) {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// ValidUserName reports whether name can be a user name: 1–64 bytes of
// UTF-8 with no ':' (it ends the name in the file), no white space or
// control characters, and not starting with '#' (the line would be a
// comment).
func ValidUserName(name string) bool {
	if len(name) == 0 || len(name) > 64 || name[0] == '#' || !utf8.ValidString(name) {
		return false
	}
	for _, r := range name {
		if r == ':' || unicode.IsSpace(r) || unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// CheckNewUserName reports what is wrong with name as the name of a new
// user. New names are held to a safe set — ASCII letters, digits and
// . _ @ + -, starting with a letter or digit, at most 64 — because names
// in other scripts can pass for one another: "аlice" with a Cyrillic а
// looks like "alice" in a user list, an audit record or an event's
// meta.by. Names already in the users or grants file (made with Apache's
// htpasswd, say) only need to be valid (ValidUserName) to keep working.
func CheckNewUserName(name string) error {
	if len(name) == 0 || len(name) > 64 {
		return fmt.Errorf("user name %q: 1-64 characters", clip(name))
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case i > 0 && strings.IndexByte("._@+-", c) >= 0:
		default:
			return fmt.Errorf("user name %q: a new user's name is ASCII letters, digits and . _ @ + -, starting with a letter or digit (names in other scripts could pass for one another)", clip(name))
		}
	}
	return nil
}

// userOf returns the name of a users-file line, or "" for a comment or a
// line without ':'.
func userOf(line string) string {
	if ignored(line) {
		return ""
	}
	name, _, _ := strings.Cut(line, ":")
	return name
}

// SetUser adds the user name with hash to the users file at path, or
// replaces the hash of an existing one; every other line, comments
// included, stays as it was. The file is replaced atomically and created
// with mode 0600 if missing. hash must be of a kind Verify accepts (see
// HashPassword).
func SetUser(path, name, hash string) error {
	if !ValidUserName(name) {
		return fmt.Errorf("invalid user name %q: 1–64 bytes, no ':', white space or control characters, not starting with '#'", clip(name))
	}
	if !supportedHash(hash) {
		return fmt.Errorf("set user %s: the hash is neither bcrypt nor argon2id", name)
	}
	err := setLine(path, name, name+":"+hash, userOf)
	if err != nil {
		return fmt.Errorf("set user %s: %w", name, err)
	}
	return nil
}

// DeleteUser removes the user name from the users file at path, reporting
// whether it was there.
func DeleteUser(path, name string) (bool, error) {
	found, err := deleteLines(path, name, userOf)
	if err != nil {
		return false, fmt.Errorf("delete user %s: %w", name, err)
	}
	return found, nil
}
