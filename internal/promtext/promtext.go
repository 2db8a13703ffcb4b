// SPDX-License-Identifier: Apache-2.0

// Package promtext writes Prometheus's text exposition format, version
// 0.0.4: metric families with their HELP and TYPE lines, and their
// samples. It holds what pcheck's metrics need and no more: client_golang
// and the protobuf it brings cost pcheck 2.4 MB of program, all of it
// resident (docs/behaviour.md, Memory).
package promtext

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"
)

// ContentType is the format's media type, as Prometheus asks for it.
const ContentType = "text/plain; version=0.0.4; charset=utf-8"

// Type is a family's TYPE.
type Type string

const (
	Counter   Type = "counter"
	Gauge     Type = "gauge"
	Histogram Type = "histogram"
)

// Family is one metric family, built anew for each scrape. Its name and
// label names are the caller's constants; label values come from outside
// and are checked when written.
type Family struct {
	Name, Help string
	Type       Type
	series     []series
}

type series struct {
	labels []string // name, value pairs
	value  float64
	hist   *histogram // nil: a counter's or a gauge's sample
}

type histogram struct {
	bounds     []float64
	cumulative []uint64 // one per bound
	sum        float64
	count      uint64
}

// Add adds a sample with its labels as name, value pairs.
func (f *Family) Add(v float64, labels ...string) {
	f.series = append(f.series, series{labels: labels, value: v})
}

// AddHistogram adds a histogram's series: cumulative[i] observations were
// at most bounds[i] (ascending, +Inf left out: it is count), their sum
// and their count.
func (f *Family) AddHistogram(bounds []float64, cumulative []uint64, sum float64, count uint64, labels ...string) {
	f.series = append(f.series, series{labels: labels, hist: &histogram{bounds, cumulative, sum, count}})
}

// Write writes the families that have series, in the order given, each
// series with its labels sorted by name. A series with a label value that
// is not UTF-8 is left out, and said in the errors returned with the
// write's own; the rest of the scrape is written.
func Write(w io.Writer, fams []*Family) (skipped []error, err error) {
	bw := bufio.NewWriter(w)
	for _, f := range fams {
		if len(f.series) == 0 {
			continue // a family without series is left out
		}
		fmt.Fprintf(bw, "# HELP %s %s\n# TYPE %s %s\n", f.Name, escapeHelp(f.Help), f.Name, f.Type)
		for _, s := range f.series {
			if bad := invalidLabel(s.labels); bad >= 0 {
				skipped = append(skipped, fmt.Errorf("%s: label %s=%q is not UTF-8: series left out", f.Name, s.labels[bad], s.labels[bad+1]))
				continue
			}
			labels := sortedLabels(s.labels)
			if s.hist == nil {
				writeSample(bw, f.Name, labels, "", s.value)
				continue
			}
			h := s.hist
			for i, b := range h.bounds {
				writeSample(bw, f.Name+"_bucket", labels, formatFloat(b), float64(h.cumulative[i]))
			}
			writeSample(bw, f.Name+"_bucket", labels, "+Inf", float64(h.count))
			writeSample(bw, f.Name+"_sum", labels, "", h.sum)
			writeSample(bw, f.Name+"_count", labels, "", float64(h.count))
		}
	}
	return skipped, bw.Flush()
}

// invalidLabel is the index of the first label whose value is not UTF-8,
// or -1.
func invalidLabel(labels []string) int {
	for i := 0; i+1 < len(labels); i += 2 {
		if !utf8.ValidString(labels[i+1]) {
			return i
		}
	}
	return -1
}

// sortedLabels are the name, value pairs sorted by name (a copy).
func sortedLabels(labels []string) [][2]string {
	pairs := make([][2]string, 0, len(labels)/2)
	for i := 0; i+1 < len(labels); i += 2 {
		pairs = append(pairs, [2]string{labels[i], labels[i+1]})
	}
	slices.SortFunc(pairs, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	return pairs
}

// writeSample writes one line; le, if not empty, is the bucket's bound,
// the last label.
func writeSample(w *bufio.Writer, name string, labels [][2]string, le string, v float64) {
	w.WriteString(name)
	if len(labels) > 0 || le != "" {
		w.WriteByte('{')
		for i, l := range labels {
			if i > 0 {
				w.WriteByte(',')
			}
			w.WriteString(l[0])
			w.WriteString(`="`)
			w.WriteString(escapeValue(l[1]))
			w.WriteByte('"')
		}
		if le != "" {
			if len(labels) > 0 {
				w.WriteByte(',')
			}
			w.WriteString(`le="`)
			w.WriteString(le)
			w.WriteByte('"')
		}
		w.WriteByte('}')
	}
	w.WriteByte(' ')
	w.WriteString(formatFloat(v))
	w.WriteByte('\n')
}

var (
	helpEscaper  = strings.NewReplacer(`\`, `\\`, "\n", `\n`)
	valueEscaper = strings.NewReplacer(`\`, `\\`, "\n", `\n`, `"`, `\"`)
)

func escapeHelp(s string) string  { return helpEscaper.Replace(s) }
func escapeValue(s string) string { return valueEscaper.Replace(s) }

// formatFloat writes a value as Prometheus reads it back.
func formatFloat(v float64) string {
	switch {
	case math.IsInf(v, +1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	case math.IsNaN(v):
		return "NaN"
	}
	return strconv.FormatFloat(v, 'g', -1, 64)
}
