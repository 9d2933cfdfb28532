package backup

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/klauspost/compress/zstd"

	"strata/internal/blake3"
	"strata/internal/fileutil"
	"strata/log"
)

// mustTenant makes a data directory with tenant shop holding n events and
// a small file beside its log, and returns the data directory.
func mustTenant(t *testing.T, data string, from, n int) {
	t.Helper()
	dir := filepath.Join(data, "tenants", "shop")
	l, err := log.Open(dir, log.Options{NoSync: true, SegmentSize: 4096})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	for i := from; i < from+n; i++ {
		ev := log.Proposed{Type: "t", Entity: fmt.Sprintf("e%d", i%7), Data: []byte(fmt.Sprintf(`{"n":%d}`, i)), ExpectedVersion: -1}
		if _, err := l.Append(&log.Request{Events: []log.Proposed{ev}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "tenant.json"), []byte(`{"state":"active"}`), 0o600); err != nil {
		t.Fatal(err)
	}
}

func mustVerify(t *testing.T, dir string) log.VerifyReport {
	t.Helper()
	rep, err := log.Verify(dir)
	if err != nil {
		t.Fatal(err)
	}
	return *rep
}

// TestChainRestore: a full backup and two incremental ones restore to the
// log as it was at each, to a seq in the middle, and the incremental ones
// store only what was new.
func TestChainRestore(t *testing.T) {
	data, bk := t.TempDir(), t.TempDir()
	var heads []log.VerifyReport
	var ms []*Manifest
	for i := 0; i < 3; i++ {
		mustTenant(t, data, i*100, 100)
		m, err := Create(data, bk, Options{Incremental: true})
		if err != nil {
			t.Fatal(err)
		}
		heads = append(heads, mustVerify(t, filepath.Join(data, "tenants", "shop")))
		ms = append(ms, m)
	}
	if ms[0].Parent != "" || ms[1].Parent != ms[0].ID || ms[2].Parent != ms[1].ID {
		t.Fatalf("parents %q %q %q", ms[0].Parent, ms[1].Parent, ms[2].Parent)
	}
	if ms[2].Logs[0].From != 201 || ms[2].Logs[0].Through != 300 || ms[2].Bytes >= ms[0].Bytes*2 {
		t.Fatalf("third backup: %+v, %d bytes (first %d)", ms[2].Logs, ms[2].Bytes, ms[0].Bytes)
	}
	if _, err := Verify(bk, nil); err != nil {
		t.Fatal(err)
	}
	for i, m := range ms {
		to := t.TempDir()
		got, err := Restore(bk, to, RestoreOptions{ID: m.ID}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].Events != heads[i].Events || got[0].Head != heads[i].Head.ID {
			t.Fatalf("restore of %d: %+v, want %d events head %x", i, got, heads[i].Events, heads[i].Head.ID)
		}
	}
	to := t.TempDir()
	got, err := Restore(bk, to, RestoreOptions{Tenant: "shop", Seq: 150}, nil)
	if err != nil || got[0].Events != 150 {
		t.Fatalf("restore to seq 150: %+v %v", got, err)
	}
	if _, err := Restore(bk, to, RestoreOptions{}, nil); !errors.Is(err, ErrNotEmpty) {
		t.Fatalf("restore into a full directory: %v", err)
	}
}

// TestDamageDetected: a flipped byte in any stored file is named by Verify
// and refused by Restore.
func TestDamageDetected(t *testing.T) {
	data, bk := t.TempDir(), t.TempDir()
	mustTenant(t, data, 0, 300)
	m, err := Create(data, bk, Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range m.Files {
		p := filepath.Join(bk, m.ID, f.Stored)
		b, _ := os.ReadFile(p)
		b[len(b)/2] ^= 1
		os.WriteFile(p, b, 0o600)
		_, err := Verify(bk, nil)
		if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), f.Stored) {
			t.Fatalf("%s damaged: verify says %v", f.Path, err)
		}
		if _, err := Restore(bk, t.TempDir(), RestoreOptions{}, nil); err == nil {
			t.Fatalf("%s damaged: restore succeeded", f.Path)
		}
		b[len(b)/2] ^= 1
		os.WriteFile(p, b, 0o600)
	}
	if _, err := Verify(bk, nil); err != nil {
		t.Fatal(err)
	}
}

