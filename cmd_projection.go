package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/term"

	"strata/api"
	"strata/log"
	"strata/projections"
	"strata/tenants"
)

const projectionHelp = `Usage: strata projection COMMAND [flags]

Commands:
  list      every projection of a tenant, with its state
  show      one projection's definition and status (--version N: an earlier one)

Run 'strata projection COMMAND --help' for a command's flags. Projections
are defined over the HTTP API (POST /projections); strata rebuild rebuilds
one's result.
`

func cmdProjection(args []string, stdout, stderr io.Writer) int {
	return verbs("projection", projectionHelp, args, stdout, stderr, map[string]func([]string) int{
		"list": func(a []string) int { return projectionList(a, stdout, stderr) },
		"show": func(a []string) int { return projectionShow(a, stdout, stderr) },
	})
}

// tenantLog parses a projection command's flags (--tenant, --data and the
// command's own) and opens the tenant's log; close closes it. Nothing is
// created: a data directory or a tenant that is not there is exit 2.
func tenantLog(f *cmdFlags, args []string, min, max int) (l *log.Log, tenant string, pos []string, code int) {
	c := loadSettings().config()
	f.dataFlag(&c.data)
	f.StringVar(&tenant, "tenant", api.DefaultTenant, "the `tenant` (default \"default\")")
	pos, code = f.parse(args, min, max)
	if code >= 0 {
		return nil, "", nil, code
	}
	if !tenants.ValidName(tenant) {
		return nil, "", nil, f.usageError("--tenant %q: %v", tenant, tenants.ErrInvalidName)
	}
	if !dataDirExists(c.data, f.stderr) {
		return nil, "", nil, exitUsage
	}
	if !tenants.Exists(c.data, tenant) {
		fmt.Fprintf(f.stderr, "strata: no tenant %q in %s (strata tenant list shows them)\n", tenant, c.data)
		return nil, "", nil, exitUsage
	}
	// The configured segment size (STRATA_SEGMENT_SIZE), as a server on
	// the same data directory uses: strata import writes segments too.
	segSize, err := parseSize(c.segmentSize)
	if err != nil || segSize > log.MaxSegmentSize {
		fmt.Fprintf(f.stderr, "strata: STRATA_SEGMENT_SIZE %q: a size up to 4095M, such as 64M\n", c.segmentSize)
		return nil, "", nil, exitUsage
	}
	l, err = log.Open(tenants.Dir(c.data, tenant), log.Options{LockTimeout: c.lockTimeout, SegmentSize: segSize})
	if err != nil {
		fmt.Fprintf(f.stderr, "strata: tenant %s: %v\n", tenant, err)
		return nil, "", nil, exitFail
	}
	return l, tenant, pos, -1
}

// projectionDef reads projection name's newest record, reporting on
// stderr a name never defined or deleted (exit 2).
func projectionDef(l *log.Log, tenant, name string, version uint64, stderr io.Writer) (*projections.DefRecord, int) {
	d, err := projections.ReadDef(l, name, version)
	switch {
	case errors.Is(err, projections.ErrNoProjection):
		fmt.Fprintf(stderr, "strata: no projection %q in tenant %s (strata projection list shows them)\n", name, tenant)
		return nil, exitUsage
	case errors.Is(err, projections.ErrNoDefVersion):
		fmt.Fprintf(stderr, "strata: projection %q has no version %d\n", name, version)
		return nil, exitUsage
	case err != nil:
		fmt.Fprintf(stderr, "strata: projection %s: %v\n", name, err)
		return nil, exitFail
	case d.Deleted && version == 0:
		fmt.Fprintf(stderr, "strata: projection %q was deleted (at version %d)\n", name, d.EntityVersion)
		return nil, exitUsage
	}
	return d, -1
}

// projectionState is the state shown for d: the engine's, or paused.
func projectionState(p *projections.Projector, d *projections.DefRecord) (*projections.Status, error) {
	if d.Def == nil {
		return &projections.Status{State: projections.StateFailed, LastError: "this strata cannot read the stored definition"}, nil
	}
	st, err := p.Status(d.Def, d.Version)
	if err != nil {
		return nil, err
	}
	if d.Paused && st.State != projections.StateFailed {
		st.State = projections.StatePaused
	}
	return st, nil
}

