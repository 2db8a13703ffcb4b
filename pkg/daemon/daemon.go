// SPDX-License-Identifier: Apache-2.0

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
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/pwatch/pwatch/pkg/control"
	"github.com/pwatch/pwatch/pkg/exitwatch"
	"github.com/pwatch/pwatch/pkg/metrics"
	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/opstate"
	"github.com/pwatch/pwatch/pkg/pfile"
	"github.com/pwatch/pwatch/pkg/proc"
	"github.com/pwatch/pwatch/pkg/reboot"
	"github.com/pwatch/pwatch/pkg/runstate"
	"github.com/pwatch/pwatch/pkg/sdnotify"
	"github.com/pwatch/pwatch/pkg/supervise"
	"github.com/pwatch/pwatch/pkg/trust"
)

// Run watches the services of cfg.Paths until ctx ends (nil: a clean stop,
// the watched processes left running) or a retry-over action ends pcheck
// (nil for shutdown, *ExitStatus{3} for exit). Any error in any pfile
// refuses the start, returning every error. SIGHUP reloads the pfiles.
func Run(ctx context.Context, cfg Config, log *msg.Logger) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	d, svcs, matchers, err := newDaemon(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer d.mux.Close()
	if d.history != nil {
		defer d.history.Close() // after the hub is detached (defers run last first)
	}
	defer log.Observe(nil)
	defer d.startNotify(ctx)()
	return d.serve(ctx, cfg, svcs, matchers)
}

// newDaemon loads the rules and opens what pcheck needs (the reboot guard
// and command, the process table, the host's one death watch), or says why
// it cannot: nothing runs yet.
func newDaemon(ctx context.Context, cfg Config, log *msg.Logger) (*daemon, []*pfile.Service, []proc.Matcher, error) {
	slog := log.Slog()
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	rebootCmd, err := reboot.ParseCommand(cfg.RebootCommand)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("--reboot-command: %w", err)
	}
	rebootCmd.UnsafeSkipTrust = cfg.SkipTrustCheck
	notifier, err := newNotifier(cfg, log)
	if err != nil {
		return nil, nil, nil, err
	}
	rules := ruleSource{paths: cfg.Paths, rebootProgram: rebootCmd.Argv[0], skipTrust: cfg.SkipTrustCheck}
	svcs, matchers, err := rules.load(log)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := checkStateDir(cfg.StateDir, cfg.SkipTrustCheck, log); err != nil {
		return nil, nil, nil, err
	}
	guard, err := reboot.NewGuard(cfg.StateDir, cfg.RebootThreshold, cfg.RebootWindow, time.Now)
	if err != nil {
		return nil, nil, nil, err
	}
	store, err := opstate.Open(cfg.StateDir)
	if err != nil {
		return nil, nil, nil, err
	}
	if err := proc.CheckOwnNamespace(cfg.ProcRoot); err != nil {
		return nil, nil, nil, err
	}
	table, err := proc.NewTable(cfg.ProcRoot, slog)
	if err != nil {
		return nil, nil, nil, err
	}
	// Without its records pcheck still runs; a successor just learns
	// nothing from it (docs/behaviour.md).
	runs, err := runstate.Open(cfg.StateDir, cfg.ProcRoot)
	if err != nil {
		slog.Warn("no records for a later pcheck: a restart in flight or a dead master's orphans will not be recognised", "error", err)
	}
	mux, err := exitwatch.OpenMux(cfg.Watcher, exitwatch.Options{ProcRoot: cfg.ProcRoot, PollInterval: cfg.PollInterval, Logger: slog})
	if err != nil {
		return nil, nil, nil, err
	}
	// Loading the BPF programs decoded the kernel's BTF: megabytes of heap
	// that are garbage now. Give them back at once rather than over the
	// scavenger's minutes, so an idle pcheck is small from the start.
	debug.FreeOSMemory()
	hub, history, err := newEventHub(log, cfg.StateDir)
	if err != nil {
		mux.Close()
		return nil, nil, nil, err
	}
	if cfg.Watcher != "auto" { // auto has logged its choice, and why
		slog.Info("death-detection backend", "watcher", mux.Backend().Name(), "process_trees_from_events", mux.KeepsTrees())
	}
	d := &daemon{
		rules: rules, log: log, table: table, snaps: proc.NewSnapshots(table, snapshotRetention), mux: mux, guard: guard, runs: runs, store: store,
		clock: supervise.NewMonotonicClock(), ctx: ctx, events: hub, history: history, notifier: notifier,
		ending:   make(chan struct{}, 1),
		services: map[string]*running{},
	}
	d.rebootNode = func(ctx context.Context, service string) error {
		err := reboot.Reboot(ctx, guard, announcedReboot{cmd: rebootCmd, log: log, service: service}, service, slog)
		if refused := (*trust.Refusal)(nil); errors.As(err, &refused) {
			log.Log(msg.ProgramRefused(service, refused.Program, refused.Why()))
		}
		return err
	}
	return d, svcs, matchers, nil
}

