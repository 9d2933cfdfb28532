// Command bench measures strata against its performance targets and prints
// one line per figure beside its target (make bench runs it after make
// build). Every measurement runs the real binary (./strata): standalone
// servers on a free loopback port, CGI requests by exec'ing the binary with
// a CGI environment, and Apache through tests/apache/bench.sh when present.
//
//	go run ./tests/bench [-only ingest,appends,latency,apache,cgi,read,disk,memory,limits,auth,entity,projections,jq,statekind,live,metrics,backup,compaction,rebuild] [-full]
//
// The load generator runs on the same machine as the server, so the two
// share its cores; each throughput figure says how the CPU was split.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// bench is the state shared by the measurements.
type bench struct {
	bin     string // absolute path of the strata binary
	repo    string // repository root (where tests/apache lives)
	work    string // scratch directory for data directories
	full    bool   // run the slow measurements too
	ingestD time.Duration
	conns   int

	serverArgs []string // -server-args (diagnostics)

	rep *report

	ds1m  *dataset // 1,000,000 events, built once, shared by cgi/read/disk
	ds10k *dataset // 10,000 events, for the CGI read at a small log
}

var allMeasurements = []string{"ingest", "appends", "latency", "apache", "cgi", "read", "disk", "memory", "limits", "auth", "entity", "projections", "jq", "statekind", "live", "metrics", "backup", "compaction", "rebuild"}

func main() {
	var (
		only  = flag.String("only", "", "comma-separated measurements to run: "+strings.Join(allMeasurements, ","))
		full  = flag.Bool("full", os.Getenv("BENCH_FULL") == "1", "run the slow measurements too (the 10M-event memory figure); also BENCH_FULL=1")
		bin   = flag.String("bin", "./strata", "the strata binary (make build)")
		keep  = flag.Bool("keep", false, "keep the scratch directory")
		dur   = flag.Duration("dur", 10*time.Second, "duration of each throughput run")
		conns = flag.Int("conns", 8, "concurrent connections for batched ingest")
		sargs = flag.String("server-args", "", "extra flags for every strata serve (diagnostics only, e.g. --unsafe-nosync); noted in the report")
	)
	flag.Parse()

	abs, err := filepath.Abs(*bin)
	if err == nil {
		_, err = os.Stat(abs)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "bench: no strata binary at %s (run make build): %v\n", *bin, err)
		os.Exit(2)
	}
	repo, _ := os.Getwd()
	work, err := os.MkdirTemp("", "strata-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(2)
	}
	if *keep {
		fmt.Fprintln(os.Stderr, "# scratch directory kept:", work)
	} else {
		defer os.RemoveAll(work)
	}

	b := &bench{bin: abs, repo: repo, work: work, full: *full, ingestD: *dur, conns: *conns, rep: newReport()}
	if *sargs != "" {
		b.serverArgs = strings.Fields(*sargs)
	}
	head := machine(abs)
	if *sargs != "" {
		head = append(head, "DIAGNOSTIC RUN: every server started with extra flags: "+*sargs)
	}
	if *bin != "./strata" {
		head = append(head, "binary overridden with -bin")
	}
	b.rep.header(head)

	want := map[string]bool{}
	for _, m := range strings.Split(*only, ",") {
		if m = strings.TrimSpace(m); m != "" {
			want[m] = true
		}
	}
	for m := range want {
		if !contains(allMeasurements, m) {
			fmt.Fprintf(os.Stderr, "bench: unknown measurement %q (have %s)\n", m, strings.Join(allMeasurements, ","))
			os.Exit(2)
		}
	}
	run := func(name string, fn func()) {
		if len(want) > 0 && !want[name] {
			return
		}
		t0 := time.Now()
		progress("== %s", name)
		fn()
		progress("== %s done in %.1fs", name, time.Since(t0).Seconds())
	}
	start := time.Now()
	run("ingest", b.measureIngest)
	run("appends", b.measureAppends)
	run("latency", b.measureLatency)
	run("apache", b.measureApache)
	run("cgi", b.measureCGIRead)
	run("read", b.measureRead)
	run("disk", b.measureDisk)
	run("memory", b.measureMemory)
	run("limits", b.measureLimits)
	run("auth", b.measureAuth)
	run("entity", b.measureEntity)
	run("projections", b.measureProjections)
	run("jq", b.measureJQ)
	run("statekind", b.measureStateKind)
	run("live", b.measureLive)
	run("metrics", b.measureMetrics)
	run("backup", b.measureBackup)
	run("compaction", b.measureCompaction)
	run("rebuild", b.measureRebuildCLI) // last: it writes definitions into the shared 1M log

	b.rep.print(os.Stdout, time.Since(start))
	// Targets are reported, not enforced: a miss is a finding, not a broken
	// build. A measurement that could not be taken at all fails the run.
	if b.rep.errors() {
		os.Exit(1)
	}
}

// machine describes where the figures were taken.
func machine(bin string) []string {
	var lines []string
	kernel := "?"
	if out, err := exec.Command("uname", "-srm").Output(); err == nil {
		kernel = strings.TrimSpace(string(out))
	}
	model := ""
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "model name") {
				_, model, _ = strings.Cut(l, ":")
				model = strings.TrimSpace(model)
				break
			}
		}
	}
	mem := ""
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		l, _, _ := strings.Cut(string(b), "\n")
		mem = strings.Join(strings.Fields(l)[1:], " ")
	}
	lines = append(lines, fmt.Sprintf("machine: %d cores (nproc), %s, kernel %s, MemTotal %s", runtime.NumCPU(), model, kernel, mem))
	st, _ := os.Stat(bin)
	ver := ""
	if out, err := exec.Command(bin, "version").Output(); err == nil {
		ver = strings.TrimSpace(string(out))
	}
	size := int64(0)
	if st != nil {
		size = st.Size()
	}
	lines = append(lines, fmt.Sprintf("binary: %s (%s, %s bytes), load generator: %s in this process, on the same cores", bin, ver, commas(size), runtime.Version()))
	load := ""
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		load = strings.Join(strings.Fields(string(b))[:3], " ")
	}
	lines = append(lines, fmt.Sprintf("started %s, load average before the run %s (the machine may be shared: each throughput figure shows the CPU used by other processes)", time.Now().UTC().Format(time.RFC3339), load))
	return lines
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// progress prints a running note on stderr (the report goes to stdout).
func progress(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "# "+format+"\n", args...)
}
