package main

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"strata/api"
	"strata/auth"
	"strata/log"
	"strata/projections"
	"strata/tenants"
)

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

// atoi reads a number setting, def when empty or not a number.
func atoi(v string, def int) int {
	if n, err := strconv.Atoi(v); err == nil {
		return n
	}
	return def
}

// config builds the handler's Config from settings, overridden by flags.
type config struct {
	data                       string
	maxBody, maxEvent, maxBlob string
	maxEvents                  int
	maxInflight                string
	segmentSize                string
	lockTimeout                time.Duration
	unsafeNoSync               bool

	authMode   string // "required" or "none"
	users      string // the htpasswd file
	jwtSecret  string // HS256 secret, or "@path" to read it from a file
	jwks       string // a JWKS file of EdDSA/RS256 public keys
	jwtIssuer  string
	sessionTTL time.Duration
	origins    string // comma-separated CORS origins for every tenant
	trustProxy bool
	auditAll   bool // record every append in the audit log
	noMetrics  bool // count nothing in the shared metrics file
	setupKey   string

	snapshotEvery int // versions between automatic snapshots; 0: off
	// catchupBudget is how long a read may catch a projection's result
	// up (and a CGI request move a replay on).
	catchupBudget time.Duration
	// streamTimeout ends a stream (GET /stream) with its resume point;
	// 0: never in standalone, api.DefaultStreamTimeout under CGI and
	// FastCGI. heartbeat is an idle stream's comment interval.
	streamTimeout, heartbeat time.Duration
	// compactAge: a long-running server compresses sealed segments
	// unwritten this long, in the background; "off" or "0": never.
	compactAge string
}

func (s settings) config() config {
	lt, _ := time.ParseDuration(s.get("STRATA_LOCK_TIMEOUT", "10s"))
	ttl, _ := time.ParseDuration(s.get("STRATA_SESSION_TTL", "12h"))
	budget, _ := time.ParseDuration(s.get("STRATA_CATCHUP_BUDGET", "2s"))
	streamTimeout, _ := time.ParseDuration(s.get("STRATA_STREAM_TIMEOUT", "0s"))
	heartbeat, _ := time.ParseDuration(s.get("STRATA_STREAM_HEARTBEAT", api.DefaultHeartbeat.String()))
	return config{
		data:         s.get("STRATA_DATA", "./data"),
		maxBody:      s.get("STRATA_MAX_BODY", "64M"),
		maxEvent:     s.get("STRATA_MAX_EVENT", "1M"),
		maxBlob:      s.get("STRATA_MAX_BLOB", "0"),
		maxEvents:    atoi(s.get("STRATA_MAX_EVENTS", ""), api.DefaultMaxEvents),
		maxInflight:  s.get("STRATA_MAX_INFLIGHT", "256M"),
		segmentSize:  s.get("STRATA_SEGMENT_SIZE", "64M"),
		lockTimeout:  lt,
		unsafeNoSync: s.get("STRATA_UNSAFE_NOSYNC", "") == "1",
		authMode:     s.get("STRATA_AUTH", "required"),
		users:        s.get("STRATA_USERS", ""),
		jwtSecret:    s.get("STRATA_JWT_SECRET", ""),
		jwks:         s.get("STRATA_JWKS", ""),
		jwtIssuer:    s.get("STRATA_JWT_ISSUER", ""),
		sessionTTL:   ttl,
		origins:      s.get("STRATA_CORS_ORIGINS", ""),
		trustProxy:   s.get("STRATA_TRUST_PROXY", "") == "1",
		auditAll:     s.get("STRATA_AUDIT_APPENDS", "") == "1",
		noMetrics:    s.get("STRATA_METRICS", "on") == "off",
		setupKey:     s.get("STRATA_SETUP_KEY", ""),

		snapshotEvery: atoi(s.get("STRATA_SNAPSHOT_EVERY", ""), projections.DefaultSnapshotEvery),
		catchupBudget: budget,
		streamTimeout: streamTimeout,
		heartbeat:     heartbeat,
		compactAge:    s.get("STRATA_COMPACT_AGE", defaultCompactAge),
	}
}

