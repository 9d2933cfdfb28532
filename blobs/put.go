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
)

// bufSize is the one buffer a Put streams through, whatever the blob size.
const bufSize = 256 << 10

var bufPool = sync.Pool{New: func() any { return new([bufSize]byte) }}

// Put streams r into the store and returns the blob's Info.
//
// want is "" or the hash the caller expects: it is checked after the last
// byte, and on a mismatch nothing is stored and the error is
// ErrHashMismatch. contentType is remembered the first time a content is
// stored (DefaultType if empty); a later Put of the same content keeps the
// first type and returns created=false. A blob larger than MaxSize is
// refused with ErrTooLarge as soon as the limit is crossed, without reading
// further.
func (s *Store) Put(r io.Reader, want, contentType string) (info Info, created bool, err error) {
	if want != "" && !ValidHash(want) {
		return Info{}, false, fmt.Errorf("store blob: expected hash %q: %w", want, ErrInvalidHash)
	}
	if contentType == "" {
		contentType = DefaultType
	}

	f, err := s.createTemp(blobTempKind)
	if err != nil {
		return Info{}, false, fmt.Errorf("store blob: %w", err)
	}
	tmpName := f.Name()
	committed := false
	defer func() {
		if f != nil {
			f.Close()
		}
		if !committed {
			os.Remove(tmpName)
		}
	}()

	hash, size, err := s.copy(f, r)
	if err != nil {
		return Info{}, false, fmt.Errorf("store blob: %w", err)
	}
	if want != "" && hash != want {
		return Info{}, false, fmt.Errorf("store blob: got %s, expected %s: %w", hash, want, ErrHashMismatch)
	}
	if !s.opts.NoSync {
		if err := f.Sync(); err != nil {
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

	final := s.blobPath(hash)
	if old, err := os.Stat(final); err == nil {
		info, err := s.info(hash, old)
		if err != nil {
			return Info{}, false, fmt.Errorf("store blob %s: %w", hash, err)
		}
		return info, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return Info{}, false, fmt.Errorf("store blob %s: %w", hash, err)
	}

	shard := filepath.Dir(final)
	if err := s.mkShard(shard); err != nil {
		return Info{}, false, fmt.Errorf("store blob %s: %w", hash, err)
	}
	// The sidecar lands first, so a visible blob always has its type.
	if err := s.writeType(hash, contentType); err != nil {
		return Info{}, false, fmt.Errorf("store blob %s: %w", hash, err)
	}
	if err := s.commit(&f, final); err != nil {
		return Info{}, false, fmt.Errorf("store blob %s: %w", hash, err)
	}
	committed = true
	if !s.opts.NoSync {
		if err := syncDir(shard); err != nil {
			return Info{}, false, fmt.Errorf("store blob %s: %w", hash, noSpace(err))
		}
	}
	return Info{Hash: hash, Size: size, Type: contentType, ModTime: fi.ModTime()}, true, nil
}

// copy streams r into w through one pooled buffer, hashing on the way, and
// stops as soon as MaxSize is exceeded.
func (s *Store) copy(w io.Writer, r io.Reader) (hash string, size int64, err error) {
	buf := bufPool.Get().(*[bufSize]byte)
	defer bufPool.Put(buf)
	h := blake3.New()
	limit := s.opts.MaxSize
	for {
		p := buf[:]
		if limit > 0 && limit-size+1 < int64(len(p)) {
			p = p[:limit-size+1] // read at most one byte past the limit
		}
		n, rerr := r.Read(p)
		if n > 0 {
			size += int64(n)
			if limit > 0 && size > limit {
				return "", size, fmt.Errorf("over %d bytes: %w", limit, ErrTooLarge)
			}
			h.Write(p[:n]) // never fails
			if _, err := w.Write(p[:n]); err != nil {
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

// writeType atomically writes the content type sidecar of hash.
func (s *Store) writeType(hash, contentType string) error {
	f, err := s.createTemp(typeTempKind)
	if err != nil {
		return fmt.Errorf("content type: %w", err)
	}
	tmpName := f.Name()
	if err := s.writeTypeTemp(&f, hash, contentType); err != nil {
		if f != nil {
			f.Close()
		}
		os.Remove(tmpName)
		return fmt.Errorf("content type: %w", err)
	}
	return nil
}

// writeTypeTemp fills the temp file *fp and renames it into place; *fp is
// nil once the file is closed.
func (s *Store) writeTypeTemp(fp **os.File, hash, contentType string) error {
	if _, err := (*fp).WriteString(contentType); err != nil {
		return noSpace(err)
	}
	if !s.opts.NoSync {
		if err := (*fp).Sync(); err != nil {
			return noSpace(err)
		}
	}
	if err := s.commit(fp, s.typePath(hash)); err != nil {
		return err
	}
	if !s.opts.NoSync {
		return noSpace(syncDir(filepath.Dir(s.typePath(hash))))
	}
	return nil
}

// commit renames the synced temp file *fp to name and closes it, setting
// *fp to nil once closed. Where temp files are locked, the file stays open
// (and locked) across the rename, so a concurrent Open cannot sweep it away
// between close and rename.
func (s *Store) commit(fp **os.File, name string) error {
	f := *fp
	if !lockTemps {
		*fp = nil
		if err := f.Close(); err != nil {
			return noSpace(err)
		}
	}
	if err := os.Rename(f.Name(), name); err != nil {
		return err
	}
	if lockTemps {
		*fp = nil
		if err := f.Close(); err != nil {
			return noSpace(err)
		}
	}
	return nil
}

// mkShard creates a blob's two-hex-digit directory if it is missing.
func (s *Store) mkShard(shard string) error {
	err := os.Mkdir(shard, 0o777)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	if err != nil {
		return noSpace(err)
	}
	if s.opts.NoSync {
		return nil
	}
	return noSpace(syncDir(s.dir))
}
