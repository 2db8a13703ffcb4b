// SPDX-License-Identifier: Apache-2.0

package pfile

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// MaxFileSize is the largest pfile LoadFile reads.
const MaxFileSize = 1 << 20

// Ext is the extension of pfiles found in a directory.
const Ext = ".pfile"

// LoadFile reads and parses one pfile, and refuses it when others than
// root and its user could write its pidfile (security.go).
func LoadFile(path string) (*Service, []Warning, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, Errors{{File: path, Msg: describe(err)}}
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return nil, nil, Errors{{File: path, Msg: "is a directory, not a pfile"}}
	}
	src, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, nil, Errors{{File: path, Msg: describe(err)}}
	}
	if len(src) > MaxFileSize {
		return nil, nil, Errors{{File: path, Msg: fmt.Sprintf("larger than %d bytes: not a pfile", MaxFileSize)}}
	}
	svc, warns, err := Parse(path, src)
	if err == nil {
		if e := checkPIDFile(svc, src); e != nil {
			return nil, warns, Errors{e}
		}
	}
	return svc, warns, err
}

// describe drops the path that os errors repeat, since messages already
// start with it.
func describe(err error) string {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

// Files expands the arguments into the pfiles they name: a file stands for
// itself, a directory for its *.pfile files (sorted by name; names
// starting with "." are skipped). A directory without pfiles, or a path
// that cannot be read, is an error; the files of the other arguments are
// returned all the same, so that a checker can go on with them.
func Files(paths ...string) ([]string, error) {
	var out []string
	var errs Errors
	for _, p := range paths {
		fi, err := os.Stat(p)
		if err != nil {
			errs = append(errs, &Error{File: p, Msg: describe(err)})
			continue
		}
		if !fi.IsDir() {
			out = append(out, p)
			continue
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			errs = append(errs, &Error{File: p, Msg: describe(err)})
			continue
		}
		var names []string
		for _, e := range ents {
			n := e.Name()
			if strings.HasSuffix(n, Ext) && !strings.HasPrefix(n, ".") && !e.IsDir() {
				names = append(names, n)
			}
		}
		if len(names) == 0 {
			errs = append(errs, &Error{File: p, Msg: "no *" + Ext + " files in this directory"})
			continue
		}
		sort.Strings(names)
		for _, n := range names {
			out = append(out, filepath.Join(p, n))
		}
	}
	if len(errs) > 0 {
		return out, errs
	}
	return out, nil
}

// LoadDir loads every *.pfile of dir, sorted by name.
func LoadDir(dir string) ([]*Service, []Warning, error) { return Load(dir) }

// Load loads pfiles and directories of pfiles (see Files). Either every
// service is returned or none: any error in any file, or two files with
// the same service name, makes it return an Errors with every problem.
func Load(paths ...string) ([]*Service, []Warning, error) {
	files, err := Files(paths...)
	if err != nil {
		return nil, nil, err
	}
	var (
		svcs  []*Service
		warns []Warning
		errs  Errors
		names = map[string]string{}
	)
	for _, f := range files {
		s, w, err := LoadFile(f)
		warns = append(warns, w...)
		if err != nil {
			errs = append(errs, AsErrors(err)...)
			continue
		}
		if prev, dup := names[s.Name]; dup {
			errs = append(errs, &Error{File: f, Msg: fmt.Sprintf("service name %q is already used by %s", s.Name, prev)})
			continue
		}
		names[s.Name] = f
		svcs = append(svcs, s)
	}
	if len(errs) > 0 {
		return nil, warns, errs
	}
	return svcs, warns, nil
}

// AsErrors returns err's problems as an Errors; an error that is not one
// becomes a single Error with no file.
func AsErrors(err error) Errors {
	if err == nil {
		return nil
	}
	var es Errors
	if errors.As(err, &es) {
		return es
	}
	return Errors{{Msg: err.Error()}}
}
