package main

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"strata/internal/blake3"
	"strata/internal/fileutil"
	"strata/jsonx"
	"strata/log"
)

const exportAbout = `Write a tenant's events as NDJSON: one event a line, exactly as GET /events
serves it, in chain order, through the head as of the start. To standard
output, or atomically to --out FILE (a temporary file renamed when whole).
Progress goes to standard error.

Exit status: 0 done; 1 a read or write failed; 2 a wrong command line, or
no such data directory or tenant.`

// cmdExport writes a tenant's log as NDJSON.
func cmdExport(args []string, stdout, stderr io.Writer) int {
	f := newCmdFlags("export", "[--tenant NAME] [--out FILE]", exportAbout, stdout, stderr)
	out := f.String("out", "", "write to this `file` instead of standard output")
	l, tenant, _, code := tenantLog(f, args, 0, 0)
	if code >= 0 {
		return code
	}
	defer l.Close()
	w, commit, abort, err := exportOutput(*out, stdout)
	if err != nil {
		fmt.Fprintln(stderr, "strata: export:", err)
		return exitFail
	}
	bar := newProgress(stderr, "export")
	start := time.Now()
	total := l.Through()
	n, err := exportLog(l, w, total, rated(bar, start))
	bar.done()
	if err == nil {
		err = commit()
	}
	if err != nil {
		abort()
		fmt.Fprintf(stderr, "strata: export tenant %s: %v\n", tenant, err)
		return exitFail
	}
	secs := time.Since(start).Seconds()
	fmt.Fprintf(stderr, "exported %d events of tenant %s in %.2fs (%s events/s)\n", n, tenant, secs, si(float64(n)/max(secs, 1e-9)))
	return exitOK
}

// exportOutput returns where an export writes: stdout, or a temporary file
// next to path that commit syncs and renames to path (so a killed export
// never leaves a file that looks whole), and abort removes.
func exportOutput(path string, stdout io.Writer) (w *bufio.Writer, commit func() error, abort func(), err error) {
	if path == "" {
		w = bufio.NewWriterSize(stdout, 1<<16)
		return w, w.Flush, func() { w.Flush() }, nil
	}
	tmp, err := fileutil.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp", 0o644)
	if err != nil {
		return nil, nil, nil, err
	}
	w = bufio.NewWriterSize(tmp, 1<<16)
	commit = func() error {
		if err := w.Flush(); err != nil {
			return err
		}
		if err := fileutil.Fsync(tmp); err != nil {
			return err
		}
		if err := tmp.Close(); err != nil {
			return err
		}
		if err := fileutil.Rename(tmp.Name(), path); err != nil {
			return err
		}
		return fileutil.SyncDir(filepath.Dir(path))
	}
	abort = func() {
		tmp.Close()
		os.Remove(tmp.Name())
	}
	return w, commit, abort, nil
}

// exportLog writes events 1..through of l to w, one JSON object a line.
func exportLog(l *log.Log, w io.Writer, through uint64, progress func(done, total uint64)) (uint64, error) {
	it := l.Scan(1, through)
	var buf []byte
	var n uint64
	for it.Next() {
		buf = it.Event().AppendJSON(buf[:0])
		buf = append(buf, '\n')
		if _, err := w.Write(buf); err != nil {
			return n, err
		}
		n++
		if n%1024 == 0 {
			progress(n, through)
		}
	}
	progress(n, through)
	return n, it.Err()
}

const importAbout = `Append events from NDJSON (FILE, or standard input without one or with
"-"), such as strata export writes, to a tenant's log. Each line keeps its
type, entity, key, data and meta, and gets a new id, seq, time and version;
its original id, seq and time go into meta.imported {"id","seq","time"}
(an event that has meta.imported already keeps it: the first origin).

Lines are appended in batches (--batch), each atomically: all of it or
none. A line that is not a valid event stops the import with its line
number; nothing of its batch is stored (earlier batches are).

Resumable: each event's idempotency key is its own key, or else
"import:" and its original id (or, without one, its line number and a
hash of the line), so running the same import again after a kill stores
what is missing and repeats, without duplicating, what is in.

Exit status: 0 done; 1 a bad line, a key reused for other content, or a
write failed; 2 a wrong command line, or no such data directory or tenant.`

