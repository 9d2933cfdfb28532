// Command strata is an event store in one binary: it serves the HTTP API as
// a CGI program (when GATEWAY_INTERFACE is set), as a FastCGI worker (when
// standard input is a socket), or standalone (strata serve), and carries the
// operator's subcommands (accounts, tenants, verify, reindex). Package main
// is the only place where the concrete packages meet.
package main

import (
	"fmt"
	"io"
	"os"
	"strings"

	"strata/cgi"
)

const usage = `strata — an event store in one binary

Usage: strata COMMAND [flags]

Commands:
  serve     serve the HTTP API standalone (--addr, --port, --data, --tls-cert …)
  tenant    create|list|show|set|suspend|resume|delete tenants
  token     create|list|revoke API tokens
  user      add|passwd|grant|delete|list users with passwords
  verify    check every hash chain (or --tenant NAME, --audit)
  reindex   rebuild every index from its log (or --tenant NAME, --audit)
  compact   compress every sealed log segment now (or --tenant NAME, --audit)
  rebuild   rebuild a projection's result, with progress (PROJECTION --tenant NAME)
  projection list|show a tenant's projections
  backup    back up into a directory (--to DIR, --incremental); list, verify
  restore   restore backups into an empty data directory, then verify
  export    write a tenant's events as NDJSON (--tenant NAME, --out FILE)
  import    append NDJSON events to a tenant, resumably (--tenant NAME FILE)
  version   print the version

Run 'strata COMMAND --help' for a command's flags. Every command takes
--data DIR (default $STRATA_DATA, else ./data).

Every request needs credentials unless the server runs with --auth=none
(STRATA_AUTH=none), which makes everyone an administrator: for local
development only. Start with a tenant and an administrator's token:

  strata tenant create shop
  strata token create --role admin --name ops

Run as a CGI program (GATEWAY_INTERFACE set) or under mod_fcgid (standard
input a socket) it serves the HTTP API and reads its configuration from the
environment (STRATA_DATA, STRATA_AUTH, STRATA_USERS, …) or from strata.conf
next to the binary.
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
		return cmdServe(rest, stdout, stderr)
	case "backup":
		return cmdBackup(rest, stdout, stderr)
	case "restore":
		return cmdRestore(rest, stdout, stderr)
	case "export":
		return cmdExport(rest, stdout, stderr)
	case "import":
		return cmdImport(rest, stdout, stderr)
	case "verify":
		return cmdVerify(rest, stdout, stderr)
	case "reindex":
		return cmdReindex(rest, stdout, stderr)
	case "compact":
		return cmdCompact(rest, stdout, stderr)
	case "rebuild":
		return cmdRebuild(rest, stdout, stderr)
	case "projection":
		return cmdProjection(rest, stdout, stderr)
	case "tenant":
		return cmdTenant(rest, stdout, stderr)
	case "token":
		return cmdToken(rest, stdout, stderr)
	case "user":
		return cmdUser(rest, stdout, stderr)
	case "version", "--version":
		f := newCmdFlags("version", "", "Print the version.", stdout, stderr)
		if _, code := f.parse(rest, 0, 0); code >= 0 {
			return code
		}
		fmt.Fprintln(stdout, "strata", version)
		return exitOK
	case "help", "-h", "-help", "--help":
		if len(rest) > 0 && rest[0] != "help" {
			// strata help tenant = strata tenant --help, and
			// strata help tenant create = strata tenant create --help
			n := 1
			if len(rest) > 1 && !strings.HasPrefix(rest[1], "-") {
				n = 2
			}
			return run(append(rest[:n:n], "--help"), stdout, stderr)
		}
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	fmt.Fprintf(stderr, "strata: unknown command %q\n\n%s", cmd, usage)
	return exitUsage
}
