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

	"strata/cgi"
)

const usage = `strata — an event store in one binary

Usage:
  strata serve   [--addr 127.0.0.1] [--port 8080] [--data DIR] [--tls-cert F --tls-key F] [options]
  strata tenant  create|list|show|set|suspend|resume|delete …
  strata token   create|list|revoke …
  strata user    add|passwd|grant|delete|list …
  strata verify  [--data DIR] [--tenant NAME | --audit | --all]
  strata reindex [--data DIR] [--tenant default]
  strata version

Every request needs credentials unless the server runs with --auth=none
(STRATA_AUTH=none), which makes everyone an administrator: for local
development only. Start with an administrator's token:

  strata tenant create shop
  strata token create --role admin --name ops

Run as a CGI program (GATEWAY_INTERFACE set) or under mod_fcgid (standard
input a socket) it serves the HTTP API and reads its configuration from the
environment (STRATA_DATA, STRATA_AUTH, STRATA_USERS, …) or from strata.conf
next to the binary. --data defaults to $STRATA_DATA, else ./data. Run a
subcommand with --help for its options.
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
	case "tenant":
		return cmdTenant(rest, stdout, stderr)
	case "token":
		return cmdToken(rest, stdout, stderr)
	case "user":
		return cmdUser(rest, stdout, stderr)
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
