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
// docs/pfile.md describes the language.
package pfile
