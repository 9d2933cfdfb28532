package main

import (
	"errors"
	"fmt"
	"io"
	"time"

	"strata/compaction"
	"strata/log"
)

const compactAbout = `Compress every sealed segment of the logs named now, whatever its age:
each becomes a .zseg (zstd frames with a seek table, log/FORMAT.md) that
decompresses to the original bytes, so ids, reads and strata verify are
unchanged. The active segment is never compressed. Safe while servers run:
appends never wait. Without flags: every tenant and the audit log.

A long-running server (strata serve, FastCGI) does the same in the
background for segments unwritten for --compact-age (default 1h); under
CGI run this command, or POST /admin/compaction, from cron (README).

Exit status: 0 done; 1 a compaction failed, or another one of the same log
is running (strata compact, POST /admin/compaction or a server's
background compaction: try again later); 2 a wrong command line, or no
such data directory or tenant.`

// cmdCompact compresses the sealed segments of every tenant's log and the
// audit log, or of the ones --tenant and --audit name.
func cmdCompact(args []string, stdout, stderr io.Writer) int {
	f := newCmdFlags("compact", "[--tenant NAME]… [--audit] [--all]", compactAbout, stdout, stderr)
	targets, code := logTargets(f, args)
	if code >= 0 {
		return code
	}
	code = exitOK
	var sum log.CompactResult
	start := time.Now()
	for _, t := range targets {
		bar := newProgress(stderr, "compact "+t.name)
		bar.bytes = true
		res, err := compactLog(t.dir, rated(bar, time.Now()))
		bar.done()
		switch {
		case errors.Is(err, log.ErrCompactBusy):
			fmt.Fprintf(stderr, "strata: %s: another compaction of this log is running (strata compact, POST /admin/compaction or a server's background compaction); try again when it is done\n", t.name)
			code = exitFail
			continue
		case err != nil:
			if errors.Is(err, log.ErrCorrupt) {
				fmt.Fprintf(stderr, "strata: %s: the log itself is damaged; run strata verify\n", t.name)
			}
			fmt.Fprintf(stderr, "strata: %s: %v\n", t.name, err)
			code = exitFail
			if res.Segments == 0 {
				continue
			}
		}
		fmt.Fprintf(stdout, "%s: %s\n", t.name, compactSummary(res))
		sum.Segments += res.Segments
		sum.BytesBefore += res.BytesBefore
		sum.BytesAfter += res.BytesAfter
	}
	if len(targets) > 1 {
		sum.Duration = time.Since(start)
		fmt.Fprintf(stdout, "total: %s\n", compactSummary(sum))
	}
	return code
}

// compactLog compresses every sealed segment of the log in dir and
// records the run beside it (compaction.Record).
func compactLog(dir string, progress func(done, total uint64)) (log.CompactResult, error) {
	l, err := log.Open(dir, log.Options{SyncOnClose: true})
	if err != nil {
		return log.CompactResult{}, err
	}
	defer l.Close()
	res, recErr, err := compaction.Compact(l, dir, compaction.ByCLI, log.CompactOptions{
		Progress: func(done, total int64) { progress(uint64(max(done, 0)), uint64(max(total, 0))) },
	})
	if err == nil && recErr != nil {
		// The segments are compressed; only the record of the run is missing.
		err = fmt.Errorf("recording the run in %s: %w", compaction.FileName, recErr)
	}
	return res, err
}

// compactSummary says what a compaction did, in a line.
func compactSummary(r log.CompactResult) string {
	if r.Segments == 0 {
		return "nothing to compress (no sealed segment is left uncompressed; the active one never is)"
	}
	ratio := float64(r.BytesBefore) / float64(max(r.BytesAfter, 1))
	secs := r.Duration.Seconds()
	return fmt.Sprintf("%d segments, %s → %s (%.2f× smaller) in %.2fs (%s/s)",
		r.Segments, sizeSI(float64(r.BytesBefore)), sizeSI(float64(r.BytesAfter)), ratio, secs, sizeSI(float64(r.BytesBefore)/max(secs, 1e-9)))
}
