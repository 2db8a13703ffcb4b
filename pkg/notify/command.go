// SPDX-License-Identifier: Apache-2.0

package notify

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/pwatch/pwatch/internal/capbuf"
	"github.com/pwatch/pwatch/internal/pgroup"
	"github.com/pwatch/pwatch/internal/quote"
	"github.com/pwatch/pwatch/pkg/msg"
	"github.com/pwatch/pwatch/pkg/rootexec"
	"github.com/pwatch/pwatch/pkg/trust"
)

// maxOutput bounds what is kept of the command's output for the log.
const maxOutput = 4 << 10

// maxValue bounds one variable's value, so that no event can make the
// environment too big to exec (E2BIG).
const maxValue = 8 << 10

// isFieldName: a field that becomes a PWATCH_ variable of its own (the
// catalogue's keys, pkg/msg, are such names), at most 64 characters. The
// length is checked apart: {0,63} would compile to 63 copies of the class.
func isFieldName(k string) bool { return fieldChars.MatchString(k) && len(k) <= 64 }

var fieldChars = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// runCommand runs the command once for note, like a restart script (the
// trust rule checked again through the file exec'd, the fixed environment,
// a process group of its own; pkg/rootexec), with note in the environment
// and as JSON on stdin. Past the timeout the group is killed: through a
// pidfd of the command pcheck started, never anything else.
func (n *Notifier) runCommand(ctx context.Context, note Notification) error {
	ctx, cancel := context.WithTimeout(ctx, n.cfg.Timeout)
	defer cancel()
	input, err := json.Marshal(note)
	if err != nil {
		return err
	}
	argv := n.cfg.Argv
	prepare := rootexec.Command
	if n.cfg.UnsafeSkipTrust {
		prepare = func(argv, env []string) (*rootexec.Cmd, error) {
			return rootexec.CommandUnsafe(argv, env, func(r *trust.Refusal) {
				n.log.Slog().Warn("trust rule off: run anyway", "command", argv[0], "problem", r.Error())
			})
		}
	}
	cmd, err := prepare(argv, Env(note))
	if err != nil {
		var refused *trust.Refusal
		if errors.As(err, &refused) {
			n.log.Log(msg.ProgramRefused(note.Service, refused.Program, refused.Why()))
		}
		return fmt.Errorf("notify command %s: %w", argv[0], err)
	}
	defer cmd.Close()
	out := &capbuf.Buffer{Max: maxOutput}
	cmd.Stdin = bytes.NewReader(input)
	cmd.Stdout, cmd.Stderr = out, out
	// Something the command left running may hold the pipes: wait for
	// the command, not for them.
	cmd.WaitDelay = time.Second
	group := pgroup.New(cmd.Cmd)
	defer group.Close()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start notify command %s: %w", argv[0], err)
	}
	// The group is killed, if the timeout comes first, before the
	// command is reaped: never a group that took its number since.
	err = group.Wait(ctx)
	output := quote.String(strings.TrimSpace(out.String()))
	switch {
	case err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		return fmt.Errorf("%s did not finish within %s and was killed: %w%s", argv[0], n.cfg.Timeout, err, outputSuffix(output))
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("%s killed: pcheck is stopping: %w%s", argv[0], err, outputSuffix(output))
	case errors.Is(err, exec.ErrWaitDelay):
		// It succeeded; what it left running holds its output.
	case err != nil:
		return fmt.Errorf("%s: %w%s", argv[0], err, outputSuffix(output))
	}
	if output != "" {
		n.log.Slog().Debug("notify command output", "service", note.Service, "output", output)
	}
	return nil
}

func outputSuffix(output string) string {
	if output == "" {
		return ""
	}
	return "; output: " + output
}

// Env is the notification's environment: PWATCH_EVENT, PWATCH_SERVICE,
// PWATCH_PID, PWATCH_TEXT, PWATCH_TIME, PWATCH_SEQ, PWATCH_HOST,
// PWATCH_CAUSE and PWATCH_DETAIL always (empty when the event has none, so
// that none is inherited from pcheck's own), then one PWATCH_NAME per
// other field of the event (PWATCH_REASON, PWATCH_ATTEMPT,
// PWATCH_SIGNAL_NAME, PWATCH_SUPPRESSED...). Values are data, passed as
// they are: text from outside is already quoted in them (pkg/msg).
func Env(note Notification) []string {
	pid := ""
	if note.PID != 0 {
		pid = strconv.Itoa(note.PID)
	}
	seq := ""
	if note.Seq != 0 {
		seq = strconv.FormatUint(note.Seq, 10)
	}
	var env []string
	for _, k := range slices.Sorted(maps.Keys(note.Fields)) {
		if isFieldName(k) {
			env = append(env, variable(strings.ToUpper(k), note.Fields[k]))
		}
	}
	return append(env,
		variable("EVENT", note.Event.Event),
		variable("SERVICE", note.Service),
		variable("PID", pid),
		variable("TEXT", note.Text),
		variable("TIME", note.Time.Format(time.RFC3339)),
		variable("SEQ", seq),
		variable("HOST", note.Host),
		variable("CAUSE", note.Fields[msg.KeyCause]),
		variable("DETAIL", note.Detail),
	)
}

// variable is PWATCH_NAME=value, value cut to maxValue and without a NUL
// (which exec refuses).
func variable(name, value string) string {
	if len(value) > maxValue {
		value = value[:maxValue]
	}
	return "PWATCH_" + name + "=" + strings.ReplaceAll(value, "\x00", `\x00`)
}