// TestFailedWriteLeavesNoBackup: whatever write of a backup fails, no
// manifest claims a backup, and the next backup succeeds and cleans up.
func TestFailedWriteLeavesNoBackup(t *testing.T) {
	data, bk := t.TempDir(), t.TempDir()
	mustTenant(t, data, 0, 200)
	for _, op := range []fileutil.Op{fileutil.OpCreate, fileutil.OpWrite, fileutil.OpSync, fileutil.OpSyncDir, fileutil.OpRename} {
		for nth := 1; nth <= 3; nth++ {
			var n atomic.Int64 // the stores run in parallel
			undo := fileutil.Inject(func(o fileutil.Op, path string) error {
				if o == op && strings.HasPrefix(path, bk) {
					if n.Add(1) == int64(nth) {
						return syscall.EIO
					}
				}
				return nil
			})
			_, err := Create(data, bk, Options{})
			undo()
			all, lerr := List(bk)
			if lerr != nil {
				t.Fatal(lerr)
			}
			if n.Load() < int64(nth) { // fewer such steps than nth
				for _, m := range all {
					os.RemoveAll(filepath.Join(bk, m.ID))
				}
				continue
			}
			if err == nil && op != fileutil.OpSyncDir {
				t.Fatalf("%s #%d failed, the backup did not", op, nth)
			}
			if err != nil && len(all) != 0 {
				t.Fatalf("%s #%d failed (%v), yet %d backups are listed", op, nth, err, len(all))
			}
			for _, m := range all {
				os.RemoveAll(filepath.Join(bk, m.ID))
			}
		}
	}
	if _, err := Create(data, bk, Options{}); err != nil {
		t.Fatal(err)
	}
	ents, _ := filepath.Glob(filepath.Join(bk, "2*"))
	if len(ents) != 1 {
		t.Log(ents)
		t.Fatalf("%d entries in the backup directory, want the one backup", len(ents))
	}
}

// TestRestoreToTime: --time ends the restored log at its last event at or
// before the time.
func TestRestoreToTime(t *testing.T) {
	data, bk := t.TempDir(), t.TempDir()
	mustTenant(t, data, 0, 100)
	l, err := log.Open(filepath.Join(data, "tenants", "shop"), log.Options{})
	if err != nil {
		t.Fatal(err)
	}
	e, err := l.Event(40)
	l.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Create(data, bk, Options{}); err != nil {
		t.Fatal(err)
	}
	got, err := Restore(bk, t.TempDir(), RestoreOptions{Time: e.Time}, nil)
	if err != nil || len(got) != 1 || got[0].Events < 40 || got[0].Head == [32]byte{} {
		t.Fatalf("restore to the time of seq 40: %+v %v", got, err)
	}
	if got[0].Events == 40 && got[0].Head != e.ID {
		t.Fatalf("head %x, want %x", got[0].Head, e.ID)
	}
	if _, err := Restore(bk, t.TempDir(), RestoreOptions{Time: 1}, nil); err == nil {
		t.Fatal("restore to a time before the first event succeeded")
	}
}

func TestValidID(t *testing.T) {
	for s, want := range map[string]bool{
		"20261202T153630.111603671Z-b963da55":     true,
		"20261202T153630.111603671Z-B963da55":     false,
		"20261202T153630.111603671Z-b963da5":      false,
		"../61202T153630.111603671Z-b963da55":     false,
		"20261202T153630.111603671Z-b963da55.tmp": false,
	} {
		if ValidID(s) != want {
			t.Errorf("ValidID(%q) = %v", s, !want)
		}
	}
	data, bk := t.TempDir(), t.TempDir()
	mustTenant(t, data, 0, 3)
	m, err := Create(data, bk, Options{})
	if err != nil || !ValidID(m.ID) {
		t.Fatalf("id %q: %v", m.ID, err)
	}
}

// TestConcurrentBackups: backups started at once into one directory take
// turns (neither removes the other's work in progress), and both are whole.
func TestConcurrentBackups(t *testing.T) {
	data, bk := t.TempDir(), t.TempDir()
	mustTenant(t, data, 0, 300)
	errs := make(chan error, 4)
	for range 4 {
		go func() {
			_, err := Create(data, bk, Options{Incremental: true})
			errs <- err
		}()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	all, err := Verify(bk, nil)
	if err != nil || len(all) != 4 {
		t.Fatalf("%d backups, %v", len(all), err)
	}
}

// segments returns the original bytes of every segment of the tenant's
// log in data, by .seg name: a .zseg decompressed through log.OpenSpan.
func segments(t *testing.T, data string) map[string][]byte {
	t.Helper()
	dir := filepath.Join(data, "tenants", "shop")
	l, err := log.Open(dir, log.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	spans, err := l.Spans(l.Through())
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]byte{}
	for _, sp := range spans {
		r, err := log.OpenSpan(sp)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, sp.Size)
		if _, err := r.ReadAt(b, 0); err != nil {
			t.Fatal(err)
		}
		r.Close()
		out[sp.Name] = b
	}
	return out
}

