// SPDX-License-Identifier: Apache-2.0

// Package e2e holds pwatch's end-to-end tests: they build pcheck and padmin,
// run real servers (Debian's apache2 and nginx) on loopback ports of their
// own, kill them, and check what pcheck logs to a test syslog socket and that
// the servers answer HTTP again. The kill-to-restart benchmark is here too.
// Everything is in _test.go files; they need root.
package e2e
