package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"strata/admin"
	"strata/audit"
	"strata/auth"
	"strata/log"
	"strata/quota"
	"strata/tenants"
)

// adminCmd is what the account and tenant subcommands share: their flags
// (--data, --users), and the admin service acting as the operator at the
// terminal, whose changes the audit log records as "cli:<user>".
type adminCmd struct {
	*cmdFlags
	c config
}

func newAdminCmd(name, synopsis, about string, stdout, stderr io.Writer) *adminCmd {
	a := &adminCmd{c: loadSettings().config()}
	a.cmdFlags = newCmdFlags(name, synopsis, about, stdout, stderr)
	a.dataFlag(&a.c.data)
	a.usersFlag(&a.c.users)
	return a
}

// service opens the audit log and returns the admin service; done closes
// the log. Unless creates, the data directory must exist already: only
// the commands that make something may make it.
func (a *adminCmd) service(creates bool) (*admin.Service, func(), int) {
	if !creates && !dataDirExists(a.c.data, a.stderr) {
		return nil, nil, exitUsage
	}
	prepareDataDir(a.c.data, warnTo(a.stderr))
	al, err := audit.Open(filepath.Join(a.c.data, admin.SystemDir, admin.AuditDir), log.Options{}, false)
	if err != nil {
		return nil, nil, a.fail(err)
	}
	who := "cli"
	if u, err := user.Current(); err == nil {
		who = "cli:" + u.Username
	}
	return &admin.Service{Data: a.c.data, UsersFile: a.c.users, Audit: al, By: who}, func() { al.Close() }, -1
}

// fail reports err; something named that does not exist, or a value the
// command refuses, is exit 2 like any other wrong command line.
func (a *adminCmd) fail(err error) int {
	fmt.Fprintln(a.stderr, "strata:", err)
	for _, e := range []error{admin.ErrInvalid, admin.ErrNotFound, tenants.ErrNotFound, tenants.ErrInvalidName, tenants.ErrExists} {
		if errors.Is(err, e) {
			return exitUsage
		}
	}
	return exitFail
}

func (a *adminCmd) json(v any) int {
	enc := json.NewEncoder(a.stdout)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return a.fail(err)
	}
	return exitOK
}

// exitStatus is said once, in every group's help.
const exitStatus = `Exit status: 0 done; 1 failed; 2 a wrong command line, or it names a
tenant, user or token that does not exist.
`

const tenantUsage = `Usage: strata tenant COMMAND [flags]

Commands:
  create NAME    make a tenant (names: ^[a-z0-9][a-z0-9-]{0,62}$)
  list           every tenant, its state and tier
  show NAME      a tenant's configuration and effective limits, as JSON
  set NAME       change its tier, quotas or browser origins
  suspend NAME   refuse its requests (403), keeping its data
  resume NAME    serve it again
  delete NAME    move its data to DATA/deleted/ (--purge: remove it)

Run 'strata tenant COMMAND --help' for a command's flags.
` + exitStatus

func cmdTenant(args []string, stdout, stderr io.Writer) int {
	return verbs("tenant", tenantUsage, args, stdout, stderr, map[string]func([]string) int{
		"create":  func(args []string) int { return tenantChange("create", args, stdout, stderr) },
		"set":     func(args []string) int { return tenantChange("set", args, stdout, stderr) },
		"suspend": func(args []string) int { return tenantChange("suspend", args, stdout, stderr) },
		"resume":  func(args []string) int { return tenantChange("resume", args, stdout, stderr) },
		"delete":  func(args []string) int { return tenantChange("delete", args, stdout, stderr) },
		"list":    func(args []string) int { return tenantList(args, stdout, stderr) },
		"show":    func(args []string) int { return tenantShow(args, stdout, stderr) },
	})
}

var tenantAbout = map[string][2]string{
	"create":  {"NAME [--tier T] [--origins O,…] [quota flags]", "Make a tenant. Its quotas are its tier's, changed by the quota flags."},
	"set":     {"NAME [--tier T] [--origins O,…] [quota flags]", "Change a tenant's tier, quotas or browser origins."},
	"suspend": {"NAME [--reason TEXT]", "Refuse the tenant's requests (403 tenant_suspended, with the reason); its data stays."},
	"resume":  {"NAME", "Serve a suspended tenant again."},
	"delete":  {"NAME [--purge]", "Take a tenant out of service: its directory moves to DATA/deleted/, or is\nremoved with --purge. Its tokens and user grants are revoked."},
}