// compact compresses every sealed segment of the tenant's log in data.
func compact(t *testing.T, data string) int {
	t.Helper()
	l, err := log.Open(filepath.Join(data, "tenants", "shop"), log.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	res, err := l.Compact(log.CompactOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return res.Segments
}

// sameSegments checks that the restored data directory holds exactly the
// segments want, as plain .seg files.
func sameSegments(t *testing.T, to string, want map[string][]byte) {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(to, "tenants", "shop", "log"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".seg") {
			continue
		}
		n++
		b, _ := os.ReadFile(filepath.Join(to, "tenants", "shop", "log", e.Name()))
		if w, ok := want[e.Name()]; !ok || string(b) != string(w) {
			t.Errorf("restored %s: %d bytes, not the original %d", e.Name(), len(b), len(w))
		}
	}
	if n != len(want) {
		t.Errorf("%d segments restored, want %d", n, len(want))
	}
}

// noZseg checks that a manifest names segments by their .seg names only.
func noZseg(t *testing.T, m *Manifest) {
	t.Helper()
	for _, f := range m.Files {
		if strings.Contains(f.Path, ".zseg") {
			t.Errorf("manifest %s names %s", m.ID, f.Path)
		}
	}
}

// TestCompressedSegments: a log whose sealed segments are compressed backs
// up and restores to the same original bytes, as .seg files, and verifies;
// an incremental backup after the segment a parent backup ended in was
// compressed adds exactly the bytes after the parent's part.
func TestCompressedSegments(t *testing.T) {
	data, bk := t.TempDir(), t.TempDir()
	mustTenant(t, data, 0, 150)
	first, err := Create(data, bk, Options{})
	if err != nil {
		t.Fatal(err)
	}
	noZseg(t, first)
	mustTenant(t, data, 150, 150)
	if n := compact(t, data); n < 2 {
		t.Fatalf("compacted %d segments", n)
	}
	if zs, _ := filepath.Glob(filepath.Join(data, "tenants", "shop", "log", "*.zseg")); len(zs) < 2 {
		t.Fatalf("%d .zseg files", len(zs))
	}
	want := segments(t, data)
	head := mustVerify(t, filepath.Join(data, "tenants", "shop"))
	for _, inc := range []bool{false, true} {
		m, err := Create(data, bk, Options{Incremental: inc})
		if err != nil {
			t.Fatal(err)
		}
		noZseg(t, m)
		if inc && (m.Parent != first.ID || m.Logs[0].From != 151) {
			t.Fatalf("incremental: parent %s, from %d", m.Parent, m.Logs[0].From)
		}
		to := t.TempDir()
		got, err := Restore(bk, to, RestoreOptions{ID: m.ID}, nil)
		if err != nil {
			t.Fatalf("restore (incremental %v): %v", inc, err)
		}
		if got[0].Events != 300 || got[0].Head != head.Head.ID {
			t.Fatalf("restore (incremental %v): %+v, want head %x", inc, got, head.Head.ID)
		}
		sameSegments(t, to, want)
		if rep := mustVerify(t, filepath.Join(to, "tenants", "shop")); rep.Head != head.Head {
			t.Fatalf("restored log verifies to %+v", rep.Head)
		}
		os.RemoveAll(filepath.Join(bk, m.ID)) // the next one adds to first
	}
}

// TestCompactedWhileBackingUp: a segment compressed after the backup
// listed it (while it copies) is read from its .zseg.
func TestCompactedWhileBackingUp(t *testing.T) {
	data, bk := t.TempDir(), t.TempDir()
	mustTenant(t, data, 0, 300)
	want := segments(t, data)
	compacted := 0
	undo := fileutil.Inject(func(op fileutil.Op, path string) error {
		// The backup's directory is made after the heads and spans are
		// read, before any segment is.
		if op == fileutil.OpMkdir && strings.HasPrefix(path, bk) && compacted == 0 {
			compacted = -1
			compacted = compact(t, data)
		}
		return nil
	})
	m, err := Create(data, bk, Options{})
	undo()
	if err != nil {
		t.Fatal(err)
	}
	if compacted < 2 {
		t.Fatalf("compacted %d segments during the backup", compacted)
	}
	noZseg(t, m)
	to := t.TempDir()
	if _, err := Restore(bk, to, RestoreOptions{}, nil); err != nil {
		t.Fatal(err)
	}
	sameSegments(t, to, want)
}

// storedBytes returns what stored file f of backup m holds, decompressed.
func storedBytes(t *testing.T, bk string, m *Manifest, f File) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(bk, m.ID, filepath.FromSlash(f.Stored)))
	if err != nil {
		t.Fatal(err)
	}
	d, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	out, err := d.DecodeAll(b, nil)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// restoreSame restores backup id into a new directory and checks that its