// defaultCompactAge is how long a sealed segment goes unwritten before a
// long-running server compresses it: an hour keeps the segments that
// readers catching up just left uncompressed for a while, and costs a
// busy log one segment's compression (~1 s of one core for 64 MB) per
// segment sealed.
const defaultCompactAge = "1h"

// parseCompactAge reads --compact-age: a duration, or 0 / off for never.
func parseCompactAge(v string) (time.Duration, error) {
	switch strings.TrimSpace(v) {
	case "off", "0", "":
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("compact-age %q: use a duration such as 1h or 30m, or off", v)
	}
	return d, nil
}

func (c *config) flags(fs *flag.FlagSet) {
	fs.StringVar(&c.data, "data", c.data, "the data `dir`ectory (default $STRATA_DATA, else ./data)")
	fs.StringVar(&c.maxBody, "max-body", c.maxBody, "largest `size` of an append request (bytes, or with K/M/G)")
	fs.StringVar(&c.maxEvent, "max-event", c.maxEvent, "largest `size` of one event's data+meta")
	fs.StringVar(&c.maxBlob, "max-blob", c.maxBlob, "largest `size` of a blob; 0 for no limit")
	fs.IntVar(&c.maxEvents, "max-events", c.maxEvents, "most events in one append request")
	fs.StringVar(&c.maxInflight, "max-inflight", c.maxInflight, "`size` of the memory that append requests in flight may hold together; one that would pass it is answered 503 (Retry-After); 0 for no bound")
	fs.StringVar(&c.segmentSize, "segment-size", c.segmentSize, "seal a log segment at this `size` (at most 4095M)")
	fs.DurationVar(&c.lockTimeout, "lock-timeout", c.lockTimeout, "longest wait for a tenant's write lock")
	fs.BoolVar(&c.unsafeNoSync, "unsafe-nosync", c.unsafeNoSync, "UNSAFE: never fsync (benchmarks only; a machine crash loses acknowledged events)")
	fs.StringVar(&c.authMode, "auth", c.authMode, "whether credentials are asked for (`mode`): required, or none — UNSAFE: no credentials, everyone is an administrator (local development)")
	fs.StringVar(&c.users, "users", c.users, "htpasswd `file` of users (default DATA/system/users)")
	fs.StringVar(&c.jwtSecret, "jwt-secret", c.jwtSecret, "accept HS256 JWTs signed with this `secret` (@FILE reads it from a file)")
	fs.StringVar(&c.jwks, "jwks", c.jwks, "accept EdDSA/RS256 JWTs signed by the keys in this JWKS `file`")
	fs.StringVar(&c.jwtIssuer, "jwt-issuer", c.jwtIssuer, "require this `issuer` (iss claim) in JWTs")
	fs.DurationVar(&c.sessionTTL, "session-ttl", c.sessionTTL, "lifetime of a session token from POST /session")
	fs.StringVar(&c.origins, "cors-origins", c.origins, "browser `origins` allowed in every tenant, comma-separated")
	fs.BoolVar(&c.trustProxy, "trust-proxy", c.trustProxy, "take the client address from X-Forwarded-For (behind a reverse proxy)")
	fs.BoolVar(&c.auditAll, "audit-appends", c.auditAll, "record every append request in the audit log too (each event has meta.by regardless)")
	fs.DurationVar(&c.catchupBudget, "catchup-budget", c.catchupBudget, "longest a read catches a projection's result up from the log; past it the answer is the result so far, marked behind")
	fs.DurationVar(&c.streamTimeout, "stream-timeout", c.streamTimeout, "end a stream (GET /stream) after this long, with its resume point, so the client reconnects; 0: never (under CGI and FastCGI, where 0 means 25s, a stream holds a process)")
	fs.DurationVar(&c.heartbeat, "stream-heartbeat", c.heartbeat, "how often an idle stream sends a heartbeat comment (keep it under the Timeout of any proxy in front)")
	fs.StringVar(&c.compactAge, "compact-age", c.compactAge, "compress sealed log segments unwritten this long (a `duration`), in the background; off (or 0) never does (strata compact and POST /admin/compaction still do)")
	fs.IntVar(&c.snapshotEvery, "snapshot-every", c.snapshotEvery, "write an entity's snapshot every `n` versions, when a read folds through them; 0 for no automatic snapshots")
}

