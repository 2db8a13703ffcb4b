// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
)

// Helpers of the scenarios that run a template of pfile/ as shipped,
// changed only where a test instance differs from a real installation.

// templatePfile is the text of pfile/NAME in this repository.
func templatePfile(t testing.TB, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot(), "pfile", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// editKey replaces the value of key, which src must set exactly once, by
// f of its old value.
func editKey(t testing.TB, src, key string, f func(old string) string) string {
	t.Helper()
	re := regexp.MustCompile(`(?m)^(` + regexp.QuoteMeta(key) + `[ \t]+)(.+)$`)
	if n := len(re.FindAllString(src, -1)); n != 1 {
		t.Fatalf("the template sets %s %d times, want once:\n%s", key, n, src)
	}
	return re.ReplaceAllStringFunc(src, func(m string) string {
		sm := re.FindStringSubmatch(m)
		return sm[1] + f(sm[2])
	})
}

// setKey sets key, which src must set exactly once, to value.
func setKey(t testing.TB, src, key, value string) string {
	t.Helper()
	return editKey(t, src, key, func(string) string { return value })
}

// setExec sets the interval, duration and port of src's one PS_EXEC.
func setExec(t testing.TB, src string, interval, duration, port int) string {
	t.Helper()
	if n := len(sampleExec.FindAllString(src, -1)); n != 1 {
		t.Fatalf("the template has %d PS_EXEC fields, want 1:\n%s", n, src)
	}
	return sampleExec.ReplaceAllStringFunc(src, func(m string) string {
		sm := sampleExec.FindStringSubmatch(m)
		return sm[1] + strconv.Itoa(interval) + sm[3] + strconv.Itoa(duration) + sm[5] + strconv.Itoa(port)
	})
}
