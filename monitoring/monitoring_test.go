// SPDX-License-Identifier: Apache-2.0

package monitoring

import (
	"encoding/json"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/pwatch/pwatch/internal/testpriv"
)

// promtool finds promtool, which the prometheus package ships.
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		testpriv.Unavailable(t, "promtool is not installed (scripts/install-deps.sh installs the prometheus package)")
	}
	return p
}

func TestRulesPassPromtool(t *testing.T) {
	tool := promtool(t)
	for _, args := range [][]string{
		{"check", "rules", "pwatch.rules.yml"},
		{"test", "rules", "pwatch.rules_test.yml"},
	} {
		cmd := exec.Command(tool, args...)
		cmd.Dir = "prometheus"
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

var metricName = regexp.MustCompile(`\bpwatch_[a-z_]+`)

// documented are the metric names of docs/operations.md's table.
func documented(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile("(?m)^\\| `(pwatch_[a-z_]+)` \\|").FindAllStringSubmatch(string(b), -1) {
		names = append(names, m[1])
	}
	if len(names) < 10 {
		t.Fatalf("found only %v in docs/operations.md's metric table", names)
	}
	return names
}

// checkNames fails for each metric expr names that pcheck does not export
// (as documented), a histogram's series counted as its own.
func checkNames(t *testing.T, where, expr string, known []string) {
	t.Helper()
	for _, n := range metricName.FindAllString(expr, -1) {
		base := n
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			base = strings.TrimSuffix(base, suffix)
		}
		if !slices.Contains(known, n) && !slices.Contains(known, base) {
			t.Errorf("%s: %s is not a metric of docs/operations.md", where, n)
		}
	}
}

func TestRulesNameDocumentedMetrics(t *testing.T) {
	b, err := os.ReadFile("prometheus/pwatch.rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	checkNames(t, "pwatch.rules.yml", string(b), documented(t))
}

func TestDashboard(t *testing.T) {
	b, err := os.ReadFile("grafana/pwatch-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID    string `json:"uid"`
		Panels []struct {
			ID      int    `json:"id"`
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatalf("grafana/pwatch-dashboard.json: %v", err)
	}
	if dash.UID == "" || len(dash.Panels) == 0 {
		t.Fatalf("dashboard without uid or panels: %+v", dash)
	}
	known := documented(t)
	ids := map[int]bool{}
	for _, p := range dash.Panels {
		if ids[p.ID] || len(p.Targets) == 0 {
			t.Errorf("panel %q: id %d repeated, or no query", p.Title, p.ID)
		}
		ids[p.ID] = true
		for _, q := range p.Targets {
			if !metricName.MatchString(q.Expr) {
				t.Errorf("panel %q: %q names no pwatch metric", p.Title, q.Expr)
			}
			checkNames(t, "panel "+p.Title, q.Expr, known)
		}
	}
}
