package main

import (
	"fmt"
	"io"
	"log/slog"
	"sync"

	"strata/cgi"
	"strata/internal/fileutil"
)

// prepared is the data directory prepareDataDir last looked at.
var (
	preparedMu sync.Mutex
	prepared   string
)

// prepareDataDir is the first thing every command and server does with
// the data directory: turn on group access if the directory asks for it
// (group-writable: a host without suEXEC, where the CLI and the web server
// are different users; see fileutil.GroupAccess), and warn about what
// would fail — the directory open to other users, files this process
// cannot read. Once per directory and process.
func prepareDataDir(dir string, warn func(string)) {
	preparedMu.Lock()
	defer preparedMu.Unlock()
	if dir == prepared {
		return
	}
	prepared = dir
	if _, err := fileutil.GroupAccess(dir); err != nil {
		warn(fmt.Sprintf("data directory: %v", err))
	}
	// A CGI process looks at the top only: it does so for every request.
	for _, p := range fileutil.Problems(dir, !cgi.IsCGI()) {
		warn(p)
	}
}

// warnTo warns on the command line's stderr.
func warnTo(w io.Writer) func(string) {
	return func(msg string) { fmt.Fprintln(w, "strata: warning:", msg) }
}

// warnLog warns in a server's log (stderr: Apache's error log under CGI).
func warnLog(msg string) { slog.Warn(msg) }
