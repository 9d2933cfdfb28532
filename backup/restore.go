package backup

import (
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"

	"github.com/klauspost/compress/zstd"

	"strata/internal/blake3"
	"strata/internal/fileutil"
	"strata/log"
)

// RestoreOptions tune a restore.
type RestoreOptions struct {
	// ID is the backup to restore, with its parents ("" = the newest).
	ID string
	// Tenant restores that tenant only ("" = everything in the backups).
	Tenant string
	// Seq, when not 0, ends the restored log at that event (needs one log:
	// a backup of one tenant, or Tenant).
	Seq uint64
	// Time, when not 0 (unix nanoseconds), ends the restored log at its
	// last event at or before it (one log, as Seq).
	Time int64
	// Progress, when set, is told of the events restored out of the total.
	Progress func(done, total uint64)
	// VerifyProgress, when set, is told, while each restored log is
	// verified, of the events checked out of its total (log.VerifyProgress),
	// with 0 done when its verify starts.
	VerifyProgress func(log string, done, total uint64)
}

// Restored is one log a restore brought back and proved.
type Restored struct {
	Dir    string // relative to the data directory
	Events uint64
	Head   [32]byte
}

// Restore restores the chain of backups in dir ending at o.ID into data,
// which must be empty or absent, checking every stored file against its
// manifest as it reads it; then it verifies every restored log from its
// segments alone (log.Verify) and checks it ends at the head the backup
// names. reindex, when set, builds a log directory's caches (indexes,
// blob usage) from nothing, alongside the verify.
func Restore(dir, data string, o RestoreOptions, reindex func(dir string) error) ([]Restored, error) {
	chain, err := Chain(dir, o.ID)
	if err != nil {
		return nil, err
	}
	if ents, err := os.ReadDir(data); err == nil && len(ents) > 0 {
		return nil, fmt.Errorf("restore into %s: %w", data, ErrNotEmpty)
	} else if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	if err := fileutil.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	want := func(p string) bool {
		return o.Tenant == "" || strings.HasPrefix(p, "tenants/"+o.Tenant+"/") || p == "tenants/"+o.Tenant
	}
	heads := map[string]LogHead{}
	var total, done uint64
	for _, m := range chain {
		for _, f := range m.Files {
			if want(f.Path) {
				total += f.Events
			}
		}
	}
	var parts []part
	for _, m := range chain {
		for _, h := range m.Logs {
			if want(h.Dir) {
				heads[h.Dir] = h
			}
		}
		for _, f := range m.Files {
			if want(f.Path) {
				parts = append(parts, part{m, f})
			}
		}
	}
	dirs, err := restoreAll(dir, data, parts, func(f File) {
		done += f.Events
		if o.Progress != nil {
			o.Progress(done, total)
		}
	})
	if err != nil {
		return nil, err
	}
	for d := range dirs {
		if err := fileutil.SyncDir(d); err != nil {
			return nil, err
		}
	}
	if (o.Seq > 0 || o.Time != 0) && len(heads) != 1 {
		return nil, fmt.Errorf("--seq and --time need one log; the backup holds %d: name a tenant", len(heads))
	}
	var out []Restored
	for rel, h := range heads {
		ldir := filepath.Join(data, filepath.FromSlash(rel))
		if h.Through == 0 {
			continue
		}
		if o.Time != 0 {
			seq, err := log.SeqThrough(ldir, o.Time)
			if err != nil {
				return nil, err
			}
			if seq == 0 {
				return nil, fmt.Errorf("--time: the log's first event is after %s", log.FormatTime(o.Time))
			}
			if o.Seq == 0 || seq < o.Seq {
				o.Seq = seq
			}
		}
		if o.Seq > 0 {
			if o.Seq > h.Through {
				return nil, fmt.Errorf("--seq %d: the backup ends at seq %d", o.Seq, h.Through)
			}
			if err := log.CutAfter(ldir, o.Seq); err != nil {
				return nil, err
			}
		}
		// The chain is proved from the segments alone while the caches
		// are rebuilt beside it: two passes over the log on two cores.
		var rerr error
		var wg sync.WaitGroup
		if reindex != nil {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rerr = reindex(ldir)
			}()
		}
		var progress func(done, total uint64)
		if o.VerifyProgress != nil {
			// The total is what the backup holds: the head file that
			// log.VerifyProgress reads is being rebuilt alongside.
			through := h.Through
			if o.Seq > 0 {
				through = o.Seq
			}
			progress = func(done, _ uint64) { o.VerifyProgress(rel, done, through) }
			progress(0, through)
		}
		rep, err := log.VerifyProgress(ldir, progress)
		wg.Wait()
		if err != nil {
			return nil, fmt.Errorf("verify the restored %s: %w", rel, err)
		}
		if o.Seq == 0 && (rep.Head.Seq != h.Through || hex.EncodeToString(rep.Head.ID[:]) != h.Head) {
			return nil, fmt.Errorf("the restored %s ends at seq %d, id %x; the backup says %d, %s", rel, rep.Head.Seq, rep.Head.ID, h.Through, h.Head)
		}
		if rerr != nil {
			return nil, fmt.Errorf("rebuild the caches of the restored %s: %w", rel, rerr)
		}
		out = append(out, Restored{Dir: rel, Events: rep.Events, Head: rep.Head.ID})
	}
	return out, nil
}