func tenantChange(verb string, args []string, stdout, stderr io.Writer) int {
	about := tenantAbout[verb]
	a := newAdminCmd("tenant "+verb, about[0], about[1], stdout, stderr)
	var tier, origins, reason *string
	var purge *bool
	var ov quota.Overrides
	switch verb {
	case "create", "set":
		def := " (default " + quota.DefaultTier + ")"
		if verb == "set" {
			def = " (default: unchanged)"
		}
		tier = a.String("tier", "", "quota `tier`: "+strings.Join(quota.Tiers(), ", ")+def)
		origins = a.String("origins", "", "browser `origins` allowed to call it, comma-separated (https://app.example.com)")
		quotaFlags(a.cmdFlags, &ov)
	case "suspend":
		reason = a.String("reason", "", "why (`text`), shown to the tenant's clients")
	case "delete":
		purge = a.Bool("purge", false, "remove the data now instead of moving it to DATA/deleted/")
	}
	pos, code := a.parse(args, 1, 1)
	if code >= 0 {
		return code
	}
	name := pos[0]
	if !tenants.ValidName(name) {
		return a.fail(fmt.Errorf("tenant %q: %w", name, tenants.ErrInvalidName))
	}
	var originList *[]string
	if origins != nil && *origins != "" {
		l := []string{}
		for _, o := range strings.Split(*origins, ",") {
			if o = strings.TrimSpace(o); o != "" {
				l = append(l, o)
			}
		}
		originList = &l
	}
	if verb == "set" && *tier == "" && ov == (quota.Overrides{}) && originList == nil {
		return a.usageError("nothing to change: give --tier, --origins or a quota flag")
	}
	s, done, code := a.service(verb == "create")
	if code >= 0 {
		return code
	}
	defer done()
	var c tenants.Config
	var err error
	switch verb {
	case "create":
		c = tenants.Config{Name: name, Tier: *tier, Quota: ov}
		if originList != nil {
			c.Origins = *originList
		}
		c, err = s.CreateTenant(c)
	case "set":
		action := "tenant.update"
		if *tier != "" || ov != (quota.Overrides{}) {
			action = "quota.update"
		}
		c, err = s.UpdateTenant(name, action, map[string]any{"tier": *tier, "quota": ov, "cors_origins": originList}, func(t *tenants.Config) error {
			if *tier != "" {
				t.Tier = *tier
			}
			t.Quota = t.Quota.With(ov)
			if originList != nil {
				t.Origins = *originList
			}
			return nil
		})
	case "suspend":
		c, err = s.Suspend(name, *reason)
	case "resume":
		c, err = s.Resume(name)
	case "delete":
		d, err := s.DeleteTenant(name, *purge)
		if err != nil {
			return a.fail(err)
		}
		if d.MovedTo != "" {
			fmt.Fprintf(stdout, "deleted %s; its data is kept in %s\n", name, d.MovedTo)
		} else {
			fmt.Fprintf(stdout, "deleted %s and its data\n", name)
		}
		fmt.Fprintf(stdout, "revoked its %d tokens and %d user grants\n", len(d.Tokens), len(d.Users))
		return exitOK
	}
	if err != nil {
		return a.fail(err)
	}
	return a.json(withLimits(c))
}

// withLimits is a tenant's configuration with the limits in effect (its
// tier with its overrides: a burst of 0 shown as the burst it means), as
// every tenant command prints it.
func withLimits(c tenants.Config) any {
	return struct {
		tenants.Config
		Limits quota.Limits `json:"limits"`
	}{c, c.Limits()}
}

