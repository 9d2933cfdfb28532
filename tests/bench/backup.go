package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// measureBackup is figures B1–B3 (issue 10 §7): `strata backup` of the
// 1,000,000-event data directory through the CLI, its size beside the
// log's segments, and `strata restore` of it into an empty directory,
// which includes checking every file, verifying the chain from the
// segments and rebuilding the indexes.
func (b *bench) measureBackup() {
	const name = "full backup of 1,000,000 events (strata backup)"
	ds, err := b.dataset1M()
	if err != nil {
		b.rep.errorRow("B1", name, "target ≥ 1,000,000 events/s", err)
		return
	}
	bk := filepath.Join(b.work, "backup")
	os.RemoveAll(bk)
	took, out, err := b.runCLI("backup", "--to", bk, "--data", ds.data)
	if err != nil {
		b.rep.errorRow("B1", name, "target ≥ 1,000,000 events/s", err)
		return
	}
	rate := float64(ds.events) / took.Seconds()
	b.rep.add(&row{num: "B1", name: name, value: fmt.Sprintf("%s events/s", commas(int64(rate))), target: "target ≥ 1,000,000 events/s", verdict: verdict(rate >= 1e6),
		notes: []string{fmt.Sprintf("wall time of the whole process: %.3f s; it printed %q", took.Seconds(), strings.TrimSpace(out))}})
	logBytes := treeSize(filepath.Join(ds.data, "tenants"), func(p string) bool { return strings.HasSuffix(p, ".seg") })
	stored := treeSize(bk, func(string) bool { return true })
	ratio := float64(stored) / float64(logBytes)
	b.rep.add(&row{num: "B2", name: "the backup's size beside the log's segments", value: fmt.Sprintf("%.3f×", ratio), target: "target ≤ 0.3×", verdict: verdict(ratio <= 0.3),
		notes: []string{fmt.Sprintf("%s bytes stored for %s bytes of segments (zstd fastest, the records' CRCs zeroed: backup format 2)", commas(stored), commas(logBytes)),
			"each record's id is 32 random bytes; its CRC, 4 more, is not stored (restore computes it): see level in backup/backup.go for the figures"}})

	to := filepath.Join(b.work, "restored")
	os.RemoveAll(to)
	took, out, err = b.runCLI("restore", "--from", bk, "--to", to)
	if err != nil {
		b.rep.errorRow("B3", "restore of the same, with verify and reindex", "target ≥ 500,000 events/s", err)
		return
	}
	rate = float64(ds.events) / took.Seconds()
	b.rep.add(&row{num: "B3", name: "restore of the same (check files, verify the chain, rebuild indexes)", value: fmt.Sprintf("%s events/s", commas(int64(rate))), target: "target ≥ 500,000 events/s", verdict: verdict(rate >= 5e5),
		notes: []string{fmt.Sprintf("wall time of the whole process: %.3f s; it printed %q", took.Seconds(), strings.TrimSpace(out))}})
	os.RemoveAll(to)
	os.RemoveAll(bk)
}

// runCLI runs the strata binary with args and times it.
func (b *bench) runCLI(args ...string) (time.Duration, string, error) {
	cmd := exec.Command(b.bin, args...)
	cmd.Env = cleanEnv()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	t0 := time.Now()
	err := cmd.Run()
	took := time.Since(t0)
	if err != nil {
		return took, out.String(), fmt.Errorf("strata %s: %v: %s", args[0], err, lastLines(errb.String(), 3))
	}
	// The machine may be shared: the CPU the process used says what it
	// costs whatever the others do.
	ps := cmd.ProcessState
	return took, fmt.Sprintf("%s (CPU %.3f s user + %.3f s system)", strings.TrimSpace(out.String()), ps.UserTime().Seconds(), ps.SystemTime().Seconds()), nil
}

// treeSize adds up the sizes of the files under dir that keep accepts.
func treeSize(dir string, keep func(string) bool) int64 {
	var n int64
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() && keep(p) {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}
