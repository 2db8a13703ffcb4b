// SPDX-License-Identifier: Apache-2.0

package coalesce

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestFreshSharesOneReadAmongCallers: callers asking at once share reads;
// each gets one begun after it asked.
func TestFreshSharesOneReadAmongCallers(t *testing.T) {
	var reads atomic.Int64
	gate := make(chan struct{})
	r := New(func() (int64, error) {
		n := reads.Add(1)
		if n == 1 {
			<-gate // the first read is under way while the others ask
		}
		return n, nil
	}, 0)
	first := make(chan int64)
	go func() { v, _ := r.Fresh(); first <- v }()
	for reads.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	var wg sync.WaitGroup
	var asking atomic.Int32
	got := make([]int64, 100)
	for i := range got {
		wg.Add(1)
		go func() { defer wg.Done(); asking.Add(1); got[i], _ = r.Fresh() }()
	}
	// Every caller has begun (on a loaded host a goroutine may start late).
	for asking.Load() < int32(len(got)) {
		time.Sleep(time.Millisecond)
	}
	// Every caller is queued behind the running read before it ends.
	for {
		r.mu.Lock()
		queued := r.next != nil
		r.mu.Unlock()
		if queued {
			break
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond) // let the rest of the callers queue
	close(gate)
	wg.Wait()
	if v := <-first; v != 1 {
		t.Fatalf("first caller got read %d, want 1", v)
	}
	for i, v := range got {
		if v < 2 {
			t.Fatalf("caller %d got read %d, begun before it asked", i, v)
		}
	}
	if n := reads.Load(); n > 3 {
		t.Fatalf("%d reads for 101 callers, want at most 3", n)
	}
}

// TestRecentReusesAReadWithinMaxAge: a read serves Recent while it is young
// enough, and not after.
func TestRecentReusesAReadWithinMaxAge(t *testing.T) {
	var reads atomic.Int64
	r := New(func() (int64, error) { return reads.Add(1), nil }, time.Hour)
	a, _ := r.Fresh()
	b, _ := r.Recent(time.Hour)
	if a != 1 || b != 1 {
		t.Fatalf("Recent after Fresh got read %d, want the same read 1", b)
	}
	time.Sleep(5 * time.Millisecond)
	if c, _ := r.Recent(time.Millisecond); c != 2 {
		t.Fatalf("Recent(1ms) got read %d, want a new read", c)
	}
	if n := r.Count(); n != 2 {
		t.Fatalf("Count = %d, want 2", n)
	}
}

// TestSinceSharesAReadBegunAfterAMoment: callers that each need a read
// begun after the same moment share the one under way when it began then
// or later (and the kept one after it ended); a read begun before the
// moment serves none of them.
func TestSinceSharesAReadBegunAfterAMoment(t *testing.T) {
	var reads atomic.Int64
	gate := make(chan struct{})
	r := New(func() (int64, error) {
		n := reads.Add(1)
		if n == 2 {
			<-gate // the second read is under way while the others ask
		}
		return n, nil
	}, time.Hour)
	if v, _ := r.Fresh(); v != 1 {
		t.Fatalf("first read %d", v)
	}
	since := time.Now()
	first := make(chan int64)
	go func() { v, _ := r.Since(since); first <- v }()
	for reads.Load() < 2 {
		time.Sleep(time.Millisecond)
	}
	var wg sync.WaitGroup
	got := make([]int64, 100)
	for i := range got {
		wg.Add(1)
		go func() { defer wg.Done(); got[i], _ = r.Since(since) }()
	}
	close(gate)
	wg.Wait()
	if v := <-first; v != 2 {
		t.Fatalf("the first caller got read %d, want 2 (read 1 began before the moment)", v)
	}
	for i, v := range got {
		if v != 2 {
			t.Fatalf("caller %d got read %d, want the shared read 2", i, v)
		}
	}
	if v, _ := r.Since(since); v != 2 || reads.Load() != 2 {
		t.Fatalf("after it ended: read %d of %d, want the kept read 2", v, reads.Load())
	}
}