// segments are want, byte for byte, and that the log verifies.
func restoreSame(t *testing.T, bk, id string, want map[string][]byte) {
	t.Helper()
	to := t.TempDir()
	if _, err := Restore(bk, to, RestoreOptions{ID: id}, nil); err != nil {
		t.Fatalf("restore %s: %v", id, err)
	}
	sameSegments(t, to, want)
	mustVerify(t, filepath.Join(to, "tenants", "shop"))
}

// TestSegmentCRCsZeroed: format 2 stores every segment part, whole or
// incremental, from a .seg or a .zseg, with its records' CRCs zeroed (and
// nothing else changed), and restore gives the original segments back.
func TestSegmentCRCsZeroed(t *testing.T) {
	data, bk := t.TempDir(), t.TempDir()
	var wants []map[string][]byte
	var ms []*Manifest
	for i := 0; i < 3; i++ {
		mustTenant(t, data, i*100, 100)
		if i == 2 {
			compact(t, data)
		}
		m, err := Create(data, bk, Options{Incremental: true})
		if err != nil {
			t.Fatal(err)
		}
		if m.Format != 2 {
			t.Fatalf("format %d", m.Format)
		}
		want := segments(t, data)
		wants, ms = append(wants, want), append(ms, m)
		parts := 0
		for _, f := range m.Files {
			if f.Kind != KindSegment {
				continue
			}
			parts++
			got := storedBytes(t, bk, m, f)
			orig := want[strings.TrimPrefix(f.Path, "tenants/shop/log/")][f.Offset : f.Offset+f.Size]
			var back bytes.Buffer
			if _, err := log.CopySettingCRCs(&back, bytes.NewReader(got), f.Offset); err != nil {
				t.Fatalf("%s at %d: the stored part does not hold zeroed CRCs: %v", f.Path, f.Offset, err)
			}
			if bytes.Equal(got, orig) || !bytes.Equal(back.Bytes(), orig) {
				t.Fatalf("%s at %d: stored bytes are not the original with zeroed CRCs", f.Path, f.Offset)
			}
		}
		if parts == 0 || (i > 0 && ms[i].Files[0].Offset == 0 && ms[i].Files[0].Kind == KindSegment) {
			t.Fatalf("backup %d: %d segment parts, the first %+v", i, parts, m.Files[0])
		}
	}
	for i, m := range ms {
		restoreSame(t, bk, m.ID, wants[i])
	}
}

// TestFormat1Restores: backups written in format 1 (segments stored as
// they are) still restore, alone and in a chain mixed with format 2 ones.
func TestFormat1Restores(t *testing.T) {
	data, bk := t.TempDir(), t.TempDir()
	defer func() { writeFormat = Format }()
	var wants []map[string][]byte
	var ms []*Manifest
	for i, format := range []int{1, 2, 1} {
		writeFormat = format
		mustTenant(t, data, i*100, 100)
		m, err := Create(data, bk, Options{Incremental: true})
		if err != nil {
			t.Fatal(err)
		}
		want := segments(t, data)
		if m.Format != format {
			t.Fatalf("format %d, want %d", m.Format, format)
		}
		if format == 1 {
			for _, f := range m.Files {
				orig := want[strings.TrimPrefix(f.Path, "tenants/shop/log/")]
				if f.Kind == KindSegment && !bytes.Equal(storedBytes(t, bk, m, f), orig[f.Offset:f.Offset+f.Size]) {
					t.Fatalf("format 1: %s at %d is not stored as it is", f.Path, f.Offset)
				}
			}
		}
		wants, ms = append(wants, want), append(ms, m)
	}
	writeFormat = Format
	for i, m := range ms {
		restoreSame(t, bk, m.ID, wants[i])
	}
	b, _ := os.ReadFile(filepath.Join(bk, ms[0].ID, manifestName))
	os.WriteFile(filepath.Join(bk, ms[0].ID, manifestName), bytes.Replace(b, []byte(`"format": 1`), []byte(`"format": 3`), 1), 0o600)
	if _, err := List(bk); err == nil || !strings.Contains(err.Error(), "format 3") {
		t.Fatalf("a format-3 manifest: %v", err)
	}
}

