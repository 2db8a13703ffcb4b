// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"syscall"
	"testing"

	"github.com/pwatch/pwatch/internal/testpriv"
)

// TestReloadPadminAndSIGHUP: live reload of a pfile directory through the
// real binaries.
//   - Bad pfiles refuse the whole reload: padmin reload exits 1 with every
//     error as FILE:LINE:, pcheck logs it, and the running rules stay,
//     even those of a good pfile changed at the same time.
//   - Fixed, SIGHUP loads them: the added service is started and watched.
//   - A changed pfile takes effect without restarting its healthy service.
//   - A removed pfile is no longer watched; its process is left running.
func TestReloadPadminAndSIGHUP(t *testing.T) {
	testpriv.Root(t)
	t.Parallel()
	sc := newScene(t)
	dir := filepath.Join(sc.dir, "pfiles")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	first, added := newSleeper(t, sc.dir, "first"), newSleeper(t, sc.dir, "added")
	firstKeys := func(retryCount string) []string {
		return []string{"retry_count " + retryCount, "retry_interval 0", "restart_timeout 10", "kill_timeout 1"}
	}
	first.writePfile(t, dir, "", firstKeys("3")...)
	firstPID := first.start(t)
	p := startPcheckFlags(t, sc, nil, dir)
	upWith(t, p, first.name, firstPID)
	rules := p.padminOK(t, "rules", "--json", first.name).out

	// Two bad pfiles, and a good change to the first one beside them.
	first.writePfile(t, dir, "", firstKeys("5")...)
	bad, typo := refusedReloadKeepsRules(t, sc, p, dir, first, added, rules)

	// Fixed: SIGHUP reloads everything; the added service does not run, so
	// it is started (start_on_load). Nothing was logged before.
	addedPID := sighupStartsAdded(t, p, dir, added, typo)
	// The first pfile's change made at the refused reload is in now.
	expectRetryCount(t, p, first.name, 5)
	upWith(t, p, first.name, firstPID)

	// A change to the first pfile alone: its healthy service keeps its
	// process. Its new supervisor is Up (it adopted or restarted), so a
	// restart would have logged before the added service's death, which is
	// the sentinel.
	first.writePfile(t, dir, "", firstKeys("7")...)
	r := p.padminOK(t, "reload")
	expectPadminLine(t, sc.syslog, r.pid, command("reload", ""))
	expectRetryCount(t, p, first.name, 7)
	upWith(t, p, first.name, firstPID)
	kill9(t, addedPID)
	addedPID = expectSleeperRestart(t, p, 2, added, addedPID)
	upWith(t, p, added.name, addedPID)

	// The added pfile removed, reloaded by name: no longer watched, its
	// process left alone. The sentinel is the first service's death: its
	// lines come next, with nothing about the other's.
	if err := os.Remove(bad); err != nil {
		t.Fatal(err)
	}
	r = p.padminOK(t, "reload", added.name)
	expectPadminLine(t, sc.syslog, r.pid, command("reload", added.name))
	if names := p.serviceNames(t); !slices.Equal(names, []string{first.name}) {
		t.Fatalf("after its pfile's removal pcheck watches %q, want only %q", names, first.name)
	}
	if st := p.runPadmin(t, "status", added.name); st.code != 1 {
		t.Fatalf("padmin status %s after its pfile's removal: exit %d, want 1\n%s", added.name, st.code, st.out)
	}
	if !alive(addedPID) {
		t.Fatalf("%s's process %d died when its pfile was removed", added.name, addedPID)
	}
	kill9(t, addedPID)
	waitGone(t, addedPID)
	kill9(t, firstPID)
	next := expectSleeperRestart(t, p, 6, first, firstPID)
	upWith(t, p, first.name, next)
	if pids := added.pids(); len(pids) != 0 {
		t.Fatalf("the unwatched %s was started again: %v", added.name, pids)
	}
}

