// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/pwatch/pwatch/internal/promtext"
)

// vec holds one series per set of label values, the first of which is
// always the service (what Forget drops). T is a series' state.
type vec[T any] struct {
	name, help string
	labels     []string
	mu         sync.Mutex
	series     map[string]*labelled[T] // by key
}

type labelled[T any] struct {
	values []string
	v      T
}

func newVec[T any](name, help string, labels ...string) *vec[T] {
	return &vec[T]{name: name, help: help, labels: labels, series: map[string]*labelled[T]{}}
}

// with runs f on the series of values, made at its zero value if new,
// under the vec's lock. Values that are not UTF-8 are refused: they could
// never be scraped.
func (v *vec[T]) with(values []string, f func(*T)) error {
	if len(values) != len(v.labels) {
		return fmt.Errorf("%s: %d label values for %d labels", v.name, len(values), len(v.labels))
	}
	for _, s := range values {
		if !utf8.ValidString(s) {
			return fmt.Errorf("%s: label value %q is not UTF-8", v.name, s)
		}
	}
	// \xff is never in UTF-8: keys of different values never meet.
	key := strings.Join(values, "\xff")
	v.mu.Lock()
	defer v.mu.Unlock()
	l := v.series[key]
	if l == nil {
		l = &labelled[T]{values: slices.Clone(values)}
		v.series[key] = l
	}
	if f != nil {
		f(&l.v)
	}
	return nil
}

// forget drops the series of service.
func (v *vec[T]) forget(service string) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for k, l := range v.series {
		if l.values[0] == service {
			delete(v.series, k)
		}
	}
}

// each runs f on every series, in the order of their values, under the
// lock; labels are the name, value pairs.
func (v *vec[T]) each(f func(labels []string, t T)) {
	v.mu.Lock()
	defer v.mu.Unlock()
	for _, k := range slices.Sorted(maps.Keys(v.series)) {
		l := v.series[k]
		labels := make([]string, 0, 2*len(v.labels))
		for i, name := range v.labels {
			labels = append(labels, name, l.values[i])
		}
		f(labels, l.v)
	}
}

// counterVec counts by its labels.
type counterVec struct{ *vec[float64] }

func newCounterVec(name, help string, labels ...string) counterVec {
	return counterVec{newVec[float64](name, help, labels...)}
}

func (c counterVec) inc(values ...string) error {
	return c.with(values, func(n *float64) { *n++ })
}

// show makes the series exist, at 0 until its first count.
func (c counterVec) show(values ...string) error { return c.with(values, nil) }

func (c counterVec) family() *promtext.Family {
	f := &promtext.Family{Name: c.name, Help: c.help, Type: promtext.Counter}
	c.each(func(labels []string, n float64) { f.Add(n, labels...) })
	return f
}

// histogramVec observes durations into buckets, by its labels.
type histogramVec struct {
	*vec[buckets]
	bounds []float64
}

// buckets are one series' observations: counts[i] were at most bounds[i]
// and above bounds[i-1] (cumulated when written).
type buckets struct {
	counts []uint64
	sum    float64
	count  uint64
}

func newHistogramVec(name, help string, bounds []float64, labels ...string) histogramVec {
	return histogramVec{newVec[buckets](name, help, labels...), bounds}
}

func (h histogramVec) observe(x float64, values ...string) error {
	return h.with(values, func(b *buckets) {
		if b.counts == nil {
			b.counts = make([]uint64, len(h.bounds))
		}
		if i := sort.SearchFloat64s(h.bounds, x); i < len(h.bounds) {
			b.counts[i]++
		}
		b.sum += x
		b.count++
	})
}

func (h histogramVec) family() *promtext.Family {
	f := &promtext.Family{Name: h.name, Help: h.help, Type: promtext.Histogram}
	h.each(func(labels []string, b buckets) {
		cumulative := make([]uint64, len(h.bounds))
		var n uint64
		for i, c := range b.counts {
			n += c
			cumulative[i] = n
		}
		f.AddHistogram(h.bounds, cumulative, b.sum, b.count, labels...)
	})
	return f
}
