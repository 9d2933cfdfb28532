package blobs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"strata/internal/fileutil"
)

// DefaultType is the content type of a blob stored without one.
const DefaultType = "application/octet-stream"

// File and directory names inside the store directory.
const (
	tmpDirName    = "tmp"   // uploads in progress
	typeSuffix    = ".type" // content type sidecar next to each blob
	blobTempKind  = "put"   // prefix of blob temp files
	typeTempKind  = "type"  // prefix of sidecar temp files
	maxTypeLength = 1024    // longest sidecar read back; longer is corrupt
)

// Options configure a Store.
type Options struct {
	MaxSize int64 // largest blob accepted; 0 = unlimited
	NoSync  bool  // UNSAFE: skip fsync (tests/benchmarks only)
}

// Info describes a stored blob.
type Info struct {
	Hash    string    // lowercase hex BLAKE3-256 of the bytes
	Size    int64     // length in bytes
	Type    string    // content type given at the first Put
	ModTime time.Time // when the bytes were written
}

// Errors returned by the Store; test them with errors.Is.
var (
	ErrNotFound     = errors.New("blob not found")
	ErrInvalidHash  = errors.New("invalid blob hash") // not 64 lowercase hex
	ErrHashMismatch = errors.New("content does not match the hash")
	ErrTooLarge     = errors.New("blob too large")
	ErrNoSpace      = errors.New("no space left on device")                              // the disk or the quota is full
	ErrLockTimeout  = fmt.Errorf("blob store's usage lock: %w", fileutil.ErrLockTimeout) // matches fileutil.ErrLockTimeout too
)

// TooLargeError refuses a blob over a size limit, naming the limit that was
// crossed (the store's MaxSize or the call's, whichever is smaller), so the
// caller can tell whose limit it was. It matches ErrTooLarge.
type TooLargeError struct {
	Limit int64 // bytes
}

func (e *TooLargeError) Error() string { return fmt.Sprintf("over %d bytes: %v", e.Limit, ErrTooLarge) }

// Unwrap makes errors.Is(err, ErrTooLarge) true.
func (e *TooLargeError) Unwrap() error { return ErrTooLarge }

// Store is a content-addressed blob store in one directory.
type Store struct {
	dir  string
	tmp  string
	opts Options

	// locks serialize, per hash (striped by its first byte), the commit
	// step of Put and Delete, so that within one Store the first Put of a
	// content is the one that creates it.
	locks [256]sync.Mutex

	// usageSem is the in-process half of the usage lock (see lockUsage).
	usageSem chan struct{}
}

// Open opens the store in dir, creating it if needed, and removes temp files
// left behind by interrupted uploads.
func Open(dir string, opts Options) (*Store, error) {
	if opts.MaxSize < 0 {
		return nil, fmt.Errorf("open blob store %s: negative MaxSize %d", dir, opts.MaxSize)
	}
	s := &Store{dir: dir, tmp: filepath.Join(dir, tmpDirName), opts: opts, usageSem: make(chan struct{}, 1)}
	if err := fileutil.MkdirAll(s.tmp, 0o777); err != nil {
		return nil, fmt.Errorf("open blob store: %w", noSpace(err))
	}
	if err := s.cleanTemp(); err != nil {
		return nil, fmt.Errorf("open blob store: %w", err)
	}
	return s, nil
}

// Dir returns the directory the store lives in.
func (s *Store) Dir() string { return s.dir }

// ValidHash reports whether h is a well-formed blob name: exactly 64
// lowercase hex characters.
func ValidHash(h string) bool {
	if len(h) != 64 {
		return false
	}
	for i := 0; i < len(h); i++ {
		if !isLowerHex(h[i]) {
			return false
		}
	}
	return true
}

