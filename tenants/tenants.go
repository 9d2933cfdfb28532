package tenants

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"strata/internal/fileutil"
	"strata/quota"
)

// File and directory names.
const (
	tenantsDir = "tenants"
	deletedDir = "deleted"
	configFile = "tenant.json"
	lockFile   = "tenant.lock"
)

// DefaultTier is the tier of a tenant created without one.
const DefaultTier = "standard"

// State is whether a tenant is served.
type State string

// The states of a tenant.
const (
	Active    State = "active"
	Suspended State = "suspended"
)

// Errors.
var (
	ErrInvalidName = errors.New("a tenant name is 1-63 characters: lowercase letters, digits and '-', not starting with '-'")
	ErrNotFound    = errors.New("no such tenant")
	ErrExists      = errors.New("the tenant exists already")
	// ErrInvalid: a configuration that Check refuses (besides its name),
	// in terms a client can act on.
	ErrInvalid = errors.New("invalid tenant configuration")
)

// Config is a tenant's tenant.json.
type Config struct {
	Name string `json:"name"`
	// ID is the tenant's creation id: random, made when the tenant is
	// created and never changed, so that a tenant deleted and created
	// again under the same name is a different tenant. Credentials are
	// bound to it (see the package doc). "" for a tenant made before ids
	// existed.
	ID    string `json:"id,omitempty"`
	State State  `json:"state"`
	// Reason is the operator's note on a suspension, shown to the tenant's
	// clients.
	Reason  string          `json:"reason,omitempty"`
	Tier    string          `json:"tier"`
	Quota   quota.Overrides `json:"quota"`
	Origins []string        `json:"cors_origins,omitempty"`
	Created time.Time       `json:"created"`
	Updated time.Time       `json:"updated"`
}

// Limits returns the tenant's quotas: its tier's, with its overrides, and
// the burst in effect where a rate applies.
func (c Config) Limits() quota.Limits {
	l, ok := quota.Tier(c.Tier)
	if !ok {
		l, _ = quota.Tier(DefaultTier)
	}
	l = l.Merge(c.Quota)
	if l.Burst == 0 && l.RequestsPerSecond > 0 {
		// Burst 0 stands for a default; what is shown (tenant show,
		// GET /quota) is the burst the limiter applies.
		l.Burst = l.EffectiveBurst()
	}
	return l
}

