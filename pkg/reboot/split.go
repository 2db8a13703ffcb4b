// SPDX-License-Identifier: Apache-2.0

package reboot

import (
	"errors"
	"fmt"
	"strings"
)

// splitCommandLine splits a command line into argv the way a POSIX shell
// splits words: blanks separate, 'single quotes' keep everything, "double
// quotes" keep everything but \" \\ \$ \`, and a backslash outside quotes
// keeps the next character. Shell operators and expansions ($ ` | & ; < >
// ( ), globs and #) are refused when unquoted rather than passed on literally:
// there is no shell here, and a line that needs one should say
// `sh -c '...'`.
func splitCommandLine(line string) ([]string, error) {
	var (
		argv   []string
		word   strings.Builder
		inWord bool
		rs     = []rune(line)
	)
	for i := 0; i < len(rs); i++ {
		c := rs[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				argv = append(argv, word.String())
				word.Reset()
				inWord = false
			}
		case c == '\\':
			if i+1 == len(rs) {
				return nil, errors.New("command line ends with a backslash")
			}
			i++
			word.WriteRune(rs[i])
			inWord = true
		case c == '\'':
			end := indexRune(rs, i+1, '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated ' at offset %d", i)
			}
			word.WriteString(string(rs[i+1 : end]))
			i, inWord = end, true
		case c == '"':
			start, closed := i, false
			for i++; i < len(rs); i++ {
				if rs[i] == '"' {
					closed = true
					break
				}
				if rs[i] == '\\' && i+1 < len(rs) && strings.ContainsRune("\"\\$`", rs[i+1]) {
					i++
				}
				word.WriteRune(rs[i])
			}
			if !closed {
				return nil, fmt.Errorf("unterminated \" at offset %d", start)
			}
			inWord = true
		case strings.ContainsRune("$`|&;<>()*?[]#", c):
			return nil, fmt.Errorf("unquoted %q: the command is run without a shell (use sh -c '...' for shell syntax)", c)
		default:
			word.WriteRune(c)
			inWord = true
		}
	}
	if inWord {
		argv = append(argv, word.String())
	}
	return argv, nil
}

func indexRune(rs []rune, from int, r rune) int {
	for i := from; i < len(rs); i++ {
		if rs[i] == r {
			return i
		}
	}
	return -1
}

// SplitCommandLine is splitCommandLine for the other commands pcheck takes
// on its command line in the same form (--notify-command).
func SplitCommandLine(line string) ([]string, error) { return splitCommandLine(line) }
