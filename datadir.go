package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
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

// warnMissingDataDir warns, in a web server's error log, about a data
// directory that does not exist. Under a web server it is made by hand
// (cgi-bin/README.md, step 1), so a missing one is most likely a typo in
// STRATA_DATA; with accounts on, every request is then a 401 for want of
// credentials to check it against, which says nothing of the cause.
func warnMissingDataDir(dir string, noAuth bool, logger *slog.Logger) {
	if _, err := os.Stat(dir); noAuth || !errors.Is(err, fs.ErrNotExist) {
		return
	}
	logger.Warn(fmt.Sprintf("the data directory %s does not exist: check STRATA_DATA (cgi-bin/.htaccess or strata.conf next to the program); until it does, every request with credentials is refused (401)", dir))
}
