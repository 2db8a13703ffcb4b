// SPDX-License-Identifier: Apache-2.0

// Package pfile reads pfiles, pwatch's configuration language: one file per
// watched service, holding its process entry (which processes, how to
// restart them, what a retry over does) and its _bi_ stall-check blocks,
// which stay byte-compatible with ProcessSaver WebEdition's.
//
// Parse turns bytes into a validated Service with every default applied,
// or into an Errors listing every problem of the file, each with its line
// (and column where one helps). LoadFile, LoadDir and Load read from disk.
// Service.Rules is the JSON view that padmin prints.
//
// keys.go holds the table of keys: each key's value type, default, checks,
// JSON field and doc in one row, from which the parser, Service.Rules and
// docs/pfile.md's key reference (go generate) all work. docs/pfile.md
// describes the language.
package pfile