func projectionList(args []string, stdout, stderr io.Writer) int {
	f := newCmdFlags("projection list", "[--tenant NAME]", "Every projection of the tenant (default \"default\"): its kind, definition\nversion, state, events processed and the last seq looked at.", stdout, stderr)
	l, _, _, code := tenantLog(f, args, 0, 0)
	if code >= 0 {
		return code
	}
	defer l.Close()
	names, err := projections.ListDefs(l)
	if err != nil {
		fmt.Fprintln(stderr, "strata:", err)
		return exitFail
	}
	p := projections.Open(l)
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tKIND\tVERSION\tSTATE\tPROCESSED\tLAST SEQ")
	for _, n := range names {
		d, err := projections.ReadDef(l, n, 0)
		if errors.Is(err, projections.ErrNoProjection) || err == nil && d.Deleted {
			continue
		}
		var st *projections.Status
		if err == nil {
			st, err = projectionState(p, d)
		}
		if err != nil {
			fmt.Fprintf(stderr, "strata: projection %s: %v\n", n, err)
			return exitFail
		}
		kind := "?"
		if d.Def != nil {
			kind = d.Def.Kind
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d\t%d\n", n, kind, d.Version, st.State, st.Processed, st.LastSeq)
	}
	tw.Flush()
	return exitOK
}

func projectionShow(args []string, stdout, stderr io.Writer) int {
	f := newCmdFlags("projection show", "NAME [--tenant NAME] [--version N]", "One projection's definition (as stored in the log) and status, as JSON.", stdout, stderr)
	version := f.Uint64("version", 0, "the definition as of version `N` of the projection (default the newest)")
	l, tenant, pos, code := tenantLog(f, args, 1, 1)
	if code >= 0 {
		return code
	}
	defer l.Close()
	d, code := projectionDef(l, tenant, pos[0], *version, stderr)
	if code >= 0 {
		return code
	}
	st, err := projectionState(projections.Open(l), d)
	if err != nil {
		fmt.Fprintf(stderr, "strata: projection %s: %v\n", d.Name, err)
		return exitFail
	}
	out := map[string]any{"name": d.Name, "version": d.Version, "definition": json.RawMessage(d.Raw),
		"paused": d.Paused, "deleted": d.Deleted, "status": st,
		"created": log.FormatTime(d.Created), "updated": log.FormatTime(d.Updated),
		"record": map[string]any{"entity": projections.DefEntity(d.Name), "version": d.EntityVersion, "seq": d.Seq, "id": fmt.Sprintf("%x", d.ID)}}
	if d.Narrow != nil {
		out["narrowing"] = d.Narrow
	}
	b, _ := json.MarshalIndent(out, "", "  ")
	fmt.Fprintf(stdout, "%s\n", b)
	return exitOK
}

const rebuildAbout = `Rebuild a projection's result from the first event of its tenant's log,
as POST /projections/<name>/rebuild does: a replay that every server sees
(GET /replays). Progress goes to standard error: a bar with events/s and
the time left on a terminal, a line every few seconds otherwise.
Interrupted (Ctrl-C), the replay keeps what it did and goes on in the next
strata rebuild, or in the server.

--from and --to (RFC 3339), --entity and --types narrow the events folded,
on top of the definition's filter. The narrowing is recorded in the log
(strata.projection.rebuilt) and holds for every read until the next
rebuild (without them: none) or the next definition version.

Exit status: 0 rebuilt; 1 the rebuild failed (the projection's reducer
failed on an event, or a write failed); 2 a wrong command line, or no such
data directory, tenant or projection.`

func cmdRebuild(args []string, stdout, stderr io.Writer) int {
	f := newCmdFlags("rebuild", "PROJECTION [--tenant NAME] [--from T] [--to T] [--entity E] [--types T,…]", rebuildAbout, stdout, stderr)
	from := f.String("from", "", "only events at or after this `time` (RFC 3339)")
	to := f.String("to", "", "only events before this `time` (RFC 3339)")
	entity := f.String("entity", "", "only events of this `entity` (or glob)")
	types := f.String("types", "", "only events of these `types` (or globs), comma-separated")
	l, tenant, pos, code := tenantLog(f, args, 1, 1)
	if code >= 0 {
		return code
	}
	defer l.Close()
	var opt projections.RebuildOptions
	for _, t := range []struct {
		name, v string
		dst     *time.Time
	}{{"from", *from, &opt.From}, {"to", *to, &opt.To}} {
		if t.v == "" {
			continue
		}
		v, err := time.Parse(time.RFC3339Nano, t.v)
		if err != nil {
			return f.usageError("--%s %q: not an RFC 3339 time (e.g. 2026-11-22T10:00:00Z)", t.name, t.v)
		}
		*t.dst = v
	}
	opt.Entity = *entity
	if *types != "" {
		opt.Types = strings.Split(*types, ",")
	}
	d, code := projectionDef(l, tenant, pos[0], 0, stderr)
	if code >= 0 {
		return code
	}
	if d.Def == nil {
		fmt.Fprintf(stderr, "strata: projection %s: this strata cannot read its stored definition: %v\n", d.Name, d.DefErr)
		return exitFail
	}
	// The narrowing is recorded in the log first, as over HTTP: every
	// read folds with it, whatever cache there is or is not.
	if _, err := l.Append(&log.Request{Events: []log.Proposed{{Type: projections.TypeRebuilt, Entity: projections.DefEntity(d.Name),
		Data: projections.NarrowData(opt), Meta: []byte(`{"by":"cli"}`), ExpectedVersion: int64(d.EntityVersion)}}}); err != nil {
		fmt.Fprintf(stderr, "strata: rebuild %s: %v\n", d.Name, err)
		return exitFail
	}
	p := projections.Open(l)
	rs := projections.OpenReplays(l, p)
	// One replay of a projection at a time, as over HTTP.
	if err := rs.CancelOf(d.Name); err != nil {
		fmt.Fprintln(stderr, "strata:", err)
		return exitFail
	}
	rp, err := rs.Start(d, opt, "cli")
	if err != nil {
		fmt.Fprintln(stderr, "strata:", err)
		return exitFail
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	bar := newProgress(stderr, "rebuild "+d.Name)
	start := time.Now()
	rp, err = rs.Step(ctx, rp.ID, 0, func(r *projections.Replay) { bar.update(r.Done, r.Total, r.Rate, r.ETA) })
	bar.done()
	switch {
	case err != nil:
		fmt.Fprintf(stderr, "strata: rebuild %s: %v\n", d.Name, err)
		return exitFail
	case rp.State == projections.ReplayCompleted:
		secs := time.Since(start).Seconds()
		fmt.Fprintf(stdout, "rebuilt %s version %d: %d events in %.2fs (%s events/s), replay %s\n", d.Name, d.Version, rp.Total, secs, si(float64(rp.Total)/secs), rp.ID)
		return exitOK
	case ctx.Err() != nil:
		fmt.Fprintf(stderr, "strata: rebuild %s interrupted at %d of %d events; replay %s goes on in the next strata rebuild or in the server\n", d.Name, rp.Done, rp.Total, rp.ID)
		return exitFail
	}
	fmt.Fprintf(stderr, "strata: rebuild %s %s: %s\n", d.Name, rp.State, rp.Error)
	return exitFail
}

// progress shows a long task's progress on w: a bar redrawn in place when
// w is a terminal, a plain line every progressEvery otherwise (a log, a
// pipe).
type progress struct {
	w     io.Writer
	label string
	tty   bool
	last  time.Time
	drawn bool
	// bytes: done and total count bytes (compact), not events.
	bytes bool
}

// progressEvery is how often a progress line is written where it cannot
// be redrawn.
const progressEvery = 2 * time.Second

func newProgress(w io.Writer, label string) *progress {
	tty := false
	if f, ok := w.(*os.File); ok {
		tty = term.IsTerminal(int(f.Fd()))
	}
	return &progress{w: w, label: label, tty: tty}
}

func (p *progress) update(done, total uint64, rate float64, eta *float64) {
	now := time.Now()
	every := progressEvery
	if p.tty {
		every = 100 * time.Millisecond
	}
	if now.Sub(p.last) < every {
		return
	}
	p.last = now
	pct := 100.0
	if total > 0 {
		pct = 100 * float64(min(done, total)) / float64(total)
	}
	left := "?"
	if eta != nil {
		left = (time.Duration(*eta*float64(time.Second)) + time.Second/2).Truncate(time.Second).String()
	}
	if p.bytes {
		if !p.tty {
			fmt.Fprintf(p.w, "%s: %s of %s (%.0f%%), %s/s, %s left\n", p.label, sizeSI(float64(done)), sizeSI(float64(total)), pct, sizeSI(rate), left)
			return
		}
	} else if !p.tty {
		fmt.Fprintf(p.w, "%s: %d of %d events (%.0f%%), %s events/s, %s left\n", p.label, done, total, pct, si(rate), left)
		return
	}
	const width = 30
	n := int(pct / 100 * width)
	bar := strings.Repeat("=", n) + strings.Repeat(" ", width-n)
	if n < width {
		bar = bar[:n] + ">" + bar[n+1:]
	}
	if p.bytes {
		fmt.Fprintf(p.w, "\r%s [%s] %3.0f%% %s/%s  %s/s  ETA %s\x1b[K", p.label, bar, pct, sizeSI(float64(done)), sizeSI(float64(total)), sizeSI(rate), left)
	} else {
		fmt.Fprintf(p.w, "\r%s [%s] %3.0f%% %d/%d  %s events/s  ETA %s\x1b[K", p.label, bar, pct, done, total, si(rate), left)
	}
	p.drawn = true
}

// done ends the bar's line.
func (p *progress) done() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}

// sizeSI writes a byte count (or a rate in bytes) in decimal units: 950 B,
// 12.3 MB, 1.02 GB.
func sizeSI(v float64) string {
	switch {
	case v >= 1e9:
		return fmt.Sprintf("%.2f GB", v/1e9)
	case v >= 1e6:
		return fmt.Sprintf("%.1f MB", v/1e6)
	case v >= 1e3:
		return fmt.Sprintf("%.1f kB", v/1e3)
	}
	return fmt.Sprintf("%.0f B", v)
}

// si writes a rate with a k or M suffix.
func si(v float64) string {
	switch {
	case v >= 1e6:
		return fmt.Sprintf("%.2fM", v/1e6)
	case v >= 1e4:
		return fmt.Sprintf("%.0fk", v/1e3)
	}
	return fmt.Sprintf("%.0f", v)
}
