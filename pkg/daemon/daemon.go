package daemon

import (
	"context"
	"errors"
	"fmt"
	"os/user"
	"strconv"
	"sync"
	"time"

	"github.com/pwatch/pwatch/pkg/control"
	"github.com/pwatch/pwatch/pkg/exitwatch"
	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/pfile"
	"github.com/pwatch/pwatch/pkg/proc"
	"github.com/pwatch/pwatch/pkg/reboot"
	"github.com/pwatch/pwatch/pkg/supervise"
)

// Run watches the services of cfg.Paths until ctx ends (nil: a clean stop,
// the watched processes left running) or a retry-over action ends pcheck
// (nil for shutdown, *ExitStatus{3} for exit). Any error in any pfile
// refuses the start, returning every error.
func Run(ctx context.Context, cfg Config, log *msg.Logger) error {
	slog := log.Slog()
	if cfg.ProcRoot == "" {
		cfg.ProcRoot = "/proc"
	}
	svcs, warns, err := pfile.Load(cfg.Paths...)
	for _, w := range warns {
		slog.Warn(w.String())
	}
	if err != nil {
		return err
	}
	matchers, err := matchersFor(svcs)
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
	rebootNode := func(ctx context.Context, service string) error {
		return reboot.Reboot(ctx, guard, rebootCmd, service, slog)
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
	slog.Info("death-detection backend", "watcher", w.Name())

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ending := make(chan int, 1)
	endWith := func(code int) {
		select {
		case ending <- code:
		default:
		}
	}

	r := newRouter(w)
	d := &daemon{byName: map[string]*supervise.Service{}, guard: guard}
	clock := supervise.NewMonotonicClock()
	for i, cfgSvc := range svcs {
		watch := &serviceWatch{r: r}
		s := supervise.New(cfgSvc, supervise.Deps{
			Processes: serviceProcesses{table: table, matcher: matchers[i]},
			Watcher:   watch,
			Log:       log,
			Slog:      slog,
			Clock:     clock,
			Exit:      endWith,
			Reboot:    rebootNode,
		})
		watch.s = s
		if err := r.watchExec(cfgSvc.Process, s); err != nil {
			slog.Warn("no exec events for this service: restarts are found by scanning", "service", cfgSvc.Name, "error", err)
		}
		d.order = append(d.order, s)
		d.byName[cfgSvc.Name] = s
	}

	ctl, err := control.Listen(cfg.ControlSocket, d, slog)
	if err != nil {
		return err
	}
	defer ctl.Close()

	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); r.run(ctx) }()
	for _, s := range d.order {
		wg.Add(1)
		go func() { defer wg.Done(); s.Run(ctx) }()
	}
	slog.Info("pcheck running", "services", len(d.order), "control_socket", cfg.ControlSocket)

	var result error
	select {
	case <-ctx.Done():
	case code := <-ending:
		if code != 0 {
			result = &ExitStatus{Code: code, Reason: "a service's retries are over (retry_over_action exit)"}
		}
	}
	cancel()
	wg.Wait()
	return result
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
