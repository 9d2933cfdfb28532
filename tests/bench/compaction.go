package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"strata/log"
)

// measureCompaction is the §7 figures of compressed sealed segments (issue
// 10): on a copy of the 1,000,000-event data directory every sealed
// segment is compressed (`strata compact` when the binary has it, else
// log.Compact in this process), then
//   - C1: the compressed segments' size on disk beside the NDJSON of the
//     events they hold, as `strata export` (GET /events) writes it;
//   - C2, C3: random reads of one event by seq (GET /events?after=&limit=1)
//     and by id (GET /events/<id>) over real HTTP, against a standalone
//     server on the uncompressed directory and one on the compressed copy,
//     taken in alternating rounds so that both see the same machine;
//   - C4: the compaction's speed; C5 (context): a CGI read by id, both ways;
//   - C6: an entity's first page (GET /events?entity=<exact>&limit=10), the
//     same way as C2 and C3.
func (b *bench) measureCompaction() {
	const ratioName = "sealed segment size beside the NDJSON of its events"
	ds, err := b.dataset1M()
	if err != nil {
		b.rep.errorRow("C1", ratioName, "target ≤ 0.3×", err)
		return
	}
	zdata := filepath.Join(b.work, "log1m-compacted")
	os.RemoveAll(zdata)
	defer os.RemoveAll(zdata)
	if out, err := exec.Command("cp", "-a", ds.data, zdata).CombinedOutput(); err != nil {
		b.rep.errorRow("C1", ratioName, "target ≤ 0.3×", fmt.Errorf("copy the dataset: %v: %s", err, out))
		return
	}
	res, how, err := b.compact(zdata)
	if err != nil {
		b.rep.errorRow("C1", ratioName, "target ≤ 0.3×", err)
		return
	}
	logDir := filepath.Join(zdata, "tenants", "default", "log")
	zsegs, _ := filepath.Glob(filepath.Join(logDir, "*.zseg"))
	segs, _ := filepath.Glob(filepath.Join(logDir, "*.seg"))
	if len(zsegs) == 0 || len(segs) == 0 {
		b.rep.errorRow("C1", ratioName, "target ≤ 0.3×", fmt.Errorf("after compaction: %d .zseg and %d .seg files", len(zsegs), len(segs)))
		return
	}
	var zbytes, origBytes int64
	for _, z := range zsegs {
		zbytes += fileSize(z)
		first, _ := log.ParseSegmentName(strings.TrimSuffix(filepath.Base(z), ".zseg") + ".seg")
		origBytes += fileSize(filepath.Join(ds.data, "tenants", "default", "log", log.SegmentName(first)))
	}
	// The compressed segments hold seqs 1 .. (first seq of the active one) - 1.
	sort.Strings(segs)
	active, _ := log.ParseSegmentName(filepath.Base(segs[len(segs)-1]))
	held := int64(active - 1)
	nd, err := b.ndjsonBytes(ds.data, held)
	if err != nil {
		b.rep.errorRow("C1", ratioName, "target ≤ 0.3×", err)
		return
	}
	ratio := float64(zbytes) / float64(nd)
	b.rep.add(&row{num: "C1", name: ratioName, value: fmt.Sprintf("%.3f×", ratio), target: "target ≤ 0.3×", verdict: verdict(ratio <= 0.3),
		notes: []string{
			fmt.Sprintf("%d compressed segments holding events 1..%s: %s bytes on disk; the same events as NDJSON (strata export, as GET /events serves them): %s bytes", len(zsegs), commas(held), commas(zbytes), commas(nd)),
			fmt.Sprintf("beside the segments' own bytes: %s → %s (%.3f×)", commas(origBytes), commas(zbytes), float64(zbytes)/float64(origBytes)),
		}})
	mbs := float64(res.BytesBefore) / 1e6 / res.Duration.Seconds()
	b.rep.add(&row{num: "C4", name: "compaction speed (sealed segments of the 1,000,000-event log)", value: fmt.Sprintf("%.0f MB/s", mbs), target: "—", verdict: info,
		notes: []string{fmt.Sprintf("%s: %d segments, %s → %s bytes in %.2f s (MB of original bytes a second: compress, fsync, decode-check, rename)", how, res.Segments, commas(res.BytesBefore), commas(res.BytesAfter), res.Duration.Seconds())}})

	b.measureCompactedBackup(ds, zdata)
	b.measureCompressedReads(ds, zdata, held)
}

