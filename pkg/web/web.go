// SPDX-License-Identifier: Apache-2.0

// Package web is pcheck's status page (--web-listen): one server-rendered
// table of the services, from the same status padmin status gets, and the
// event history below it, newest first, that a small embedded script keeps
// up to date from /events (Server-Sent Events). It is read-only: GET and
// HEAD only, nothing on it changes anything (operators act with padmin, as
// root).
//
//	GET /                    the page; ?service=NAME shows that service's events only
//	GET /row?service=NAME    one service's table row (the script's refresh)
//	GET /status.json         the services' status, as padmin status --json
//	GET /events              the events as they happen (text/event-stream)
//	GET /static/...          the page's stylesheet and script
package web

import (
	"context"
	"embed"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/pwatch/pwatch/pkg/control"
	"github.com/pwatch/pwatch/pkg/events"
)

// StatusSource is what answers padmin status: the services' status, all of
// them for "", or the one named (an error when there is none).
type StatusSource interface {
	Status(ctx context.Context, name string) ([]control.ServiceStatus, error)
}

// Options are the page's sources and bounds.
type Options struct {
	Status StatusSource
	Events *events.Hub
	// Host names the node in the page's title ("" leaves it out).
	Host string
	// MaxStreams bounds the /events streams served at once (< 1: 1): each
	// holds a connection for as long as it lasts, and the listener's
	// connection cap must leave room for the page itself.
	MaxStreams int
	// Logger hears of failures to build the page (nil: none).
	Logger *slog.Logger
	// Heartbeat is how often an idle stream gets a comment, so that a
	// client gone without a word is found out (0: DefaultHeartbeat).
	Heartbeat time.Duration
}

// DefaultHeartbeat is how often an idle /events stream is written to.
const DefaultHeartbeat = 15 * time.Second

//go:embed assets
var assets embed.FS

// Page is the status page's handler.
type Page struct {
	http.Handler
	streams *streams
}

// New builds the status page on o's sources.
func New(o Options) *Page {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.MaxStreams < 1 {
		o.MaxStreams = 1
	}
	if o.Heartbeat <= 0 {
		o.Heartbeat = DefaultHeartbeat
	}
	p := &page{o: o, tmpl: mustTemplates()}
	s := &streams{hub: o.Events, heartbeat: o.Heartbeat, places: make(chan struct{}, o.MaxStreams), closed: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", p.serveIndex)
	mux.HandleFunc("GET /row", p.serveRow)
	mux.HandleFunc("GET /status.json", p.serveJSON)
	mux.Handle("GET /events", s)
	mux.Handle("GET /static/", http.StripPrefix("/static/", files(mustSub(assets, "assets/static"))))
	return &Page{Handler: readOnly(mux), streams: s}
}

// Close ends the event streams open now and refuses new ones: a server's
// shutdown waits for its requests, and a stream would last for ever.
func (p *Page) Close() { p.streams.close() }

// files serves the embedded assets, and no listing of them.
func files(fsys fs.FS) http.Handler {
	fileServer := http.FileServerFS(fsys)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r)
			return
		}
		fileServer.ServeHTTP(w, r)
	})
}

// csp lets the page load its own stylesheet and script and talk to its own
// origin, nothing else: no inline script or style, no frame, no form
// posting elsewhere.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// readOnly answers every method but GET and HEAD with 405, and sets the
// headers every answer carries.
func readOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", csp)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			hd.Set("Allow", "GET, HEAD")
			http.Error(w, "the status page is read-only: GET and HEAD only", http.StatusMethodNotAllowed)
			return
		}
		h.ServeHTTP(w, r)
	})
}