// quotaFlags adds the flags that override a tier's quotas.
func quotaFlags(f *cmdFlags, ov *quota.Overrides) {
	setInt := func(name, help string, dst **int64, size bool) {
		f.Func(name, help, func(v string) error {
			var n int64
			var err error
			if size {
				n, err = parseSize(v)
			} else {
				_, err = fmt.Sscan(v, &n)
			}
			if err != nil {
				return err
			}
			*dst = &n
			return nil
		})
	}
	setInt("events-per-day", "`N` events per UTC day; 0: unlimited", &ov.EventsPerDay, false)
	setInt("storage", "`size` of log and blobs, e.g. 10G; 0: unlimited", &ov.StorageBytes, true)
	setInt("max-blob", "largest blob (`size`), e.g. 100M; 0: unlimited", &ov.MaxBlob, true)
	setInt("projections", "`N` projections defined at once; 0: unlimited", &ov.Projections, false)
	setInt("cache-entries", "`N` entries in the tenant's cache (PUT /cache); 0: unlimited", &ov.CacheEntries, false)
	setInt("cache-bytes", "`size` of the tenant's cache, e.g. 10M; 0: unlimited", &ov.CacheBytes, true)
	f.Func("rps", "`N` requests per second per credential; 0: unlimited", func(v string) error {
		var r float64
		if _, err := fmt.Sscan(v, &r); err != nil {
			return err
		}
		ov.RequestsPerSecond = &r
		return nil
	})
	f.Func("burst", "`N` requests a credential may send at once after idling; 0: two seconds' worth (2 × rps)", func(v string) error {
		var n int
		if _, err := fmt.Sscan(v, &n); err != nil {
			return err
		}
		ov.Burst = &n
		return nil
	})
}

