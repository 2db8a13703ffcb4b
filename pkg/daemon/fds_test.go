// SPDX-License-Identifier: Apache-2.0

package daemon

import "testing"

// The HTTP listeners share what is left of the file limit once half of it,
// and at least fdReserve, is kept for probes and recoveries.
func TestHTTPConnCap(t *testing.T) {
	for _, tc := range []struct {
		limit      uint64
		n, want, c int
	}{
		{524288, 2, 64, 64},
		{1024, 2, 64, 64},
		{1024, 2, 1000, 256},
		{1024, 1, 1000, 512},
		{600, 2, 64, 44},
		{512, 2, 64, 1},
		{100, 1, 64, 1},
		{^uint64(0), 2, 64, 64}, // RLIM_INFINITY
	} {
		if got := httpConnCap(tc.limit, tc.n, tc.want); got != tc.c {
			t.Errorf("httpConnCap(%d, %d, %d) = %d, want %d", tc.limit, tc.n, tc.want, got, tc.c)
		}
	}
}