// snapshotRetention is how long a read of /proc is kept for the periodic
// looks of other services (FindSince): longer than their periods, short
// enough that an idle pcheck soon holds no copy of the host's table.
const snapshotRetention = 2 * time.Second

// serve starts the endpoints and the supervisors and runs until ctx ends,
// a retry-over action ends pcheck, or the death watch breaks.
func (d *daemon) serve(ctx context.Context, cfg Config, svcs []*pfile.Service, matchers []proc.Matcher) error {
	slog := d.log.Slog()
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
	if err := d.startLimits(ctx, cfg); err != nil {
		return err
	}
	ctl, err := control.Listen(cfg.ControlSocket, d, slog)
	if err != nil {
		return err
	}
	defer ctl.Close()

	d.mu.Lock()
	started := make([]*running, len(svcs))
	for i, s := range svcs {
		started[i] = d.startLocked(s, matchers[i], nil)
	}
	d.runLocked(started)
	d.mu.Unlock()
	slog.Info("pcheck running", "services", len(svcs), "control_socket", cfg.ControlSocket)

	notify(slog, sdnotify.Ready)
	go sdnotify.Watchdog(ctx, d.eventPathAlive, slog)

	var result error
loop:
	for {
		select {
		case <-ctx.Done():
			slog.Info("pcheck stopping; the watched services are left running")
			break loop
		case <-d.mux.Done():
			// The watcher ended on its own: pcheck is blind. End with an
			// error, so that systemd restarts it and it adopts anew.
			result = fmt.Errorf("the %s death watch stopped; no exit can be seen any more", d.mux.Backend().Name())
			d.log.Log(msg.DeathWatchStopped(d.mux.Backend().Name()))
			break loop
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
	d.stopAll()
	return result
}

// readerSilence is how long the death watch's reader may go without waking
// (it wakes every ReaderWakeEvery) before the watchdog is starved: two
// wakes may be late on a loaded host.
const readerSilence = 3 * exitwatch.ReaderWakeEvery

// eventPathAlive feeds systemd's watchdog: the death watch's reader still
// wakes, and every supervisor answers (idle, or busy within its bounds).
// Both on the monotonic clock.
func (d *daemon) eventPathAlive() bool {
	if woke := d.mux.LastWake(); woke == 0 || exitwatch.MonotonicNow()-woke > readerSilence {
		return false
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, r := range d.services {
		if !r.svc.Answering() {
			return false
		}
	}
	return true
}

// notify tells systemd, when it runs pcheck, of a change of state.
func notify(log *slog.Logger, send func() error) {
	if err := send(); err != nil {
		log.Warn("systemd notification failed", "error", err)
	}
}

// serveHTTP starts the metrics and health endpoints and the status page
// that cfg asks for (one listener for those that share an address) and
// returns their stop.
func (d *daemon) serveHTTP(cfg Config) (func(), error) {
	if cfg.MetricsListen == "" && cfg.HealthListen == "" && cfg.WebListen == "" {
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
			RestartReasons: []string{supervise.ReasonDown, supervise.ReasonStall, supervise.ReasonSocket, supervise.ReasonStart, supervise.ReasonRearm,
				supervise.ReasonOperator, supervise.ReasonLimit},
			Logger: slog,
		})
		d.metrics = m
		mux(cfg.MetricsListen).Handle("/metrics", m.Handler())
	}
	if cfg.HealthListen != "" {
		h := metrics.HealthHandler(healthSource{d})
		mux(cfg.HealthListen).Handle("/healthz", h)
		mux(cfg.HealthListen).Handle("/healthz/", h)
	}
	if cfg.WebListen != "" {
		mux(cfg.WebListen)
	}
	limit, err := raiseFDLimit()
	if err != nil {
		return nil, err
	}
	want := cfg.HTTPMaxConns
	if want < 1 {
		want = metrics.DefaultMaxConns
	}
	maxConns := httpConnCap(limit, len(muxes), want)
	if maxConns < want {
		slog.Warn("RLIMIT_NOFILE is low: the http listeners hold fewer connections than asked, to keep file descriptors for probes and recoveries",
			"nofile", limit, "http_max_conns", want, "each", maxConns)
	}
	var servers []*metrics.Server
	closePage := func() {}
	if cfg.WebListen != "" {
		page := d.statusPage(maxConns)
		mux(cfg.WebListen).Handle("/", page)
		closePage = page.Close
	}
	stop := func() {
		closePage()
		for _, s := range servers {
			s.Close()
		}
	}
	for addr, m := range muxes {
		s, err := metrics.Listen(addr, m, slog, maxConns)
		if err != nil {
			stop()
			return nil, fmt.Errorf("listen %s: %w", addr, err)
		}
		slog.Info("serving http", "addr", s.Addr().String(), "max_conns", maxConns)
		servers = append(servers, s)
	}
	return stop, nil
}

// checkStateDir applies the trust rule to --state-dir and the records
// pcheck reads back from it: whoever could write them would choose the
// pids pcheck kills, the services it leaves stopped, the reboots it
// counted. A failure refuses the start, naming each file.
func checkStateDir(dir string, skipTrust bool, log *msg.Logger) error {
	if dir == "" {
		return nil // each store says it has none
	}
	tc := trust.New()
	tc.State(dir, reboot.StateFile, opstate.File, runstate.Dir)
	problems := tc.Take()
	if len(problems) == 0 {
		return nil
	}
	if skipTrust {
		for _, p := range problems {
			log.Slog().Warn("trust rule off: accepted anyway", "problem", p.Error())
		}
		return nil
	}
	return fmt.Errorf("--state-dir %s fails the trust rule:\n%w", dir, problems)
}

// ruleSource is where the rules come from, and what else pcheck will run
// as root, for the trust rule.
type ruleSource struct {
	paths         []string
	rebootProgram string
	skipTrust     bool // --unsafe-skip-trust-check: problems only warn
}

// load reads and checks every pfile of paths, the users they name, and
// that root alone controls the pfiles and what they run (pkg/trust): all
// or nothing, every error returned.
func (r ruleSource) load(log *msg.Logger) ([]*pfile.Service, []proc.Matcher, error) {
	tc := trust.New()
	for _, p := range r.paths {
		tc.Rules(p)
	}
	files, _ := pfile.Files(r.paths...) // Load reports what cannot be listed
	for _, f := range files {
		tc.Rules(f)
	}
	svcs, warns, err := pfile.Load(r.paths...)
	for _, w := range warns {
		log.Slog().Warn(w.String())
	}
	for _, s := range svcs {
		tc.Service(s)
	}
	tc.Program(r.rebootProgram)
	errs := flatten(err)
	problems := tc.Take()
	if r.skipTrust {
		log.Slog().Warn("the trust rule is off (--unsafe-skip-trust-check, meant for tests only): files others can write are read as rules and run as root", "would_refuse", len(problems))
		for _, p := range problems {
			log.Slog().Warn("trust rule off: accepted anyway", "problem", p.Error())
		}
	} else {
		errs = append(errs, problems.Unwrap()...)
	}
	if len(errs) > 0 {
		return nil, nil, errors.Join(errs...)
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
		ms[i] = proc.Matcher{Exe: s.Process, Args: s.ArgsRule, PIDFile: s.PIDFile}
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
