package main

import (
	"bytes"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// measureRebuildCLI is figure P7: `strata rebuild` of a built-in
// projection (a counter per type, and for context a daily sum) over the
// 1,000,000-event log, through the CLI as an operator runs it, with its
// progress lines (standard error not a terminal). It runs last: the
// definitions it writes are events of the shared log.
func (b *bench) measureRebuildCLI() {
	const name, target = "rebuild of a built-in projection over 1,000,000 events (strata rebuild, with progress)", "target ≤ 1 s"
	ds, err := b.dataset1M()
	if err != nil {
		b.rep.errorRow("P7", name, target, err)
		return
	}
	s, err := b.startServer(ds.data)
	if err != nil {
		b.rep.errorRow("P7", name, target, err)
		return
	}
	c := newClient(1)
	for _, def := range []string{
		`{"name":"bench-per-type","kind":"counter","by":"type"}`,
		`{"name":"bench-daily","kind":"timeseries","path":".n","op":"sum","bucket":"day"}`,
	} {
		if err := post(c, s.url+"/projections", "application/json", []byte(def), 201); err != nil {
			s.stop()
			b.rep.errorRow("P7", name, target, err)
			return
		}
	}
	if err := s.stop(); err != nil {
		b.rep.errorRow("P7", name, target, err)
		return
	}
	for _, m := range []struct {
		num, proj, name, target string
		within                  time.Duration
	}{
		{"P7", "bench-per-type", name + ": counter by type", target, time.Second},
		{"P7z", "bench-daily", "(context) the same for a timeseries (sum of a data path per day)", "—", 0},
	} {
		cmd := exec.Command(b.bin, "rebuild", m.proj, "--data", ds.data)
		cmd.Env = cleanEnv()
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		t0 := time.Now()
		err := cmd.Run()
		took := time.Since(t0)
		if err != nil {
			b.rep.errorRow(m.num, m.name, m.target, fmt.Errorf("%v: %s", err, lastLines(errb.String(), 3)))
			continue
		}
		lines := 0
		for _, l := range strings.Split(errb.String(), "\n") {
			if strings.HasPrefix(l, "rebuild "+m.proj+":") {
				lines++
			}
		}
		v := verdict(took <= m.within)
		if m.within == 0 {
			v = info
		}
		b.rep.add(&row{num: m.num, name: m.name, value: fmt.Sprintf("%.3f s", took.Seconds()), target: m.target, verdict: v,
			notes: []string{fmt.Sprintf("wall time of the whole process (start, open, fold %s events, write the result and its checkpoints, exit); it printed %q and %d progress line(s)", commas(ds.events+2), strings.TrimSpace(out.String()), lines)}})
	}
}
