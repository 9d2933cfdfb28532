package e2e_test

import (
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// lazyModules are the dependencies whose package init must cost nothing:
// every CGI request is a new process and pays every init (issue 8 §4,
// third_party/*/STRATA-PATCH.md).
var lazyModules = []string{"github.com/klauspost/compress", "github.com/itchyny/gojq"}

// maxOwnInitBytes bounds what a strata package's init may allocate.
const maxOwnInitBytes = 6 << 10

// maxInitBytes bounds what any other package's init may allocate: the
// largest the binary needs is unicode's tables (11 KB). A standard package
// pulled in by a new import can cost as much as a dependency:
// runtime/metrics' init (15 KB, 95 allocations, 0.1 ms) is what this
// caught.
const maxInitBytes = 12 << 10

var initLine = regexp.MustCompile(`^init (\S+) @\S+ ms, (\S+) ms clock, (\d+) bytes, (\d+) allocs$`)

// TestInitCost runs the real binary as a CGI request with
// GODEBUG=inittrace=1 and fails if a package of lazyModules allocates at
// init (allocations, not time, are asserted: time is noisy, and the costly
// inits were all table builds that allocate).
func TestInitCost(t *testing.T) {
	cmd := exec.Command(bin)
	cmd.Env = append(cleanEnv(), "GODEBUG=inittrace=1", "GATEWAY_INTERFACE=CGI/1.1",
		"REQUEST_METHOD=GET", "SCRIPT_NAME=/strata", "PATH_INFO=/health",
		"SERVER_PROTOCOL=HTTP/1.1", "SERVER_NAME=localhost", "SERVER_PORT=80",
		"STRATA_DATA="+t.TempDir())
	out, _ := cmd.CombinedOutput()
	linked := map[string]bool{}
	if mods, err := exec.Command("go", "version", "-m", bin).Output(); err == nil {
		for _, m := range lazyModules {
			linked[m] = strings.Contains(string(mods), "\tdep\t"+m+"\t")
		}
	} else {
		t.Fatalf("go version -m: %v", err)
	}
	inits := 0
	for _, line := range strings.Split(string(out), "\n") {
		m := initLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		inits++
		// strata's own packages: small tables at most (a CRC-32C table
		// made at init, 8 KB and 0.2 ms, is what this catches).
		if bytes, _ := strconv.Atoi(m[3]); strings.HasPrefix(m[1], "strata/") && bytes > maxOwnInitBytes {
			t.Errorf("init of %s allocates %d bytes: make it lazy (sync.Once): %s", m[1], bytes, line)
		} else if bytes > maxInitBytes {
			t.Errorf("init of %s allocates %d bytes in every process: keep the import that pulls it in off the binary, or lazy: %s", m[1], bytes, line)
		}
		for _, mod := range lazyModules {
			if m[1] != mod && !strings.HasPrefix(m[1], mod+"/") {
				continue
			}
			bytes, _ := strconv.Atoi(m[3])
			allocs, _ := strconv.Atoi(m[4])
			if bytes != 0 || allocs != 0 {
				t.Errorf("init of %s allocates: %s (patch it lazy under third_party/)", m[1], line)
			}
		}
	}
	if inits == 0 {
		t.Fatalf("no inittrace lines in the output:\n%s", out)
	}
	for _, mod := range lazyModules {
		if !linked[mod] {
			t.Errorf("%s is not linked into the binary; the test guards nothing", mod)
		}
	}
}
