package main

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"
)

// dirUsage sums allocated blocks (st_blocks*512, what du reports) and
// apparent sizes of every file under dir, also per top-level entry.
func dirUsage(dir string) (alloc, apparent int64, parts map[string][2]int64, err error) {
	parts = map[string][2]int64{}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		st, ok := fi.Sys().(*syscall.Stat_t)
		if !ok {
			return fmt.Errorf("no stat for %s", p)
		}
		a := st.Blocks * 512
		sz := int64(0)
		if fi.Mode().IsRegular() {
			sz = fi.Size()
		}
		if p == dir {
			return nil
		}
		alloc += a
		apparent += sz
		rel, _ := filepath.Rel(dir, p)
		top := rel
		if i := indexSep(rel); i >= 0 {
			top = rel[:i]
		}
		v := parts[top]
		v[0] += a
		v[1] += sz
		parts[top] = v
		return nil
	})
	return
}

func indexSep(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] == os.PathSeparator {
			return i
		}
	}
	return -1
}

// measureDisk is figure 9: bytes on disk per event over the served line.
func (b *bench) measureDisk() {
	const name = "bytes on disk per event ÷ NDJSON line (1,000,000-event log, log + indexes)"
	const target = "target ≤ 1.25"
	ds, err := b.dataset1M()
	if err != nil {
		b.rep.errorRow("9", name, target, err)
		return
	}
	if ds.avgLine == 0 { // figure 7 did not run: measure the served lines
		s, err := b.startServer(ds.data)
		if err != nil {
			b.rep.errorRow("9", name, target, err)
			return
		}
		lines, size, _, err := readNDJSON(newClient(1), s.url+"/events?limit=2000000")
		if serr := s.stop(); err == nil {
			err = serr
		}
		if err != nil {
			b.rep.errorRow("9", name, target, err)
			return
		}
		ds.avgLine = float64(size) / float64(lines)
	}
	tenant := filepath.Join(ds.data, "tenants", "default")
	alloc, apparent, parts, err := dirUsage(tenant)
	if err != nil {
		b.rep.errorRow("9", name, target, err)
		return
	}
	n := float64(ds.events)
	ra, rp := float64(alloc)/n/ds.avgLine, float64(apparent)/n/ds.avgLine
	var keys []string
	for k := range parts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	split := ""
	for _, k := range keys {
		split += fmt.Sprintf(" %s/ %.1f B/event (%s MB);", k, float64(parts[k][0])/n, commas(parts[k][0]>>20))
	}
	b.rep.add(&row{num: "9", name: name, value: fmt.Sprintf("%.3f (allocated)", ra), target: target, verdict: verdict(ra <= 1.25),
		notes: []string{
			fmt.Sprintf("tenant directory after the server stopped: %s bytes allocated (st_blocks×512) = %.1f B/event; %s bytes apparent = %.1f B/event (ratio %.3f); served NDJSON line %.1f B",
				commas(alloc), float64(alloc)/n, commas(apparent), float64(apparent)/n, rp, ds.avgLine),
			"allocated by part:" + split,
		}})
}