func tenantList(args []string, stdout, stderr io.Writer) int {
	a := newAdminCmd("tenant list", "", "Every tenant, its state and tier.", stdout, stderr)
	if _, code := a.parse(args, 0, 0); code >= 0 {
		return code
	}
	if !dataDirExists(a.c.data, stderr) {
		return exitUsage
	}
	cs, err := tenants.List(a.c.data)
	if err != nil {
		return a.fail(err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATE\tTIER\tCREATED")
	for _, c := range cs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", c.Name, c.State, c.Tier, c.Created.Format(time.RFC3339))
	}
	tw.Flush()
	return exitOK
}

func tenantShow(args []string, stdout, stderr io.Writer) int {
	a := newAdminCmd("tenant show", "NAME", "A tenant's configuration and the limits in effect (its tier with its\noverrides), as JSON.", stdout, stderr)
	pos, code := a.parse(args, 1, 1)
	if code >= 0 {
		return code
	}
	if !dataDirExists(a.c.data, stderr) {
		return exitUsage
	}
	c, err := tenants.Get(a.c.data, pos[0])
	if err != nil {
		if errors.Is(err, tenants.ErrInvalidName) {
			err = fmt.Errorf("tenant %q: %w", pos[0], err)
		}
		return a.fail(err)
	}
	return a.json(withLimits(c))
}

const tokenUsage = `Usage: strata token COMMAND [flags]

Commands:
  create --role R [--tenant T]   make an API token; it is printed once, only its hash is kept
  list [--tenant T]              the tokens (never their secrets)
  revoke ID                      end a token at once

Run 'strata token COMMAND --help' for a command's flags.
` + exitStatus

func cmdToken(args []string, stdout, stderr io.Writer) int {
	return verbs("token", tokenUsage, args, stdout, stderr, map[string]func([]string) int{
		"create": func(args []string) int { return tokenCreate(args, stdout, stderr) },
		"list":   func(args []string) int { return tokenList(args, stdout, stderr) },
		"revoke": func(args []string) int { return tokenRevoke(args, stdout, stderr) },
	})
}

func tokenCreate(args []string, stdout, stderr io.Writer) int {
	a := newAdminCmd("token create", "--role R [--tenant T] [--expires 30d] [--name NAME]",
		"Make an API token and print it once on standard output; only its hash is\nkept. An admin token reaches every tenant and takes no --tenant.", stdout, stderr)
	role := a.String("role", "", "the `role`: admin, writer, reader, appender, or metrics (a scraper's: GET /metrics and stats only)")
	tenant := a.String("tenant", "", "the `tenant` the token is for (not for an admin or metrics token)")
	expires := a.String("expires", "", "`lifetime`, e.g. 30d or 12h (default: never)")
	name := a.String("name", "", "a `name` to tell the token by")
	a.require("role")
	if _, code := a.parse(args, 0, 0); code >= 0 {
		return code
	}
	r, err := auth.ParseRole(*role)
	if err != nil {
		return a.usageError("--role: %v", err)
	}
	var ttl time.Duration
	if *expires != "" {
		if ttl, err = auth.ParseDuration(*expires); err != nil {
			return a.usageError("--expires: %v", err)
		}
	}
	s, done, code := a.service(true)
	if code >= 0 {
		return code
	}
	defer done()
	secret, t, err := s.CreateToken(*tenant, r, *name, ttl)
	if err != nil {
		return a.fail(err)
	}
	fmt.Fprintln(stdout, secret)
	exp := "never"
	if !t.Expires.IsZero() {
		exp = t.Expires.Format(time.RFC3339)
	}
	fmt.Fprintf(stderr, "token %s: role %s, tenant %s, expires %s. It is shown this once; keep it secret.\n", t.ID, t.Role, orAll(t.Tenant), exp)
	return exitOK
}

func tokenList(args []string, stdout, stderr io.Writer) int {
	a := newAdminCmd("token list", "[--tenant T]", "The installation's API tokens (their ids and names, never their secrets).", stdout, stderr)
	tenant := a.String("tenant", "", "only the tokens of this `tenant`")
	if _, code := a.parse(args, 0, 0); code >= 0 {
		return code
	}
	if !dataDirExists(a.c.data, stderr) {
		return exitUsage
	}
	s := &admin.Service{Data: a.c.data}
	ts, err := s.Tokens().List()
	if err != nil {
		return a.fail(err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTENANT\tROLE\tNAME\tCREATED\tEXPIRES")
	for _, t := range ts {
		if *tenant != "" && t.Tenant != *tenant {
			continue
		}
		exp := "never"
		if !t.Expires.IsZero() {
			exp = t.Expires.Format(time.RFC3339)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, orAll(t.Tenant), t.Role, t.Name, t.Created.Format(time.RFC3339), exp)
	}
	tw.Flush()
	return exitOK
}

func tokenRevoke(args []string, stdout, stderr io.Writer) int {
	a := newAdminCmd("token revoke", "ID", "End a token at once: requests with it fail from then on.", stdout, stderr)
	pos, code := a.parse(args, 1, 1)
	if code >= 0 {
		return code
	}
	s, done, code := a.service(false)
	if code >= 0 {
		return code
	}
	defer done()
	t, err := s.RevokeToken(pos[0])
	if err != nil {
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, auth.ErrUnknown) {
			fmt.Fprintf(stderr, "strata: no token %q (strata token list shows them)\n", pos[0])
			return exitUsage
		}
		return a.fail(err)
	}
	fmt.Fprintf(stdout, "revoked %s\n", t.ID)
	return exitOK
}

func orAll(tenant string) string {
	if tenant == "" {
		return "*"
	}
	return tenant
}

const userUsage = `Usage: strata user COMMAND [flags]

Commands:
  add NAME --role R [--tenant T]     a user with a password (asked for twice on a terminal)
  passwd NAME                        change a user's password
  grant NAME --role R [--tenant T]   set a user's tenant and role (say, for an htpasswd -B user)
  delete NAME                        remove a user's password and grant
  list                               the users, their tenants and roles

Passwords are kept as bcrypt in the htpasswd file (Apache's htpasswd -B
writes the same); tenants and roles in DATA/system/grants. On a terminal
the password is asked for twice and not shown; otherwise, or with
--password-stdin, it is the first line of standard input.

Run 'strata user COMMAND --help' for a command's flags.
` + exitStatus

func cmdUser(args []string, stdout, stderr io.Writer) int {
	return verbs("user", userUsage, args, stdout, stderr, map[string]func([]string) int{
		"add":    func(args []string) int { return userChange("add", args, stdout, stderr) },
		"passwd": func(args []string) int { return userChange("passwd", args, stdout, stderr) },
		"grant":  func(args []string) int { return userChange("grant", args, stdout, stderr) },
		"delete": func(args []string) int { return userChange("delete", args, stdout, stderr) },
		"list":   func(args []string) int { return userList(args, stdout, stderr) },
	})
}

var userAbout = map[string][2]string{
	"add":    {"NAME --role R [--tenant T] [--password-stdin]", "Add a user with a password and a grant (an admin takes no --tenant)."},
	"passwd": {"NAME [--password-stdin]", "Change a user's password; the user's sessions end at once."},
	"grant":  {"NAME --role R [--tenant T]", "Set a user's tenant and role, keeping the password (or the htpasswd\nfile's, for a user made with htpasswd -B)."},
	"delete": {"NAME", "Remove a user's password and grant."},
}

func userChange(verb string, args []string, stdout, stderr io.Writer) int {
	about := userAbout[verb]
	a := newAdminCmd("user "+verb, about[0], about[1], stdout, stderr)
	var tenant, role *string
	var fromStdin *bool
	if verb == "add" || verb == "grant" {
		role = a.String("role", "", "the `role`: admin, writer, reader or appender")
		tenant = a.String("tenant", "", "the user's `tenant` (not for an admin, who reaches every tenant)")
		a.require("role")
	}
	if verb == "add" || verb == "passwd" {
		fromStdin = a.Bool("password-stdin", false, "read the password from the first line of standard input (for scripts)")
	}
	pos, code := a.parse(args, 1, 1)
	if code >= 0 {
		return code
	}
	name := pos[0]
	var r auth.Role
	if role != nil {
		var err error
		if r, err = auth.ParseRole(*role); err != nil {
			return a.usageError("--role: %v", err)
		}
	}
	s, done, code := a.service(verb == "add")
	if code >= 0 {
		return code
	}
	defer done()
	var err error
	switch verb {
	case "add", "passwd":
		if verb == "passwd" {
			if err := userExists(s, name); err != nil {
				return a.fail(err)
			}
		}
		p, perr := readPassword(name, *fromStdin, stderr)
		if perr != nil {
			return a.fail(perr)
		}
		t := ""
		if tenant != nil {
			t = *tenant
		}
		err = s.SetUser(name, p, t, r)
	case "grant":
		err = s.SetUser(name, "", *tenant, r)
	case "delete":
		err = s.DeleteUser(name)
	}
	if err != nil {
		return a.fail(err)
	}
	fmt.Fprintf(stdout, "%s %s\n", verb, name)
	return exitOK
}

// userExists: passwd changes a password, it does not make a user
// without a grant.
func userExists(s *admin.Service, name string) error {
	us, err := s.Users()
	if err != nil {
		return err
	}
	for _, u := range us {
		if u.Name == name {
			return nil
		}
	}
	return fmt.Errorf("user %s: %w (strata user add makes one)", name, admin.ErrNotFound)
}

// readPassword asks for a password twice, unechoed, when standard input is
// a terminal; otherwise (a script, or --password-stdin) it reads the first
// line of standard input.
func readPassword(name string, fromStdin bool, stderr io.Writer) (string, error) {
	var p string
	if fd := int(os.Stdin.Fd()); !fromStdin && term.IsTerminal(fd) {
		// Echo goes off before the first prompt and stays off until both
		// are read: term.ReadPassword turns it off only once it is
		// called, after the prompt, so a line typed (or pasted) as the
		// prompt appears would be shown.
		if restore, err := echoOff(fd); err == nil {
			defer restore()
		}
		fmt.Fprintf(stderr, "password for %s: ", name)
		b, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		if len(b) < 8 { // say so before asking for it again
			return "", fmt.Errorf("%w: a password needs at least 8 characters", admin.ErrInvalid)
		}
		fmt.Fprintf(stderr, "again: ")
		again, err := term.ReadPassword(fd)
		fmt.Fprintln(stderr)
		if err != nil {
			return "", err
		}
		if string(again) != string(b) {
			return "", fmt.Errorf("%w: the two passwords differ; nothing was changed", admin.ErrInvalid)
		}
		p = string(b)
	} else {
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		p = strings.TrimRight(line, "\r\n")
	}
	if len(p) < 8 {
		return "", fmt.Errorf("%w: a password needs at least 8 characters", admin.ErrInvalid)
	}
	return p, nil
}

func userList(args []string, stdout, stderr io.Writer) int {
	a := newAdminCmd("user list", "", "The users, with their tenants and roles.", stdout, stderr)
	if _, code := a.parse(args, 0, 0); code >= 0 {
		return code
	}
	if !dataDirExists(a.c.data, stderr) {
		return exitUsage
	}
	s := &admin.Service{Data: a.c.data, UsersFile: a.c.users}
	us, err := s.Users()
	if err != nil {
		return a.fail(err)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tTENANT\tROLE")
	for _, u := range us {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", u.Name, u.Tenant, u.Role)
	}
	tw.Flush()
	return exitOK
}

// echoOff turns the terminal's echo off and returns what turns it back on.
func echoOff(fd int) (restore func(), err error) {
	old, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return nil, err
	}
	quiet := *old
	quiet.Lflag &^= unix.ECHO
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, &quiet); err != nil {
		return nil, err
	}
	return func() { _ = unix.IoctlSetTermios(fd, unix.TCSETS, old) }, nil
}