// cmdImport appends NDJSON events to a tenant's log.
func cmdImport(args []string, stdout, stderr io.Writer) int {
	f := newCmdFlags("import", "[--tenant NAME] [--batch N] [FILE]", importAbout, stdout, stderr)
	batch := f.Int("batch", 1000, "events per atomic append")
	l, tenant, pos, code := tenantLog(f, args, 0, 1)
	if code >= 0 {
		return code
	}
	defer l.Close()
	if *batch < 1 || *batch > 100000 {
		return f.usageError("--batch %d: must be 1 to 100000", *batch)
	}
	in := io.Reader(os.Stdin)
	var total uint64
	if len(pos) == 1 && pos[0] != "-" {
		file, err := os.Open(pos[0])
		if err != nil {
			fmt.Fprintln(stderr, "strata: import:", err)
			return exitFail
		}
		defer file.Close()
		// Count the lines first, for the bar's total and ETA: a read of
		// the file, cheap beside the appends.
		if total, err = countLines(file); err == nil {
			_, err = file.Seek(0, io.SeekStart)
		}
		if err != nil {
			fmt.Fprintln(stderr, "strata: import:", err)
			return exitFail
		}
		in = file
	}
	bar := newProgress(stderr, "import")
	start := time.Now()
	st, err := importEvents(l, in, *batch, total, rated(bar, start))
	bar.done()
	secs := time.Since(start).Seconds()
	fmt.Fprintf(stderr, "imported into tenant %s: %d events stored, %d already in (repeats), in %.2fs\n", tenant, st.stored, st.repeated, secs)
	if err != nil {
		fmt.Fprintln(stderr, "strata: import:", err)
		return exitFail
	}
	return exitOK
}

