package auth

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"strata/internal/fileutil"
)

// editLockWait bounds how long an edit of a users or grants file waits for
// another one in progress.
const editLockWait = 5 * time.Second

// readLines returns the lines of a small text file, each without its line
// ending ("\n" or "\r\n"). A missing file has no lines.
func readLines(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	s := strings.TrimSuffix(string(b), "\n")
	if s == "" {
		return nil, nil
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = strings.TrimSuffix(l, "\r")
	}
	return lines, nil
}

// ignored reports whether a line of a users or grants file is blank or a
// comment.
func ignored(line string) bool {
	t := strings.TrimSpace(line)
	return t == "" || t[0] == '#'
}

// errUnchanged, returned by an edit function, leaves the file as it is.
var errUnchanged = errors.New("unchanged")

// editLines replaces the file at path with edit(its lines), atomically
// (fileutil.WriteFile: temporary file, fsync, rename, fsync of the directory).
// Edits are serialised across processes by a flock on the directory, so
// two administrators changing different users at once both get their
// change; readers need no lock, as they see the old file or the new. A new
// file gets mode 0600 — it holds password hashes — and an existing one
// keeps its mode.
func editLines(path string, edit func(lines []string) ([]string, error)) error {
	dir := filepath.Dir(path)
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := flock(d, editLockWait); err != nil {
		return fmt.Errorf("lock %s: %w", dir, err)
	}
	defer fileutil.Unlock(d)

	perm := os.FileMode(0o600)
	if fi, err := os.Stat(path); err == nil {
		perm = fi.Mode().Perm()
	}
	lines, err := readLines(path)
	if err != nil {
		return err
	}
	lines, err = edit(lines)
	if err == errUnchanged {
		return nil
	}
	if err != nil {
		return err
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return fileutil.WriteFile(path, []byte(b.String()), perm)
}

// setLine makes line the one line of the file whose key (keyOf) is name:
// it replaces the first such line, drops any others, or adds line at the
// end.
func setLine(path, name, line string, keyOf func(string) string) error {
	return editLines(path, func(lines []string) ([]string, error) {
		out := lines[:0:0]
		done := false
		for _, l := range lines {
			if keyOf(l) != name {
				out = append(out, l)
			} else if !done {
				out = append(out, line)
				done = true
			}
		}
		if !done {
			out = append(out, line)
		}
		return out, nil
	})
}

// deleteLines removes the lines whose key (keyOf) is name, reporting
// whether there were any.
func deleteLines(path, name string, keyOf func(string) string) (bool, error) {
	found := false
	err := editLines(path, func(lines []string) ([]string, error) {
		out := lines[:0:0]
		for _, l := range lines {
			if keyOf(l) == name {
				found = true
			} else {
				out = append(out, l)
			}
		}
		if !found {
			return nil, errUnchanged
		}
		return out, nil
	})
	return found, err
}
