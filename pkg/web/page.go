// SPDX-License-Identifier: Apache-2.0

package web

import (
	"bytes"
	"encoding/json"
	"html/template"
	"io/fs"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/pwatch/pwatch/pkg/control"
	"github.com/pwatch/pwatch/pkg/events"
	"github.com/pwatch/pwatch/pkg/msg"
)

// page renders the status page and its parts; html/template escapes every
// text in them (service names, process names in death causes, event texts).
type page struct {
	o    Options
	tmpl *template.Template
}

// stamp is how the page writes a time; the script writes the same (UTC, so
// that both agree whatever the browser's zone).
const stamp = "2006-01-02 15:04:05 UTC"

var funcs = template.FuncMap{
	"uptime": control.UptimeText,
	"next":   control.NextText,
	"checks": control.ChecksText,
	"usage":  control.UsageText,
	"pids": func(pids []int) string {
		if len(pids) == 0 {
			return "-"
		}
		s := make([]string, len(pids))
		for i, p := range pids {
			s[i] = strconv.Itoa(p)
		}
		return strings.Join(s, ", ")
	},
	// stateClass is the state's colour; the state is always written in
	// words beside it.
	"stateClass": func(state string) string {
		switch state {
		case "Up", "Down", "Restarting", "Stalled", "Paused", "RetryOver":
			return "state-" + strings.ToLower(state)
		}
		return "state-other"
	},
	"stamp": func(t time.Time) string { return t.UTC().Format(stamp) },
	"iso":   func(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) },
	// cause is why: why a process ended, why a restart was tried, why it
	// failed (the script also says cause || reason || error).
	"cause": func(e events.Event) string {
		for _, k := range []string{msg.KeyCause, msg.KeyReason, msg.KeyError} {
			if c := e.Fields[k]; c != "" {
				return c
			}
		}
		return ""
	},
}

func mustTemplates() *template.Template {
	return template.Must(template.New("page.html").Funcs(funcs).ParseFS(assets, "assets/page.html"))
}

func mustSub(f fs.FS, dir string) fs.FS {
	sub, err := fs.Sub(f, dir)
	if err != nil {
		panic(err) // the embedded tree is fixed at build time
	}
	return sub
}

// indexData is what the page shows.
type indexData struct {
	Host     string
	Now      time.Time
	Services []control.ServiceStatus
	Names    []string
	// Filter is the service whose events alone are shown ("": all).
	Filter string
	Events []events.Event // newest first
	// LastSeq is the newest event in the history when the page was built:
	// the script's stream resumes after it, so nothing logged since is lost.
	LastSeq uint64
}

func (p *page) serveIndex(w http.ResponseWriter, r *http.Request) {
	svcs, err := p.o.Status.Status(r.Context(), "")
	if err != nil {
		p.fail(w, "status", err)
		return
	}
	d := indexData{Host: p.o.Host, Now: time.Now(), Services: svcs, Filter: r.URL.Query().Get("service")}
	for _, s := range svcs {
		d.Names = append(d.Names, s.Name)
	}
	if p.o.Events != nil {
		// One look at the history: the newest event of all is where the
		// script's stream resumes (it refreshes every service's row).
		all := p.o.Events.Recent(events.Filter{})
		if n := len(all); n > 0 {
			d.LastSeq = all[n-1].Seq
		}
		f := events.Filter{Service: d.Filter}
		for i := len(all) - 1; i >= 0; i-- {
			if f.Match(all[i]) {
				d.Events = append(d.Events, all[i])
			}
		}
	}
	p.render(w, "page", d)
}

// serveRow is one service's row of the table, for the script to put in
// place of the old one when the service's events say it changed.
func (p *page) serveRow(w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("service")
	if name == "" {
		http.Error(w, "name the service: /row?service=NAME", http.StatusBadRequest)
		return
	}
	svcs, err := p.o.Status.Status(r.Context(), name)
	if err != nil || len(svcs) != 1 {
		http.Error(w, "no such service", http.StatusNotFound)
		return
	}
	p.render(w, "row", svcs[0])
}

// serveJSON is the status padmin status --json prints, all services or
// ?service=NAME.
func (p *page) serveJSON(w http.ResponseWriter, r *http.Request) {
	svcs, err := p.o.Status.Status(r.Context(), r.URL.Query().Get("service"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusNotFound)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(svcs)
}

// render builds the whole answer before it sends any of it, so that a
// failure is a clean 500, not half a page.
func (p *page) render(w http.ResponseWriter, name string, data any) {
	var buf bytes.Buffer
	if err := p.tmpl.ExecuteTemplate(&buf, name, data); err != nil {
		p.fail(w, name, err)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Write(buf.Bytes())
}

func (p *page) fail(w http.ResponseWriter, what string, err error) {
	p.o.Logger.Warn("status page: cannot build "+what, "error", err)
	http.Error(w, "the status is not available now", http.StatusInternalServerError)
}
