package metrics

import (
	"math"
	"strconv"
)

// ContentType is the exposition format's media type.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Writer writes samples in the Prometheus text format. Samples of one
// family must be written together, after its Family line.
type Writer struct {
	B []byte
}

// Family writes the HELP and TYPE lines of a metric family; typ is
// "counter", "gauge" or "histogram".
func (w *Writer) Family(name, typ, help string) {
	w.B = append(w.B, "# HELP "...)
	w.B = append(w.B, name...)
	w.B = append(w.B, ' ')
	w.B = appendEscaped(w.B, help, false)
	w.B = append(w.B, "\n# TYPE "...)
	w.B = append(w.B, name...)
	w.B = append(w.B, ' ')
	w.B = append(w.B, typ...)
	w.B = append(w.B, '\n')
}

// Sample writes one sample; labels are name, value pairs.
func (w *Writer) Sample(name string, v float64, labels ...string) {
	w.B = append(w.B, name...)
	w.B = appendLabels(w.B, labels, "", "")
	w.B = append(w.B, ' ')
	w.B = appendFloat(w.B, v)
	w.B = append(w.B, '\n')
}

// Histogram writes a histogram's samples: a cumulative _bucket per bound
// and +Inf, then _sum and _count. counts holds each bucket's own count
// (observations ≤ bounds[i] and > bounds[i-1]); the last entry, past the
// bounds, holds those above every bound.
func (w *Writer) Histogram(name string, bounds []float64, counts []uint64, sum float64, labels ...string) {
	var cum uint64
	for i, b := range bounds {
		cum += counts[i]
		w.B = append(w.B, name...)
		w.B = append(w.B, "_bucket"...)
		w.B = appendLabels(w.B, labels, "le", strconv.FormatFloat(b, 'g', -1, 64))
		w.B = append(w.B, ' ')
		w.B = strconv.AppendUint(w.B, cum, 10)
		w.B = append(w.B, '\n')
	}
	cum += counts[len(bounds)]
	w.B = append(w.B, name...)
	w.B = append(w.B, "_bucket"...)
	w.B = appendLabels(w.B, labels, "le", "+Inf")
	w.B = append(w.B, ' ')
	w.B = strconv.AppendUint(w.B, cum, 10)
	w.B = append(w.B, '\n')
	w.Sample(name+"_sum", sum, labels...)
	w.Sample(name+"_count", float64(cum), labels...)
}

// appendLabels appends {a="x",b="y"} (nothing with no labels), with the
// pair extra, value last when extra is not "".
func appendLabels(b []byte, labels []string, extra, value string) []byte {
	if len(labels) == 0 && extra == "" {
		return b
	}
	b = append(b, '{')
	for i := 0; i+1 < len(labels); i += 2 {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, labels[i]...)
		b = append(b, `="`...)
		b = appendEscaped(b, labels[i+1], true)
		b = append(b, '"')
	}
	if extra != "" {
		if len(labels) > 0 {
			b = append(b, ',')
		}
		b = append(b, extra...)
		b = append(b, `="`...)
		b = append(b, value...)
		b = append(b, '"')
	}
	return append(b, '}')
}

// appendEscaped escapes a label value (backslash, double quote, line
// feed) or a HELP text (backslash, line feed).
func appendEscaped(b []byte, s string, quote bool) []byte {
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\':
			b = append(b, `\\`...)
		case c == '\n':
			b = append(b, `\n`...)
		case c == '"' && quote:
			b = append(b, `\"`...)
		default:
			b = append(b, c)
		}
	}
	return b
}

// appendFloat writes v as the format wants it: integers without an
// exponent, +Inf, -Inf and NaN by name.
func appendFloat(b []byte, v float64) []byte {
	switch {
	case math.IsInf(v, 1):
		return append(b, "+Inf"...)
	case math.IsInf(v, -1):
		return append(b, "-Inf"...)
	case math.IsNaN(v):
		return append(b, "NaN"...)
	case v == math.Trunc(v) && math.Abs(v) < 1e15:
		return strconv.AppendInt(b, int64(v), 10)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}
