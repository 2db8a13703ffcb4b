// SPDX-License-Identifier: Apache-2.0

package events

import (
	"testing"

	"github.com/pwatch/pwatch/pkg/msg"
)

// BenchmarkRecordFullRing is the cost every logged line pays once the
// history holds its thousand events.
func BenchmarkRecordFullRing(b *testing.B) {
	h := NewHub(0, fixedStamp)
	for i := 0; i < DefaultKeep; i++ {
		h.Record(msg.Down("web", i))
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.Record(msg.Down("web", i))
	}
}

// BenchmarkRecordToDisk adds the store's append (one write(2), no fsync).
func BenchmarkRecordToDisk(b *testing.B) {
	s, _, err := OpenStore(b.TempDir(), 0, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	h := NewHub(0, fixedStamp)
	h.OnPublish(s.Append)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.Record(msg.Down("web", i))
	}
}
