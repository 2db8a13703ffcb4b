// SPDX-License-Identifier: Apache-2.0

package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/pwatch/pwatch/pkg/pfile"
)

// ownerWarning warns of an entry that names no user while anyone can run
// its executable (it and its directories are open to others): any user can start a process that looks like the
// service. pcheck takes only root's for it (docs/pfile.md, "Whose
// processes are the service's"), so a service that runs as another user
// would never be found, and started again beside itself. "" when there is
// nothing to say (or the executable is not on this host).
func ownerWarning(svc *pfile.Service) string {
	if svc.User != "" {
		return ""
	}
	if !anyoneCanRun(svc.Process) {
		return ""
	}
	return fmt.Sprintf("%s: warning: process %s can be run by any user and no user is set: pcheck takes only root's processes for the service; name the user it runs as with user, or write \"user root\" to say so",
		svc.File, svc.Process)
}

// anyoneCanRun reports whether every user may execute path: it and the
// directories to it are open to others (o+x). A copy in a private
// directory is no one else's to run.
func anyoneCanRun(path string) bool {
	fi, err := os.Stat(path)
	if err != nil || !fi.Mode().IsRegular() || fi.Mode().Perm()&0o001 == 0 {
		return false
	}
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		di, err := os.Stat(d)
		if err != nil || di.Mode().Perm()&0o001 == 0 {
			return false
		}
		if d == "/" || d == "." {
			return true
		}
	}
}
