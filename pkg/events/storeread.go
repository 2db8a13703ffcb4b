// SPDX-License-Identifier: Apache-2.0

package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/pwatch/pwatch/pkg/trust"
)

// generation is what one history file held.
type generation struct {
	events []Event
	// size is the bytes of its whole lines; unterminated says its last
	// line was whole but lacked its newline.
	size         int
	unterminated bool
}

// read reads one generation back under the trust rule of pcheck's state
// records (pkg/trust.ReadRecord: never through a symlink, never a file
// others could have written). A torn last line is dropped, and cut off
// the file so that the next line does not join it; a file that is corrupt
// or not to be believed is set aside whole: none of its events are used.
func (s *Store) read(name string) generation {
	path := filepath.Join(s.dir, name)
	data, err := trust.ReadRecord(path)
	if errors.Is(err, fs.ErrNotExist) {
		return generation{}
	}
	if err != nil {
		s.setAside(path, "cannot be believed", "error", err)
		return generation{}
	}
	g, line, err := parse(data)
	if err != nil {
		s.setAside(path, "is corrupt", "line", line, "error", err)
		return generation{}
	}
	if g.size < len(data) && !g.unterminated {
		s.log.Warn("event history: dropped a torn last line (pcheck ended while writing it)", "file", path, "line", line)
		if name == File {
			if err := os.Truncate(path, int64(g.size)); err != nil {
				s.setAside(path, "cannot be repaired", "error", err)
				return generation{}
			}
		}
	}
	return g
}

// parse reads JSON lines of events with increasing Seq. A last line
// without its newline that does not parse is torn, not corrupt: g.size
// then ends before it. line is the (1-based) line an error is on, or the
// torn line's.
func parse(data []byte) (g generation, line int, err error) {
	var prev uint64
	for len(data) > 0 {
		line++
		text, rest, terminated := bytes.Cut(data, []byte{'\n'})
		var e Event
		if err := json.Unmarshal(text, &e); err != nil {
			if !terminated {
				return g, line, nil
			}
			return generation{}, line, err
		}
		if e.Seq <= prev {
			return generation{}, line, fmt.Errorf("seq %d after seq %d: events are out of order", e.Seq, prev)
		}
		prev = e.Seq
		g.events = append(g.events, e)
		g.size += len(text)
		if terminated {
			g.size++
		} else {
			g.unterminated = true
		}
		data = rest
	}
	return g, line, nil
}

// setAside renames a history file pcheck will not use to
// NAME.corrupt-TIME, for an operator to look at, and says so.
func (s *Store) setAside(path, why string, attrs ...any) {
	aside := path + ".corrupt-" + time.Now().UTC().Format("20060102T150405.000000000Z")
	attrs = append([]any{"file", path}, attrs...)
	if err := os.Rename(path, aside); err != nil {
		s.log.Warn("event history: the file "+why+" and cannot be set aside; its events are not used", append(attrs, "rename_error", err)...)
		return
	}
	s.log.Warn("event history: the file "+why+"; set aside, its events are not used", append(attrs, "moved_to", aside)...)
}
