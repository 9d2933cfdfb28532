package fileutil

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// Permissions of what strata creates.
//
// By default a file or directory gets the mode its caller asks for (0600
// for secrets, 0700 for private directories), less the umask, and never
// any permission for other users: nothing in a data directory is theirs to
// read. That is right where one user runs everything — suEXEC, or the CLI
// run as the web server's user.
//
// Group access is for hosts without suEXEC, where the web server and the
// SSH user who runs the CLI are different users sharing a group: the data
// directory is given to that group and made group-writable
// (`chgrp www-data data && chmod 770 data`). When the data directory is
// group-writable, GroupAccess turns on, and then:
//   - every file strata creates gets the owner's permissions for the group
//     too (0600 → 0660, 0700 → 0770) and never any for other users;
//   - every directory is set-gid, so what is created in it belongs to the
//     data directory's group whoever creates it (the data directory itself
//     is made set-gid when strata owns it); a file that still ends up in
//     another group is given to the data directory's group;
//   - the process umask becomes 007, so that no creation of strata's is
//     narrowed by a umask of 022 (the group must be able to write locks,
//     counters and logs) and none gives anything to other users.
//
// Secrets (tokens, password hashes, the session key) thus stay unreadable
// to other users while both the web server and the CLI can use them.

// groupGID is the data directory's group when group access is on, else -1.
var groupGID atomic.Int64

func init() { groupGID.Store(-1) }

// GroupAccess looks at the data directory and turns group access on if it
// is group-writable (see above), reporting whether it did. A missing
// directory leaves it off.
func GroupAccess(dataDir string) (bool, error) {
	fi, err := os.Stat(dataDir)
	if err != nil {
		if os.IsNotExist(err) {
			return false, nil
		}
		return false, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !fi.IsDir() || fi.Mode().Perm()&0o020 == 0 {
		groupGID.Store(-1)
		return false, nil
	}
	syscall.Umask(0o007)
	groupGID.Store(int64(st.Gid))
	if fi.Mode()&os.ModeSetgid == 0 && int(st.Uid) == os.Getuid() {
		// Best effort: without it fixGroup still gives each new file the
		// group, and Problems warns about what the web server cannot read.
		os.Chmod(dataDir, fi.Mode().Perm()|os.ModeSetgid)
	}
	return true, nil
}

// FileMode is the mode a new file is created with, given the mode its
// caller asks for.
func FileMode(perm os.FileMode) os.FileMode {
	if groupGID.Load() < 0 {
		return perm &^ 0o007
	}
	owner := perm & 0o700
	return owner | owner>>3
}

// DirMode is the mode a new directory is created with, given the mode its
// caller asks for.
func DirMode(perm os.FileMode) os.FileMode {
	if groupGID.Load() < 0 {
		return perm &^ 0o007
	}
	owner := perm & 0o700
	return owner | owner>>3 | os.ModeSetgid
}

// fixGroup gives a file strata just created the data directory's group,
// where the set-gid bit did not. Best effort, so it returns nothing: a user
// outside the group cannot, and Problems then warns.
func fixGroup(f *os.File) {
	gid := groupGID.Load()
	if gid < 0 {
		return
	}
	if fi, err := f.Stat(); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok && int64(st.Gid) != gid {
			f.Chown(-1, int(gid))
		}
	}
}

