// SPDX-License-Identifier: Apache-2.0

package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// bin holds pcheck and padmin, built once per test run from this tree, in
// dir (removed when the run ends).
var bin struct {
	dir, pcheck, padmin string
}

func TestMain(m *testing.M) {
	os.Exit(runTests(m))
}

func runTests(m *testing.M) int {
	dir, err := os.MkdirTemp("", "pwatch-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := build(dir, "./cmd/..."); err != nil {
		fmt.Fprintln(os.Stderr, "e2e: building the binaries:", err)
		return 1
	}
	bin.dir = dir
	bin.pcheck = filepath.Join(dir, "pcheck")
	bin.padmin = filepath.Join(dir, "padmin")
	return m.Run()
}

// build compiles the packages of the repository into dir, static and
// tagged as the package ships them (scripts/build-deb.sh): the benchmarks
// measure that binary, not one that maps libc too.
func build(dir string, pkgs ...string) error {
	gobin, err := exec.LookPath("go")
	if err != nil {
		gobin = filepath.Join(runtime.GOROOT(), "bin", "go")
	}
	cmd := exec.Command(gobin, append([]string{"build", "-trimpath", "-tags", "urfave_cli_no_docs", "-o", dir + string(filepath.Separator)}, pkgs...)...)
	cmd.Dir = repoRoot()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("%v\n%s", err, out)
	}
	return nil
}

// repoRoot is the repository's top: go test runs in the package's
// directory, test/.
func repoRoot() string {
	wd, err := os.Getwd()
	if err != nil {
		return ".."
	}
	return filepath.Dir(wd)
}
