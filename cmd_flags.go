package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
)

// Exit codes of every subcommand.
const (
	exitOK    = 0
	exitFail  = 1 // the command ran and failed
	exitUsage = 2 // the command line is wrong, or names what does not exist
)

// cmdFlags are one subcommand's flags and help, with the conventions people
// know from other tools: --flag in the help, --help on standard output with
// exit 0, flags before or after the positional arguments, an unknown flag,
// a stray argument or a missing required flag refused with exit 2.
type cmdFlags struct {
	*flag.FlagSet
	name     string // "tenant create"
	synopsis string // what follows "strata <name>" in the usage line
	about    string // what the command does, a few lines
	stdout   io.Writer
	stderr   io.Writer
	shared   map[string]bool // flags listed apart, after the command's own
	required []string
}

func newCmdFlags(name, synopsis, about string, stdout, stderr io.Writer) *cmdFlags {
	f := &cmdFlags{FlagSet: flag.NewFlagSet(name, flag.ContinueOnError), name: name,
		synopsis: synopsis, about: about, stdout: stdout, stderr: stderr, shared: map[string]bool{}}
	// The flag package's own messages and usage say -flag; ours say
	// --flag, as README does.
	f.SetOutput(io.Discard)
	f.Usage = func() {}
	return f
}

// dataFlag adds --data, shared by every subcommand.
func (f *cmdFlags) dataFlag(dst *string) {
	f.StringVar(dst, "data", *dst, "the data `dir`ectory (default $STRATA_DATA, else ./data)")
	f.shared["data"] = true
}

// usersFlag adds --users, shared by the account subcommands.
func (f *cmdFlags) usersFlag(dst *string) {
	f.StringVar(dst, "users", *dst, "htpasswd `file` of users (default DATA/system/users, or $STRATA_USERS)")
	f.shared["users"] = true
}

// require marks flags the command cannot do without.
func (f *cmdFlags) require(names ...string) { f.required = append(f.required, names...) }

// printUsage writes the usage line, what the command does, and its flags
// (its own first, then the shared ones).
func (f *cmdFlags) printUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: strata %s\n", strings.TrimSpace(f.name+" "+f.synopsis))
	if f.about != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimRight(f.about, "\n"))
	}
	var own, shared []*flag.Flag
	f.VisitAll(func(fl *flag.Flag) {
		if f.shared[fl.Name] {
			shared = append(shared, fl)
		} else {
			own = append(own, fl)
		}
	})
	for _, group := range []struct {
		title string
		flags []*flag.Flag
	}{{"Flags", own}, {"Shared flags", shared}} {
		if len(group.flags) == 0 {
			continue
		}
		fmt.Fprintf(w, "\n%s:\n", group.title)
		for _, fl := range group.flags {
			arg, help := flag.UnquoteUsage(fl)
			switch arg {
			case "int", "uint", "float":
				arg = "N"
			case "string", "value":
				arg = "VALUE"
			}
			arg = strings.ToUpper(arg)
			left := "  --" + fl.Name
			if arg != "" {
				left += " " + arg
			}
			if f.isRequired(fl.Name) {
				help += " (required)"
			} else if showDefault(fl) {
				help += fmt.Sprintf(" (default %s)", fl.DefValue)
			}
			if len(left) < 26 {
				fmt.Fprintf(w, "%-26s%s\n", left, help)
			} else {
				fmt.Fprintf(w, "%s\n%26s%s\n", left, "", help)
			}
		}
	}
}

func (f *cmdFlags) isRequired(name string) bool {
	for _, r := range f.required {
		if r == name {
			return true
		}
	}
	return false
}

// showDefault: a default worth printing, one the help text does not give.
func showDefault(fl *flag.Flag) bool {
	switch fl.DefValue {
	case "", "0", "false", "0s":
		return false
	}
	return !strings.Contains(fl.Usage, "(default")
}

// usageError reports a wrong command line on standard error and returns
// the exit code for it.
func (f *cmdFlags) usageError(format string, args ...any) int {
	fmt.Fprintf(f.stderr, "strata %s: %s\nRun 'strata %s --help' for usage.\n", f.name, fmt.Sprintf(format, args...), f.name)
	return exitUsage
}

// parse parses args, flags and positional arguments in any order ("--"
// ends the flags), and checks that between min and max positional
// arguments were given (max -1: any number) and every required flag was
// set. It returns the positional arguments, and -1 to go on or the exit
// code to end with.
func (f *cmdFlags) parse(args []string, min, max int) ([]string, int) {
	var pos []string
	for {
		err := f.Parse(args)
		if errors.Is(err, flag.ErrHelp) {
			f.printUsage(f.stdout)
			return nil, exitOK
		}
		if err != nil {
			return nil, f.usageError("%s", dashes(err.Error()))
		}
		rest := f.Args()
		if len(rest) == 0 {
			break
		}
		if n := len(args) - len(rest); n > 0 && args[n-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if max >= 0 && len(pos) > max {
		if max == 0 {
			return nil, f.usageError("unexpected argument %q: it takes no arguments, only flags", pos[0])
		}
		return nil, f.usageError("unexpected argument %q", pos[max])
	}
	if len(pos) < min {
		return nil, f.usageError("missing %s", strings.TrimSpace(strings.Split(f.synopsis, "[")[0]))
	}
	set := map[string]bool{}
	f.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	for _, r := range f.required {
		if !set[r] {
			return nil, f.usageError("--%s is required", r)
		}
	}
	return pos, -1
}

// dashes rewrites the flag package's "-name" in an error as "--name"
// (it always names a flag with one dash, whatever was typed).
func dashes(msg string) string {
	return strings.NewReplacer(": -", ": --", "flag -", "flag --").Replace(msg)
}

// dataDirExists reports, on standard error, a data directory that is not
// there: the commands that only read or repair must not create one.
func dataDirExists(data string, stderr io.Writer) bool {
	fi, err := os.Stat(data)
	switch {
	case err == nil && fi.IsDir():
		prepareDataDir(data, warnTo(stderr))
		return true
	case err == nil:
		fmt.Fprintf(stderr, "strata: %s is not a directory (give --data or set STRATA_DATA)\n", data)
	case errors.Is(err, os.ErrNotExist):
		fmt.Fprintf(stderr, "strata: no data directory at %s (give --data or set STRATA_DATA)\n", data)
	default:
		fmt.Fprintf(stderr, "strata: data directory: %v\n", err)
	}
	return false
}

// verbs dispatches "strata <group> <verb> …": the group's help with no
// verb (exit 2) or with --help (exit 0), an unknown verb refused.
func verbs(group, help string, args []string, stdout, stderr io.Writer, run map[string]func([]string) int) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, help)
		return exitUsage
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stdout, help)
		return exitOK
	}
	fn, ok := run[args[0]]
	if !ok {
		fmt.Fprintf(stderr, "strata %s: unknown command %q\n\n%s", group, args[0], help)
		return exitUsage
	}
	return fn(args[1:])
}
