// Command strata is an event store in one binary: it serves the HTTP API as
// a CGI program (when GATEWAY_INTERFACE is set), as a FastCGI worker (when
// standard input is a socket), or standalone (strata serve), and carries the
// operator's subcommands (verify, reindex). This file is the only place
// where the concrete packages meet.
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"strata/api"
	"strata/cgi"
	"strata/log"
	"strata/standalone"
)

const usage = `strata — an event store in one binary

Usage:
  strata serve   [--addr 127.0.0.1] [--port 8080] [--data DIR] [options]
  strata verify  [--data DIR] [--tenant default]
  strata reindex [--data DIR] [--tenant default]
  strata version

Run as a CGI program (GATEWAY_INTERFACE set) or under mod_fcgid (standard
input a socket) it serves the HTTP API and reads its configuration from the
environment (STRATA_DATA, STRATA_MAX_BODY, …) or from strata.conf next to
the binary. --data defaults to $STRATA_DATA, else ./data.
`

// version is set at build time (-ldflags "-X main.version=…").
var version = "dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		switch {
		case cgi.IsCGI():
			return serveOnce(stderr)
		case cgi.IsFastCGI():
			return serveFastCGI(stderr)
		}
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return cmdServe(rest, stderr)
	case "verify":
		return cmdVerify(rest, stdout, stderr)
	case "reindex":
		return cmdReindex(rest, stdout, stderr)
	case "version", "--version":
		fmt.Fprintln(stdout, "strata", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	}
	fmt.Fprintf(stderr, "strata: unknown command %q\n\n%s", cmd, usage)
	return 2
}

// settings are the STRATA_* variables: from the environment, else from
// strata.conf beside the binary (KEY=VALUE lines, # comments), for hosts
// where .htaccess cannot SetEnv.
type settings map[string]string

func loadSettings() settings {
	s := settings{}
	if exe, err := os.Executable(); err == nil {
		if f, err := os.Open(filepath.Join(filepath.Dir(exe), "strata.conf")); err == nil {
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				line := strings.TrimSpace(sc.Text())
				if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
					s[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
				}
			}
			f.Close()
		}
	}
	for _, kv := range os.Environ() {
		// Apache prefixes variables set before an internal redirect.
		kv = strings.TrimPrefix(kv, "REDIRECT_")
		if k, v, ok := strings.Cut(kv, "="); ok && strings.HasPrefix(k, "STRATA_") {
			s[k] = v
		}
	}
	return s
}

func (s settings) get(key, def string) string {
	if v, ok := s[key]; ok && v != "" {
		return v
	}
	return def
}

// parseSize reads a byte count: 1048576, 64K, 64M, 1G.
func parseSize(v string) (int64, error) {
	mult := int64(1)
	switch {
	case strings.HasSuffix(v, "K"):
		mult, v = 1<<10, strings.TrimSuffix(v, "K")
	case strings.HasSuffix(v, "M"):
		mult, v = 1<<20, strings.TrimSuffix(v, "M")
	case strings.HasSuffix(v, "G"):
		mult, v = 1<<30, strings.TrimSuffix(v, "G")
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("not a size: %q (use bytes, or a number with K, M or G)", v)
	}
	return n * mult, nil
}

// config builds the handler's Config from settings, overridden by flags.
type config struct {
	data                       string
	maxBody, maxEvent, maxBlob string
	segmentSize                string
	lockTimeout                time.Duration
	unsafeNoSync               bool
}

func (s settings) config() config {
	lt, _ := time.ParseDuration(s.get("STRATA_LOCK_TIMEOUT", "10s"))
	return config{
		data:         s.get("STRATA_DATA", "./data"),
		maxBody:      s.get("STRATA_MAX_BODY", "64M"),
		maxEvent:     s.get("STRATA_MAX_EVENT", "1M"),
		maxBlob:      s.get("STRATA_MAX_BLOB", "0"),
		segmentSize:  s.get("STRATA_SEGMENT_SIZE", "64M"),
		lockTimeout:  lt,
		unsafeNoSync: s.get("STRATA_UNSAFE_NOSYNC", "") == "1",
	}
}

