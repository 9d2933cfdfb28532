package e2e_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mountSmall mounts a small file system of the kind fs on a new directory
// and unmounts it when the test ends: "tmpfs" (4 MB, which reserves space
// with fallocate), or "ext2" (an 8 MB loop image, which cannot: writes and
// stores into memory maps are the first to learn the disk is full). It
// skips unless run as root with mount permitted.
func mountSmall(t *testing.T, fs string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a small file system")
	}
	dir := filepath.Join(t.TempDir(), "mnt")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	var cmd *exec.Cmd
	switch fs {
	case "tmpfs":
		cmd = exec.Command("mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", dir)
	case "ext2":
		img := filepath.Join(t.TempDir(), "ext2.img")
		if err := os.WriteFile(img, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(img, 8<<20); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command("mkfs.ext2", "-q", "-F", "-m", "0", "-b", "4096", img).CombinedOutput(); err != nil {
			t.Skipf("cannot make an ext2 image: %v %s", err, out)
		}
		cmd = exec.Command("mount", "-o", "loop", img, dir)
	default:
		t.Fatalf("mountSmall: unknown file system %q", fs)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Skipf("cannot mount %s: %v %s", fs, err, out)
	}
	// Registered after TempDir's removal, so it runs before it; servers
	// started later are killed before this runs.
	t.Cleanup(func() {
		if err := exec.Command("umount", dir).Run(); err != nil {
			exec.Command("umount", "-l", dir).Run()
		}
	})
	return dir
}

// crashed fails the test if the server died (e.g. SIGBUS from a store into
// a memory-mapped file the full disk could not back).
func (s *server) crashed(t *testing.T, what string) {
	t.Helper()
	s.crashedWithin(t, what, 0)
}

// crashedWithin is crashed, waiting up to d for the process to exit: after
// a dropped connection it may still be dying.
func (s *server) crashedWithin(t *testing.T, what string, d time.Duration) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(d):
		return
	}
	sig := ""
	if ws, ok := s.state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		sig = ws.Signal().String()
	}
	t.Fatalf("the server died during %s (signal %q, %s):\n%s", what, sig, s.state, s.log())
}

// fillDisk writes a file in dir until the file system is full, and returns
// its path.
func fillDisk(t *testing.T, dir string) string {
	t.Helper()
	name := filepath.Join(dir, "filler")
	f, err := os.Create(name)
	if err != nil {
		if errors.Is(err, syscall.ENOSPC) {
			return name
		}
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			t.Fatal(err)
		}
	}
	// Single bytes into the last partial page.
	for {
		if _, err := f.Write(buf[:1]); err != nil {
			break
		}
	}
	return name
}

// TestDiskFull fills a small tmpfs through the API: appends and a blob
// upload that do not fit answer 507 disk_full with a JSON error, nothing is
// left half-written, and once space is freed the log takes appends again.
func TestDiskFull(t *testing.T) {
	for _, fs := range []string{"tmpfs", "ext2"} {
		t.Run(fs, func(t *testing.T) { testDiskFull(t, fs) })
	}
}