func (c config) api() (api.Config, error) {
	prepareDataDir(c.data, warnLog)
	var sizes [5]int64
	for i, v := range []string{c.maxBody, c.maxEvent, c.maxBlob, c.segmentSize, c.maxInflight} {
		n, err := parseSize(v)
		if err != nil {
			return api.Config{}, err
		}
		sizes[i] = n
	}
	if sizes[3] > log.MaxSegmentSize {
		return api.Config{}, fmt.Errorf("segment size %s is too large: at most 4095M (record offsets within a segment are 32-bit; the default is 64M)", c.segmentSize)
	}
	cfg := api.Config{
		DataDir:      c.data,
		MaxBody:      sizes[0],
		MaxEvent:     sizes[1],
		MaxBlob:      sizes[2],
		MaxEvents:    c.maxEvents,
		MaxInflight:  sizes[4],
		NoSync:       c.unsafeNoSync,
		Log:          log.Options{SegmentSize: sizes[3], LockTimeout: c.lockTimeout},
		UsersFile:    c.users,
		SessionTTL:   c.sessionTTL,
		TrustProxy:   c.trustProxy,
		AuditAppends: c.auditAll,
		SetupKey:     c.setupKey,
		NoMetrics:    c.noMetrics,
	}
	switch {
	case c.snapshotEvery < 0:
		return api.Config{}, fmt.Errorf("snapshot-every %d: must be 0 (off) or more", c.snapshotEvery)
	case c.snapshotEvery == 0:
		cfg.SnapshotEvery = -1 // off; 0 in api.Config is the default
	default:
		cfg.SnapshotEvery = c.snapshotEvery
	}
	if cfg.MaxInflight == 0 {
		cfg.MaxInflight = -1 // 0 means no bound here; in api.Config, the default
	}
	if c.catchupBudget <= 0 {
		return api.Config{}, fmt.Errorf("catchup-budget %v: must be more than 0 (e.g. 2s)", c.catchupBudget)
	}
	cfg.CatchupBudget = c.catchupBudget
	if c.streamTimeout < 0 {
		return api.Config{}, fmt.Errorf("stream-timeout %v: must be 0 (none in standalone) or more", c.streamTimeout)
	}
	if c.heartbeat <= 0 {
		return api.Config{}, fmt.Errorf("stream-heartbeat %v: must be more than 0 (e.g. 15s)", c.heartbeat)
	}
	cfg.StreamTimeout, cfg.Heartbeat = c.streamTimeout, c.heartbeat
	age, err := parseCompactAge(c.compactAge)
	if err != nil {
		return api.Config{}, err
	}
	cfg.CompactAge = age
	if c.maxEvents <= 0 {
		return api.Config{}, fmt.Errorf("max-events %d: must be at least 1", c.maxEvents)
	}
	switch c.authMode {
	case "required", "":
	case "none":
		cfg.NoAuth = true
	default:
		return api.Config{}, fmt.Errorf("auth %q: use required or none", c.authMode)
	}
	for _, o := range strings.Split(c.origins, ",") {
		if o = strings.TrimSpace(o); o != "" {
			if err := tenants.CheckOrigin(o); err != nil {
				return api.Config{}, err
			}
			cfg.Origins = append(cfg.Origins, o)
		}
	}
	if c.jwtSecret != "" || c.jwks != "" {
		j := &auth.JWTConfig{Issuer: c.jwtIssuer}
		if c.jwtSecret != "" {
			secret := []byte(c.jwtSecret)
			if path, ok := strings.CutPrefix(c.jwtSecret, "@"); ok {
				b, err := os.ReadFile(path)
				if err != nil {
					return api.Config{}, fmt.Errorf("jwt secret: %w", err)
				}
				secret = []byte(strings.TrimSpace(string(b)))
			}
			if len(secret) < 32 {
				return api.Config{}, fmt.Errorf("jwt secret: %d bytes is too short to sign with; use at least 32", len(secret))
			}
			j.HS256Secret = secret
		}
		if c.jwks != "" {
			keys, err := auth.LoadJWKS(c.jwks)
			if err != nil {
				return api.Config{}, err
			}
			j.Keys = keys
		}
		cfg.JWT = j
	}
	return cfg, nil
}