func isLowerHex(c byte) bool { return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' }

// blobPath returns where the blob named hash lives; hash must be valid.
func (s *Store) blobPath(hash string) string {
	return filepath.Join(s.dir, hash[:2], hash)
}

// typePath returns where the blob's content type sidecar lives.
func (s *Store) typePath(hash string) string {
	return s.blobPath(hash) + typeSuffix
}

// lock returns the mutex guarding hash; hash must be valid.
func (s *Store) lock(hash string) *sync.Mutex {
	return &s.locks[unhex(hash[0])<<4|unhex(hash[1])]
}

func unhex(c byte) int {
	if c <= '9' {
		return int(c - '0')
	}
	return int(c-'a') + 10
}

// Stat describes the blob named hash.
func (s *Store) Stat(hash string) (Info, error) {
	if !ValidHash(hash) {
		return Info{}, fmt.Errorf("stat blob %q: %w", hash, ErrInvalidHash)
	}
	fi, err := os.Stat(s.blobPath(hash))
	if err != nil {
		return Info{}, fmt.Errorf("stat blob %s: %w", hash, notFound(err))
	}
	return s.info(hash, fi)
}

// Open opens the blob named hash for reading; the caller closes the file.
func (s *Store) Open(hash string) (*os.File, Info, error) {
	if !ValidHash(hash) {
		return nil, Info{}, fmt.Errorf("open blob %q: %w", hash, ErrInvalidHash)
	}
	f, err := os.Open(s.blobPath(hash))
	if err != nil {
		return nil, Info{}, fmt.Errorf("open blob %s: %w", hash, notFound(err))
	}
	fi, err := f.Stat()
	if err == nil {
		var info Info
		if info, err = s.info(hash, fi); err == nil {
			return f, info, nil
		}
	}
	f.Close()
	return nil, Info{}, fmt.Errorf("open blob %s: %w", hash, err)
}

// info builds the Info of a blob from its file and its sidecar. A missing
// sidecar (a Delete raced a Put) gives the default type.
func (s *Store) info(hash string, fi fs.FileInfo) (Info, error) {
	typ, err := readType(s.typePath(hash))
	if err != nil {
		return Info{}, err
	}
	return Info{Hash: hash, Size: fi.Size(), Type: typ, ModTime: fi.ModTime()}, nil
}

// readType reads a content type sidecar, DefaultType if there is none.
func readType(path string) (string, error) {
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return DefaultType, nil
	case err != nil:
		return "", fmt.Errorf("read content type: %w", err)
	}
	typ := strings.TrimSpace(string(b))
	if typ == "" || len(typ) > maxTypeLength {
		return DefaultType, nil
	}
	return typ, nil
}

// Delete removes the blob named hash and its content type sidecar, and
// counts it out of Usage. It returns ErrNotFound if there is no such blob.
func (s *Store) Delete(hash string) error {
	if !ValidHash(hash) {
		return fmt.Errorf("delete blob %q: %w", hash, ErrInvalidHash)
	}
	mu := s.lock(hash)
	mu.Lock()
	defer mu.Unlock()
	lk, err := s.lockUsage()
	if err != nil {
		return fmt.Errorf("delete blob %s: %w", hash, err)
	}
	defer s.unlockUsage(lk)

	fi, err := os.Stat(s.blobPath(hash))
	if errors.Is(err, fs.ErrNotExist) {
		// No blob: a sidecar alone is harmless, but goes too.
		if err := os.Remove(s.typePath(hash)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete blob %s: content type: %w", hash, err)
		}
		return fmt.Errorf("delete blob %s: %w", hash, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("delete blob %s: %w", hash, err)
	}
	// The count goes first, marked changing (see publish); if it cannot
	// be written, it is removed, to be recounted by the next reader.
	u, _, err := s.usageLocked()
	after := Usage{Bytes: max(u.Bytes-fi.Size(), 0), Count: max(u.Count-1, 0)}
	counted := err == nil && s.writeUsage(after, true) == nil
	if !counted {
		if err := s.invalidateUsage(); err != nil {
			return fmt.Errorf("delete blob %s: usage counter: %w", hash, err)
		}
	}
	// The blob goes before its sidecar: a blob must never be visible
	// without the sidecar written before it.
	if err := fileutil.Remove(s.blobPath(hash)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		if counted && s.writeUsage(u, false) != nil {
			s.invalidateUsage()
		}
		return fmt.Errorf("delete blob %s: %w", hash, err)
	}
	if err := os.Remove(s.typePath(hash)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete blob %s: content type: %w", hash, err)
	}
	if counted && s.writeUsage(after, false) != nil {
		s.invalidateUsage()
	}
	if !s.opts.NoSync {
		if err := fileutil.SyncDir(filepath.Dir(s.blobPath(hash))); err != nil {
			return fmt.Errorf("delete blob %s: %w", hash, err)
		}
	}
	return nil
}

// notFound turns a file-not-found error into ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNotFound
	}
	return err
}

// noSpace wraps a full-disk or over-quota error so that it matches both
// ErrNoSpace and the underlying errno.
func noSpace(err error) error {
	if err != nil && fileutil.IsNoSpace(err) && !errors.Is(err, ErrNoSpace) {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	return err
}