// TestBadRecordFailsBackup: a record whose CRC does not match its body in
// a source segment fails the backup, naming the segment and the offset,
// and no backup is published: storing it with a zeroed CRC would let
// restore give it a fresh, valid one.
func TestBadRecordFailsBackup(t *testing.T) {
	data, bk := t.TempDir(), t.TempDir()
	mustTenant(t, data, 0, 100)
	seg := filepath.Join(data, "tenants", "shop", "log", log.SegmentName(1))
	b, err := os.ReadFile(seg)
	if err != nil {
		t.Fatal(err)
	}
	// The third record's body, 20 bytes in.
	off := 64
	for range 2 {
		off += 8 + int(binary.LittleEndian.Uint32(b[off:]))
	}
	b[off+8+20] ^= 0x40
	if err := os.WriteFile(seg, b, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = Create(data, bk, Options{})
	if !errors.Is(err, log.ErrCorrupt) || !strings.Contains(err.Error(), log.SegmentName(1)) || !strings.Contains(err.Error(), fmt.Sprintf("offset %d", off)) {
		t.Fatalf("backup of a damaged record: %v", err)
	}
	if all, err := List(bk); err != nil || len(all) != 0 {
		t.Fatalf("%d backups listed after a failed one (%v)", len(all), err)
	}
}

// rewritePart replaces the bytes of stored segment part i of backup m by
// edit's, recompressed, and updates the manifest to match: the part is
// whole as stored, only its records are wrong.
func rewritePart(t *testing.T, bk string, m *Manifest, i int, edit func([]byte) []byte) {
	t.Helper()
	f := &m.Files[i]
	b := edit(storedBytes(t, bk, m, *f))
	e, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	z := e.EncodeAll(b, nil)
	e.Close()
	if err := os.WriteFile(filepath.Join(bk, m.ID, filepath.FromSlash(f.Stored)), z, 0o600); err != nil {
		t.Fatal(err)
	}
	h := blake3.New()
	h.Write(z)
	f.Size, f.StoredSize, f.BLAKE3 = int64(len(b)), int64(len(z)), hex.EncodeToString(h.Sum(nil))
	j, _ := json.MarshalIndent(m, "", "  ")
	if err := os.WriteFile(filepath.Join(bk, m.ID, manifestName), j, 0o600); err != nil {
		t.Fatal(err)
	}
}

// TestUnframedPartRefused: a stored segment part that matches its
// manifest but whose records do not frame exactly (cut, one byte more, a
// CRC field not zeroed) is refused by restore as damaged.
func TestUnframedPartRefused(t *testing.T) {
	for name, edit := range map[string]func([]byte) []byte{
		"cut":        func(b []byte) []byte { return b[:len(b)-1] },
		"longer":     func(b []byte) []byte { return append(b, 0) },
		"crc kept":   func(b []byte) []byte { b[64+4] ^= 1; return b },
		"bad length": func(b []byte) []byte { binary.LittleEndian.PutUint32(b[64:], 3); return b },
	} {
		t.Run(name, func(t *testing.T) {
			data, bk := t.TempDir(), t.TempDir()
			mustTenant(t, data, 0, 100)
			m, err := Create(data, bk, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if m.Files[0].Kind != KindSegment || m.Files[0].Offset != 0 {
				t.Fatalf("first file %+v", m.Files[0])
			}
			rewritePart(t, bk, m, 0, edit)
			if _, err := Verify(bk, nil); err != nil {
				t.Fatalf("verify checks the stored bytes only: %v", err)
			}
			if _, err := Restore(bk, t.TempDir(), RestoreOptions{}, nil); !errors.Is(err, ErrDamaged) {
				t.Fatalf("restore: %v", err)
			}
		})
	}
}
