// Package compaction runs the log's compression of sealed segments
// ((*log.Log).Compact, log/FORMAT.md) for the operator's three ways in —
// `strata compact`, POST /admin/compaction and a long-running server's
// background policy — and keeps, beside each log, the record of its last
// run, which GET /admin/compaction shows.
//
// Compaction changes how segments are stored, never what they hold: ids,
// offsets and `strata verify` are the same before and after. Nothing here
// decides what may be compressed (the log does: sealed segments only) or
// serialises compactions (the log's compact.lock does:
// log.ErrCompactBusy).
//
// # The last-run file
//
// `<tenant dir>/compaction.json` (the audit log: `system/audit/compaction.json`),
// replaced atomically (internal/fileutil.WriteFile) after a run that
// compressed something or that an operator asked for, one JSON object:
//
//	{"version":1,"time":"2026-12-02T17:00:00.123456789Z","by":"cli",
//	 "segments":3,"bytes_before":201326592,"bytes_after":38211234,
//	 "seconds":1.92,"remaining":0}
//
// time is when the run ended (UTC); by is "cli" (strata compact), "http"
// (POST /admin/compaction) or "auto" (a server's background policy, which
// writes the file only when it compressed a segment, so an idle server
// does not rewrite it every minute); remaining counts the segments that
// qualified but were left for a later run (a time budget). The file is
// information for the operator, not state: a missing or unreadable one
// means "no run recorded", and nothing reads it but GET /admin/compaction.
// Backups copy it like the tenant's other small files.
package compaction

import (
	"encoding/json"
	"os"
	"path/filepath"
	"time"

	"strata/internal/fileutil"
	"strata/log"
)

// FileName is the last-run file, in the directory of the log it describes
// (the directory log.Open was given).
const FileName = "compaction.json"

// Who ran a compaction, as the last-run file says.
const (
	ByCLI  = "cli"
	ByHTTP = "http"
	ByAuto = "auto"
)

// Run is the record of one compaction of one log.
type Run struct {
	Version     int     `json:"version"`
	Time        string  `json:"time"` // RFC 3339, UTC, when it ended
	By          string  `json:"by"`
	Segments    int     `json:"segments"`
	BytesBefore int64   `json:"bytes_before"`
	BytesAfter  int64   `json:"bytes_after"`
	Seconds     float64 `json:"seconds"`
	Remaining   int     `json:"remaining"`
}

// Compact compresses l's sealed segments as o says and, when the run
// compressed something or was asked for by an operator (by is not
// ByAuto), records it in dir's last-run file. dir is the directory l was
// opened on. A failure to write the record fails nothing: the segments
// are compressed and durable by then; it is returned as recErr for the
// caller to report.
func Compact(l *log.Log, dir, by string, o log.CompactOptions) (res log.CompactResult, recErr, err error) {
	res, err = l.Compact(o)
	if err != nil && res.Segments == 0 {
		return res, nil, err
	}
	if res.Segments > 0 || by != ByAuto {
		recErr = Record(dir, by, res)
	}
	return res, recErr, err
}

// Record writes res as dir's last run.
func Record(dir, by string, res log.CompactResult) error {
	b, err := json.Marshal(Run{
		Version:     1,
		Time:        time.Now().UTC().Format(time.RFC3339Nano),
		By:          by,
		Segments:    res.Segments,
		BytesBefore: res.BytesBefore,
		BytesAfter:  res.BytesAfter,
		Seconds:     Seconds(res.Duration),
		Remaining:   res.Remaining,
	})
	if err != nil {
		return err
	}
	return fileutil.WriteFile(filepath.Join(dir, FileName), append(b, '\n'), 0o600)
}

// Last reads dir's last run; ok is false when none is recorded (or the
// record cannot be read: it is information, never a reason to fail).
func Last(dir string) (r Run, ok bool) {
	b, err := os.ReadFile(filepath.Join(dir, FileName))
	if err != nil {
		return Run{}, false
	}
	if json.Unmarshal(b, &r) != nil || r.Version != 1 {
		return Run{}, false
	}
	return r, true
}

// Seconds is d in seconds, to the millisecond, as the record and the
// HTTP answers give durations.
func Seconds(d time.Duration) float64 {
	return float64(d.Round(time.Millisecond)) / float64(time.Second)
}
