package main

import (
	"fmt"
	"os"

	"github.com/pwatch/pwatch/pkg/pfile"
)

// ownerWarning warns of an entry that names no user while anyone can run
// its executable: any user can start a process that looks like the
// service. pcheck takes only root's for it (docs/pfile.md, "Whose
// processes are the service's"), so a service that runs as another user
// would never be found, and started again beside itself. "" when there is
// nothing to say (or the executable is not on this host).
func ownerWarning(svc *pfile.Service) string {
	if svc.User != "" {
		return ""
	}
	fi, err := os.Stat(svc.Process)
	if err != nil || fi.Mode().Perm()&0o001 == 0 {
		return ""
	}
	return fmt.Sprintf("%s: warning: process %s can be run by any user and no user is set: pcheck takes only root's processes for the service; name the user it runs as with user, or write \"user root\" to say so",
		svc.File, svc.Process)
}
