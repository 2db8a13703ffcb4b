// SPDX-License-Identifier: Apache-2.0

package supervise

import (
	"testing"

	"github.com/pwatch/pwatch/pkg/proc"
	"github.com/pwatch/pwatch/pkg/runstate"
)

// What is left of a dead master: the workers recorded below it, and those
// in its group and session (forked after the record by a master that
// made itself a session leader); never the master, nor a service a restart
// script started in the script's group but pcheck's session.
func TestOrphanOf(t *testing.T) {
	master := proc.ID{PID: 100, StartTime: 5}
	tree := runstate.Tree{Master: master, Members: []proc.ID{{PID: 101, StartTime: 6}}}
	for _, tc := range []struct {
		name string
		p    proc.Process
		want bool
	}{
		{"a recorded worker", proc.Process{ID: proc.ID{PID: 101, StartTime: 6}, PGID: 1, SID: 1}, true},
		{"a recorded worker's pid, another process", proc.Process{ID: proc.ID{PID: 101, StartTime: 900}, PGID: 1, SID: 1}, false},
		{"a later worker of a session leader", proc.Process{ID: proc.ID{PID: 150, StartTime: 50}, PGID: 100, SID: 100}, true},
		{"in the group but another session: a script's service", proc.Process{ID: proc.ID{PID: 160, StartTime: 60}, PGID: 100, SID: 7}, false},
		{"the master itself", proc.Process{ID: master, PGID: 100, SID: 100}, false},
		{"a stranger", proc.Process{ID: proc.ID{PID: 170, StartTime: 70}, PGID: 170, SID: 170}, false},
	} {
		if got := orphanOf(tc.p, tree); got != tc.want {
			t.Errorf("%s: orphanOf = %v, want %v", tc.name, got, tc.want)
		}
	}
}
