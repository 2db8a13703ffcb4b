// SPDX-License-Identifier: Apache-2.0

package trust

import "github.com/pwatch/pwatch/pkg/pfile"

// Service checks the programs a service's rules make pcheck run: its
// restart and retry-over scripts. Their arguments are not looked at: they
// are words, and pcheck cannot tell which of them name files.
func (c *Checker) Service(s *pfile.Service) {
	for _, argv := range [][]string{s.RestartScript, s.RetryOverScript} {
		if len(argv) > 0 {
			c.Program(argv[0])
		}
	}
}