// ErrNotEmpty is a restore's target that holds files already.
var ErrNotEmpty = errors.New("the directory is not empty: restore only into an empty or new one")

// part is one stored file of one backup of a chain.
type part struct {
	m *Manifest
	f File
}

// restoreAll restores parts (in chain order, root first) into data on as
// many workers as there are CPUs (at most 4), and returns the directories
// written into. A file's parts (a segment's bytes from each backup, a
// file each backup stored whole) go on one worker in their order; files
// are independent. The error is the first damaged part in chain order, as
// a one-by-one restore would report: parts are taken in that order and
// none is taken past a failed one. done is called, one call at a time, as
// each part is written.
func restoreAll(dir, data string, parts []part, done func(File)) (map[string]bool, error) {
	// Files in the order of their first part; each file's parts in order.
	type file struct{ idx []int }
	var files []*file
	byPath := map[string]*file{}
	for i, p := range parts {
		fl := byPath[p.f.Path]
		if fl == nil {
			fl = &file{}
			byPath[p.f.Path] = fl
			files = append(files, fl)
		}
		fl.idx = append(fl.idx, i)
	}
	var (
		mu     sync.Mutex
		next   int
		failAt = len(parts) // the first failed part
		errs   = map[int]error{}
		dirs   = map[string]bool{}
		wg     sync.WaitGroup
	)
	// claim returns the next file to restore, or nil when none is left
	// before the first failure.
	claim := func() *file {
		mu.Lock()
		defer mu.Unlock()
		if next >= len(files) || files[next].idx[0] > failAt {
			return nil
		}
		next++
		return files[next-1]
	}
	for range min(runtime.GOMAXPROCS(0), 4, max(len(files), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			dec, err := zstd.NewReader(nil, zstd.WithDecoderConcurrency(1))
			if err != nil {
				mu.Lock()
				errs[-1] = err
				failAt = -1
				mu.Unlock()
				return
			}
			defer dec.Close()
			for fl := claim(); fl != nil; fl = claim() {
				for _, i := range fl.idx {
					d, err := restoreFile(dir, data, parts[i].m, parts[i].f, dec)
					mu.Lock()
					if d != "" {
						dirs[d] = true
					}
					if err != nil {
						errs[i] = err
						failAt = min(failAt, i)
					} else {
						done(parts[i].f)
					}
					mu.Unlock()
					if err != nil {
						break
					}
				}
			}
		}()
	}
	wg.Wait()
	if failAt < len(parts) {
		return nil, errs[failAt]
	}
	return dirs, nil
}

// restoreFile writes one stored file into data, checking it against the
// manifest as it reads, and returns the directory it wrote into (to be
// synced) once it has made it.
func restoreFile(dir, data string, m *Manifest, f File, dec *zstd.Decoder) (string, error) {
	name := m.ID + "/" + f.Stored
	in, err := os.Open(filepath.Join(dir, m.ID, filepath.FromSlash(f.Stored)))
	if err != nil {
		return "", fmt.Errorf("%s (%s): %w", name, f.Path, err)
	}
	defer in.Close()
	h := blake3.New()
	hr := &hashReader{r: in, h: h}
	if err := dec.Reset(hr); err != nil {
		return "", fmt.Errorf("%s (%s): %w", name, f.Path, err)
	}
	dst := filepath.Join(data, filepath.FromSlash(f.Path))
	if err := fileutil.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
		return "", err
	}
	d := filepath.Dir(dst)
	flag := os.O_CREATE | os.O_WRONLY
	if f.Kind != KindSegment || f.Offset == 0 {
		flag |= os.O_TRUNC
	}
	out, err := fileutil.OpenFile(dst, flag, 0o600)
	if err != nil {
		return d, err
	}
	defer out.Close()
	if f.Offset > 0 {
		if fi, err := out.Stat(); err != nil || fi.Size() != f.Offset {
			return d, fmt.Errorf("%s (%s): goes at byte %d of a file restored so far to another size: %w", name, f.Path, f.Offset, ErrDamaged)
		}
	}
	if _, err := out.Seek(f.Offset, io.SeekStart); err != nil {
		return d, err
	}
	var n int64
	if f.Kind == KindSegment && m.Format >= 2 {
		// The records' CRCs were stored as zeros: computed again here,
		// on the worker that copies the part.
		n, err = log.CopySettingCRCs(&fileWriter{out}, dec, f.Offset)
	} else {
		n, err = io.Copy(&fileWriter{out}, dec)
	}
	if err != nil {
		return d, fmt.Errorf("%s (%s): %w (%w)", name, f.Path, ErrDamaged, err)
	}
	io.Copy(io.Discard, hr) // the frame may end before the file
	if n != f.Size || hr.n != f.StoredSize || hex.EncodeToString(h.Sum(nil)) != f.BLAKE3 {
		return d, fmt.Errorf("%s (%s): %w", name, f.Path, ErrDamaged)
	}
	return d, fileutil.Fdatasync(out)
}

type hashReader struct {
	r io.Reader
	h *blake3.Hasher
	n int64
}

func (r *hashReader) Read(b []byte) (int, error) {
	n, err := r.r.Read(b)
	r.h.Write(b[:n])
	r.n += int64(n)
	return n, err
}

type fileWriter struct{ f *os.File }

func (w *fileWriter) Write(b []byte) (int, error) { return fileutil.Write(w.f, b) }
