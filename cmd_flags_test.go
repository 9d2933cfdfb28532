package main

import (
	"bytes"
	"slices"
	"strings"
	"testing"
)

// TestCmdFlagsParse: flags before and after the positional arguments,
// "--" ending the flags, help on standard output with exit 0, and each
// wrong command line refused with exit 2 and a message naming the fault.
func TestCmdFlagsParse(t *testing.T) {
	for _, tc := range []struct {
		args     []string
		min, max int
		pos      []string
		code     int
		out, err string
	}{
		{args: []string{"a", "--x", "1", "b"}, min: 2, max: 2, pos: []string{"a", "b"}, code: -1},
		{args: []string{"--x=1", "--", "--y", "-z"}, min: 0, max: -1, pos: []string{"--y", "-z"}, code: -1},
		{args: []string{"--help"}, code: 0, out: "Usage: strata cmd NAME"},
		{args: []string{"-h", "stray"}, code: 0, out: "--x VALUE"},
		{args: []string{"a", "b"}, min: 1, max: 1, code: 2, err: `unexpected argument "b"`},
		{args: []string{"a"}, min: 0, max: 0, code: 2, err: "takes no arguments"},
		{args: []string{}, min: 1, max: 1, code: 2, err: "missing NAME"},
		{args: []string{"--nope"}, max: -1, code: 2, err: "flag provided but not defined: --nope"},
		{args: []string{"--x"}, max: -1, code: 2, err: "flag needs an argument: --x"},
	} {
		var stdout, stderr bytes.Buffer
		f := newCmdFlags("cmd", "NAME [--x V]", "", &stdout, &stderr)
		f.String("x", "", "an x")
		pos, code := f.parse(tc.args, tc.min, tc.max)
		if code != tc.code || code < 0 && !slices.Equal(pos, tc.pos) {
			t.Errorf("%q: positional %q, code %d; want %q, %d (%s)", tc.args, pos, code, tc.pos, tc.code, stderr.String())
			continue
		}
		if !strings.Contains(stdout.String(), tc.out) || !strings.Contains(stderr.String(), tc.err) {
			t.Errorf("%q: stdout %q, stderr %q; want %q and %q", tc.args, stdout.String(), stderr.String(), tc.out, tc.err)
		}
	}
	var stdout bytes.Buffer
	f := newCmdFlags("cmd", "", "", &stdout, &stdout)
	f.String("role", "", "the `role`")
	f.require("role")
	if _, code := f.parse(nil, 0, 0); code != 2 || !strings.Contains(stdout.String(), "--role is required") {
		t.Errorf("a missing required flag: code %d, %q", code, stdout.String())
	}
}
