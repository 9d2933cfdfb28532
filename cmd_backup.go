package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"strata/backup"
	"strata/log"
	"strata/tenants"
)

const backupHelp = `Usage: strata backup --to DIR [--tenant NAME] [--incremental]
       strata backup list --from DIR
       strata backup verify --from DIR

Back the data directory up into DIR (backup/FORMAT.md): every log up to
its head as of the start, blobs, tenant, account and token files,
zstd-compressed, each file's size and BLAKE3 in a manifest. Writers go on
appending meanwhile. Caches are not copied; restore rebuilds them.
Run 'strata backup --help' for the flags.
`

const backupAbout = `Back the data directory (or one tenant) up into a new backup in DIR:
every log up to its head as of the start (a prefix of each chain; appends
never wait), blobs, tenant, account and token files, zstd-compressed,
with a manifest of each file's size and BLAKE3 (backup/FORMAT.md). With
--incremental only what is new since the newest backup in DIR of the same
scope. Caches are not copied; strata restore rebuilds them.

Exit status: 0 done; 1 a read or write failed; 2 a wrong command line.`

func cmdBackup(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "list":
			return cmdBackupList(args[1:], stdout, stderr)
		case "verify":
			return cmdBackupVerify(args[1:], stdout, stderr)
		case "help":
			fmt.Fprint(stdout, backupHelp)
			return exitOK
		}
	}
	f := newCmdFlags("backup", "--to DIR [--tenant NAME] [--incremental]", backupAbout, stdout, stderr)
	c := loadSettings().config()
	f.dataFlag(&c.data)
	to := f.String("to", "", "the backup `dir`ectory (created if needed)")
	tenant := f.String("tenant", "", "only this `tenant`")
	inc := f.Bool("incremental", false, "only what is new since the newest backup in --to")
	f.require("to")
	if _, code := f.parse(args, 0, 0); code >= 0 {
		return code
	}
	if *tenant != "" && !tenants.ValidName(*tenant) {
		return f.usageError("--tenant %q: %v", *tenant, tenants.ErrInvalidName)
	}
	if !dataDirExists(c.data, stderr) {
		return exitUsage
	}
	if *tenant != "" && !tenants.Exists(c.data, *tenant) {
		fmt.Fprintf(stderr, "strata: no tenant %q in %s (strata tenant list shows them)\n", *tenant, c.data)
		return exitUsage
	}
	bar := newProgress(stderr, "backup")
	start := time.Now()
	m, err := backup.Create(c.data, *to, backup.Options{Tenant: *tenant, Incremental: *inc, Progress: rated(bar, start)})
	bar.done()
	if err != nil {
		fmt.Fprintln(stderr, "strata: backup:", err)
		return exitFail
	}
	var events uint64
	for _, h := range m.Logs {
		events += h.Through - h.From + 1
	}
	kind := "full"
	if m.Parent != "" {
		kind = "incremental after " + m.Parent
	}
	secs := time.Since(start).Seconds()
	fmt.Fprintf(stdout, "backup %s (%s): %d events, %d files, %d bytes stored as %d, in %.2fs (%s events/s)\n", m.ID, kind, events, len(m.Files), m.Bytes, m.Stored, secs, si(float64(events)/secs))
	return exitOK
}

// rated adapts a progress bar to a done/total callback, working out rate
// and ETA.
func rated(bar *progress, start time.Time) func(done, total uint64) {
	return func(done, total uint64) {
		secs := time.Since(start).Seconds()
		rate := float64(done) / max(secs, 1e-9)
		var eta *float64
		if rate > 0 && total >= done {
			e := float64(total-done) / rate
			eta = &e
		}
		bar.update(done, total, rate, eta)
	}
}

func cmdBackupList(args []string, stdout, stderr io.Writer) int {
	f := newCmdFlags("backup list", "--from DIR", "List the backups in DIR, oldest first: id, parent, scope, heads, sizes.\n\nExit status: 0 done; 1 DIR cannot be read; 2 a wrong command line.", stdout, stderr)
	from := f.String("from", "", "the backup `dir`ectory")
	f.require("from")
	if _, code := f.parse(args, 0, 0); code >= 0 {
		return code
	}
	all, err := backup.List(*from)
	if err != nil {
		fmt.Fprintln(stderr, "strata: backup list:", err)
		return exitFail
	}
	for _, m := range all {
		parent, scope := "full", "all"
		if m.Parent != "" {
			parent = "after " + m.Parent
		}
		if m.Tenant != "" {
			scope = "tenant " + m.Tenant
		}
		fmt.Fprintf(stdout, "%s  %s  %s  %s  %d files, %d bytes stored as %d\n", m.ID, m.Created, scope, parent, len(m.Files), m.Bytes, m.Stored)
		for _, h := range m.Logs {
			fmt.Fprintf(stdout, "    %s: seq %d..%d head %s\n", h.Dir, h.From, h.Through, h.Head)
		}
	}
	return exitOK
}

