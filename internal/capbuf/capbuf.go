// SPDX-License-Identifier: Apache-2.0

// Package capbuf is a buffer that keeps the first bytes written and drops
// the rest, so that a chatty command (the reboot command, a notify command)
// cannot grow pcheck's memory.
package capbuf

import "bytes"

// Buffer keeps at most Max bytes. exec.Cmd writes it from one goroutine;
// read it after Wait.
type Buffer struct {
	bytes.Buffer
	Max int
}

// Write keeps what fits and says it took all of p, so the writer never
// fails.
func (b *Buffer) Write(p []byte) (int, error) {
	if room := b.Max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}