func countLines(r io.Reader) (uint64, error) {
	buf := make([]byte, 1<<16)
	var n uint64
	last := byte('\n')
	for {
		k, err := r.Read(buf)
		if k > 0 {
			n += uint64(bytes.Count(buf[:k], []byte{'\n'}))
			last = buf[k-1]
		}
		if err == io.EOF {
			if last != '\n' {
				n++
			}
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

type importStats struct{ stored, repeated uint64 }

// importEvents appends r's lines to l, batch lines per atomic request.
func importEvents(l *log.Log, r io.Reader, batch int, total uint64, progress func(done, total uint64)) (importStats, error) {
	var st importStats
	br := bufio.NewReaderSize(r, 1<<16)
	var events []log.Proposed
	var lines []int // each event's line number
	var done uint64
	flush := func() error {
		if len(events) == 0 {
			return nil
		}
		res, err := l.Append(&log.Request{Events: events})
		if err != nil {
			var inv *log.InvalidError
			if errors.As(err, &inv) && inv.Index < len(lines) {
				return fmt.Errorf("line %d: field %q %v (nothing of lines %d–%d stored)", lines[inv.Index], inv.Field, inv.Err, lines[0], lines[len(lines)-1])
			}
			return fmt.Errorf("lines %d–%d (none stored): %w", lines[0], lines[len(lines)-1], err)
		}
		st.stored += uint64(res.Stored)
		st.repeated += uint64(len(events) - res.Stored)
		done += uint64(len(events))
		progress(done, max(total, done))
		events, lines = events[:0], lines[:0]
		return nil
	}
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			p, perr := importLine(line, n)
			if perr != nil {
				first := n
				if len(lines) > 0 {
					first = lines[0]
				}
				return st, fmt.Errorf("line %d: %v (nothing of lines %d–%d stored)", n, perr, first, n)
			}
			events = append(events, p)
			lines = append(lines, n)
			if len(events) == batch {
				if err := flush(); err != nil {
					return st, err
				}
			}
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return st, err
		}
	}
	if err := flush(); err != nil {
		return st, err
	}
	progress(done, done)
	return st, nil
}

// importedLine is what import reads of a line: GET /events' fields.
type importedLine struct {
	ID     string          `json:"id"`
	Seq    uint64          `json:"seq"`
	Time   string          `json:"time"`
	Type   string          `json:"type"`
	Entity string          `json:"entity"`
	Key    string          `json:"key"`
	Data   json.RawMessage `json:"data"`
	Meta   json.RawMessage `json:"meta"`
}

// importLine turns line n into an event to append; the log checks type,
// entity and key, this checks what only a line can get wrong.
func importLine(line []byte, n int) (log.Proposed, error) {
	var in importedLine
	if err := json.Unmarshal(line, &in); err != nil {
		return log.Proposed{}, fmt.Errorf("not a JSON event: %v", err)
	}
	if err := log.ValidateType(in.Type); err != nil {
		return log.Proposed{}, fmt.Errorf("type %v", err)
	}
	if err := log.ValidateEntity(in.Entity); err != nil {
		return log.Proposed{}, fmt.Errorf("entity %v", err)
	}
	if len(in.Data) == 0 {
		return log.Proposed{}, errors.New("data is required (null for none)")
	}
	var data bytes.Buffer
	if err := json.Compact(&data, in.Data); err != nil {
		return log.Proposed{}, fmt.Errorf("data: %v", err)
	}
	meta, err := importMeta(in)
	if err != nil {
		return log.Proposed{}, err
	}
	key := in.Key
	switch {
	case key != "":
	case in.ID != "":
		key = "import:" + in.ID
	default:
		sum := blake3.Sum256(line)
		key = "import:line:" + strconv.Itoa(n) + ":" + hex.EncodeToString(sum[:8])
	}
	if err := log.ValidateKey(key); err != nil {
		return log.Proposed{}, fmt.Errorf("key %v", err)
	}
	return log.Proposed{Type: in.Type, Entity: in.Entity, Key: key, Data: data.Bytes(), Meta: meta, ExpectedVersion: -1}, nil
}

// importMeta is the line's meta with meta.imported added: the original id,
// seq and time, those the line has. A meta that has "imported" already is
// kept as it is.
func importMeta(in importedLine) ([]byte, error) {
	var meta []byte
	if len(in.Meta) > 0 && string(in.Meta) != "null" {
		var fields map[string]json.RawMessage
		if err := json.Unmarshal(in.Meta, &fields); err != nil {
			return nil, errors.New("meta must be a JSON object")
		}
		var b bytes.Buffer
		if err := json.Compact(&b, in.Meta); err != nil {
			return nil, fmt.Errorf("meta: %v", err)
		}
		meta = b.Bytes()
		if _, ok := fields["imported"]; ok {
			return meta, nil
		}
	}
	if in.ID == "" && in.Seq == 0 && in.Time == "" {
		return meta, nil
	}
	imp := []byte(`"imported":{`)
	sep := ""
	if in.ID != "" {
		imp = append(imp, `"id":`...)
		imp = jsonx.AppendString(imp, in.ID)
		sep = ","
	}
	if in.Seq != 0 {
		imp = append(imp, sep+`"seq":`...)
		imp = strconv.AppendUint(imp, in.Seq, 10)
		sep = ","
	}
	if in.Time != "" {
		imp = append(imp, sep+`"time":`...)
		imp = jsonx.AppendString(imp, in.Time)
	}
	imp = append(imp, '}')
	switch {
	case meta == nil || string(meta) == "{}":
		return append(append([]byte{'{'}, imp...), '}'), nil
	default:
		out := append([]byte{}, meta[:len(meta)-1]...)
		out = append(out, ',')
		out = append(out, imp...)
		return append(out, '}'), nil
	}
}
