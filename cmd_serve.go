package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"strconv"
	"time"

	"strata/admin"
	"strata/api"
	"strata/cgi"
	"strata/standalone"
)

// serverLogger is the log of a serving process: text lines on stderr.
// Under a web server (CGI, FastCGI) they go to its error log, which stamps
// each line with the time already.
func serverLogger(stderr io.Writer, stamped bool) *slog.Logger {
	opts := &slog.HandlerOptions{}
	if !stamped {
		opts.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if a.Key == slog.TimeKey && len(groups) == 0 {
				return slog.Attr{}
			}
			return a
		}
	}
	l := slog.New(slog.NewTextHandler(stderr, opts))
	slog.SetDefault(l) // for what lower packages log outside a request (audit)
	return l
}

// serveOnce answers the one request of a CGI process.
func serveOnce(stderr io.Writer) int {
	logger := serverLogger(stderr, false)
	cfg, err := loadSettings().config().api()
	if err != nil {
		// The answer is a JSON 500 with a request id; the reason goes to
		// the error log under that id.
		cgi.Serve(api.Broken(err, logger))
		return 1
	}
	cfg.Logger = logger
	warnMissingDataDir(cfg.DataDir, cfg.NoAuth, logger)
	h := api.New(cfg)
	defer h.Close()
	if err := cgi.Serve(h); err != nil {
		fmt.Fprintln(stderr, "strata:", err)
		return 1
	}
	return 0
}

func serveFastCGI(stderr io.Writer) int {
	logger := serverLogger(stderr, false) // first: api() warns through it
	cfg, err := loadSettings().config().api()
	if err != nil {
		fmt.Fprintln(stderr, "strata:", err)
		return 1
	}
	cfg.Log.SyncOnClose = true
	cfg.LongRunning = true
	cfg.Logger = logger
	if cfg.StreamTimeout == 0 {
		// mod_fcgid gives each stream a process of its own, and ends a
		// request busy past FcgidBusyTimeout (300 s): streams end, as
		// under CGI, and clients reconnect.
		cfg.StreamTimeout = api.DefaultStreamTimeout
	}
	warnMissingDataDir(cfg.DataDir, cfg.NoAuth, logger)
	tuneGC()
	h := api.New(cfg)
	defer h.Close()
	if err := cgi.ServeFastCGI(h, 30*time.Second); err != nil {
		fmt.Fprintln(stderr, "strata:", err)
		return 1
	}
	return 0
}

func cmdServe(args []string, stdout, stderr io.Writer) int {
	s := loadSettings()
	c := s.config()
	fs := newCmdFlags("serve", "[--addr 127.0.0.1] [--port 8080] [--data DIR] [--tls-cert F --tls-key F] [flags]",
		"Serve the HTTP API standalone until SIGINT or SIGTERM, which drain the\nrequests in flight. Every flag has a STRATA_* variable too (README).", stdout, stderr)
	addr := fs.String("addr", "127.0.0.1", "`addr`ess to listen on")
	port := fs.Int("port", 8080, "port to listen on (0 picks a free one)")
	cert := fs.String("tls-cert", s.get("STRATA_TLS_CERT", ""), "serve HTTPS (and HTTP/2) with this certificate `file` (PEM, chain included)")
	key := fs.String("tls-key", s.get("STRATA_TLS_KEY", ""), "the certificate's private key `file` (PEM)")
	maxConns := fs.Int("max-conns", atoi(s.get("STRATA_MAX_CONNS", ""), standalone.DefaultMaxConns), "most connections open at once; past it a new one replaces the longest idle, or waits while all are busy (0: no cap)")
	c.flags(fs.FlagSet)
	fs.shared["data"] = true
	if _, code := fs.parse(args, 0, 0); code >= 0 {
		return code
	}
	logger := serverLogger(stderr, true) // first: api() warns through it
	cfg, err := c.api()
	if err != nil {
		fmt.Fprintln(stderr, "strata:", err)
		return 2
	}
	opts := standalone.Options{MaxConns: *maxConns}
	if opts.MaxConns == 0 {
		opts.MaxConns = -1 // 0 would mean the default
	}
	scheme := "http"
	if *cert != "" || *key != "" {
		pair, err := tls.LoadX509KeyPair(*cert, *key)
		if err != nil {
			fmt.Fprintln(stderr, "strata: tls:", err)
			return 2
		}
		opts.TLS = &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}
		scheme = "https"
	}
	if cfg.NoAuth {
		fmt.Fprintln(stderr, "strata: WARNING: --auth=none: no credentials are asked for; anyone who can reach this port is an administrator")
	} else {
		adminHint(cfg, stderr)
	}
	cfg.Log.SyncOnClose = true
	cfg.LongRunning = true
	cfg.Logger = logger
	opts.ErrorLog = slog.NewLogLogger(cfg.Logger.Handler(), slog.LevelWarn)
	tuneGC()
	h := api.New(cfg)
	opts.OnShutdown = h.Drain
	opts.Ready = func(a net.Addr) { fmt.Fprintf(stderr, "strata: serving %s on %s://%s\n", cfg.DataDir, scheme, a) }
	err = standalone.Serve(context.Background(), net.JoinHostPort(*addr, strconv.Itoa(*port)), h, opts)
	if cerr := h.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		fmt.Fprintln(stderr, "strata:", err)
		return 1
	}
	return 0
}

// tuneGC lets a long-running process's heap grow to five times what is live
// before collecting (GOGC=400) unless GOGC says otherwise: ingest allocates
// a request's worth of short-lived events at a time, and the live heap is
// small, so collecting less often buys ~15% throughput for a few MB…
func tuneGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
	if os.Getenv("GOMEMLIMIT") == "" {
		// …but collect early rather than let a burst of reads or appends
		// take the heap past a few tens of MB.
		debug.SetMemoryLimit(48 << 20)
	}
}

// adminHint says how to make the first administrator when accounts are on
// and there is none yet: otherwise every request is a 401 and nothing on
// the screen says why.
func adminHint(cfg api.Config, stderr io.Writer) {
	s := &admin.Service{Data: cfg.DataDir, UsersFile: cfg.UsersFile}
	if ok, err := s.HasAdmin(); err != nil || ok {
		return
	}
	if cfg.JWT != nil {
		fmt.Fprintln(stderr, "strata: no administrator token or user yet; only JWTs with role admin can manage tenants.")
	} else {
		fmt.Fprintln(stderr, "strata: no administrator yet, so every request will be refused (401). Create one:")
	}
	// The program as it was started (./strata, strata.cgi …): a line to paste.
	fmt.Fprintf(stderr, "  %s token create --role admin --name ops --data %s\n", os.Args[0], cfg.DataDir)
	fmt.Fprintf(stderr, "  (or %s user add NAME --role admin --data %s; or STRATA_SETUP_KEY and POST /setup)\n", os.Args[0], cfg.DataDir)
}
