package backup

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/klauspost/compress/zstd"

	"strata/internal/blake3"
	"strata/internal/fileutil"
	"strata/log"
)

// Options tune a backup.
type Options struct {
	// Tenant limits the backup to one tenant's directory ("" = the whole
	// data directory: every tenant, accounts, tokens, the audit log).
	Tenant string
	// Incremental stores only what is new since the newest backup in the
	// directory (of the same scope): log records after its heads, blobs it
	// lacks, and the small files whole. Without a parent it is a full one.
	Incremental bool
	// Progress, when set, is told of events copied out of the total.
	Progress func(done, total uint64)
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Create backs the data directory up into a new backup in dir and returns
// its manifest.
func Create(data, dir string, o Options) (*Manifest, error) {
	now := time.Now
	if o.Now != nil {
		now = o.Now
	}
	if err := fileutil.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	cleanTmp(dir)
	var parent []*Manifest
	if o.Incremental {
		all, err := List(dir)
		if err != nil {
			return nil, err
		}
		for i := len(all) - 1; i >= 0; i-- {
			if all[i].Tenant == o.Tenant {
				if parent, err = Chain(dir, all[i].ID); err != nil {
					return nil, err
				}
				break
			}
		}
	}
	t := now().UTC()
	var rnd [4]byte
	rand.Read(rnd[:])
	m := &Manifest{Format: Format, ID: t.Format("20060102T150405.000000000Z") + "-" + hex.EncodeToString(rnd[:]), Created: t.Format(time.RFC3339Nano), Tenant: o.Tenant}
	if len(parent) > 0 {
		m.Parent = parent[len(parent)-1].ID
	}
	root := data
	if o.Tenant != "" {
		root = filepath.Join(data, "tenants", o.Tenant)
		if _, err := os.Stat(root); err != nil {
			return nil, fmt.Errorf("tenant %s: %w", o.Tenant, err)
		}
	}
	files, logDirs, err := walk(data, root)
	if err != nil {
		return nil, err
	}
	// The heads first, all at once: the backup is these prefixes.
	type open struct {
		l     *log.Log
		head  LogHead
		spans []log.Span
	}
	var logs []open
	defer func() {
		for _, x := range logs {
			x.l.Close()
		}
	}()
	prevThrough := map[string]uint64{}
	segSize := map[string]int64{}
	haveBlob := map[string]bool{}
	for _, p := range parent {
		for _, h := range p.Logs {
			prevThrough[h.Dir] = h.Through
		}
		for _, f := range p.Files {
			switch f.Kind {
			case KindSegment:
				segSize[f.Path] = max(segSize[f.Path], f.Offset+f.Size)
			case KindBlob:
				haveBlob[f.Path] = true
			}
		}
	}
	var total uint64
	for _, rel := range logDirs {
		l, err := log.Open(filepath.Join(data, filepath.FromSlash(rel)), log.Options{})
		if err != nil {
			return nil, fmt.Errorf("open log %s: %w", rel, err)
		}
		h, err := l.Head()
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("log %s: %w", rel, err)
		}
		spans, err := l.Spans(h.Seq)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("log %s: %w", rel, err)
		}
		lh := LogHead{Dir: rel, From: prevThrough[rel] + 1, Through: h.Seq}
		if h.Seq < prevThrough[rel] {
			l.Close()
			return nil, fmt.Errorf("log %s ends at seq %d, before its parent backup's head %d: back up into a new directory", rel, h.Seq, prevThrough[rel])
		}
		if h.Seq > 0 {
			lh.Head, lh.Time = hex.EncodeToString(h.ID[:]), log.FormatTime(h.Time)
		}
		total += h.Seq - prevThrough[rel]
		logs = append(logs, open{l, lh, spans})
	}

	tmp := filepath.Join(dir, m.ID+tmpSuffix)
	if err := fileutil.MkdirAll(filepath.Join(tmp, filesDir), 0o700); err != nil {
		return nil, err
	}
	w := newWriter(tmp)
	defer w.close()
	var done uint64
	for _, x := range logs {
		m.Logs = append(m.Logs, x.head)
		for _, s := range x.spans {
			path := x.head.Dir + "/log/" + s.Name
			from := segSize[path]
			if s.Last < x.head.From || from >= s.Size {
				continue
			}
			if from > s.Size {
				return nil, fmt.Errorf("segment %s is shorter than in the parent backup", path)
			}
			f, err := w.store(path, KindSegment, s.Path, from, s.Size-from)
			if err != nil {
				return nil, err
			}
			m.Files = append(m.Files, f)
			done += s.Last - max(s.First, x.head.From) + 1
			if o.Progress != nil {
				o.Progress(done, total)
			}
		}
	}
	for _, rel := range files {
		kind := KindFile
		if isBlob(rel) {
			kind = KindBlob
			if haveBlob[rel] {
				continue
			}
		}
		src := filepath.Join(data, filepath.FromSlash(rel))
		f, err := w.store(rel, kind, src, 0, -1)
		if errors.Is(err, fs.ErrNotExist) {
			continue // removed since the walk (a deleted blob)
		}
		if err != nil {
			return nil, err
		}
		m.Files = append(m.Files, f)
	}
	for _, f := range m.Files {
		m.Bytes += f.Size
		m.Stored += f.StoredSize
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := fileutil.WriteFile(filepath.Join(tmp, manifestName), append(b, '\n'), 0o600); err != nil {
		return nil, err
	}
	if err := fileutil.SyncDir(filepath.Join(tmp, filesDir)); err != nil {
		return nil, err
	}
	if err := fileutil.SyncDir(tmp); err != nil {
		return nil, err
	}
	if err := fileutil.Rename(tmp, filepath.Join(dir, m.ID)); err != nil {
		return nil, err
	}
	if err := fileutil.SyncDir(dir); err != nil {
		// Not durable: take the claim back rather than report a backup
		// that a power cut may undo.
		os.Rename(filepath.Join(dir, m.ID), tmp)
		return nil, err
	}
	return m, nil
}

