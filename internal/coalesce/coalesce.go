// SPDX-License-Identifier: Apache-2.0

// Package coalesce shares an expensive read (all of /proc, a whole BPF
// map) among the callers that want it at the same time: each gets a read
// begun after it asked (Fresh), or one begun recently enough (Recent),
// and a thousand callers asking at once cause one or two reads, not a
// thousand.
package coalesce

import (
	"sync"
	"time"
)

// Reads shares the results of read. The zero value is not usable: use New.
type Reads[T any] struct {
	read   func() (T, error)
	retain time.Duration // how long the last result serves Recent

	mu      sync.Mutex
	last    *flight[T] // the newest finished read, while retained
	running *flight[T] // the read under way
	next    *flight[T] // the read that begins once running is done
	count   uint64
}

type flight[T any] struct {
	done  chan struct{}
	began time.Time
	val   T
	err   error
}

// New shares read's results; a result serves Recent for at most retain
// after its read began (0: never), and is let go then.
func New[T any](read func() (T, error), retain time.Duration) *Reads[T] {
	return &Reads[T]{read: read, retain: retain}
}

// Fresh returns the result of a read begun after the call: callers that
// ask while a read is under way share the one that begins after it.
func (r *Reads[T]) Fresh() (T, error) {
	r.mu.Lock()
	if r.next == nil {
		r.next = &flight[T]{done: make(chan struct{})}
	}
	f := r.next
	if r.running == nil {
		r.launchLocked()
	}
	r.mu.Unlock()
	<-f.done
	return f.val, f.err
}

// Recent returns the result of a read begun at most maxAge ago (waiting
// for one under way), else Fresh's.
func (r *Reads[T]) Recent(maxAge time.Duration) (T, error) {
	return r.Since(time.Now().Add(-maxAge))
}

// Since returns the result of a read begun at or after t (waiting for one
// under way), else Fresh's: what many callers that each need a read begun
// after the same moment share.
func (r *Reads[T]) Since(t time.Time) (T, error) {
	r.mu.Lock()
	for _, f := range []*flight[T]{r.last, r.running} {
		if f != nil && !f.began.Before(t) {
			r.mu.Unlock()
			<-f.done
			return f.val, f.err
		}
	}
	r.mu.Unlock()
	return r.Fresh()
}

// Count is how many reads were made.
func (r *Reads[T]) Count() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.count
}

// launchLocked begins the next read. r.mu is held.
func (r *Reads[T]) launchLocked() {
	f := r.next
	r.next = nil
	f.began = time.Now()
	r.running = f
	r.count++
	go func() {
		f.val, f.err = r.read()
		r.mu.Lock()
		r.running = nil
		if f.err == nil && r.retain > 0 {
			r.last = f
			time.AfterFunc(r.retain, func() {
				r.mu.Lock()
				if r.last == f {
					r.last = nil
				}
				r.mu.Unlock()
			})
		}
		close(f.done)
		if r.next != nil {
			r.launchLocked()
		}
		r.mu.Unlock()
	}()
}
