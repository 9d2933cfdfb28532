package blobs

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"

	"strata/internal/blake3"
	"strata/internal/fileutil"
)

// bufSize is the one buffer a Put streams through, whatever the blob size.
const bufSize = 256 << 10

var bufPool = sync.Pool{New: func() any { return new([bufSize]byte) }}

// PutOptions extends Put.
type PutOptions struct {
	// Want is "" or the hash the caller expects: it is checked after the
	// last byte, and on a mismatch nothing is stored and the error is
	// ErrHashMismatch.
	Want string
	// ContentType is remembered the first time a content is stored
	// (DefaultType if empty).
	ContentType string
	// MaxSize is this call's largest blob; 0 = the store's MaxSize. The
	// smaller of the two applies, and crossing it is a *TooLargeError
	// naming it.
	MaxSize int64
	// Admit, if set, is called with the new blob's size and the store's
	// Usage before it, holding the usage lock, after the bytes are on disk
	// in the temp file and before the blob becomes visible. An error
	// refuses the blob: nothing is stored, and PutWith returns the error
	// wrapped with %w. It is not called when the content already exists (a
	// repeat upload costs nothing). Admit runs while every other Put and
	// Delete of the store, in every process, waits: it must be quick and
	// must not call the Store.
	Admit func(size int64, u Usage) error
}

// Put streams r into the store and returns the blob's Info; it is PutWith
// with only Want and ContentType.
func (s *Store) Put(r io.Reader, want, contentType string) (info Info, created bool, err error) {
	return s.PutWith(r, PutOptions{Want: want, ContentType: contentType})
}

// PutWith streams r into the store and returns the blob's Info, and
// whether this call stored it (false: the content was there already; it
// keeps its first type). A blob larger than the limit is refused as soon as
// the limit is crossed, without reading further. A new blob is counted in
// Usage.
func (s *Store) PutWith(r io.Reader, o PutOptions) (info Info, created bool, err error) {
	if o.Want != "" && !ValidHash(o.Want) {
		return Info{}, false, fmt.Errorf("store blob: expected hash %q: %w", o.Want, ErrInvalidHash)
	}
	if o.MaxSize < 0 {
		return Info{}, false, fmt.Errorf("store blob: negative MaxSize %d", o.MaxSize)
	}
	contentType := o.ContentType
	if contentType == "" {
		contentType = DefaultType
	}
	limit := s.opts.MaxSize
	if o.MaxSize > 0 && (limit == 0 || o.MaxSize < limit) {
		limit = o.MaxSize
	}

	f, err := s.createTemp(blobTempKind)
	if err != nil {
		return Info{}, false, fmt.Errorf("store blob: %w", err)
	}
	defer discard(&f)

	hash, size, err := s.copy(f, r, limit)
	if err != nil {
		return Info{}, false, fmt.Errorf("store blob: %w", err)
	}
	if o.Want != "" && hash != o.Want {
		return Info{}, false, fmt.Errorf("store blob: got %s, expected %s: %w", hash, o.Want, ErrHashMismatch)
	}
	if !s.opts.NoSync {
		if err := fileutil.Fsync(f); err != nil {
			return Info{}, false, fmt.Errorf("store blob %s: sync: %w", hash, noSpace(err))
		}
	}
	fi, err := f.Stat()
	if err != nil {
		return Info{}, false, fmt.Errorf("store blob %s: %w", hash, err)
	}

	mu := s.lock(hash)
	mu.Lock()
	defer mu.Unlock()

	// A repeat upload, the common case, takes no lock but this one.
	if info, ok, err := s.existing(hash); ok || err != nil {
		return info, false, err
	}
	shard := filepath.Dir(s.blobPath(hash))
	if err := s.mkShard(shard); err != nil {
		return Info{}, false, fmt.Errorf("store blob %s: %w", hash, err)
	}
	// The sidecar is written and synced before the lock is taken, so the
	// lock is held for renames, not for writes.
	tf, err := s.prepareType(contentType)
	if err != nil {
		return Info{}, false, fmt.Errorf("store blob %s: %w", hash, err)
	}
	defer discard(&tf)

	for try := 0; ; try++ {
		err := s.publish(hash, size, &f, &tf, o.Admit)
		if err == nil {
			break
		}
		if !errors.Is(err, errExists) {
			return Info{}, false, fmt.Errorf("store blob %s: %w", hash, err)
		}
		// Another process stored it first; unless it is already gone
		// again (a Delete), that one is ours too.
		if info, ok, err := s.existing(hash); ok || err != nil || try == 2 {
			if !ok && err == nil {
				err = fmt.Errorf("store blob %s: created and deleted by others meanwhile", hash)
			}
			return info, false, err
		}
	}
	if !s.opts.NoSync {
		if err := fileutil.SyncDir(shard); err != nil {
			return Info{}, false, fmt.Errorf("store blob %s: %w", hash, noSpace(err))
		}
	}
	return Info{Hash: hash, Size: size, Type: contentType, ModTime: fi.ModTime()}, true, nil
}

// errExists: another process stored the content first.
var errExists = errors.New("blob exists")