func (c *config) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.data, "data", c.data, "data directory")
	fs.StringVar(&c.maxBody, "max-body", c.maxBody, "largest append request (bytes, or with K/M/G)")
	fs.StringVar(&c.maxEvent, "max-event", c.maxEvent, "largest data+meta of one event")
	fs.StringVar(&c.maxBlob, "max-blob", c.maxBlob, "largest blob; 0 for no limit")
	fs.StringVar(&c.segmentSize, "segment-size", c.segmentSize, "seal a log segment at this size")
	fs.DurationVar(&c.lockTimeout, "lock-timeout", c.lockTimeout, "longest wait for a tenant's write lock")
	fs.BoolVar(&c.unsafeNoSync, "unsafe-nosync", c.unsafeNoSync, "UNSAFE: never fsync (benchmarks only; a machine crash loses acknowledged events)")
}

func (c config) api() (api.Config, error) {
	var sizes [4]int64
	for i, v := range []string{c.maxBody, c.maxEvent, c.maxBlob, c.segmentSize} {
		n, err := parseSize(v)
		if err != nil {
			return api.Config{}, err
		}
		sizes[i] = n
	}
	return api.Config{
		DataDir:  c.data,
		MaxBody:  sizes[0],
		MaxEvent: sizes[1],
		MaxBlob:  sizes[2],
		NoSync:   c.unsafeNoSync,
		Log:      log.Options{SegmentSize: sizes[3], LockTimeout: c.lockTimeout},
	}, nil
}

// serveOnce answers the one request of a CGI process.
func serveOnce(stderr io.Writer) int {
	cfg, err := loadSettings().config().api()
	if err != nil {
		fmt.Fprintln(stderr, "strata:", err)
		return 1
	}
	h := api.New(cfg)
	defer h.Close()
	if err := cgi.Serve(h); err != nil {
		fmt.Fprintln(stderr, "strata:", err)
		return 1
	}
	return 0
}

func serveFastCGI(stderr io.Writer) int {
	cfg, err := loadSettings().config().api()
	if err != nil {
		fmt.Fprintln(stderr, "strata:", err)
		return 1
	}
	cfg.Log.SyncOnClose = true
	tuneGC()
	h := api.New(cfg)
	defer h.Close()
	if err := cgi.ServeFastCGI(h, 30*time.Second); err != nil {
		fmt.Fprintln(stderr, "strata:", err)
		return 1
	}
	return 0
}

func cmdServe(args []string, stderr io.Writer) int {
	c := loadSettings().config()
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1", "address to listen on")
	port := fs.Int("port", 8080, "port to listen on (0 picks a free one)")
	c.flags(fs)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	cfg, err := c.api()
	if err != nil {
		fmt.Fprintln(stderr, "strata:", err)
		return 2
	}
	cfg.Log.SyncOnClose = true
	tuneGC()
	h := api.New(cfg)
	err = standalone.Serve(context.Background(), net.JoinHostPort(*addr, strconv.Itoa(*port)), h, standalone.Options{
		Ready: func(a net.Addr) { fmt.Fprintf(stderr, "strata: serving %s on http://%s\n", cfg.DataDir, a) },
	})
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
	if !validTenant(*tenant) {
		fmt.Fprintf(stderr, "strata: invalid tenant name %q\n", *tenant)
		return "", false
	}
	return api.TenantDir(c.data, *tenant), true
}

func validTenant(s string) bool {
	if len(s) == 0 || len(s) > 63 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' && i > 0) {
			return false
		}
	}
	return true
}

func cmdVerify(args []string, stdout, stderr io.Writer) int {
	dir, ok := tenantFlags("verify", args, stderr)
	if !ok {
		return 2
	}
	if _, err := os.Stat(dir); err != nil {
		fmt.Fprintf(stdout, "FAIL %v\n", err)
		return 1
	}
	rep, err := log.Verify(dir)
	if err != nil {
		fmt.Fprintf(stdout, "FAIL after %d good events: %v\n", rep.Events, err)
		return 1
	}
	fmt.Fprintf(stdout, "OK %d events, head %x\n", rep.Events, rep.Head.ID)
	if rep.TornTail != "" {
		fmt.Fprintf(stderr, "note: unacknowledged torn tail (a crash mid-write), cut on the next write: %s\n", rep.TornTail)
	}
	return 0
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
