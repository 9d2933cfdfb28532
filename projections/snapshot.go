package projections

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"strata/internal/blake3"
	"strata/internal/fileutil"
	"strata/internal/zstdx"
	"strata/log"
)

// Snapshot files (projections/FORMAT.md "Snapshots"). Each entity has a
// directory <tenant>/cache/snapshots/<h[:2]>/<h[2:32]>/, h the hex BLAKE3
// of its name, holding one file per snapshot, named for its version and
// seq so that a listing alone finds the nearest one, and latestName, the
// latest-state cache.
const (
	snapshotsDir = "snapshots"
	snapExt      = ".snap"
	latestName   = "latest" + snapExt
	snapMagic    = "STSNAP01"
	// maxState is the largest state a snapshot file may decode to: a
	// damaged size can ask for no more.
	maxState = 256 << 20
)

// DefaultSnapshotEvery is how many versions of an entity lie between two
// automatic snapshots: a read folds at most this many events past the
// nearest snapshot (127 merges of ~1.5 µs and their reads: well under the
// 0.5 ms a state read is allowed), and an entity's snapshots take one
// compressed state per 128 events — a few percent of the events' own size
// for states of a kilobyte. A multiple of the log's version checkpoint
// stride (8), so a fold from a snapshot starts on a checkpoint.
const DefaultSnapshotEvery = 128

// Snapshot kinds.
const (
	KindAuto   = "auto"   // written by a read that folded past a multiple of the interval
	KindManual = "manual" // asked for with POST /snapshots
	kindLatest = "latest" // the latest-state cache, not listed
)

// reducerMerge names the reduction a snapshot's state was made with: the
// default merge patch. A custom reducer for an entity glob (a projection of
// kind state) must not use snapshots of another reducer.
const reducerMerge = "merge"

// SnapshotInfo describes one snapshot.
type SnapshotInfo struct {
	Entity  string `json:"entity"`
	Version uint64 `json:"version"`
	Seq     uint64 `json:"seq"`
	ID      string `json:"id"`
	// Time is the time of the event the snapshot reflects; Created, when
	// the snapshot was written.
	Time    string `json:"time"`
	Created string `json:"created"`
	// Size is the state's size in bytes; Stored, the file's.
	Size    int    `json:"size"`
	Stored  int    `json:"stored"`
	Kind    string `json:"kind"`
	Deleted bool   `json:"deleted,omitempty"`
	Reducer string `json:"reducer"`
}

// entityDir is the directory of entity's snapshots under tenant dir.
func entityDir(tenantDir, entity string) string {
	h := blake3.Sum256([]byte(entity))
	x := hex.EncodeToString(h[:16])
	return filepath.Join(tenantDir, "cache", snapshotsDir, x[:2], x[2:])
}

func snapName(version, seq uint64) string {
	return fmt.Sprintf("%020d-%020d%s", version, seq, snapExt)
}

// parseSnapName reads the version and seq of a snapshot file's name.
func parseSnapName(name string) (version, seq uint64, ok bool) {
	base, ok := strings.CutSuffix(name, snapExt)
	if !ok || len(base) != 41 || base[20] != '-' {
		return 0, 0, false
	}
	v, err1 := strconv.ParseUint(base[:20], 10, 64)
	s, err2 := strconv.ParseUint(base[21:], 10, 64)
	return v, s, err1 == nil && err2 == nil && v > 0 && s > 0
}

// encodeSnapshot returns the file bytes of state s:
//
//	"STSNAP01" | uint32 LE header length | header JSON (SnapshotInfo)
//	| zstd frame of the state | first 16 bytes of BLAKE3 of all before
func encodeSnapshot(s *State, kind string, now time.Time) ([]byte, error) {
	info := SnapshotInfo{Entity: s.Entity, Version: s.Version, Seq: s.Seq,
		ID: hex.EncodeToString(s.ID[:]), Time: log.FormatTime(s.Time),
		Created: log.FormatTime(now.UnixNano()), Size: len(s.State), Kind: kind,
		Deleted: s.Deleted, Reducer: reducerMerge}
	hdr, err := json.Marshal(info)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, 64+len(hdr)+len(s.State)/2)
	b = append(b, snapMagic...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(hdr)))
	b = append(b, hdr...)
	if b, err = zstdx.Encode(b, s.State); err != nil {
		return nil, err
	}
	sum := blake3.Sum256(b)
	return append(b, sum[:16]...), nil
}

