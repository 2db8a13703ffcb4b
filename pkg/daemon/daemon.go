package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"os/user"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/pwatch/pwatch/pkg/control"
	"github.com/pwatch/pwatch/pkg/exitwatch"
	"github.com/pwatch/pwatch/pkg/metrics"
	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/pfile"
	"github.com/pwatch/pwatch/pkg/proc"
	"github.com/pwatch/pwatch/pkg/reboot"
	"github.com/pwatch/pwatch/pkg/sdnotify"
	"github.com/pwatch/pwatch/pkg/supervise"
)

// Run watches the services of cfg.Paths until ctx ends (nil: a clean stop,
// the watched processes left running) or a retry-over action ends pcheck
// (nil for shutdown, *ExitStatus{3} for exit). Any error in any pfile
// refuses the start, returning every error. SIGHUP reloads the pfiles.
func Run(ctx context.Context, cfg Config, log *msg.Logger) error {
	slog := log.Slog()
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	svcs, matchers, err := loadRules(cfg.Paths, log)
	if err != nil {
		return err
	}
	guard, err := reboot.NewGuard(cfg.StateDir, cfg.RebootThreshold, cfg.RebootWindow, time.Now)
	if err != nil {
		return err
	}
	rebootCmd, err := reboot.ParseCommand(cfg.RebootCommand)
	if err != nil {
		return fmt.Errorf("--reboot-command: %w", err)
	}
	table, err := proc.NewTable(cfg.ProcRoot, slog)
	if err != nil {
		return err
	}
	w, err := exitwatch.Open(cfg.Watcher, exitwatch.Options{ProcRoot: cfg.ProcRoot, PollInterval: cfg.PollInterval, Logger: slog})
	if err != nil {
		return err
	}
	defer w.Close()
	if cfg.Watcher != "auto" { // auto has logged its choice, and why
		slog.Info("death-detection backend", "watcher", w.Name())
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d := &daemon{
		paths: cfg.Paths, log: log, table: table, router: newRouter(w), guard: guard,
		clock: supervise.NewMonotonicClock(), ctx: ctx,
		ending:   make(chan struct{}, 1),
		services: map[string]*running{},
	}
	d.rebootNode = func(ctx context.Context, service string) error {
		return reboot.Reboot(ctx, guard, rebootCmd, service, slog)
	}

	// SIGHUP's default action would end pcheck: take it before padmin or
	// systemd can think pcheck is up.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	stopHTTP, err := d.serveHTTP(cfg)
	if err != nil {
		return err
	}
	defer stopHTTP()
	ctl, err := control.Listen(cfg.ControlSocket, d, slog)
	if err != nil {
		return err
	}
	defer ctl.Close()

	routerDone := make(chan struct{})
	go func() { defer close(routerDone); d.router.run(ctx) }()
	d.mu.Lock()
	for i, s := range svcs {
		d.startLocked(s, matchers[i], false)
	}
	d.mu.Unlock()
	slog.Info("pcheck running", "services", len(svcs), "control_socket", cfg.ControlSocket)

	notify(slog, sdnotify.Ready)
	// The watchdog is fed while this loop turns: it beats every second.
	var lastBeat atomic.Int64
	lastBeat.Store(time.Now().UnixNano())
	beat := time.NewTicker(time.Second)
	defer beat.Stop()
	go sdnotify.Watchdog(ctx, func() bool { return time.Since(time.Unix(0, lastBeat.Load())) < 10*time.Second }, slog)

	var result error
loop:
	for {
		select {
		case <-ctx.Done():
			slog.Info("pcheck stopping; the watched services are left running")
			break loop
		case <-routerDone:
			// The watcher ended on its own: pcheck is blind. End with an
			// error, so that systemd restarts it and it adopts anew.
			result = fmt.Errorf("the %s death watch stopped; no exit can be seen any more", w.Name())
			break loop
		case <-beat.C:
			lastBeat.Store(time.Now().UnixNano())
		case <-hup:
			if errs := d.Reload(ctx, ""); len(errs) > 0 {
				slog.Error("SIGHUP: reload refused; the running rules stay", "errors", errors.Join(errs...))
			}
		case <-d.ending:
			if code := int(d.endCode.Load()); code != 0 {
				result = &ExitStatus{Code: code, Reason: "a service's retries are over (retry_over_action exit)"}
			}
			break loop
		}
	}
	notify(slog, sdnotify.Stopping)
	cancel()
	d.stopAll()
	<-routerDone
	return result
}

// notify tells systemd, when it runs pcheck, of a change of state.
func notify(log *slog.Logger, send func() error) {
	if err := send(); err != nil {
		log.Warn("systemd notification failed", "error", err)
	}
}

// serveHTTP starts the metrics and health endpoints that cfg asks for
// (one listener when both share an address) and returns their stop.
func (d *daemon) serveHTTP(cfg Config) (func(), error) {
	if cfg.MetricsListen == "" && cfg.HealthListen == "" {
		return func() {}, nil
	}
	src := metricsSource{d}
	slog := d.log.Slog()
	muxes := map[string]*http.ServeMux{}
	mux := func(addr string) *http.ServeMux {
		if muxes[addr] == nil {
			muxes[addr] = http.NewServeMux()
		}
		return muxes[addr]
	}
	if cfg.MetricsListen != "" {
		m := metrics.New(src, metrics.Options{
			RestartReasons: []string{supervise.ReasonDown, supervise.ReasonStall, supervise.ReasonSocket, supervise.ReasonStart},
			Logger:         slog,
		})
		d.metrics = m
		mux(cfg.MetricsListen).Handle("/metrics", m.Handler())
	}
	if cfg.HealthListen != "" {
		h := metrics.HealthHandler(src)
		mux(cfg.HealthListen).Handle("/healthz", h)
		mux(cfg.HealthListen).Handle("/healthz/", h)
	}
	var servers []*metrics.Server
	stop := func() {
		for _, s := range servers {
			s.Close()
		}
	}
	for addr, m := range muxes {
		s, err := metrics.Listen(addr, m, slog)
		if err != nil {
			stop()
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		slog.Info("serving http", "addr", s.Addr().String())
		servers = append(servers, s)
	}
	return stop, nil
}

// loadRules reads and checks every pfile of paths, and the users they name:
// all or nothing.
func loadRules(paths []string, log *msg.Logger) ([]*pfile.Service, []proc.Matcher, error) {
	svcs, warns, err := pfile.Load(paths...)
	for _, w := range warns {
		log.Slog().Warn(w.String())
	}
	if err != nil {
		return nil, nil, err
	}
	matchers, err := matchersFor(svcs)
	if err != nil {
		return nil, nil, err
	}
	return svcs, matchers, nil
}

// matchersFor turns each service's process keys into a process matcher.
func matchersFor(svcs []*pfile.Service) ([]proc.Matcher, error) {
	ms := make([]proc.Matcher, len(svcs))
	var errs []error
	for i, s := range svcs {
		ms[i] = proc.Matcher{Exe: s.Process, Args: s.ArgsRE, PIDFile: s.PIDFile}
		if s.User == "" {
			continue
		}
		uid, err := lookupUID(s.User)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: user %q: %w", s.File, s.User, err))
			continue
		}
		ms[i].UID = &uid
	}
	return ms, errors.Join(errs...)
}

func lookupUID(name string) (int, error) {
	if n, err := strconv.Atoi(name); err == nil && n >= 0 {
		return n, nil
	}
	u, err := user.Lookup(name)
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(u.Uid)
}
