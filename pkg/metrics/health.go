// SPDX-License-Identifier: Apache-2.0

package metrics

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// HealthHandler serves the health endpoint a load balancer polls:
//
//	GET /healthz       200 "ok" when every service is Up (and there is at
//	                   least one), else 503 listing the services not Up
//	GET /healthz/NAME  200 when NAME is Up, 503 when it is not, 404 when
//	                   there is no such service
//
// The body is one "NAME STATE" line per service concerned, and one "NAME
// check BLOCK STATE [since TIME]" line per stall-check block of it that is
// starting or failing: a failing probe is reported before it is a stall.
// With ?strict (or strict=1) such a block also fails the request (503):
// the strict variant takes a node out as soon as its probes fail, not
// once a stall is declared. HEAD is answered as GET without the body;
// other methods get 405.
func HealthHandler(src ServiceLister) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		strict, ok := strictOf(w, r)
		if !ok {
			return
		}
		svcs := src.Services()
		var bad strings.Builder
		for _, s := range svcs {
			if !s.Up {
				fmt.Fprintf(&bad, "%s %s\n", s.Name, s.State)
			} else if strict {
				writeChecks(&bad, s)
			}
		}
		switch {
		case len(svcs) == 0:
			reply(w, http.StatusServiceUnavailable, "no services\n")
		case bad.Len() > 0:
			reply(w, http.StatusServiceUnavailable, bad.String())
		default:
			reply(w, http.StatusOK, "ok\n")
		}
	})
	mux.HandleFunc("GET /healthz/{name}", func(w http.ResponseWriter, r *http.Request) {
		strict, ok := strictOf(w, r)
		if !ok {
			return
		}
		name := r.PathValue("name")
		for _, s := range src.Services() {
			if s.Name != name {
				continue
			}
			var body strings.Builder
			body.WriteString(s.Name + " " + s.State + "\n")
			answering := writeChecks(&body, s)
			code := http.StatusOK
			if !s.Up || (strict && !answering) {
				code = http.StatusServiceUnavailable
			}
			reply(w, code, body.String())
			return
		}
		reply(w, http.StatusNotFound, "no such service\n")
	})
	return mux
}

// writeChecks writes a line for each block of s that is not answering and
// says whether all are.
func writeChecks(b *strings.Builder, s ServiceState) (answering bool) {
	answering = true
	for _, c := range s.Checks {
		if c.Answering() {
			continue
		}
		answering = false
		fmt.Fprintf(b, "%s check %s %s", s.Name, c.Block, c.State)
		if c.State == "failing" && !c.FailingSince.IsZero() {
			fmt.Fprintf(b, " since %s", c.FailingSince.UTC().Format(time.RFC3339))
		}
		b.WriteByte('\n')
	}
	return answering
}

// strictOf reads the strict parameter (absent: false; present without a
// value: true); a value that is not a boolean is answered 400.
func strictOf(w http.ResponseWriter, r *http.Request) (strict, ok bool) {
	q := r.URL.Query()
	if !q.Has("strict") {
		return false, true
	}
	v := q.Get("strict")
	if v == "" {
		return true, true
	}
	strict, err := strconv.ParseBool(v)
	if err != nil {
		reply(w, http.StatusBadRequest, fmt.Sprintf("strict=%q: want 1, true, 0 or false\n", v))
		return false, false
	}
	return strict, true
}

func reply(w http.ResponseWriter, code int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store") // a cached 200 would keep a sick node in
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body)) // the client may be gone; nothing to do then
}