// refusedReloadKeepsRules writes two bad pfiles beside the first's good
// change and checks that padmin reload reports both, by file, line and
// column, and changes nothing. It returns the bad files.
func refusedReloadKeepsRules(t *testing.T, sc *scene, p *pcheckRun, dir string, first, added *sleeper, rules string) (bad, typo string) {
	t.Helper()
	bad = added.writePfile(t, dir, "", "retry_count many", "retry_over_action restart")
	typo = filepath.Join(dir, "typo.pfile")
	writeFile(t, typo, "process "+added.exe+"\nrestart_scrip "+added.script+"\n", 0o644)
	r := p.runPadmin(t, "reload")
	if r.code != 1 {
		t.Fatalf("padmin reload of bad pfiles: exit %d, want 1\n%s", r.code, r.out)
	}
	expectPadminLine(t, sc.syslog, r.pid, command("reload", ""))
	for _, want := range []string{
		regexp.QuoteMeta(bad) + `:3:\d+: retry_count: `,
		regexp.QuoteMeta(bad) + `:4:\d+: retry_over_action: `,
		regexp.QuoteMeta(typo) + `:1: missing required key restart_script`,
		regexp.QuoteMeta(typo) + `:2:\d+: unknown key "restart_scrip"`,
	} {
		if !regexp.MustCompile(`(?m)^(padmin: )?` + want).MatchString(r.out) {
			t.Errorf("padmin reload printed:\n%s\nwant a line matching %s", r.out, want)
		}
	}
	p.waitStderr(t, "ERROR", bad, typo)
	if got := p.padminOK(t, "rules", "--json", first.name).out; got != rules {
		t.Fatalf("a refused reload changed the running rules:\n%s\nwere:\n%s", got, rules)
	}
	if names := p.serviceNames(t); !slices.Equal(names, []string{first.name}) {
		t.Fatalf("after a refused reload pcheck watches %q, want only %q", names, first.name)
	}
	return bad, typo
}

// sighupStartsAdded fixes the pfiles and sends SIGHUP: the added service,
// which does not run, is started and is Up. It returns its pid.
func sighupStartsAdded(t *testing.T, p *pcheckRun, dir string, added *sleeper, typo string) (addedPID int) {
	t.Helper()
	if err := os.Remove(typo); err != nil {
		t.Fatal(err)
	}
	added.writePfile(t, dir, "", "retry_count 3", "retry_interval 0", "restart_timeout 10", "kill_timeout 1")
	if err := syscall.Kill(p.pid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	got, err := p.lines(waitCtx(t), 2)
	if err != nil {
		t.Fatal(err)
	}
	addedPID = upPID(t, got[1], added.name)
	if got[0] != tryRestart(added.name) {
		t.Fatalf("after SIGHUP pcheck logged %q, want %q then %q", got, tryRestart(added.name), up(added.name, 0))
	}
	if real := added.pids(); !slices.Equal(real, []int{addedPID}) {
		t.Fatalf("pcheck says %s is up with pid %d; %s runs as %v", added.name, addedPID, added.exe, real)
	}
	upWith(t, p, added.name, addedPID)
	return addedPID
}

// expectRetryCount checks that padmin rules --json NAME shows retry_count
// n.
func expectRetryCount(t *testing.T, p *pcheckRun, name string, n int) {
	t.Helper()
	out := p.padminOK(t, "rules", "--json", name).out
	var rules []struct {
		Name       string `json:"name"`
		RetryCount *int   `json:"retry_count"`
	}
	if err := json.Unmarshal([]byte(out), &rules); err != nil {
		t.Fatalf("padmin rules --json %s: %v\n%s", name, err, out)
	}
	if len(rules) != 1 || rules[0].Name != name || rules[0].RetryCount == nil || *rules[0].RetryCount != n {
		t.Fatalf("padmin rules --json %s printed:\n%s\nwant %s's rules with retry_count %d", name, out, name, n)
	}
}