// publish makes the blob in the temp file *fp visible under hash, with the
// sidecar in the temp file *tp, holding the usage lock so that the check
// that it is new, the admission, the counter and the renames are one step
// for every process. It returns errExists if the blob appeared meanwhile.
//
// The counter is written, marked changing, before the renames, and again
// unmarked after them: a crash between leaves the mark, and the next
// reader recounts.
func (s *Store) publish(hash string, size int64, fp, tp **os.File, admit func(int64, Usage) error) error {
	lk, err := s.lockUsage()
	if err != nil {
		return err
	}
	defer s.unlockUsage(lk)

	final := s.blobPath(hash)
	if _, err := os.Stat(final); err == nil {
		return errExists
	} else if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	u, _, err := s.usageLocked()
	if err != nil {
		return err
	}
	if admit != nil {
		if err := admit(size, u); err != nil {
			return err
		}
	}
	after := Usage{Bytes: u.Bytes + size, Count: u.Count + 1}
	if err := s.writeUsage(after, true); err != nil {
		return err
	}
	if err := s.publishFiles(hash, fp, tp); err != nil {
		// Take the blob out of the count again, unless it became visible
		// after all (the rename worked, the close after it failed).
		if _, serr := os.Stat(final); errors.Is(serr, fs.ErrNotExist) {
			after = u
		}
		if uerr := s.writeUsage(after, false); uerr != nil {
			s.invalidateUsage()
		}
		return err
	}
	if err := s.writeUsage(after, false); err != nil {
		// The blob is stored; the mark left behind only costs the next
		// reader a recount.
		s.invalidateUsage()
	}
	return nil
}

// publishFiles renames the sidecar, then the blob, into place. The usage
// lock is held.
func (s *Store) publishFiles(hash string, fp, tp **os.File) error {
	if err := s.commit(tp, s.typePath(hash)); err != nil {
		return fmt.Errorf("content type: %w", err)
	}
	// The sidecar's rename must be durable before the blob's, so a
	// visible blob always has its type.
	if !s.opts.NoSync {
		if err := fileutil.SyncDir(filepath.Dir(s.typePath(hash))); err != nil {
			return fmt.Errorf("content type: %w", noSpace(err))
		}
	}
	return s.commit(fp, s.blobPath(hash))
}

// existing returns the Info of the blob named hash if it is stored
// (ok = true).
func (s *Store) existing(hash string) (info Info, ok bool, err error) {
	fi, err := os.Stat(s.blobPath(hash))
	if errors.Is(err, fs.ErrNotExist) {
		return Info{}, false, nil
	}
	if err == nil {
		info, err = s.info(hash, fi)
	}
	if err != nil {
		return Info{}, false, fmt.Errorf("store blob %s: %w", hash, err)
	}
	return info, true, nil
}

// discard closes and removes the temp file *fp unless commit renamed it
// (and set *fp to nil).
func discard(fp **os.File) {
	if f := *fp; f != nil {
		f.Close()
		os.Remove(f.Name())
	}
}

// copy streams r into w through one pooled buffer, hashing on the way, and
// stops as soon as limit (0 = none) is exceeded.
func (s *Store) copy(w *os.File, r io.Reader, limit int64) (hash string, size int64, err error) {
	buf := bufPool.Get().(*[bufSize]byte)
	defer bufPool.Put(buf)
	h := blake3.New()
	for {
		p := buf[:]
		if limit > 0 && limit-size+1 < int64(len(p)) {
			p = p[:limit-size+1] // read at most one byte past the limit
		}
		n, rerr := r.Read(p)
		if n > 0 {
			size += int64(n)
			if limit > 0 && size > limit {
				return "", size, &TooLargeError{Limit: limit}
			}
			h.Write(p[:n]) // never fails
			if _, err := fileutil.Write(w, p[:n]); err != nil {
				return "", size, fmt.Errorf("write: %w", noSpace(err))
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return "", size, fmt.Errorf("read: %w", rerr)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), size, nil
}

// prepareType writes contentType to a new temp file and syncs it, ready
// for commit to rename it into place as a sidecar.
func (s *Store) prepareType(contentType string) (*os.File, error) {
	f, err := s.createTemp(typeTempKind)
	if err != nil {
		return nil, fmt.Errorf("content type: %w", err)
	}
	_, err = fileutil.Write(f, []byte(contentType))
	if err == nil && !s.opts.NoSync {
		err = fileutil.Fsync(f)
	}
	if err != nil {
		discard(&f)
		return nil, fmt.Errorf("content type: %w", noSpace(err))
	}
	return f, nil
}

// commit renames the synced temp file *fp to name and closes it, setting
// *fp to nil once closed. The file stays open (and locked) across the
// rename, so a concurrent Open cannot sweep it away between close and
// rename.
func (s *Store) commit(fp **os.File, name string) error {
	f := *fp
	if err := fileutil.Rename(f.Name(), name); err != nil {
		return noSpace(err) // a new directory entry may need a block
	}
	*fp = nil
	if err := f.Close(); err != nil {
		return noSpace(err)
	}
	return nil
}

// mkShard creates a blob's two-hex-digit directory if it is missing.
func (s *Store) mkShard(shard string) error {
	err := fileutil.Mkdir(shard, 0o777)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return noSpace(err)
	}
	if s.opts.NoSync {
		return nil
	}
	return noSpace(fileutil.SyncDir(s.dir))
}
