// SPDX-License-Identifier: Apache-2.0

package promtext

import (
	"bytes"
	"math"
	"strings"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// parse reads a scrape with Prometheus's own parser.
func parse(scrape string) (map[string]*dto.MetricFamily, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(strings.NewReader(scrape))
}

func TestWriteIsWhatPrometheusReads(t *testing.T) {
	up := &Family{Name: "x_up", Help: "1 when up.\nA back\\slash.", Type: Gauge}
	up.Add(1, "service", "web", "port", "80")
	// A hostile value: quotes, a backslash, a newline, a fake label.
	up.Add(0, "service", "a\"b\\c\nd\",evil=\"1", "port", "443")
	total := &Family{Name: "x_total", Help: "Things.", Type: Counter}
	total.Add(math.Inf(1))
	empty := &Family{Name: "x_empty", Help: "Never written.", Type: Gauge}
	h := &Family{Name: "x_seconds", Help: "Time.", Type: Histogram}
	h.AddHistogram([]float64{0.005, 1}, []uint64{2, 3}, 4.25, 4, "service", "web")

	var b bytes.Buffer
	skipped, err := Write(&b, []*Family{up, total, empty, h})
	if err != nil || len(skipped) != 0 {
		t.Fatalf("Write: %v, %v", skipped, err)
	}
	for _, want := range []string{
		"# HELP x_up 1 when up.\\nA back\\\\slash.\n# TYPE x_up gauge\n",
		`x_up{port="80",service="web"} 1` + "\n", // labels sorted by name
		`x_total +Inf` + "\n",
		`x_seconds_bucket{service="web",le="0.005"} 2` + "\n", // le last
		`x_seconds_bucket{service="web",le="+Inf"} 4` + "\n",
		`x_seconds_sum{service="web"} 4.25` + "\n",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("no %q in:\n%s", want, b.String())
		}
	}
	if strings.Contains(b.String(), "x_empty") {
		t.Errorf("an empty family was written:\n%s", b.String())
	}

	fams, err := parse(b.String())
	if err != nil {
		t.Fatalf("Prometheus's parser: %v\n%s", err, b.String())
	}
	got := fams["x_up"].GetMetric()
	if len(got) != 2 {
		t.Fatalf("x_up: %d series, want 2", len(got))
	}
	var hostile string
	for _, l := range got[1].GetLabel() {
		if l.GetName() == "service" {
			hostile = l.GetValue()
		}
	}
	if hostile != "a\"b\\c\nd\",evil=\"1" || len(got[1].GetLabel()) != 2 {
		t.Errorf("the hostile value came back as %q, labels %v", hostile, got[1].GetLabel())
	}
	if fams["x_up"].GetHelp() != "1 when up.\nA back\\slash." {
		t.Errorf("help came back as %q", fams["x_up"].GetHelp())
	}
	hist := fams["x_seconds"].GetMetric()[0].GetHistogram()
	if hist.GetSampleCount() != 4 || hist.GetSampleSum() != 4.25 || hist.GetBucket()[1].GetCumulativeCount() != 3 {
		t.Errorf("histogram came back as %v", hist)
	}
}

func TestASeriesThatIsNotUTF8IsLeftOutAndSaid(t *testing.T) {
	up := &Family{Name: "x_up", Help: "Up.", Type: Gauge}
	up.Add(1, "service", "good")
	up.Add(1, "service", "bad\xff")
	var b bytes.Buffer
	skipped, err := Write(&b, []*Family{up})
	if err != nil {
		t.Fatal(err)
	}
	if len(skipped) != 1 || !strings.Contains(skipped[0].Error(), "x_up") || !strings.Contains(skipped[0].Error(), `"bad\xff"`) {
		t.Errorf("skipped: %v", skipped)
	}
	if strings.Contains(b.String(), "bad") || !strings.Contains(b.String(), `x_up{service="good"} 1`) {
		t.Errorf("scrape:\n%s", b.String())
	}
	if _, err := parse(b.String()); err != nil {
		t.Errorf("Prometheus's parser: %v", err)
	}
}

// Whatever a label value holds, the scrape parses, and a UTF-8 value
// comes back as it was.
func FuzzWrite(f *testing.F) {
	for _, s := range []string{"web", `a"b`, `back\slash`, "new\nline", "bad\xff", `",x="1`, ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, value string) {
		up := &Family{Name: "x_up", Help: value, Type: Gauge}
		up.Add(1, "service", value)
		var b bytes.Buffer
		skipped, err := Write(&b, []*Family{up})
		if err != nil {
			t.Fatal(err)
		}
		fams, err := parse(b.String())
		if err != nil {
			t.Fatalf("%v\n%s", err, b.String())
		}
		if len(skipped) > 0 {
			return // not UTF-8: left out
		}
		got := fams["x_up"].GetMetric()[0].GetLabel()[0].GetValue()
		if got != value {
			t.Errorf("came back as %q, want %q", got, value)
		}
	})
}