// errBadSnapshot: a snapshot file is damaged, or not of this chain.
var errBadSnapshot = errors.New("snapshot is damaged or not on the chain")

// decodeSnapshotInfo checks a snapshot file's checksum and returns its
// header and the rest (the zstd frame).
func decodeSnapshotInfo(b []byte) (*SnapshotInfo, []byte, error) {
	if len(b) < len(snapMagic)+4+16 || string(b[:len(snapMagic)]) != snapMagic {
		return nil, nil, errBadSnapshot
	}
	body, sum := b[:len(b)-16], b[len(b)-16:]
	if want := blake3.Sum256(body); !bytes.Equal(want[:16], sum) {
		return nil, nil, errBadSnapshot
	}
	n := binary.LittleEndian.Uint32(body[len(snapMagic):])
	rest := body[len(snapMagic)+4:]
	if uint64(n) > uint64(len(rest)) {
		return nil, nil, errBadSnapshot
	}
	var info SnapshotInfo
	if err := json.Unmarshal(rest[:n], &info); err != nil {
		return nil, nil, errBadSnapshot
	}
	info.Stored = len(b)
	return &info, rest[n:], nil
}

// readSnapshot reads the snapshot file at path and returns its state, if
// it is whole and on l's chain: the event at its seq has its id, entity
// and version, and it was made by the default reducer. A file that is not
// is removed (a later fold writes it again); a missing one is (nil, nil).
func readSnapshot(l *log.Log, path, entity string) (*State, *SnapshotInfo, error) {
	return readSnapshotFile(l, path, entity, true)
}

// readSnapshotFile is readSnapshot; without decode it checks all but the
// state's decompression (the file's checksum covers it) and returns no
// State, for listings.
func readSnapshotFile(l *log.Log, path, entity string, decode bool) (*State, *SnapshotInfo, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, nil // unreadable: as if absent; the log still answers
	}
	var s *State
	var info *SnapshotInfo
	if decode {
		s, info, err = checkSnapshot(l, b, entity)
	} else {
		info, _, _, err = checkSnapshotInfo(l, b, entity)
	}
	if errors.Is(err, errBadSnapshot) {
		os.Remove(path)
		return nil, nil, nil
	}
	return s, info, err
}

// checkSnapshot decodes snapshot file bytes b of entity and checks them
// against l's chain (errBadSnapshot if they do not hold).
func checkSnapshot(l *log.Log, b []byte, entity string) (*State, *SnapshotInfo, error) {
	info, frame, e, err := checkSnapshotInfo(l, b, entity)
	if err != nil {
		return nil, nil, err
	}
	state, err := zstdx.Decode(nil, frame, min(info.Size, maxState))
	if err != nil || len(state) != info.Size {
		return nil, nil, errBadSnapshot
	}
	return &State{Entity: entity, Version: e.Version, Seq: e.Seq, ID: e.ID, Time: e.Time,
		State: state, Deleted: info.Deleted}, info, nil
}

// checkSnapshotInfo checks snapshot file bytes b of entity, but for the
// state's decompression, and returns its header, its zstd frame and the
// event it reflects.
func checkSnapshotInfo(l *log.Log, b []byte, entity string) (*SnapshotInfo, []byte, *log.Event, error) {
	info, frame, err := decodeSnapshotInfo(b)
	if err != nil {
		return nil, nil, nil, err
	}
	id, ok := log.ParseID(info.ID)
	if !ok || info.Entity != entity || info.Reducer != reducerMerge || info.Seq == 0 || info.Seq > l.Through() {
		return nil, nil, nil, errBadSnapshot
	}
	e, err := l.Event(info.Seq)
	if err != nil {
		if errors.Is(err, log.ErrNotFound) {
			return nil, nil, nil, errBadSnapshot
		}
		return nil, nil, nil, err
	}
	if e.ID != id || e.Entity != entity || e.Version != info.Version {
		return nil, nil, nil, errBadSnapshot
	}
	return info, frame, e, nil
}

