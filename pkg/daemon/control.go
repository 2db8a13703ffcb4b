// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/pwatch/pwatch/pkg/control"
	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/pfile"
	"github.com/pwatch/pwatch/pkg/supervise"
)

// pick is one named service, or all of them, by name, for "".
func (d *daemon) pick(name string) ([]*supervise.Service, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if name == "" {
		names := make([]string, 0, len(d.services))
		for n := range d.services {
			names = append(names, n)
		}
		sort.Strings(names)
		out := make([]*supervise.Service, len(names))
		for i, n := range names {
			out[i] = d.services[n].svc
		}
		return out, nil
	}
	r, ok := d.services[name]
	if !ok {
		return nil, fmt.Errorf("no service %q is watched", name)
	}
	return []*supervise.Service{r.svc}, nil
}

func (d *daemon) Status(_ context.Context, name string) ([]control.ServiceStatus, error) {
	svcs, err := d.pick(name)
	if err != nil {
		return nil, err
	}
	out := make([]control.ServiceStatus, 0, len(svcs))
	for _, s := range svcs {
		st := s.Status()
		cs := control.ServiceStatus{
			Name: st.Name, State: st.State.String(), PIDs: st.PIDs,
			UptimeSeconds: int64(st.Uptime.Seconds()), Restarts: st.Restarts, AttemptsLeft: st.AttemptsLeft,
			Step: st.Step,
		}
		if in := st.NextIn.Seconds(); st.Next == supervise.NextAttempt {
			cs.NextAttemptIn = &in
		} else if st.Next == supervise.NextRearm {
			cs.RearmIn = &in
		}
		if cs.PIDs == nil {
			cs.PIDs = []int{}
		}
		if st.LastEvent != "" {
			cs.LastEvent = &control.Event{Time: st.LastEventAt, Text: st.LastEvent}
		}
		if e := st.LastDeath; e != nil {
			cs.LastDeath = deathOf(*e, st.LastDeathAt)
		}
		cs.Usage = d.usageOf(st.Name)
		for _, c := range s.Checks() {
			cc := control.CheckStatus{
				Block: c.Check.Block, Kind: c.Check.Kind.String(), Port: c.Check.Port,
				OK: c.OK, State: c.State(st.State == supervise.Up), Stopped: c.Stopped, Stalls: c.Stalls,
				NotCountedSeconds: c.NotCounted.Seconds(), LastProbeSeconds: c.LastDuration.Seconds(),
				AcceptQueue: c.Listen.AcceptQueue, Backlog: c.Listen.Backlog,
			}
			if !c.FailingSince.IsZero() && (cc.State == supervise.CheckFailing || cc.State == supervise.CheckStarting) {
				since := c.FailingSince
				cc.FailingSince = &since
			}
			cs.Checks = append(cs.Checks, cc)
		}
		out = append(out, cs)
	}
	return out, nil
}

func (d *daemon) Rules(_ context.Context, name string) (json.RawMessage, error) {
	svcs, err := d.pick(name)
	if err != nil {
		return nil, err
	}
	rules := make([]pfile.Rules, len(svcs))
	for i, s := range svcs {
		rules[i] = s.Config().Rules()
	}
	return json.Marshal(rules)
}

func (d *daemon) Stop(ctx context.Context, name string) error {
	s, err := d.one(name)
	if err != nil {
		return err
	}
	if err := s.Stop(ctx); err != nil {
		return err
	}
	d.recordCommand(msg.CommandStop, name)
	return nil
}

func (d *daemon) Start(ctx context.Context, name string) error {
	s, err := d.one(name)
	if err != nil {
		return err
	}
	if err := s.Start(ctx); err != nil {
		return err
	}
	d.recordCommand(msg.CommandStart, name)
	return nil
}

func (d *daemon) RebootCount(_ context.Context, reset bool) (control.RebootCount, error) {
	if reset {
		if err := d.guard.Reset(); err != nil {
			return control.RebootCount{}, err
		}
	}
	n, err := d.guard.Count()
	if err != nil {
		return control.RebootCount{}, err
	}
	return control.RebootCount{Count: n, Threshold: d.guard.Threshold(), WindowSeconds: int64(d.guard.Window() / time.Second)}, nil
}

func (d *daemon) one(name string) (*supervise.Service, error) {
	if name == "" {
		return nil, errors.New("name the service")
	}
	svcs, err := d.pick(name)
	if err != nil {
		return nil, err
	}
	return svcs[0], nil
}

// deathOf is a death as padmin shows it.
func deathOf(e msg.Ending, at time.Time) *control.Death {
	d := &control.Death{Time: at, Cause: e.Cause(), Text: e.String(), Signal: e.Signal, CoreDumped: e.CoreDumped,
		OOM: e.OOM, Memcg: e.Memcg, RSSKiB: e.RSSKiB}
	if e.Known && e.Signal == 0 && !e.OOM {
		status := e.ExitStatus
		d.ExitStatus = &status
	}
	if e.SenderPID != 0 && e.ByPcheck == "" {
		uid := e.SenderUID
		d.SenderPID, d.SenderComm, d.SenderUID = e.SenderPID, e.SenderComm, &uid
	}
	return d
}
