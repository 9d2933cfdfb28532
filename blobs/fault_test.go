package blobs

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
	"testing"

	"strata/internal/fileutil"
)

// Tests of the store when the file system fails under it, through
// fileutil's fault points (no root, no full disk). None runs in parallel:
// a fault is installed process-wide.

type step struct {
	op   fileutil.Op
	file string
}

func (s step) String() string { return fmt.Sprintf("%s %s", s.op, s.file) }

// faultBlob is larger than the copy buffer, so its upload writes twice.
var faultBlob = bytes.Repeat([]byte("0123456789abcdef"), (bufSize+bufSize/2)/16)

func faultPut(s *Store) error {
	_, _, err := s.PutWith(bytes.NewReader(faultBlob), PutOptions{ContentType: "text/plain",
		Admit: func(int64, Usage) error { return nil }})
	return err
}

// storeWithOne opens a new store holding one other blob.
func storeWithOne(t *testing.T) (*Store, Usage) {
	s := MustOpen(t, Options{})
	info := mustPut(t, s, []byte("already there"), "")
	return s, Usage{Bytes: info.Size, Count: 1}
}

// TestPutNoSpaceAtEveryStep fills the disk at each file-system step of a
// blob upload in turn: the upload fails with ErrNoSpace (507) — or, if the
// step came after the blob became visible, the blob is stored — and
// either way no temp file is left, the usage counter agrees with the
// blobs, and the next upload works.
func TestPutNoSpaceAtEveryStep(t *testing.T) {
	s, _ := storeWithOne(t)
	var steps []step
	undo := fileutil.Inject(func(op fileutil.Op, path string) error {
		steps = append(steps, step{op, filepath.Base(path)})
		return nil
	})
	err := faultPut(s)
	undo()
	if err != nil {
		t.Fatal(err)
	}
	hash := hashOf(faultBlob)
	visible := false // the step comes after the blob's rename
	for n, st := range steps {
		t.Run(fmt.Sprintf("%d %s", n, st), func(t *testing.T) {
			s, before := storeWithOne(t)
			i := 0
			undo := fileutil.Inject(func(fileutil.Op, string) error {
				i++
				if i-1 == n {
					return syscall.ENOSPC
				}
				return nil
			})
			err := faultPut(s)
			undo()
			_, serr := s.Stat(hash)
			stored := serr == nil
			switch {
			case err != nil && !errors.Is(err, ErrNoSpace):
				t.Fatalf("upload with the disk full at %s: %v, want ErrNoSpace", st, err)
			case !visible && err == nil:
				t.Fatalf("upload with the disk full at %s succeeded", st)
			case !visible && stored:
				t.Fatalf("upload failed at %s, yet the blob is there", st)
			case visible && !stored:
				t.Fatalf("the blob vanished after a failure at %s", st)
			}
			assertNoTemp(t, s)
			want := before
			if stored {
				want = Usage{Bytes: before.Bytes + int64(len(faultBlob)), Count: 2}
			}
			mustUsage(t, s, want)
			if err := faultPut(s); err != nil {
				t.Fatalf("the next upload: %v", err)
			}
			mustUsage(t, s, Usage{Bytes: before.Bytes + int64(len(faultBlob)), Count: 2})
		})
		if st.op == fileutil.OpRename && st.file == hash {
			visible = true
		}
	}
	if !visible {
		t.Fatalf("no rename of the blob among the steps %v", steps)
	}
}

// errCrash is what a "crashing" fault panics with: the code after the
// fault point never runs, as when the process is killed there; the flock
// is released (deferred unlocks run, as the kernel would release it).
var errCrash = errors.New("simulated crash")

// crashAt runs fn, "killing" it at the first fault point op on a file
// named file.
func crashAt(t *testing.T, op fileutil.Op, file string, fn func()) {
	t.Helper()
	undo := fileutil.Inject(func(o fileutil.Op, path string) error {
		if o == op && filepath.Base(path) == file {
			panic(errCrash)
		}
		return nil
	})
	defer undo()
	defer func() {
		if r := recover(); r != errCrash {
			t.Fatalf("no crash at %s %s (recovered %v)", op, file, r)
		}
	}()
	fn()
}

// TestUsageRecountsAfterCrash: a process killed between writing the
// counter and changing the blobs (kill -9 at the wrong moment) leaves a
// counter that disagrees with the disk — a blob counted and not stored, or
// stored and not counted. The next process must recount rather than trust
// it; without that, 20 kill -9 rounds left the count 6 blobs high.
func TestUsageRecountsAfterCrash(t *testing.T) {
	t.Run("put killed before the rename", func(t *testing.T) {
		s, before := storeWithOne(t)
		crashAt(t, fileutil.OpRename, hashOf(faultBlob), func() { faultPut(s) })
		if _, err := s.Stat(hashOf(faultBlob)); !errors.Is(err, ErrNotFound) {
			t.Fatalf("the blob is there after the crash: %v", err)
		}
		s2, err := Open(s.Dir(), Options{}) // the next process
		if err != nil {
			t.Fatal(err)
		}
		mustUsage(t, s2, before)
	})
	t.Run("delete killed before the removal", func(t *testing.T) {
		s, before := storeWithOne(t)
		if err := faultPut(s); err != nil {
			t.Fatal(err)
		}
		hash := hashOf(faultBlob)
		crashAt(t, fileutil.OpRemove, hash, func() { s.Delete(hash) })
		if _, err := s.Stat(hash); err != nil {
			t.Fatalf("the blob is gone after a crash before its removal: %v", err)
		}
		s2, err := Open(s.Dir(), Options{})
		if err != nil {
			t.Fatal(err)
		}
		mustUsage(t, s2, Usage{Bytes: before.Bytes + int64(len(faultBlob)), Count: 2})
		if err := s2.Delete(hash); err != nil {
			t.Fatal(err)
		}
		mustUsage(t, s2, before)
	})
	t.Run("a record left changing is recounted", func(t *testing.T) {
		// The flag alone, with the lock free, means a dead writer; Usage
		// then recounts and clears it.
		s, before := storeWithOne(t)
		if err := s.writeUsage(Usage{Bytes: 1 << 40, Count: 7}, true); err != nil {
			t.Fatal(err)
		}
		if _, err := s.readUsage(); !errors.Is(err, errUsageChanging) {
			t.Fatalf("readUsage of a record left changing: %v", err)
		}
		mustUsage(t, s, before)
		if u, err := s.readUsage(); err != nil || u != before {
			t.Fatalf("after the recount the record reads %+v, %v", u, err)
		}
	})
}

// TestDeleteMissingBlob: deleting a blob that is not there answers
// ErrNotFound and leaves the counter alone.
func TestDeleteMissingBlob(t *testing.T) {
	s, before := storeWithOne(t)
	if err := s.Delete(hashOf([]byte("never stored"))); !errors.Is(err, ErrNotFound) || errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("delete of a missing blob: %v", err)
	}
	mustUsage(t, s, before)
}