func cmdBackupVerify(args []string, stdout, stderr io.Writer) int {
	f := newCmdFlags("backup verify", "--from DIR", "Check every file of every backup in DIR against its manifest (size and\nBLAKE3) and that every backup's parent is there.\n\nExit status: 0 every file is whole; 1 a file is damaged or missing (named);\n2 a wrong command line.", stdout, stderr)
	from := f.String("from", "", "the backup `dir`ectory")
	f.require("from")
	if _, code := f.parse(args, 0, 0); code >= 0 {
		return code
	}
	bar := newProgress(stderr, "backup verify")
	start := time.Now()
	var n, events, total uint64
	if all, err := backup.List(*from); err == nil {
		for _, m := range all {
			for _, f := range m.Files {
				total += f.Events
			}
		}
	}
	all, err := backup.Verify(*from, func(_ *backup.Manifest, f backup.File) {
		n++
		events += f.Events
		rated(bar, start)(events, total)
	})
	bar.done()
	if err != nil {
		fmt.Fprintln(stdout, "FAIL", err)
		return exitFail
	}
	fmt.Fprintf(stdout, "OK %d backups, %d files\n", len(all), n)
	return exitOK
}

const restoreAbout = `Restore the newest backup in --from (with the backups it builds on) into
--to, an empty or new data directory; then verify every restored log
from its segments and rebuild its indexes. --seq N ends the log at event
N, --time T at its last event at or before T (one tenant: a tenant's
backup, or --tenant).

Exit status: 0 restored and verified; 1 a backup file is damaged (named)
or a write failed; 2 a wrong command line.`

func cmdRestore(args []string, stdout, stderr io.Writer) int {
	f := newCmdFlags("restore", "--from DIR --to DATA [--tenant NAME] [--seq N | --time T]", restoreAbout, stdout, stderr)
	from := f.String("from", "", "the backup `dir`ectory")
	to := f.String("to", "", "the data `dir`ectory to restore into (empty or new)")
	tenant := f.String("tenant", "", "only this `tenant`")
	id := f.String("backup", "", "restore this backup `id` (default: the newest)")
	seq := f.Uint64("seq", 0, "end the log at this `seq`")
	at := f.String("time", "", "end the log at its last event at or before this `time` (RFC 3339)")
	f.require("from", "to")
	if _, code := f.parse(args, 0, 0); code >= 0 {
		return code
	}
	if *tenant != "" && !tenants.ValidName(*tenant) {
		return f.usageError("--tenant %q: %v", *tenant, tenants.ErrInvalidName)
	}
	var ns int64
	if *at != "" {
		t, err := time.Parse(time.RFC3339Nano, *at)
		if err != nil {
			return f.usageError("--time %q: not an RFC 3339 time (2026-12-02T15:00:00Z)", *at)
		}
		ns = t.UnixNano()
	}
	bar := newProgress(stderr, "restore")
	start := time.Now()
	// The copy's bar, then one per log while it is verified (told first
	// with 0 done when its verify starts).
	verifying, vstart := "", time.Time{}
	verify := func(log string, done, total uint64) {
		if log != verifying {
			bar.done()
			bar, verifying, vstart = newProgress(stderr, "restore: verify "+log), log, time.Now()
		}
		if done > 0 {
			rated(bar, vstart)(done, total)
		}
	}
	logs, err := backup.Restore(*from, *to, backup.RestoreOptions{ID: *id, Tenant: *tenant, Seq: *seq, Time: ns, Progress: rated(bar, start), VerifyProgress: verify}, buildCaches)
	bar.done()
	if errors.Is(err, backup.ErrNotEmpty) {
		fmt.Fprintln(stderr, "strata: restore:", err)
		return exitUsage
	}
	if err != nil {
		fmt.Fprintln(stderr, "strata: restore:", err)
		return exitFail
	}
	var events uint64
	for _, l := range logs {
		fmt.Fprintf(stdout, "%s: OK %d events, head %x\n", l.Dir, l.Events, l.Head)
		events += l.Events
	}
	secs := time.Since(start).Seconds()
	fmt.Fprintf(stdout, "restored %d logs, %d events into %s in %.2fs (%s events/s)\n", len(logs), events, *to, secs, si(float64(events)/secs))
	return exitOK
}

// buildCaches builds the indexes of a restored log, which has none (Open
// builds missing ones: no second pass as Reindex would make), and counts
// its blobs.
func buildCaches(dir string) error {
	l, err := log.Open(dir, log.Options{SyncOnClose: true})
	if err != nil {
		return err
	}
	if err := l.Close(); err != nil {
		return err
	}
	return recountBlobs(dir)
}
