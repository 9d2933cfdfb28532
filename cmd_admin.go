package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"strata/admin"
	"strata/audit"
	"strata/auth"
	"strata/log"
	"strata/quota"
	"strata/tenants"
)

// adminCmd is what the account and tenant subcommands share: their flags,
// and the admin service acting as the operator at the terminal, whose
// changes the audit log records as "cli:<user>".
type adminCmd struct {
	fs   *flag.FlagSet
	c    config
	out  io.Writer
	errw io.Writer
}

func newAdminCmd(name string, stdout, stderr io.Writer) *adminCmd {
	a := &adminCmd{c: loadSettings().config(), out: stdout, errw: stderr}
	a.fs = flag.NewFlagSet(name, flag.ContinueOnError)
	a.fs.SetOutput(stderr)
	a.fs.StringVar(&a.c.data, "data", a.c.data, "data directory")
	a.fs.StringVar(&a.c.users, "users", a.c.users, "htpasswd file of users (default DATA/system/users)")
	return a
}

// parse parses flags that may come before or after the positional
// arguments, and returns the positional ones.
func (a *adminCmd) parse(args []string) ([]string, bool) {
	var pos []string
	for {
		if err := a.fs.Parse(args); err != nil {
			return nil, false
		}
		args = a.fs.Args()
		if len(args) == 0 {
			return pos, true
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// service opens the audit log and returns the admin service; done closes
// the log.
func (a *adminCmd) service() (*admin.Service, func(), error) {
	al, err := audit.Open(filepath.Join(a.c.data, admin.SystemDir, admin.AuditDir), log.Options{}, false)
	if err != nil {
		return nil, nil, err
	}
	who := "cli"
	if u, err := user.Current(); err == nil {
		who = "cli:" + u.Username
	}
	return &admin.Service{Data: a.c.data, UsersFile: a.c.users, Audit: al, By: who}, func() { al.Close() }, nil
}

// start parses args and opens the service; code is not -1 when the
// command must end with it at once.
func (a *adminCmd) start(args []string) (pos []string, s *admin.Service, done func(), code int) {
	pos, ok := a.parse(args)
	if !ok {
		return nil, nil, nil, 2
	}
	s, done, err := a.service()
	if err != nil {
		return nil, nil, nil, a.fail(err)
	}
	return pos, s, done, -1
}

func (a *adminCmd) fail(err error) int {
	fmt.Fprintln(a.errw, "strata:", err)
	return 1
}

func (a *adminCmd) json(v any) int {
	enc := json.NewEncoder(a.out)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return a.fail(err)
	}
	return 0
}

func usageErr(stderr io.Writer, u string) int {
	fmt.Fprint(stderr, u)
	return 2
}

const tenantUsage = `Usage:
  strata tenant create NAME [--tier standard] [--origins https://app.example.com,…]
  strata tenant list
  strata tenant show NAME
  strata tenant set NAME [--tier T] [--events-per-day N] [--storage SIZE] [--max-blob SIZE] [--rps N] [--burst N] [--origins …]
  strata tenant suspend NAME [--reason "…"]
  strata tenant resume NAME
  strata tenant delete NAME [--purge]
Tiers: ` + "free, standard (default), unlimited" + `. Quota values of 0 mean unlimited.
`

func cmdTenant(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return usageErr(stderr, tenantUsage)
	}
	a := newAdminCmd("tenant "+args[0], stdout, stderr)
	tier := a.fs.String("tier", "", "quota tier")
	origins := a.fs.String("origins", "", "allowed CORS origins, comma-separated")
	reason := a.fs.String("reason", "", "why the tenant is suspended (shown to its clients)")
	purge := a.fs.Bool("purge", false, "remove the data now instead of moving it to DATA/deleted/")
	var ov quota.Overrides
	setInt := func(name, help string, dst **int64, size bool) {
		a.fs.Func(name, help, func(v string) error {
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
	setInt("events-per-day", "events per UTC day (0: unlimited)", &ov.EventsPerDay, false)
	setInt("storage", "storage for log and blobs, e.g. 10G (0: unlimited)", &ov.StorageBytes, true)
	setInt("max-blob", "largest blob, e.g. 100M (0: unlimited)", &ov.MaxBlob, true)
	a.fs.Func("rps", "requests per second per credential (0: unlimited)", func(v string) error {
		var f float64
		if _, err := fmt.Sscan(v, &f); err != nil {
			return err
		}
		ov.RequestsPerSecond = &f
		return nil
	})
	a.fs.Func("burst", "requests at once above the rate", func(v string) error {
		var n int
		if _, err := fmt.Sscan(v, &n); err != nil {
			return err
		}
		ov.Burst = &n
		return nil
	})
	pos, ok := a.parse(args[1:])
	if !ok {
		return 2
	}
	verb := args[0]
	if verb == "list" {
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
		return 0
	}
	if len(pos) != 1 {
		return usageErr(stderr, tenantUsage)
	}
	name := pos[0]
	if !tenants.ValidName(name) {
		return a.fail(fmt.Errorf("tenant %q: %w", name, tenants.ErrInvalidName))
	}
	var originList *[]string
	if *origins != "" {
		l := []string{}
		for _, o := range strings.Split(*origins, ",") {
			if o = strings.TrimSpace(o); o != "" {
				l = append(l, o)
			}
		}
		originList = &l
	}
	if verb == "show" {
		c, err := tenants.Get(a.c.data, name)
		if err != nil {
			return a.fail(err)
		}
		return a.json(struct {
			tenants.Config
			Limits quota.Limits `json:"limits"`
		}{c, c.Limits()})
	}
	s, done, err := a.service()
	if err != nil {
		return a.fail(err)
	}
	defer done()
	var c tenants.Config
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
		var moved string
		if moved, err = s.DeleteTenant(name, *purge); err == nil {
			if moved != "" {
				fmt.Fprintf(stdout, "deleted %s; its data is kept in %s\n", name, moved)
			} else {
				fmt.Fprintf(stdout, "deleted %s and its data\n", name)
			}
			return 0
		}
	default:
		return usageErr(stderr, tenantUsage)
	}
	if err != nil {
		return a.fail(err)
	}
	return a.json(c)
}

const tokenUsage = `Usage:
  strata token create --role admin|writer|reader|appender [--tenant T] [--expires 30d] [--name NAME]
  strata token list [--tenant T]
  strata token revoke ID
The token is printed once; only its hash is kept. An admin token needs no --tenant.
`

func cmdToken(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return usageErr(stderr, tokenUsage)
	}
	a := newAdminCmd("token "+args[0], stdout, stderr)
	tenant := a.fs.String("tenant", "", "the tenant the token is for")
	role := a.fs.String("role", "", "admin, writer, reader or appender")
	expires := a.fs.String("expires", "", "lifetime, e.g. 30d, 12h (default: never)")
	name := a.fs.String("name", "", "a name to tell the token by")
	pos, s, done, code := a.start(args[1:])
	if code >= 0 {
		return code
	}
	defer done()
	switch args[0] {
	case "create":
		r, err := auth.ParseRole(*role)
		if err != nil {
			return a.fail(err)
		}
		var ttl time.Duration
		if *expires != "" {
			if ttl, err = auth.ParseDuration(*expires); err != nil {
				return a.fail(err)
			}
		}
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
		return 0
	case "list":
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
		return 0
	case "revoke":
		if len(pos) != 1 {
			return usageErr(stderr, tokenUsage)
		}
		t, err := s.RevokeToken(pos[0])
		if err != nil {
			return a.fail(err)
		}
		fmt.Fprintf(stdout, "revoked %s\n", t.ID)
		return 0
	}
	return usageErr(stderr, tokenUsage)
}

func orAll(tenant string) string {
	if tenant == "" {
		return "*"
	}
	return tenant
}

const userUsage = `Usage:
  strata user add NAME --tenant T --role R     (asks for the password; or --password-stdin)
  strata user passwd NAME                     (the same, password only)
  strata user grant NAME --tenant T --role R
  strata user delete NAME
  strata user list
Passwords are kept as bcrypt in the htpasswd file (Apache's htpasswd -B
writes the same); tenants and roles in DATA/system/grants.
`

func cmdUser(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		return usageErr(stderr, userUsage)
	}
	a := newAdminCmd("user "+args[0], stdout, stderr)
	tenant := a.fs.String("tenant", "", "the user's tenant (an admin may have none)")
	role := a.fs.String("role", "", "admin, writer, reader or appender")
	fromStdin := a.fs.Bool("password-stdin", false, "read the password from standard input")
	pos, s, done, code := a.start(args[1:])
	if code >= 0 {
		return code
	}
	defer done()
	var err error
	verb := args[0]
	if verb == "list" {
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
		return 0
	}
	if len(pos) != 1 {
		return usageErr(stderr, userUsage)
	}
	name := pos[0]
	var r auth.Role
	if *role != "" {
		if r, err = auth.ParseRole(*role); err != nil {
			return a.fail(err)
		}
	}
	password := func() (string, error) {
		if !*fromStdin {
			fmt.Fprintf(stderr, "password for %s (echoed; use --password-stdin to pipe it): ", name)
		}
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return "", err
		}
		p := strings.TrimRight(line, "\r\n")
		if len(p) < 8 {
			return "", errors.New("a password needs at least 8 characters")
		}
		return p, nil
	}
	switch verb {
	case "add", "passwd":
		if verb == "add" && r == "" {
			return a.fail(errors.New("give the new user a --role (and a --tenant unless admin)"))
		}
		p, err := password()
		if err != nil {
			return a.fail(err)
		}
		err = s.SetUser(name, p, *tenant, r)
	case "grant":
		if r == "" {
			return a.fail(errors.New("give a --role"))
		}
		err = s.SetUser(name, "", *tenant, r)
	case "delete":
		err = s.DeleteUser(name)
	default:
		return usageErr(stderr, userUsage)
	}
	if err != nil {
		return a.fail(err)
	}
	fmt.Fprintf(stdout, "%s %s\n", verb, name)
	return 0
}
