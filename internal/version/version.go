// SPDX-License-Identifier: Apache-2.0

// Package version holds the build's version, set by the Makefile from
// `git describe` through -ldflags -X.
package version

// Version is "dev" in builds that did not go through the Makefile.
var Version = "dev"
