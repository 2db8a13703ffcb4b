package metrics

import (
	"fmt"
	"net/http"
	"strings"
)

// HealthHandler serves the health endpoint a load balancer polls:
//
//	GET /healthz       200 "ok" when every service is Up (and there is at
//	                   least one), else 503 listing the services not Up
//	GET /healthz/NAME  200 when NAME is Up, 503 when it is not, 404 when
//	                   there is no such service
//
// HEAD is answered as GET without the body; other methods get 405. The
// body is one "NAME STATE" line per service concerned.
func HealthHandler(src ServiceLister) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		svcs := src.Services()
		var down strings.Builder
		for _, s := range svcs {
			if !s.Up {
				fmt.Fprintf(&down, "%s %s\n", s.Name, s.State)
			}
		}
		switch {
		case len(svcs) == 0:
			reply(w, http.StatusServiceUnavailable, "no services\n")
		case down.Len() > 0:
			reply(w, http.StatusServiceUnavailable, down.String())
		default:
			reply(w, http.StatusOK, "ok\n")
		}
	})
	mux.HandleFunc("GET /healthz/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		for _, s := range src.Services() {
			if s.Name != name {
				continue
			}
			code := http.StatusOK
			if !s.Up {
				code = http.StatusServiceUnavailable
			}
			reply(w, code, s.Name+" "+s.State+"\n")
			return
		}
		reply(w, http.StatusNotFound, "no such service\n")
	})
	return mux
}

func reply(w http.ResponseWriter, code int, body string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Cache-Control", "no-store") // a cached 200 would keep a sick node in
	w.WriteHeader(code)
	_, _ = w.Write([]byte(body)) // the client may be gone; nothing to do then
}
