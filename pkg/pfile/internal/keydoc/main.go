// SPDX-License-Identifier: Apache-2.0

// Command keydoc rewrites the key reference of docs/pfile.md (the file
// named by its argument) from pkg/pfile's key table.
package main

import (
	"fmt"
	"os"

	"github.com/pwatch/pwatch/pkg/pfile"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: keydoc docs/pfile.md")
		os.Exit(2)
	}
	if err := update(os.Args[1]); err != nil {
		fmt.Fprintln(os.Stderr, "keydoc:", err)
		os.Exit(1)
	}
}

func update(path string) error {
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := pfile.UpdateKeyReference(doc)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, out, 0o644)
}