func testDiskFull(t *testing.T, fs string) {
	data := mountSmall(t, fs)
	s := startServer(t, data)

	// A blob to delete later, to free space through the API.
	freeable := content(7, 1<<20)
	do(t, "PUT", s.url+"/storage/", freeable).want(t, 201)

	payload := strings.Repeat("x", 900)
	acked := 0
	batch := func(n int) string {
		var b strings.Builder
		b.WriteByte('[')
		for i := range n {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"type":"disk.filled","entity":"e-%d","data":{"n":%d,"pad":%q}}`, (acked+i)%50, acked+i, payload)
		}
		b.WriteByte(']')
		return b.String()
	}
	// Batches of 20, then single events, each until the disk is full.
	var failedAt time.Time
	for _, size := range []int{20, 1} {
		for i := 0; ; i++ {
			if i > 10000 {
				t.Fatalf("the disk never filled after %d events", acked)
			}
			r, err := try("POST", s.url+"/events", batch(size), "Content-Type", "application/json")
			if err != nil {
				s.crashedWithin(t, "appends filling the disk", 5*time.Second)
				t.Fatalf("append after %d events: %v", acked, err)
			}
			if r.status == 201 {
				rs, err := receipts(r.body)
				if err != nil || len(rs) != size {
					t.Fatalf("append answered %s", r)
				}
				for j, rc := range rs {
					if rc.Seq != uint64(acked+j+1) {
						t.Fatalf("receipt seq %d, want %d", rc.Seq, acked+j+1)
					}
				}
				acked += size
				continue
			}
			// The first failure is a full disk; after it, a log that took
			// it as a failed write refuses appends until reopened.
			if size == 1 && r.status == 503 {
				r.wantError(t, 503, "log_failed")
			} else {
				r.wantError(t, 507, "disk_full")
				failedAt = time.Now()
			}
			t.Logf("batches of %d: %s", size, r)
			break
		}
	}
	t.Logf("disk full after %d acknowledged events", acked)
	if acked == 0 {
		t.Fatal("not one event fitted on the disk")
	}

	// A blob that cannot fit: 507, and no temp file left behind.
	big := content(8, 3<<20)
	r, err := try("PUT", s.url+"/storage/", big)
	if err != nil {
		s.crashedWithin(t, "a blob upload on a full disk", 5*time.Second)
		t.Fatal(err)
	}
	r.wantError(t, 507, "disk_full")
	tmpDir := filepath.Join(data, "tenants", "default", "blobs", "tmp")
	if left, _ := os.ReadDir(tmpDir); len(left) != 0 {
		t.Errorf("a failed blob upload left %d file(s) in %s: %v", len(left), tmpDir, left[0].Name())
	}
	do(t, "HEAD", s.url+"/storage/"+b3hex(big), nil).want(t, 404)

	// Whatever room is left goes to a filler: the next append that needs a
	// new page must be refused, whichever way the log took the failure. (A
	// small one may still fit in the last page of the segment.)
	filler := fillDisk(t, data)
	r, err = try("POST", s.url+"/events", batch(20), "Content-Type", "application/json")
	if err != nil {
		s.crashedWithin(t, "an append right after a disk-full failure", 5*time.Second)
		t.Fatal(err)
	}
	switch r.status {
	case 507:
		r.wantError(t, 507, "disk_full")
	case 503:
		r.wantError(t, 503, "log_failed")
		if r.header.Get("Retry-After") == "" {
			t.Errorf("503 without Retry-After")
		}
	default:
		t.Fatalf("append on a full disk: %s, want 507 or 503", r)
	}

	// Nothing half-written: every acknowledged event reads back and chains,
	// and verify agrees — while the disk is still full.
	evs := readAll(t, s.url)
	if len(evs) != acked {
		t.Fatalf("read %d events, %d were acknowledged", len(evs), acked)
	}
	checkChain(t, evs)
	mustVerify(t, data, acked)

	// Free space, through the API and by hand.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	do(t, "DELETE", s.url+"/storage/"+b3hex(freeable), nil).want(t, 204)
	time.Sleep(time.Until(failedAt.Add(1100 * time.Millisecond)))

	// Appends work again; a client honouring Retry-After gets there within
	// a few seconds.
	var got []string
	deadline := time.Now().Add(10 * time.Second)
	for {
		r, err := try("PUT", s.url+"/events", `{"type":"disk.freed","entity":"tiny","data":2}`, "Content-Type", "application/json")
		if err != nil {
			s.crashedWithin(t, "appends after space was freed", 5*time.Second)
			t.Fatal(err)
		}
		got = append(got, strconv.Itoa(r.status))
		if r.status == 201 {
			break
		}
		if r.status != 503 && r.status != 507 || time.Now().After(deadline) {
			t.Fatalf("after freeing space, appends answered %v; last: %s", got, r)
		}
		checkErrorBody(t, r.header, r.body, "")
		wait := time.Second
		if n, err := strconv.Atoi(r.header.Get("Retry-After")); err == nil {
			wait = time.Duration(n) * time.Second
		}
		time.Sleep(wait)
	}
	t.Logf("after freeing space and waiting 1.1 s, appends answered %v", got)
	if len(got) > 1 {
		// The handler reopens a failed log at most once a second, but the
		// request that triggers the reopen is still refused, and the
		// failing write itself does not start the second: a client waiting
		// out Retry-After sees 503s for two more seconds.
		t.Errorf("space was freed and the last refusal is over 1 s old, yet the next append answered %s (then %v)", got[0], got[1:])
	}
	acked++
	// A batch too, to be sure the log is whole and writable.
	mustAppendBatch(t, s.url, `[{"type":"disk.freed","entity":"tiny","data":3},{"type":"disk.freed","entity":"e-1","data":4}]`)
	acked += 2

	evs = readAll(t, s.url)
	if len(evs) != acked {
		t.Fatalf("read %d events, %d were acknowledged", len(evs), acked)
	}
	checkChain(t, evs)
	mustVerify(t, data, acked)
	if h := mustHead(t, s.url); h.Seq != uint64(acked) || h.ID != evs[acked-1].ID {
		t.Errorf("head %+v, want seq %d id %s", h, acked, evs[acked-1].ID)
	}
	s.crashed(t, "the test")
}

// TestDiskFullIndexGrow fills a file system that cannot reserve space
// (ext2: no fallocate) just before the ids index must double, so that the
// grown index, a sparse memory-mapped file, cannot be backed by the disk. A
// store into such a mapping raises SIGBUS; the append must instead answer
// 507 and the server live on.
func TestDiskFullIndexGrow(t *testing.T) {
	data := mountSmall(t, "ext2")
	s := startServer(t, data)

	// 2048 events fill the smallest ids index (4096 slots) to half: the
	// next event grows it to 16384 slots (260 KiB).
	var b strings.Builder
	b.WriteByte('[')
	for i := range 2048 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"type":"grow.me","entity":"e","data":%d}`, i)
	}
	b.WriteByte(']')
	mustAppendSummary(t, s.url, b.String(), 2048)
	ids := filepath.Join(data, "tenants", "default", "index", "ids.hix")
	if fi, err := os.Stat(ids); err != nil || fi.Size() != 4096+4096*16 {
		t.Fatalf("ids index %v %v, want the smallest table (69632 bytes)", fi, err)
	}

	// Leave 16 KiB free: enough for the next record, not for the table.
	filler := fillDisk(t, data)
	fi, err := os.Stat(filler)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(filler, max(0, fi.Size()-16<<10)); err != nil {
		t.Fatal(err)
	}
	r, err := try("PUT", s.url+"/events", `{"type":"grow.me","entity":"e","data":2048}`, "Content-Type", "application/json")
	if err != nil {
		s.crashedWithin(t, "an append that grows the ids index on a full disk", 5*time.Second)
		t.Fatalf("append: %v; server log:\n%s", err, s.log())
	}
	s.crashed(t, "an append that grows the ids index on a full disk")
	acked := 2048
	if r.status == 201 {
		acked++ // the file system found room after all
	} else {
		r.wantError(t, 507, "disk_full")
	}
	evs := readAll(t, s.url)
	if len(evs) != acked {
		t.Fatalf("read %d events, %d were acknowledged", len(evs), acked)
	}
	checkChain(t, evs)
	mustVerify(t, data, acked)

	// With room again, the index grows and appends go on.
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond)
	var last *response
	for range 3 {
		if last, err = try("PUT", s.url+"/events", `{"type":"grow.me","entity":"e","data":"again"}`, "Content-Type", "application/json"); err != nil {
			s.crashedWithin(t, "an append after space was freed", 5*time.Second)
			t.Fatal(err)
		}
		if last.status == 201 {
			break
		}
		time.Sleep(time.Second)
	}
	last.want(t, 201)
	mustVerify(t, data, acked+1)
}
