// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"

	"github.com/pwatch/pwatch/pkg/control"
	"github.com/pwatch/pwatch/pkg/limits"
	"github.com/pwatch/pwatch/pkg/metrics"
	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/proc"
	"github.com/pwatch/pwatch/pkg/supervise"
)

// startLimits runs the one sampler of every service with limits
// (memory_max, cpu_max, fds_max, threads_max) until ctx ends; services
// without limits are never sampled.
func (d *daemon) startLimits(ctx context.Context, cfg Config) error {
	interval := cfg.LimitInterval
	if interval <= 0 {
		interval = limits.DefaultInterval
	}
	d.limits = &limits.Sampler{
		Targets: d.limitTargets, Read: limits.NewAutoReader(cfg.ProcRoot, d.log.Slog()), Interval: interval,
		Log: d.log, Slog: d.log.Slog(), Now: d.clock.Now,
	}
	if d.metrics != nil {
		d.limits.Observer = d.metrics
	}
	go d.limits.Run(ctx)
	return nil
}

// limitTargets are the services with limits now.
func (d *daemon) limitTargets() []limits.Target {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []limits.Target
	for name, r := range d.services {
		cfg := r.svc.Config()
		if !cfg.HasLimits() {
			continue
		}
		out = append(out, limits.Target{
			Name: name, Limits: limits.Of(cfg), Tree: d.treeOf(r),
			Restart: func(ctx context.Context, b limits.Breach, env []string, line msg.Message) error {
				return restartForLimit(ctx, r.svc, env, cfg.LimitGrace, line)
			},
		})
	}
	return out
}

// treeOf lists a running service's watched trees while it is Up: its
// top-level processes and their descendants, from the death watch's
// events where the backend keeps trees, else from a read of /proc shared
// with the looks of every service.
func (d *daemon) treeOf(r *running) func() []proc.ID {
	return func() []proc.ID {
		st := r.svc.Kept()
		if st.State != supervise.Up || len(st.PIDs) == 0 {
			return nil
		}
		var tops, below []proc.ID
		var snap *proc.Snapshot
		for _, pid := range st.PIDs {
			id, state, err := d.table.Identity(pid)
			if err != nil || state.Dead() {
				continue
			}
			tops = append(tops, id)
			if tree, ok := r.view.Tree(id); ok {
				for _, p := range tree {
					below = append(below, p.ID)
				}
				continue
			}
			if snap == nil {
				if snap, err = d.snaps.Recent(d.limits.Interval); err != nil {
					return nil
				}
			}
			ids, _ := snap.Below(id)
			below = append(below, ids...)
		}
		return append(tops, below...)
	}
}

// Usage is the last sample of every service with limits, for the metrics.
func (m metricsSource) Usage() []metrics.ServiceUsage {
	svcs, _ := m.d.pick("")
	var out []metrics.ServiceUsage
	for _, s := range svcs {
		u, ok := m.d.limits.Usage(s.Name())
		if !ok {
			continue
		}
		cfg := s.Config()
		out = append(out, metrics.ServiceUsage{
			Name: s.Name(), MemoryBytes: u.MemoryBytes, HasMemory: true, CPUSeconds: u.CPUSeconds,
			FDs: u.FDs, HasFDs: u.HasFDs, Threads: u.Threads,
			Limits: map[string]float64{
				limits.MemoryMax: float64(cfg.MemoryMax), limits.CPUMax: float64(cfg.CPUMax),
				limits.FDsMax: float64(cfg.FDsMax), limits.ThreadsMax: float64(cfg.ThreadsMax),
			},
		})
	}
	return out
}

// usageOf is the last sample of service for padmin status; nil when it
// has no limits (never sampled) or no sample yet.
func (d *daemon) usageOf(service string) *control.Usage {
	u, ok := d.limits.Usage(service)
	if !ok {
		return nil
	}
	cu := &control.Usage{Time: u.At, Processes: u.Processes, Threads: u.Threads, CPUSeconds: u.CPUSeconds,
		MemoryBytes: &u.MemoryBytes, MemoryPSS: u.PSS}
	if u.HasCPU {
		cu.CPUPercent = &u.CPUPercent
	}
	if u.HasFDs {
		cu.FDs = &u.FDs
	}
	return cu
}
