package blobs

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"strata/internal/fileutil"
)

// Usage is what the store holds.
type Usage struct {
	Bytes int64 // the blobs' sizes added up (sidecars not included)
	Count int64 // how many blobs
}

// The usage counter file (see the package doc for its layout).
const (
	usageName     = "usage"      // the counter
	usageLockName = "usage.lock" // flock'ed while the counter or the set of blobs changes; never removed
	usageMagic    = "BLOBUSG\x00"
	usageVersion  = 1
	usageSize     = 36
)

// usageChanging, in the flags, says that blobs were coming or going when
// the record was written: if it is still there when the lock is free, the
// process that set it died mid-change, and the counter must be recounted.
const usageChanging = 1

// errUsageInvalid: the counter file is missing, short, or damaged, and
// must be recounted.
var errUsageInvalid = errors.New("usage counter missing or damaged")

// errUsageChanging: the counter was left with the changing flag, by a
// change in progress or by a process that died in one.
var errUsageChanging = errors.New("usage counter left changing")

func encodeUsage(u Usage, changing bool) []byte {
	b := make([]byte, usageSize)
	copy(b, usageMagic)
	binary.LittleEndian.PutUint32(b[8:], usageVersion)
	if changing {
		binary.LittleEndian.PutUint32(b[12:], usageChanging)
	}
	binary.LittleEndian.PutUint64(b[16:], uint64(u.Bytes))
	binary.LittleEndian.PutUint64(b[24:], uint64(u.Count))
	binary.LittleEndian.PutUint32(b[32:], crc32.ChecksumIEEE(b[:32]))
	return b
}

// decodeUsage reads a counter record; one left changing reports
// errUsageChanging.
func decodeUsage(b []byte) (Usage, error) {
	if len(b) < usageSize || string(b[:8]) != usageMagic ||
		binary.LittleEndian.Uint32(b[8:]) != usageVersion ||
		binary.LittleEndian.Uint32(b[32:]) != crc32.ChecksumIEEE(b[:32]) {
		return Usage{}, errUsageInvalid
	}
	if binary.LittleEndian.Uint32(b[12:])&usageChanging != 0 {
		return Usage{}, errUsageChanging
	}
	u := Usage{
		Bytes: int64(binary.LittleEndian.Uint64(b[16:])),
		Count: int64(binary.LittleEndian.Uint64(b[24:])),
	}
	if u.Bytes < 0 || u.Count < 0 {
		return Usage{}, errUsageInvalid
	}
	return u, nil
}

// Usage returns what the store holds, from the counter file: one open and
// one pread. If the file is missing or damaged, or was left changing by a
// process that died, it recounts (walks every shard) and writes it.
func (s *Store) Usage() (Usage, error) {
	u, err := s.readUsage()
	if err == nil {
		return u, nil
	}
	if !errors.Is(err, errUsageInvalid) && !errors.Is(err, errUsageChanging) {
		return Usage{}, fmt.Errorf("blob usage: %w", err)
	}
	// Read again under the lock: a bad checksum or the changing flag may
	// be a change in progress, which the lock waits out.
	lk, err := s.lockUsage()
	if err != nil {
		return Usage{}, fmt.Errorf("blob usage: %w", err)
	}
	defer s.unlockUsage(lk)
	u, _, err = s.usageLocked()
	if err != nil {
		return Usage{}, fmt.Errorf("blob usage: %w", err)
	}
	return u, nil
}

// Recount walks the store, counts its blobs, and rewrites the counter with
// the result. Puts and Deletes wait while it walks.
func (s *Store) Recount() (Usage, error) {
	lk, err := s.lockUsage()
	if err != nil {
		return Usage{}, fmt.Errorf("recount blobs: %w", err)
	}
	defer s.unlockUsage(lk)
	u, err := s.recountLocked()
	if err != nil {
		return Usage{}, fmt.Errorf("recount blobs: %w", err)
	}
	return u, nil
}

// usageLocked returns the counter, recounting if it is missing or damaged
// (recounted = true: the walk saw the store as it is now). The usage lock
// is held.
func (s *Store) usageLocked() (u Usage, recounted bool, err error) {
	u, err = s.readUsage()
	if errors.Is(err, errUsageInvalid) || errors.Is(err, errUsageChanging) {
		u, err = s.recountLocked()
		return u, true, err
	}
	return u, false, err
}

// recountLocked walks the shards and writes the counter. The usage lock is
// held, so no blob comes or goes meanwhile.
func (s *Store) recountLocked() (Usage, error) {
	var u Usage
	shards, err := os.ReadDir(s.dir)
	if err != nil {
		return Usage{}, err
	}
	for _, d := range shards {
		if !d.IsDir() || !isShard(d.Name()) {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(s.dir, d.Name()))
		if err != nil {
			return Usage{}, err
		}
		for _, e := range entries {
			if !e.Type().IsRegular() || !ValidHash(e.Name()) || e.Name()[:2] != d.Name() {
				continue // sidecars, strays
			}
			fi, err := e.Info()
			if errors.Is(err, fs.ErrNotExist) {
				continue // deleted by a process that takes no lock
			}
			if err != nil {
				return Usage{}, err
			}
			u.Bytes += fi.Size()
			u.Count++
		}
	}
	if err := s.writeUsage(u, false); err != nil {
		return Usage{}, err
	}
	return u, nil
}

// isShard reports whether name is a shard directory: two lowercase hex
// digits.
func isShard(name string) bool {
	return len(name) == 2 && isLowerHex(name[0]) && isLowerHex(name[1])
}

// readUsage reads the counter file without the lock. A torn or missing
// record reports errUsageInvalid.
func (s *Store) readUsage() (Usage, error) {
	f, err := os.Open(filepath.Join(s.dir, usageName))
	if errors.Is(err, fs.ErrNotExist) {
		return Usage{}, errUsageInvalid
	}
	if err != nil {
		return Usage{}, err
	}
	defer f.Close()
	var b [usageSize]byte
	if _, err := f.ReadAt(b[:], 0); err == io.EOF || errors.Is(err, io.ErrUnexpectedEOF) {
		return Usage{}, errUsageInvalid
	} else if err != nil {
		return Usage{}, err
	}
	return decodeUsage(b[:])
}

// writeUsage writes the counter in place with one pwrite of a 36-byte
// record at offset 0. The usage lock is held, so writers never interleave.
// It is not fsynced: the counter is a cache (see the package doc). With
// changing, the record says blobs are coming or going: it is written before
// a change to the files and rewritten without the flag after it.
func (s *Store) writeUsage(u Usage, changing bool) error {
	f, err := fileutil.OpenFile(filepath.Join(s.dir, usageName), os.O_WRONLY|os.O_CREATE, 0o666)
	if err != nil {
		return fmt.Errorf("write usage counter: %w", noSpace(err))
	}
	_, err = fileutil.WriteAt(f, encodeUsage(u, changing), 0)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("write usage counter: %w", noSpace(err))
	}
	return nil
}

// invalidateUsage removes the counter, so that the next reader recounts;
// for when a change to the blobs could not be counted. The usage lock is
// held.
func (s *Store) invalidateUsage() error {
	err := os.Remove(filepath.Join(s.dir, usageName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}
