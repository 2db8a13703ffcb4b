// SPDX-License-Identifier: Apache-2.0

package supervise

import "fmt"

// State is where a service stands. The allowed moves between states are
// listed in transitions; anything else is a bug and is refused.
type State int

const (
	// Up: min_count top-level processes run and are watched.
	Up State = iota + 1
	// Down: a watched process died (or none runs); recovery has not begun.
	Down
	// Restarting: the restart script runs or its processes are awaited.
	Restarting
	// Stalled: pcheck is killing the tree to restart it: a stall check
	// failed for its duration, or a restart was asked for (Restart).
	Stalled
	// Paused: padmin stop; nothing is watched or restarted.
	Paused
	// RetryOver: restarts failed retry_count times within grace; unwatched.
	RetryOver
)

var stateNames = map[State]string{
	Up: "Up", Down: "Down", Restarting: "Restarting",
	Stalled: "Stalled", Paused: "Paused", RetryOver: "RetryOver",
}

func (s State) String() string {
	if n, ok := stateNames[s]; ok {
		return n
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// transitions is the table of allowed moves.
var transitions = map[State][]State{
	Up:         {Down, Stalled, Paused},
	Down:       {Restarting, RetryOver, Up, Paused},
	Restarting: {Up, Down, RetryOver, Paused},
	Stalled:    {Down, Up, RetryOver, Paused},
	Paused:     {Up, Down},
	RetryOver:  {Up, Down, Paused},
}

// canMove reports whether from -> to is allowed.
func canMove(from, to State) bool {
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}