// measureCompactedBackup is B1 and B2 again on the compacted copy, the state
// a long-running server's logs are in after an hour: a backup stores each
// segment's original bytes, so it decompresses the .zseg files as it reads.
func (b *bench) measureCompactedBackup(ds *dataset, zdata string) {
	const name = "(context) full backup of the same log compacted (strata backup)"
	bk := filepath.Join(b.work, "backup-compacted")
	os.RemoveAll(bk)
	defer os.RemoveAll(bk)
	took, out, err := b.runCLI("backup", "--to", bk, "--data", zdata)
	if err != nil {
		b.rep.errorRow("B1z", name, "—", err)
		return
	}
	onDisk := treeSize(filepath.Join(zdata, "tenants"), func(p string) bool {
		return strings.HasSuffix(p, ".seg") || strings.HasSuffix(p, ".zseg")
	})
	stored := treeSize(bk, func(string) bool { return true })
	b.rep.add(&row{num: "B1z", name: name, value: fmt.Sprintf("%s events/s", commas(int64(float64(ds.events)/took.Seconds()))), target: "—", verdict: info,
		notes: []string{
			fmt.Sprintf("wall time of the whole process: %.3f s; it printed %q", took.Seconds(), strings.TrimSpace(out)),
			fmt.Sprintf("%s bytes stored; the log's segments take %s bytes on disk compacted (%.3f×)", commas(stored), commas(onDisk), float64(stored)/float64(onDisk)),
		}})
}

// compactResult is what a compaction did, from the CLI's or log.Compact's
// report.
type compactResult struct {
	Segments                int
	BytesBefore, BytesAfter int64
	Duration                time.Duration
}

// compact compresses every sealed segment of data's default tenant: with
// `strata compact` when the binary has it (timed as a whole process),
// else log.Compact in this process.
func (b *bench) compact(data string) (compactResult, string, error) {
	if exec.Command(b.bin, "compact", "--help").Run() == nil {
		took, out, err := b.runCLI("compact", "--data", data, "--tenant", "default")
		if err != nil {
			return compactResult{}, "", err
		}
		dir := filepath.Join(data, "tenants", "default")
		l, err := log.Open(dir, log.Options{})
		if err != nil {
			return compactResult{}, "", err
		}
		st, err := l.SegmentStats()
		l.Close()
		if err != nil {
			return compactResult{}, "", err
		}
		return compactResult{st.Compressed, st.CompressedLogicalBytes, st.CompressedBytes, took},
			fmt.Sprintf("strata compact (whole process; it printed %q)", strings.TrimSpace(out)), nil
	}
	l, err := log.Open(filepath.Join(data, "tenants", "default"), log.Options{})
	if err != nil {
		return compactResult{}, "", err
	}
	defer l.Close()
	r, err := l.Compact(log.CompactOptions{})
	if err != nil {
		return compactResult{}, "", err
	}
	return compactResult{r.Segments, r.BytesBefore, r.BytesAfter, r.Duration}, "log.Compact in the bench process (this binary has no strata compact)", nil
}

// ndjsonBytes is the size of the first n lines of `strata export` of
// data's default tenant: the NDJSON of events 1..n.
func (b *bench) ndjsonBytes(data string, n int64) (int64, error) {
	cmd := exec.Command(b.bin, "export", "--data", data, "--tenant", "default")
	cmd.Env = cleanEnv()
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	r := bufio.NewReaderSize(out, 1<<20)
	var size, lines int64
	for lines < n {
		line, err := r.ReadSlice('\n')
		if err == bufio.ErrBufferFull {
			size += int64(len(line))
			continue
		}
		if err != nil {
			break
		}
		size += int64(len(line))
		lines++
	}
	io.Copy(io.Discard, r)
	if err := cmd.Wait(); err != nil {
		return 0, fmt.Errorf("strata export: %v: %s", err, lastLines(errb.String(), 3))
	}
	if lines != n {
		return 0, fmt.Errorf("strata export gave %d lines, want at least %d", lines, n)
	}
	return size, nil
}

// readRounds and readsPerRound: each server gets readRounds rounds of
// readsPerRound reads by seq and as many by id, the servers taking turns.
const (
	readRounds    = 4
	readsPerRound = 1000
)