// writeSnapshot writes s as a snapshot of the given kind, or as the
// latest-state cache for kindLatest. It writes atomically without fsync:
// a snapshot torn by a crash fails its checksum and is ignored and
// rewritten, and two processes writing the same one both write whole
// files, the last rename winning. Errors are returned for the caller to
// ignore or report: a cache that cannot be written costs speed, not
// answers.
func writeSnapshot(l *log.Log, s *State, kind string) (*SnapshotInfo, error) {
	dir := entityDir(l.Dir(), s.Entity)
	if err := fileutil.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("snapshot of %q: %w", s.Entity, err)
	}
	b, err := encodeSnapshot(s, kind, time.Now())
	if err != nil {
		return nil, fmt.Errorf("snapshot of %q: %w", s.Entity, err)
	}
	name := snapName(s.Version, s.Seq)
	if kind == kindLatest {
		name = latestName
	}
	if err := fileutil.WriteFileNoSync(filepath.Join(dir, name), b, 0o644); err != nil {
		return nil, fmt.Errorf("snapshot of %q: %w", s.Entity, err)
	}
	info, _, _ := decodeSnapshotInfo(b)
	return info, nil
}

// snapFile is one snapshot file of an entity's directory, by name.
type snapFile struct {
	version, seq uint64
	name         string
}

// listSnapshots returns the snapshot files of entity, by version
// ascending (nil if none). Temporary files a killed writer left behind
// over a minute ago are removed on the way.
func listSnapshots(tenantDir, entity string) ([]snapFile, error) {
	dir := entityDir(tenantDir, entity)
	f, err := os.Open(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return nil, err
	}
	var out []snapFile
	for _, n := range names {
		if v, s, ok := parseSnapName(n); ok {
			out = append(out, snapFile{v, s, n})
		} else if strings.HasSuffix(n, ".tmp") {
			if fi, err := os.Stat(filepath.Join(dir, n)); err == nil && time.Since(fi.ModTime()) > time.Minute {
				os.Remove(filepath.Join(dir, n))
			}
		}
	}
	slices.SortFunc(out, func(a, b snapFile) int { return cmpUint(a.version, b.version) })
	return out, nil
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// ErrNoSnapshot: the entity has no valid snapshot.
var ErrNoSnapshot = errors.New("no snapshot of the entity")

// Snapshot writes a manual snapshot of entity's current state (a deleted
// entity's tombstone included) and returns it; the latest-state cache is
// brought to it too.
func (r *Reader) Snapshot(ctx context.Context, entity string) (*SnapshotInfo, error) {
	s, err := r.StateAt(ctx, entity, Point{})
	if err != nil {
		return nil, err
	}
	info, err := writeSnapshot(r.l, s, KindManual)
	if err != nil {
		return nil, err
	}
	writeSnapshot(r.l, s, kindLatest)
	return info, nil
}

// Snapshots lists up to limit of entity's valid snapshots with a version
// after after, by version, and whether more follow. Each listed one is
// checked against the chain (one event read): a damaged one is removed and
// left out.
func (r *Reader) Snapshots(entity string, after uint64, limit int) ([]*SnapshotInfo, bool, error) {
	files, err := listSnapshots(r.l.Dir(), entity)
	if err != nil {
		return nil, false, fmt.Errorf("list snapshots of %q: %w", entity, err)
	}
	dir := entityDir(r.l.Dir(), entity)
	var out []*SnapshotInfo
	for _, f := range files {
		if f.version <= after {
			continue
		}
		if len(out) == limit {
			return out, true, nil
		}
		_, info, err := readSnapshotFile(r.l, filepath.Join(dir, f.name), entity, false)
		if err != nil {
			return nil, false, err
		}
		if info != nil {
			out = append(out, info)
		}
	}
	return out, false, nil
}

// LatestSnapshot returns entity's newest valid snapshot and its state, or
// ErrNoSnapshot.
func (r *Reader) LatestSnapshot(entity string) (*State, *SnapshotInfo, error) {
	files, err := listSnapshots(r.l.Dir(), entity)
	if err != nil {
		return nil, nil, fmt.Errorf("list snapshots of %q: %w", entity, err)
	}
	dir := entityDir(r.l.Dir(), entity)
	for i := len(files) - 1; i >= 0; i-- {
		s, info, err := readSnapshot(r.l, filepath.Join(dir, files[i].name), entity)
		if err != nil {
			return nil, nil, err
		}
		if s != nil {
			return s, info, nil
		}
	}
	return nil, nil, ErrNoSnapshot
}
