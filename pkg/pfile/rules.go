// SPDX-License-Identifier: Apache-2.0

package pfile

import (
	"encoding/json"
	"slices"
	"time"
)

// Rules is the JSON view of a Service: its effective rules after defaults,
// as `padmin check --json` and `padmin rules --json` print them. Durations
// are whole seconds; a value that is not set (and has no default) is null.
type Rules struct {
	Name           string   `json:"name"`
	Process        string   `json:"process"`
	Args           *string  `json:"args"`
	PIDFile        *string  `json:"pidfile"`
	User           *string  `json:"user"`
	MinCount       int      `json:"min_count"`
	RestartScript  []string `json:"restart_script"`
	RestartTimeout int64    `json:"restart_timeout"`
	RetryCount     int      `json:"retry_count"`
	Grace          int64    `json:"grace"`
	RetryInterval  int64    `json:"retry_interval"`
	RetryBackoff   float64  `json:"retry_backoff"`
	// RetryIntervalMax is null without retry_backoff.
	RetryIntervalMax *int64 `json:"retry_interval_max"`
	StableUptime     int64  `json:"stable_uptime"`
	// RearmAfter is null when a retry over waits for padmin start.
	RearmAfter      *int64   `json:"rearm_after"`
	RetryOverAction Action   `json:"retry_over_action"`
	RetryOverScript []string `json:"retry_over_script"`
	RecoveryTimeout *int64   `json:"recovery_timeout"`
	KillTimeout     int64    `json:"kill_timeout"`
	StartOnLoad     bool     `json:"start_on_load"`
	// The limits are null when not set.
	MemoryMax   *int64       `json:"memory_max"`
	CPUMax      *int         `json:"cpu_max"`
	FDsMax      *int         `json:"fds_max"`
	ThreadsMax  *int         `json:"threads_max"`
	LimitFor    int64        `json:"limit_for"`
	LimitAction LimitAction  `json:"limit_action"`
	LimitGrace  int64        `json:"limit_grace"`
	Checks      []CheckRules `json:"checks"`
}

// CheckRules is the JSON view of one Check.
type CheckRules struct {
	Check   Kind   `json:"check"`
	Block   string `json:"block"`
	Line    int    `json:"line"`
	Library string `json:"library"`

	Interval int64 `json:"interval"`
	// Error is PS_EXEC error: 1 stops the check after the first detection.
	Error    int     `json:"error"`
	Duration int64   `json:"duration"`
	Port     int     `json:"port"`
	Host     string  `json:"host"`
	Timeout  int64   `json:"timeout"`
	Path     *string `json:"path"`
	// ActionError is PS_ACTION error: 1 runs retry_over_action when the
	// kill after a stall fails.
	ActionError   int          `json:"action_error"`
	TLSVerify     bool         `json:"tls_verify"`
	TLSCA         *string      `json:"tls_ca"`
	TLSServerName *string      `json:"tls_server_name"`
	ExpectStatus  *StatusRange `json:"expect_status"`
	ListenCheck   bool         `json:"listen_check"`
}

// MarshalJSON writes the status range as {"min":200,"max":399}.
func (r StatusRange) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Min int `json:"min"`
		Max int `json:"max"`
	}{r.Min, r.Max})
}

// UnmarshalJSON reads {"min":200,"max":399}.
func (r *StatusRange) UnmarshalJSON(b []byte) error {
	var v struct {
		Min int `json:"min"`
		Max int `json:"max"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	r.Min, r.Max = v.Min, v.Max
	return nil
}

func secs(d time.Duration) int64 { return int64(d / time.Second) }

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Rules returns the service's JSON view: each key's row of the key table
// fills its field.
func (s *Service) Rules() Rules {
	r := Rules{Name: s.Name, Checks: make([]CheckRules, 0, len(s.Checks))}
	for i := range processKeys {
		processKeys[i].rule(s, &r)
	}
	for _, c := range s.Checks {
		r.Checks = append(r.Checks, c.rules())
	}
	return r
}

// rules is the check's JSON view: the PS_EXEC and PS_ACTION fields, then
// each block key's.
func (c *Check) rules() CheckRules {
	cr := CheckRules{
		Check:       c.Kind,
		Block:       c.Block,
		Line:        c.Line,
		Library:     c.Library,
		Interval:    secs(c.Interval),
		Error:       boolInt(c.StopAfterDetect),
		Duration:    secs(c.Duration),
		Port:        c.Port,
		Host:        c.Host,
		Timeout:     secs(c.Timeout),
		Path:        optional(c.Path),
		ActionError: boolInt(c.ActionError),
	}
	for i := range blockKeys {
		blockKeys[i].checkRule(c, &cr)
	}
	return cr
}

// MarshalJSON writes the service as its Rules.
func (s *Service) MarshalJSON() ([]byte, error) { return json.Marshal(s.Rules()) }

// Effective is the rules without where they were written (the blocks' line
// numbers): a reload compares these, so that a comment added above a block
// changes nothing.
func (r Rules) Effective() Rules {
	r.Checks = slices.Clone(r.Checks)
	for i := range r.Checks {
		r.Checks[i].Line = 0
	}
	return r
}
