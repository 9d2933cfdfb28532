package main

import (
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Verdicts of a row.
const (
	pass  = "PASS"
	fail  = "FAIL"
	info  = "INFO" // a figure without a target, for context
	skip  = "SKIP"
	errst = "ERROR"
)

// row is one figure beside its target.
type row struct {
	num     string // the figure's number in the brief ("1", "6a"), "" for context rows
	name    string
	value   string
	target  string
	verdict string
	notes   []string
}

type report struct {
	head []string
	rows []*row
}

func newReport() *report { return &report{} }

func (r *report) header(lines []string) {
	r.head = lines
	for _, l := range lines {
		progress("%s", l)
	}
}

// add records a row and echoes it on stderr at once, so a crash later on
// loses nothing.
func (r *report) add(x *row) *row {
	r.rows = append(r.rows, x)
	progress("%s  %s  %s  %s", x.name, x.value, x.target, x.verdict)
	for _, n := range x.notes {
		progress("    %s", n)
	}
	return x
}

// errorRow records a measurement that could not be taken.
func (r *report) errorRow(num, name, target string, err error) {
	r.add(&row{num: num, name: name, value: "—", target: target, verdict: errst, notes: []string{"error: " + err.Error()}})
}

func (r *report) errors() bool {
	for _, x := range r.rows {
		if x.verdict == errst {
			return true
		}
	}
	return false
}

func (r *report) print(w io.Writer, took time.Duration) {
	fmt.Fprintln(w, "strata benchmark report")
	for _, l := range r.head {
		fmt.Fprintln(w, l)
	}
	fmt.Fprintln(w)
	rows := append([]*row(nil), r.rows...)
	sort.SliceStable(rows, func(i, j int) bool { return numKey(rows[i].num) < numKey(rows[j].num) })
	nw, vw, tw := 0, 0, 0
	for _, x := range rows {
		nw = max(nw, len(label(x)))
		vw = max(vw, len([]rune(x.value)))
		tw = max(tw, len([]rune(x.target)))
	}
	for _, x := range rows {
		fmt.Fprintf(w, "%s   %s   %s   %s\n", pad(label(x), nw), padLeft(x.value, vw), pad(x.target, tw), x.verdict)
		for _, n := range x.notes {
			fmt.Fprintf(w, "      %s\n", n)
		}
	}
	var counts []string
	for _, v := range []string{pass, fail, info, skip, errst} {
		n := 0
		for _, x := range rows {
			if x.verdict == v {
				n++
			}
		}
		if n > 0 {
			counts = append(counts, fmt.Sprintf("%d %s", n, v))
		}
	}
	fmt.Fprintf(w, "\n%s; took %s\n", strings.Join(counts, ", "), took.Round(time.Second))
}

func label(x *row) string {
	if x.num == "" || strings.HasSuffix(x.num, "z") { // a context row
		return "    " + x.name
	}
	return fmt.Sprintf("%-4s%s", x.num+".", x.name)
}

// numKey sorts rows by figure number ("6a" after "6", "" rows keep their place
// after the figure they follow thanks to the stable sort on equal keys).
func numKey(s string) int {
	if s == "" {
		return 1 << 30
	}
	n, suffix := 0, 0
	for i, c := range s {
		if c >= '0' && c <= '9' {
			n = n*10 + int(c-'0')
		} else {
			suffix = int(s[i]) - 'a' + 1
			break
		}
	}
	return n*100 + suffix
}

func pad(s string, n int) string {
	if d := n - len([]rune(s)); d > 0 {
		return s + strings.Repeat(" ", d)
	}
	return s
}

func padLeft(s string, n int) string {
	if d := n - len([]rune(s)); d > 0 {
		return strings.Repeat(" ", d) + s
	}
	return s
}

// commas formats 1234567 as 1,234,567.
func commas(n int64) string {
	s := strconv.FormatInt(n, 10)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/1e6) }

func verdict(ok bool) string {
	if ok {
		return pass
	}
	return fail
}

// percentile of sorted durations (nearest rank).
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return sorted[i]
}

func sortDurations(d []time.Duration) {
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
}