// cleanTmp removes what failed backups left.
func cleanTmp(dir string) {
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		if e.IsDir() && strings.HasSuffix(e.Name(), tmpSuffix) {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// isBlob says rel is a blob's file: <…>/blobs/<2 hex>/<64 hex>[.type].
func isBlob(rel string) bool {
	parts := strings.Split(rel, "/")
	n := len(parts)
	return n >= 3 && parts[n-3] == "blobs" && len(parts[n-2]) == 2
}

// skipDir names the directories that hold caches or work in progress.
func skipDir(rel, name string) bool {
	switch name {
	case "index", "cache", "tmp":
		return true
	}
	return rel == "deleted"
}

// skipFile names the files that are caches, locks or shared counters.
func skipFile(rel, name string) bool {
	switch {
	case name == "lock", name == "rate", strings.HasSuffix(name, ".lock"),
		strings.HasSuffix(name, tmpSuffix), strings.Contains(name, ".broken-"),
		rel == "system/metrics", strings.HasSuffix(rel, "/blobs/usage"):
		return true
	}
	return false
}

// walk lists the files under root to copy whole (or as blobs) and the
// log directories, all relative to data and slash-separated.
func walk(data, root string) (files, logDirs []string, err error) {
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) && p != root {
				return nil
			}
			return err
		}
		r, err := filepath.Rel(data, p)
		if err != nil {
			return err
		}
		rel := filepath.ToSlash(r)
		if d.IsDir() {
			if p != root && skipDir(rel, d.Name()) {
				return filepath.SkipDir
			}
			if d.Name() == "log" && p != root {
				if segs, _ := filepath.Glob(filepath.Join(p, "*.seg")); len(segs) > 0 {
					logDirs = append(logDirs, filepath.ToSlash(filepath.Dir(rel)))
					return filepath.SkipDir
				}
			}
			return nil
		}
		if !d.Type().IsRegular() || skipFile(rel, d.Name()) {
			return nil
		}
		files = append(files, rel)
		return nil
	})
	return files, logDirs, err
}

// writer stores files compressed under a backup's files/ directory.
type writer struct {
	dir string
	n   int
	enc *zstd.Encoder
}

func newWriter(dir string) *writer { return &writer{dir: dir} }

func (w *writer) close() {
	if w.enc != nil {
		w.enc.Close()
	}
}

// store compresses n bytes of src from off (n < 0: to its end) into the
// next stored file, fsynced, and returns its entry.
func (w *writer) store(path, kind, src string, off, n int64) (File, error) {
	in, err := os.Open(src)
	if err != nil {
		return File{}, err
	}
	defer in.Close()
	var r io.Reader = io.NewSectionReader(in, off, 1<<62)
	if n >= 0 {
		r = io.NewSectionReader(in, off, n)
	}
	w.n++
	stored := fmt.Sprintf("%s/%08d.zst", filesDir, w.n)
	out, err := fileutil.OpenFile(filepath.Join(w.dir, filepath.FromSlash(stored)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return File{}, err
	}
	defer out.Close()
	h := blake3.New()
	cw := &countWriter{f: out, h: h}
	if w.enc == nil {
		w.enc, err = zstd.NewWriter(cw, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderCRC(true))
		if err != nil {
			return File{}, err
		}
	} else {
		w.enc.Reset(cw)
	}
	size, err := io.Copy(w.enc, r)
	if err == nil {
		err = w.enc.Close()
	}
	if err == nil && n >= 0 && size != n {
		err = fmt.Errorf("%s: read %d bytes of %d", path, size, n)
	}
	if err == nil {
		err = fileutil.Fdatasync(out)
	}
	if err != nil {
		return File{}, fmt.Errorf("back up %s: %w", path, err)
	}
	sum := h.Sum(nil)
	return File{Path: path, Kind: kind, Offset: off, Size: size, Stored: stored, StoredSize: cw.n, BLAKE3: hex.EncodeToString(sum)}, nil
}

// countWriter writes through fileutil (fault points), hashing and counting.
type countWriter struct {
	f *os.File
	h *blake3.Hasher
	n int64
}

func (c *countWriter) Write(b []byte) (int, error) {
	n, err := fileutil.Write(c.f, b)
	c.h.Write(b[:n])
	c.n += int64(n)
	return n, err
}
