// SPDX-License-Identifier: Apache-2.0

package pfile

import (
	"sort"
	"strings"
)

// suggest returns the candidates close to s, best first: those within a
// small edit distance, or, failing that, those s is a prefix of. Case is
// ignored.
func suggest(s string, candidates []string) []string {
	s = strings.ToLower(s)
	if s == "" {
		return nil
	}
	limit := 2
	if len(s) <= 3 {
		limit = 1
	}
	type scored struct {
		name string
		d    int
	}
	var close []scored
	for _, c := range candidates {
		if d := distance(s, strings.ToLower(c)); d <= limit {
			close = append(close, scored{c, d})
		}
	}
	if len(close) == 0 && len(s) >= 4 {
		for _, c := range candidates {
			if strings.HasPrefix(strings.ToLower(c), s) {
				close = append(close, scored{c, len(c) - len(s)})
			}
		}
	}
	sort.SliceStable(close, func(i, j int) bool { return close[i].d < close[j].d })
	out := make([]string, 0, len(close))
	for i, c := range close {
		if i > 0 && c.d > close[0].d {
			break
		}
		out = append(out, c.name)
	}
	return out
}

// didYouMean formats suggestions as " (did you mean a or b?)", or "".
func didYouMean(s string, candidates []string) string {
	sug := suggest(s, candidates)
	if len(sug) == 0 {
		return ""
	}
	return " (did you mean " + orList(sug) + "?)"
}

func orList(items []string) string {
	switch len(items) {
	case 0:
		return ""
	case 1:
		return items[0]
	}
	return strings.Join(items[:len(items)-1], ", ") + " or " + items[len(items)-1]
}

// distance is the optimal-string-alignment edit distance (insertions,
// deletions, substitutions and swaps of neighbours each cost 1).
func distance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		if a == b {
			return 0
		}
		return 64
	}
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := 0; j <= len(b); j++ {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}
