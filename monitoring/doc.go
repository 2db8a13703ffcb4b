// SPDX-License-Identifier: Apache-2.0

// Package monitoring holds no code: its directory ships pwatch's
// Prometheus alerting rules (prometheus/) and Grafana dashboard (grafana/),
// and its tests check them with promtool and against the documented
// metrics.
package monitoring
