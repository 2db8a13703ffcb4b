// SPDX-License-Identifier: Apache-2.0

package capbuf

import "testing"

func TestKeepsTheFirstMaxBytes(t *testing.T) {
	b := &Buffer{Max: 5}
	for _, p := range []string{"abc", "defgh", "ij"} {
		if n, err := b.Write([]byte(p)); n != len(p) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", p, n, err)
		}
	}
	if b.String() != "abcde" {
		t.Errorf("kept %q, want %q", b.String(), "abcde")
	}
}
