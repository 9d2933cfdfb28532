package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"path/filepath"

	"strata/admin"
	"strata/api"
	"strata/blobs"
	"strata/log"
	"strata/tenants"
)

// tenantFlags parses --data and --tenant for the operator commands.
func tenantFlags(name string, args []string, stderr io.Writer) (dir string, ok bool) {
	c := loadSettings().config()
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.data, "data", c.data, "data directory")
	tenant := fs.String("tenant", api.DefaultTenant, "tenant")
	if err := fs.Parse(args); err != nil {
		return "", false
	}
	if !tenants.ValidName(*tenant) {
		fmt.Fprintf(stderr, "strata: invalid tenant name %q\n", *tenant)
		return "", false
	}
	return api.TenantDir(c.data, *tenant), true
}

// cmdVerify checks hash chains: one tenant's (default "default"), the
// audit log's (--audit), or every tenant's and the audit log's (--all).
func cmdVerify(args []string, stdout, stderr io.Writer) int {
	c := loadSettings().config()
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.data, "data", c.data, "data directory")
	tenant := fs.String("tenant", api.DefaultTenant, "tenant")
	auditLog := fs.Bool("audit", false, "verify the audit log")
	all := fs.Bool("all", false, "verify every tenant and the audit log")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	type target struct{ name, dir string }
	var targets []target
	auditDir := filepath.Join(c.data, admin.SystemDir, admin.AuditDir)
	switch {
	case *all:
		cs, err := tenants.List(c.data)
		if err != nil {
			fmt.Fprintln(stderr, "strata:", err)
			return 1
		}
		for _, t := range cs {
			targets = append(targets, target{"tenant " + t.Name, tenants.Dir(c.data, t.Name)})
		}
		if _, err := os.Stat(auditDir); err == nil {
			targets = append(targets, target{"audit", auditDir})
		}
	case *auditLog:
		targets = append(targets, target{"audit", auditDir})
	default:
		if !tenants.ValidName(*tenant) {
			fmt.Fprintf(stderr, "strata: invalid tenant name %q\n", *tenant)
			return 2
		}
		targets = append(targets, target{"tenant " + *tenant, tenants.Dir(c.data, *tenant)})
	}
	code := 0
	for _, t := range targets {
		prefix := ""
		if len(targets) > 1 || *auditLog {
			prefix = t.name + ": "
		}
		if _, err := os.Stat(t.dir); err != nil {
			fmt.Fprintf(stdout, "%sFAIL %v\n", prefix, err)
			code = 1
			continue
		}
		rep, err := log.Verify(t.dir)
		if err != nil {
			fmt.Fprintf(stdout, "%sFAIL after %d good events: %v\n", prefix, rep.Events, err)
			code = 1
			continue
		}
		fmt.Fprintf(stdout, "%sOK %d events, head %x\n", prefix, rep.Events, rep.Head.ID)
		if rep.TornTail != "" {
			fmt.Fprintf(stderr, "%snote: unacknowledged torn tail (a crash mid-write), cut on the next write: %s\n", prefix, rep.TornTail)
		}
	}
	return code
}

func cmdReindex(args []string, stdout, stderr io.Writer) int {
	dir, ok := tenantFlags("reindex", args, stderr)
	if !ok {
		return 2
	}
	l, err := log.Open(dir, log.Options{SyncOnClose: true})
	if err == nil {
		err = l.Reindex()
		if cerr := l.Close(); err == nil {
			err = cerr
		}
	}
	if err == nil {
		// The blobs' usage counter is a cache too.
		if _, serr := os.Stat(filepath.Join(dir, "blobs")); serr == nil {
			var st *blobs.Store
			if st, err = blobs.Open(filepath.Join(dir, "blobs"), blobs.Options{}); err == nil {
				_, err = st.Recount()
			}
		}
	}
	if err != nil {
		if errors.Is(err, log.ErrCorrupt) {
			fmt.Fprintln(stderr, "strata: the log itself is damaged; run strata verify")
		}
		fmt.Fprintln(stderr, "strata:", err)
		return 1
	}
	fmt.Fprintf(stdout, "reindexed %s\n", dir)
	return 0
}