// Check reports what is wrong with c, if anything: ErrInvalidName, or an
// error that wraps ErrInvalid.
func (c Config) Check() error {
	if !ValidName(c.Name) {
		return ErrInvalidName
	}
	if err := c.check(); err != nil {
		return fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return nil
}

func (c Config) check() error {
	if c.State != Active && c.State != Suspended {
		return fmt.Errorf("state %q: a tenant is %q or %q", c.State, Active, Suspended)
	}
	if _, ok := quota.Tier(c.Tier); !ok {
		return fmt.Errorf("tier %q: the tiers are %s", c.Tier, strings.Join(quota.Tiers(), ", "))
	}
	if err := c.Limits().Validate(); err != nil {
		return err
	}
	for _, o := range c.Origins {
		if err := CheckOrigin(o); err != nil {
			return err
		}
	}
	return nil
}

// CheckOrigin reports whether o can be an allowed CORS origin: "*" or a
// scheme://host[:port] with nothing after it.
func CheckOrigin(o string) error {
	if o == "*" {
		return nil
	}
	scheme, rest, ok := strings.Cut(o, "://")
	if !ok || (scheme != "http" && scheme != "https") || rest == "" || strings.ContainsAny(rest, "/?#@ \t") {
		return fmt.Errorf("origin %q: an origin is scheme://host[:port], such as https://app.example.com, or *", o)
	}
	return nil
}

// ValidName reports whether name matches ^[a-z0-9][a-z0-9-]{0,62}$.
func ValidName(name string) bool {
	if len(name) == 0 || len(name) > 63 || name[0] == '-' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Dir is the directory of the tenant name, which must be valid.
func Dir(data, name string) string { return filepath.Join(data, tenantsDir, name) }

// Get returns the tenant's configuration.
func Get(data, name string) (Config, error) {
	if !ValidName(name) {
		return Config{}, ErrInvalidName
	}
	dir := Dir(data, name)
	b, err := os.ReadFile(filepath.Join(dir, configFile))
	if errors.Is(err, fs.ErrNotExist) {
		fi, serr := os.Stat(dir)
		if serr != nil || !fi.IsDir() {
			return Config{}, fmt.Errorf("tenant %s: %w", name, ErrNotFound)
		}
		return Config{Name: name, State: Active, Tier: DefaultTier, Created: fi.ModTime().UTC()}, nil
	}
	if err != nil {
		return Config{}, fmt.Errorf("tenant %s: %w", name, err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return Config{}, fmt.Errorf("tenant %s: %s: %w", name, configFile, err)
	}
	c.Name = name
	if c.Tier == "" {
		c.Tier = DefaultTier
	}
	if c.State == "" {
		c.State = Active
	}
	return c, nil
}

// Exists reports whether the tenant's directory exists.
func Exists(data, name string) bool {
	if !ValidName(name) {
		return false
	}
	fi, err := os.Stat(Dir(data, name))
	return err == nil && fi.IsDir()
}

// Create makes a new tenant. c.Name must be free; empty fields take their
// defaults.
func Create(data string, c Config, now time.Time) (Config, error) {
	if c.State == "" {
		c.State = Active
	}
	if c.Tier == "" {
		c.Tier = DefaultTier
	}
	c.Created, c.Updated = now.UTC(), now.UTC()
	id, err := newID()
	if err != nil {
		return Config{}, err
	}
	c.ID = id
	if err := c.Check(); err != nil {
		return Config{}, err
	}
	parent := filepath.Join(data, tenantsDir)
	if err := fileutil.MkdirAll(parent, 0o755); err != nil {
		return Config{}, err
	}
	if err := fileutil.Guard(data); err != nil {
		return Config{}, err
	}
	dir := Dir(data, c.Name)
	if err := fileutil.Mkdir(dir, 0o755); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return Config{}, fmt.Errorf("tenant %s: %w", c.Name, ErrExists)
		}
		return Config{}, err
	}
	if err := write(dir, c); err != nil {
		os.RemoveAll(dir)
		return Config{}, err
	}
	return c, fileutil.SyncDir(parent)
}

// Ensure makes the tenant's directory if it is missing, without
// configuration: what an installation without accounts does for its one
// tenant.
func Ensure(data, name string) error {
	if !ValidName(name) {
		return ErrInvalidName
	}
	if err := fileutil.MkdirAll(Dir(data, name), 0o755); err != nil {
		return err
	}
	return fileutil.Guard(data)
}

// Update changes a tenant's configuration under its lock: fn changes c,
// and the result is checked and written atomically.
func Update(data, name string, now time.Time, fn func(c *Config) error) (Config, error) {
	if !ValidName(name) {
		return Config{}, ErrInvalidName
	}
	dir := Dir(data, name)
	unlock, err := lock(dir)
	if err != nil {
		return Config{}, err
	}
	defer unlock()
	c, err := Get(data, name)
	if err != nil {
		return Config{}, err
	}
	old := c
	if err := fn(&c); err != nil {
		return Config{}, err
	}
	c.Name, c.ID = name, old.ID // neither can change
	c.Updated = now.UTC()
	if err := c.Check(); err != nil {
		return Config{}, err
	}
	return c, write(dir, c)
}

// List returns every tenant, by name.
func List(data string) ([]Config, error) {
	ents, err := os.ReadDir(filepath.Join(data, tenantsDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var cs []Config
	for _, e := range ents {
		if !e.IsDir() || !ValidName(e.Name()) {
			continue
		}
		c, err := Get(data, e.Name())
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Name < cs[j].Name })
	return cs, nil
}

// Delete takes the tenant out of service: its directory moves to
// <data>/deleted/<name>.<unix nanoseconds>, which is returned, or is
// removed outright with purge. Processes that have the tenant's log open
// keep writing to the moved files until they next look at the tenant (a
// running server does so within a second).
func Delete(data, name string, purge bool, now time.Time) (string, error) {
	if !Exists(data, name) {
		if !ValidName(name) {
			return "", ErrInvalidName
		}
		return "", fmt.Errorf("tenant %s: %w", name, ErrNotFound)
	}
	dir := Dir(data, name)
	if err := fileutil.MkdirAll(filepath.Join(data, deletedDir), 0o700); err != nil {
		return "", err
	}
	to := filepath.Join(data, deletedDir, name+"."+strconv.FormatInt(now.UnixNano(), 10))
	if err := fileutil.Rename(dir, to); err != nil {
		return "", err
	}
	if err := fileutil.SyncDir(filepath.Join(data, tenantsDir)); err != nil {
		return "", err
	}
	if purge {
		return "", os.RemoveAll(to)
	}
	return to, nil
}

// newID makes a creation id: 16 random bytes in hex.
func newID() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return hex.EncodeToString(b[:]), nil
}

// Stamp identifies the current version of a tenant's configuration, so a
// long-running server can tell cheaply whether it changed: the
// configuration file's change time and size, or "" if there is none.
func Stamp(data, name string) string {
	fi, err := os.Stat(filepath.Join(Dir(data, name), configFile))
	if err != nil {
		if Exists(data, name) {
			return "-"
		}
		return ""
	}
	return fi.ModTime().String() + "/" + strconv.FormatInt(fi.Size(), 10)
}

func write(dir string, c Config) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return fileutil.WriteFile(filepath.Join(dir, configFile), append(b, '\n'), 0o644)
}

// lockWait bounds the wait for a tenant's configuration lock; a variable
// for the tests.
var lockWait = 10 * time.Second

// ErrLockTimeout: another process held the tenant's configuration lock
// for longer than lockWait. It matches fileutil.ErrLockTimeout too.
var ErrLockTimeout = fmt.Errorf("tenant configuration lock: %w", fileutil.ErrLockTimeout)

// lock takes the tenant's configuration lock, waiting up to lockWait.
func lock(dir string) (func(), error) {
	f, err := fileutil.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("tenant %s: %w", filepath.Base(dir), ErrNotFound)
		}
		return nil, err
	}
	if err := fileutil.Lock(f, lockWait, nil); err != nil {
		f.Close()
		if errors.Is(err, fileutil.ErrLockTimeout) {
			err = ErrLockTimeout
		}
		return nil, fmt.Errorf("lock tenant %s: %w", filepath.Base(dir), err)
	}
	return func() { f.Close() }, nil
}
