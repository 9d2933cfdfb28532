package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"strata/admin"
	"strata/blobs"
	"strata/log"
	"strata/tenants"
)

// logTarget is one hash chain the maintenance commands work on: a
// tenant's log, or the audit log.
type logTarget struct {
	name string // "tenant shop", "audit"
	dir  string
}

// logTargets parses the flags verify and reindex share and returns the
// chains they name: with --tenant and/or --audit those, else (or with
// --all) every tenant's and the audit log. Nothing is created: a data
// directory or a tenant that is not there is exit 2, with a message.
func logTargets(f *cmdFlags, args []string) ([]logTarget, int) {
	c := loadSettings().config()
	f.dataFlag(&c.data)
	var names []string
	f.Func("tenant", "only this `tenant` (repeat for more)", func(v string) error {
		if !tenants.ValidName(v) {
			return fmt.Errorf("%q: %w", v, tenants.ErrInvalidName)
		}
		names = append(names, v)
		return nil
	})
	auditLog := f.Bool("audit", false, "only the audit log (with --tenant: that too)")
	all := f.Bool("all", false, "every tenant and the audit log (what no flag means too)")
	if _, code := f.parse(args, 0, 0); code >= 0 {
		return nil, code
	}
	if *all && (len(names) > 0 || *auditLog) {
		return nil, f.usageError("--all names every log already; leave out --tenant and --audit, or --all")
	}
	if !dataDirExists(c.data, f.stderr) {
		return nil, exitUsage
	}
	auditDir := filepath.Join(c.data, admin.SystemDir, admin.AuditDir)
	var targets []logTarget
	if len(names) == 0 && !*auditLog {
		cs, err := tenants.List(c.data)
		if err != nil {
			fmt.Fprintln(f.stderr, "strata:", err)
			return nil, exitFail
		}
		for _, t := range cs {
			targets = append(targets, logTarget{"tenant " + t.Name, tenants.Dir(c.data, t.Name)})
		}
		if isDir(auditDir) {
			targets = append(targets, logTarget{"audit", auditDir})
		}
		if len(targets) == 0 {
			fmt.Fprintf(f.stderr, "strata: %s holds no tenant and no audit log: is it the data directory? (give --data or set STRATA_DATA)\n", c.data)
			return nil, exitUsage
		}
		return targets, -1
	}
	for _, n := range names {
		if !tenants.Exists(c.data, n) {
			fmt.Fprintf(f.stderr, "strata: no tenant %q in %s (strata tenant list shows them)\n", n, c.data)
			return nil, exitUsage
		}
		targets = append(targets, logTarget{"tenant " + n, tenants.Dir(c.data, n)})
	}
	if *auditLog {
		if !isDir(auditDir) {
			fmt.Fprintf(f.stderr, "strata: no audit log in %s: nothing has been recorded yet\n", c.data)
			return nil, exitUsage
		}
		targets = append(targets, logTarget{"audit", auditDir})
	}
	return targets, -1
}

func isDir(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.IsDir()
}

const verifyAbout = `Recompute every hash chain named: each event's id from its content and
the id before it, seqs without gaps, times that never decrease, each
entity's versions. Prints "OK <n> events, head <id>" per chain, or where
the first bad record is. Without flags: every tenant and the audit log.

Exit status: 0 every chain is whole; 1 one is damaged; 2 a wrong command
line, or no such data directory or tenant.`

// cmdVerify checks hash chains: every tenant's and the audit log's, or
// the ones --tenant and --audit name.
func cmdVerify(args []string, stdout, stderr io.Writer) int {
	f := newCmdFlags("verify", "[--tenant NAME]… [--audit] [--all]", verifyAbout, stdout, stderr)
	targets, code := logTargets(f, args)
	if code >= 0 {
		return code
	}
	code = exitOK
	for _, t := range targets {
		prefix := ""
		if len(targets) > 1 || t.name == "audit" {
			prefix = t.name + ": "
		}
		bar := newProgress(stderr, "verify "+t.name)
		rep, err := log.VerifyProgress(t.dir, rated(bar, time.Now()))
		bar.done()
		if err != nil {
			fmt.Fprintf(stdout, "%sFAIL after %d good events: %v\n", prefix, rep.Events, err)
			code = exitFail
			continue
		}
		fmt.Fprintf(stdout, "%sOK %d events, head %x\n", prefix, rep.Events, rep.Head.ID)
		if rep.TornTail != "" {
			fmt.Fprintf(stderr, "%snote: unacknowledged torn tail (a crash mid-write), cut on the next write: %s\n", prefix, rep.TornTail)
		}
	}
	return code
}

const reindexAbout = `Rebuild the indexes (caches, all of them: ids, entities, seqs, times) of
every chain named from its log, and recount each tenant's blob usage.
Without flags: every tenant and the audit log. Safe while servers run.

Exit status: 0 done; 1 a log is damaged (run strata verify) or a write
failed; 2 a wrong command line, or no such data directory or tenant.`

func cmdReindex(args []string, stdout, stderr io.Writer) int {
	f := newCmdFlags("reindex", "[--tenant NAME]… [--audit] [--all]", reindexAbout, stdout, stderr)
	targets, code := logTargets(f, args)
	if code >= 0 {
		return code
	}
	code = exitOK
	for _, t := range targets {
		bar := newProgress(stderr, "reindex "+t.name)
		err := reindex(t.dir, rated(bar, time.Now()))
		bar.done()
		if err != nil {
			if errors.Is(err, log.ErrCorrupt) {
				fmt.Fprintf(stderr, "strata: %s: the log itself is damaged; run strata verify\n", t.name)
			}
			fmt.Fprintf(stderr, "strata: %s: %v\n", t.name, err)
			code = exitFail
			continue
		}
		fmt.Fprintf(stdout, "reindexed %s\n", t.name)
	}
	return code
}

// reindex rebuilds the indexes of the log in dir, and the blobs' usage
// counter (a cache too) where there are blobs.
func reindex(dir string, progress func(done, total uint64)) error {
	l, err := log.Open(dir, log.Options{SyncOnClose: true, RebuildProgress: progress})
	if err != nil {
		return err
	}
	err = l.Reindex()
	if cerr := l.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return recountBlobs(dir)
}

// recountBlobs rebuilds the usage counter of the blobs under dir, if
// there are any.
func recountBlobs(dir string) error {
	if !isDir(filepath.Join(dir, "blobs")) {
		return nil
	}
	st, err := blobs.Open(filepath.Join(dir, "blobs"), blobs.Options{})
	if err != nil {
		return err
	}
	_, err = st.Recount()
	return err
}