// fixDirGroup is fixGroup for a directory, which also gets the set-gid bit
// (mkdir ignores it in the mode).
func fixDirGroup(dir string) error {
	gid := groupGID.Load()
	if gid < 0 {
		return nil
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int64(st.Gid) != gid {
		os.Chown(dir, -1, int(gid))
	}
	if fi.Mode()&os.ModeSetgid == 0 {
		return os.Chmod(dir, fi.Mode().Perm()|os.ModeSetgid)
	}
	return nil
}

// mkdirAll is os.MkdirAll giving each directory it creates fixDirGroup.
func mkdirAll(dir string, perm os.FileMode) error {
	if fi, err := os.Stat(dir); err == nil {
		if fi.IsDir() {
			return nil
		}
		return &os.PathError{Op: "mkdir", Path: dir, Err: syscall.ENOTDIR}
	}
	if parent := filepath.Dir(dir); parent != dir {
		if err := mkdirAll(parent, perm); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, perm&os.ModePerm); err != nil {
		if fi, serr := os.Stat(dir); serr == nil && fi.IsDir() {
			return nil // made meanwhile by another process
		}
		return err
	}
	return fixDirGroup(dir)
}

// checkLimit bounds how many files Problems looks at.
const checkLimit = 512

// Problems looks at the data directory as this process will use it and
// returns what is wrong, one sentence each, for a warning at start: the
// directory open to other users, files or directories this process cannot
// use (the web server cannot read what the CLI made, or the reverse), and
// under group access, files the group cannot read. It looks at the data
// directory and system/ (the accounts), and with deep also at
// system/tokens/, the tenants and each tenant's directory — never at
// segments or blobs, and at most checkLimit entries. A CGI process, which
// runs it for every request, looks shallow: with 20 tenants and 100 tokens
// deep costs about 0.3 ms here, shallow about 0.01 ms
// (BenchmarkProblems).
func Problems(dataDir string, deep bool) []string {
	fi, err := os.Stat(dataDir)
	if err != nil || !fi.IsDir() {
		return nil
	}
	var out []string
	if m := fi.Mode().Perm(); m&0o006 != 0 {
		out = append(out, fmt.Sprintf("the data directory %s is open to other users (mode %04o): chmod o-rwx %s", dataDir, m, dataDir))
	}
	group := groupGID.Load() >= 0
	var denied, unshared []string
	seen := 0
	var look func(dir string, depth int)
	look = func(dir string, depth int) {
		ents, err := os.ReadDir(dir)
		if err != nil {
			return // reported by the caller's own check of dir
		}
		for _, e := range ents {
			if seen++; seen > checkLimit {
				return
			}
			path := filepath.Join(dir, e.Name())
			rel, _ := filepath.Rel(dataDir, path)
			mode := uint32(unix.R_OK)
			if e.IsDir() {
				mode = unix.R_OK | unix.W_OK | unix.X_OK
			}
			if unix.Access(path, mode) != nil {
				denied = append(denied, rel)
				continue
			}
			if group {
				if info, err := e.Info(); err == nil && info.Mode().Perm()&0o040 == 0 {
					unshared = append(unshared, rel)
				}
			}
			if e.IsDir() && depth > 0 && wanted(rel) && (deep || rel == "system") {
				look(path, depth-1)
			}
		}
	}
	depth := 1
	if deep {
		depth = 2
	}
	look(dataDir, depth)
	if len(denied) > 0 {
		out = append(out, fmt.Sprintf("this process (uid %d) cannot use %d of the files in the data directory %s (%s): requests that need them will fail; give them to the user or the group that runs strata (cgi-bin/README.md, \"Hosts without suEXEC\")", os.Getuid(), len(denied), dataDir, some(denied)))
	}
	if len(unshared) > 0 {
		out = append(out, fmt.Sprintf("%d files in the data directory %s are not readable by its group (%s), which the other user of a host without suEXEC needs: chmod -R g+rwX %s", len(unshared), dataDir, some(unshared), dataDir))
	}
	return out
}

// wanted says which directories Problems looks into: system, its tokens,
// the tenants and each tenant's own directory.
func wanted(rel string) bool {
	switch parts := strings.Split(rel, string(filepath.Separator)); {
	case len(parts) == 1:
		return parts[0] == "system" || parts[0] == "tenants"
	case len(parts) == 2:
		return parts[0] == "tenants" || rel == filepath.Join("system", "tokens")
	}
	return false
}

// some names at most three of paths.
func some(paths []string) string {
	if len(paths) > 3 {
		return strings.Join(paths[:3], ", ") + ", …"
	}
	return strings.Join(paths, ", ")
}
