// SPDX-License-Identifier: Apache-2.0

package reboot

import "github.com/pwatch/pwatch/internal/atomicfile"

// writeAtomic replaces dir/name with data, durably and never half-written.
func writeAtomic(dir, name string, data []byte) error { return atomicfile.Write(dir, name, data) }
