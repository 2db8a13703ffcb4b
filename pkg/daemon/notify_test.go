// SPDX-License-Identifier: Apache-2.0

package daemon

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pwatch/pwatch/pkg/msg"
)

// Bad --notify-* flags refuse the start with the flag and the reason, also
// when no command is given; a command the trust rule refuses too.
func TestNotifyFlagsAreCheckedAtTheStart(t *testing.T) {
	log, err := msg.NewLogger(msg.Config{Ident: "pcheck", Stderr: io.Discard, SyslogSocket: filepath.Join(t.TempDir(), "none")})
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	dir := t.TempDir()
	open := filepath.Join(dir, "notify")
	if err := os.WriteFile(open, []byte("#!/bin/sh\n"), 0o757); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(open, 0o757); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		cfg  Config
		want string
	}{
		{Config{NotifyEvents: "down,dwon"}, `--notify-events "down,dwon": unknown event "dwon"; known events: adopted,`},
		{Config{NotifyCommand: "/bin/true", NotifyBurst: -2}, "--notify-burst -2"},
		{Config{NotifyCommand: "/bin/true", NotifyPer: -time.Second}, "--notify-per -1s"},
		{Config{NotifyCommand: "/bin/true; reboot"}, `--notify-command "/bin/true; reboot": unquoted ';'`},
		{Config{NotifyCommand: filepath.Join(dir, "missing")}, "--notify-command: " + filepath.Join(dir, "missing")},
		{Config{NotifyCommand: open}, "--notify-command: refused to run " + open},
	} {
		n, err := newNotifier(tc.cfg, log)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.cfg, err, tc.want)
		}
		if n != nil {
			t.Errorf("%+v: a notifier despite the error", tc.cfg)
		}
	}
	if n, err := newNotifier(Config{}, log); n != nil || err != nil {
		t.Fatalf("no command: %v %v, want no notifier", n, err)
	}
	if n, err := newNotifier(Config{NotifyCommand: "true --x 'a b'", NotifyEvents: "up"}, log); n == nil || err != nil {
		t.Fatalf("true (found in the safe PATH): %v", err)
	}
}
