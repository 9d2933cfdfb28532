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
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
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
	// Parent, when set, is the backup in the directory this one adds to
	// (incremental after it, whatever is newer); only the manifests of its
	// chain are read, so a directory may keep manifests alone (what
	// GET /admin/backup does).
	Parent string
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
	// One backup at a time into a directory: the next one's parent is the
	// newest, and cleanTmp must not remove a backup still being written.
	lf, err := fileutil.OpenFile(filepath.Join(dir, lockName), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, err
	}
	defer lf.Close()
	if err := fileutil.Lock(lf, lockTimeout, nil); err != nil {
		return nil, fmt.Errorf("another backup into %s is running: %w", dir, err)
	}
	defer fileutil.Unlock(lf)
	cleanTmp(dir)
	var parent []*Manifest
	if o.Parent != "" {
		var err error
		if parent, err = Chain(dir, o.Parent); err != nil {
			return nil, err
		}
		if m := parent[len(parent)-1]; m.Tenant != o.Tenant {
			return nil, fmt.Errorf("backup %s is of another scope", o.Parent)
		}
	} else if o.Incremental {
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
	m := &Manifest{Format: writeFormat, ID: t.Format("20060102T150405.000000000Z") + "-" + hex.EncodeToString(rnd[:]), Created: t.Format(time.RFC3339Nano), Tenant: o.Tenant}
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
	// What to store, in manifest order; the stores run in parallel.
	var jobs []job
	for _, x := range logs {
		m.Logs = append(m.Logs, x.head)
		for _, s := range x.spans {
			path := x.head.Dir + "/log/" + s.Name
			from := segSize[path]
			if from > s.Size {
				return nil, fmt.Errorf("segment %s is shorter than in the parent backup", path)
			}
			if s.Last < x.head.From || from == s.Size {
				continue
			}
			jobs = append(jobs, job{path: path, kind: KindSegment, span: s, off: from, n: s.Size - from, events: s.Last - max(s.First, x.head.From) + 1})
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
		jobs = append(jobs, job{path: rel, kind: kind, src: filepath.Join(data, filepath.FromSlash(rel)), n: -1})
	}
	var done uint64
	stored, err := storeAll(tmp, jobs, func(j *job) {
		done += j.events
		if o.Progress != nil {
			o.Progress(done, total)
		}
	})
	if err != nil {
		return nil, err
	}
	m.Files = stored
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

// lockName is the file a backup flocks in its directory; lockTimeout is
// how long it waits for another backup into the same directory.
const (
	lockName    = "lock"
	lockTimeout = time.Minute
)

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
	return rel == "deleted" || rel == ServedDir
}

// ServedDir is where, in the data directory, the manifests of the backups
// served over HTTP are kept (their files are streamed, not kept), so that a
// later one can add to any of them.
const ServedDir = "system/backups"

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
				segs, _ := filepath.Glob(filepath.Join(p, "*.seg"))
				zsegs, _ := filepath.Glob(filepath.Join(p, "*.zseg"))
				if len(segs)+len(zsegs) > 0 {
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

// job is one file to store: n bytes of src from off (n < 0: to its end),
// or of a segment's original bytes (span: its .seg or .zseg, whichever
// holds it when it is read).
type job struct {
	path, kind, src string
	span            log.Span
	off, n          int64
	events          uint64 // what it holds, for the progress
}

// open opens what the job copies.
func (j *job) open() (io.ReaderAt, io.Closer, error) {
	if j.kind == KindSegment {
		// A compaction may replace the .seg by a .zseg at any time;
		// OpenSpan reads the original bytes from either.
		r, err := log.OpenSpan(j.span)
		return r, r, err
	}
	f, err := os.Open(j.src)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil, fmt.Errorf("back up %s: %w", j.path, errVanished)
	}
	return f, f, err
}

// storeAll stores the jobs compressed under dir/files/, numbered in their
// order, on as many workers as there are CPUs (at most 4), and returns
// their entries in that order. A file that vanished since the walk (a
// deleted blob) is left out. done is called, one call at a time, as each
// job ends.
func storeAll(dir string, jobs []job, done func(*job)) ([]File, error) {
	out := make([]File, len(jobs))
	errs := make([]error, len(jobs))
	var mu sync.Mutex
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Bool
	for range min(runtime.GOMAXPROCS(0), 4, max(len(jobs), 1)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var enc *zstd.Encoder
			defer func() {
				if enc != nil {
					enc.Close()
				}
			}()
			for !failed.Load() {
				i := int(next.Add(1)) - 1
				if i >= len(jobs) {
					return
				}
				j := &jobs[i]
				stored := fmt.Sprintf("%s/%08d.zst", filesDir, i+1)
				out[i], errs[i] = store(dir, stored, &enc, j)
				if errs[i] != nil && !errors.Is(errs[i], errVanished) {
					failed.Store(true)
					return
				}
				mu.Lock()
				done(j)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	var files []File
	for i := range jobs {
		if errors.Is(errs[i], fs.ErrNotExist) && jobs[i].kind != KindSegment {
			continue
		}
		if errs[i] != nil {
			return nil, errs[i]
		}
		if out[i].Stored == "" {
			return nil, fmt.Errorf("back up %s: not stored", jobs[i].path)
		}
		files = append(files, out[i])
	}
	return files, nil
}

// store compresses one job into dir/stored, fdatasynced, with enc (made on
// first use), and returns its entry.
func store(dir, stored string, enc **zstd.Encoder, j *job) (File, error) {
	in, c, err := j.open()
	if err != nil {
		return File{}, err
	}
	defer c.Close()
	var r io.Reader = io.NewSectionReader(in, j.off, 1<<62)
	if j.n >= 0 {
		r = io.NewSectionReader(in, j.off, j.n)
	}
	out, err := fileutil.OpenFile(filepath.Join(dir, filepath.FromSlash(stored)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return File{}, fmt.Errorf("back up %s: %w", j.path, err)
	}
	defer out.Close()
	h := blake3.New()
	cw := &countWriter{f: out, h: h}
	if *enc == nil {
		*enc, err = zstd.NewWriter(cw, zstd.WithEncoderLevel(level), zstd.WithEncoderCRC(true), zstd.WithEncoderConcurrency(1))
		if err != nil {
			return File{}, err
		}
	} else {
		(*enc).Reset(cw)
	}
	var size int64
	if j.kind == KindSegment && writeFormat >= 2 {
		// Format 2: each record's CRC checked, then stored as zeros
		// (FORMAT.md); restore computes it again.
		size, err = log.CopyZeroingCRCs(*enc, r, j.off)
	} else {
		size, err = io.Copy(*enc, r)
	}
	if err == nil {
		err = (*enc).Close()
	}
	if err == nil && j.n >= 0 && size != j.n {
		err = fmt.Errorf("read %d bytes of %d", size, j.n)
	}
	if err == nil {
		err = fileutil.Fdatasync(out)
	}
	if err != nil {
		return File{}, fmt.Errorf("back up %s: %w", j.path, err)
	}
	return File{Path: j.path, Kind: j.kind, Offset: j.off, Size: size, Stored: stored, StoredSize: cw.n, BLAKE3: hex.EncodeToString(h.Sum(nil)), Events: j.events}, nil
}

// errVanished is a file removed between the walk and its copy.
var errVanished = errors.New("removed since the backup began")

// level is the compression level of every stored file. Measured on the
// bench's 1,000,000-event log (272 MB of segments, 6 files), on 2 workers
// on 2 cores (issue 10 §7: B1 ≥ 1,000,000 events/s, B2 ≤ 0.3×), with the
// records' CRCs as they are (format 1) and zeroed (format 2; the speed is
// one worker's, on a shared machine):
//
//	level    format 1  speed     B1 it allows     format 2  speed (1 worker)
//	fastest  0.305×    620 MB/s  ~2.0M events/s   0.287×    385 MB/s
//	default  0.313×    520 MB/s  ~1.9M events/s   0.283×    312 MB/s
//	better   0.304×    120 MB/s  ~0.45M events/s  0.274×    124 MB/s
//	best     0.289×     44 MB/s  ~0.16M events/s  0.264×     26 MB/s
//
// A window of 1, 8 or 32 MiB changes no ratio by 0.001 (what repeats is a
// record or two back), nor does entropy-coding every literal. Each record
// carries its id, 32 random bytes, and a CRC (the prev repeats the id
// before it, and compresses): the reference zstd does no better at speed
// (-1 and -3 0.298×; -6 0.282× at a quarter of the speed). No level met
// B2 while B1 held until format 2 stopped storing the CRCs (4 random bytes
// a record; checking and zeroing them runs at ~5 GB/s): now the fastest
// meets both.
var level = zstd.SpeedFastest

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