// measureCompressedReads is figures C2, C3 (and C5): reads of random
// events held in compressed segments, from plain and compressed copies.
func (b *bench) measureCompressedReads(ds *dataset, zdata string, held int64) {
	const target = "target p50 within 2× of uncompressed"
	seqName := "read by seq from a compressed segment (standalone, GET /events?after=<seq-1>&limit=1)"
	idName := "read by id from a compressed segment (standalone, GET /events/<id>)"
	// The uncompressed copy must stay so: no background compaction.
	plain, err := b.startServer(ds.data, "--compact-age", "off")
	if err != nil {
		b.rep.errorRow("C2", seqName, target, err)
		return
	}
	defer plain.stop()
	comp, err := b.startServer(zdata, "--compact-age", "off")
	if err != nil {
		b.rep.errorRow("C2", seqName, target, err)
		return
	}
	defer comp.stop()
	c := newClient(1)
	// Random events of the compressed segments, their ids read from the
	// plain server.
	r := rand.New(rand.NewPCG(7, 11))
	n := readRounds * readsPerRound
	seqs := make([]uint64, n)
	ids := make([]string, n)
	ents := make([]string, n)
	for i := range seqs {
		seqs[i] = 1 + uint64(r.Int64N(held))
	}
	for i := range ids {
		e, err := eventAt(c, plain.url, 1+uint64(r.Int64N(held)))
		if err != nil {
			b.rep.errorRow("C2", seqName, target, err)
			return
		}
		ids[i], ents[i] = e.ID, e.Entity
	}
	bySeq := func(base string, i int) string { return fmt.Sprintf("%s/events?after=%d&limit=1", base, seqs[i]-1) }
	byID := func(base string, i int) string { return base + "/events/" + ids[i] }
	byEntity := func(base string, i int) string {
		return base + "/events?entity=" + url.QueryEscape(ents[i]) + "&limit=10"
	}
	lat := map[string][]time.Duration{}
	for _, s := range []*server{plain, comp} { // warm-up: page cache, connections
		for i := 0; i < 200; i++ {
			if _, err := timedGet(c, bySeq(s.url, i)); err != nil {
				b.rep.errorRow("C2", seqName, target, err)
				return
			}
		}
	}
	for round := 0; round < readRounds; round++ {
		for _, s := range []*server{plain, comp} {
			for _, k := range []struct {
				kind string
				url  func(string, int) string
			}{{"seq", bySeq}, {"id", byID}, {"entity", byEntity}} {
				kind, url := k.kind, k.url
				for i := round * readsPerRound; i < (round+1)*readsPerRound; i++ {
					d, err := timedGet(c, url(s.url, i))
					if err != nil {
						b.rep.errorRow("C2", seqName, target, err)
						return
					}
					key := kind + " plain"
					if s == comp {
						key = kind + " compressed"
					}
					lat[key] = append(lat[key], d)
				}
			}
		}
	}
	entityName := "entity page (limit=10) from a compressed segment (standalone, GET /events?entity=<exact>&limit=10)"
	for _, k := range []struct{ num, name, kind string }{{"C2", seqName, "seq"}, {"C3", idName, "id"}, {"C6", entityName, "entity"}} {
		p, z := lat[k.kind+" plain"], lat[k.kind+" compressed"]
		sortDurations(p)
		sortDurations(z)
		pp50, zp50 := percentile(p, 50), percentile(z, 50)
		x := float64(zp50) / float64(pp50)
		notes := []string{
			fmt.Sprintf("compressed: p50 %.3f ms, p99 %.3f ms; uncompressed: p50 %.3f ms, p99 %.3f ms", ms64(zp50), ms64(percentile(z, 99)), ms64(pp50), ms64(percentile(p, 99))),
			fmt.Sprintf("%d reads each of events chosen at random among the %s in compressed segments, one keep-alive connection, the two servers taking turns in %d rounds (after 200 untimed reads each)", len(z), commas(held), readRounds),
		}
		if k.kind == "entity" {
			notes = append(notes, fmt.Sprintf("the first page of the entity of each such event: this log's %s orders have ~%d events each, so a page reads them all, walking back from the newest (a long entity's page walks back from the versions index's checkpoint above it; log.BenchmarkCompressedRead measures those)", commas(entityRange), 1000000/entityRange))
		}
		b.rep.add(&row{num: k.num, name: k.name, value: fmt.Sprintf("p50 %.3f ms (%.2f×)", ms64(zp50), x), target: target, verdict: verdict(x <= 2), notes: notes})
	}

	// C5: the same read by id in fresh CGI processes.
	var cgi [2][]time.Duration
	for i := 0; i < 105; i++ {
		for j, data := range []string{ds.data, zdata} {
			out, d, err := b.cgiGet(data, "/events/"+ids[i], "")
			if err == nil {
				var st string
				if st, _, err = cgiBody(out); err == nil && st != "200" {
					err = fmt.Errorf("CGI GET /events/<id>: status %s", st)
				}
			}
			if err != nil {
				b.rep.errorRow("C5", "CGI read by id", "—", err)
				return
			}
			if i >= 5 {
				cgi[j] = append(cgi[j], d)
			}
		}
	}
	sortDurations(cgi[0])
	sortDurations(cgi[1])
	b.rep.add(&row{num: "C5", name: "(context) CGI GET /events/<id> from a compressed segment (direct exec)", value: fmt.Sprintf("p50 %.2f ms (uncompressed %.2f ms)", ms64(percentile(cgi[1], 50)), ms64(percentile(cgi[0], 50))), target: "—", verdict: info,
		notes: []string{fmt.Sprintf("%d fresh processes each (after 5 untimed), alternating; a CGI process has an empty frame cache, so each read decodes its frame", len(cgi[1]))}})
}

// timedGet GETs url, reads the answer to the end and times it; the status
// must be 200.
func timedGet(c *http.Client, url string) (time.Duration, error) {
	t0 := time.Now()
	resp, err := c.Get(url)
	if err != nil {
		return 0, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	d := time.Since(t0)
	if err == nil && resp.StatusCode != 200 {
		err = fmt.Errorf("GET %s: status %d", url, resp.StatusCode)
	}
	return d, err
}

// fileSize is the size of the file at p (0 if it cannot be read).
func fileSize(p string) int64 {
	fi, err := os.Stat(p)
	if err != nil {
		return 0
	}
	return fi.Size()
}
