// SPDX-License-Identifier: Apache-2.0

package pfile

import (
	"strings"
	"testing"
)

// Lines of a valid pfile that the error cases below start from.
const (
	lProc  = "process /usr/sbin/apache2"
	lRS    = "restart_script /etc/pwatch/scripts/apache2.restart"
	lOpen  = "_bi_webserv{"
	lExec  = "  PS_EXEC DLL:/opt/HA/PSWE/lib/lib_bi_webserv.so:DIRECT:-:60:0:2:600:8080"
	lAct   = "  PS_ACTION DLL:/opt/HA/PSWE/lib/lib_bi_webserv.so:DIRECT:-::-:1:0"
	lClose = "}"
	// exec is lExec without its fields after call.
	execHead = "  PS_EXEC DLL:/opt/HA/PSWE/lib/lib_bi_webserv.so:DIRECT:"
)

func pf(lines ...string) string { return strings.Join(lines, "\n") + "\n" }

// errorCases holds one or more cases per error class; want is every error
// of the file, formatted.
var errorCases = []struct {
	name string
	src  string
	want []string
}{
	// ---- process entry: ranges and values ----
	{"min_count below 1", pf(lProc, lRS, "min_count 0"), []string{
		`t.pfile:3:11: min_count: 0 is too small (expected at least 1)`}},
	{"retry_count negative", pf(lProc, lRS, "retry_count -1"), []string{
		`t.pfile:3:13: retry_count: "-1" is not a whole number (expected at least 0)`}},
	{"retry_count too large", pf(lProc, lRS, "retry_count 1000001"), []string{
		`t.pfile:3:13: retry_count: 1000001 is too large (expected at most 1000000)`}},
	{"restart_timeout 0", pf(lProc, lRS, "restart_timeout 0"), []string{
		`t.pfile:3:17: restart_timeout: 0 is too small (expected at least 1 second)`}},
	{"restart_timeout with unit", pf(lProc, lRS, "restart_timeout 60s"), []string{
		`t.pfile:3:17: restart_timeout: "60s" is not a whole number (expected at least 1 second)`}},
	{"grace 0", pf(lProc, lRS, "grace 0"), []string{
		`t.pfile:3:7: grace: 0 is too small (expected at least 1 second)`}},
	{"grace overflow", pf(lProc, lRS, "grace 99999999999999999999999"), []string{
		`t.pfile:3:7: grace: 99999999999999999999999 is too large (expected at most 31536000 seconds)`}},
	{"retry_interval not a number", pf(lProc, lRS, "retry_interval soon"), []string{
		`t.pfile:3:16: retry_interval: "soon" is not a whole number (expected at least 0 seconds)`}},
	{"kill_timeout too large", pf(lProc, lRS, "kill_timeout 31536001"), []string{
		`t.pfile:3:14: kill_timeout: 31536001 is too large (expected at most 31536000 seconds)`}},
	{"recovery_timeout 0", pf(lProc, lRS, "retry_over_action reboot", "recovery_timeout 0"), []string{
		`t.pfile:4:18: recovery_timeout: 0 is too small (expected at least 1 second)`}},
	// ---- the limits ----
	{"memory_max with a unit it does not know", pf(lProc, lRS, "memory_max 512MB"), []string{
		`t.pfile:3:12: memory_max: "512MB" is not a size: expected a whole number of bytes, or with K, M or G, e.g. 512M, from 1 to 1024T`}},
	{"memory_max 0", pf(lProc, lRS, "memory_max 0"), []string{
		`t.pfile:3:12: memory_max: "0" is not a size: expected a whole number of bytes, or with K, M or G, e.g. 512M, from 1 to 1024T`}},
	{"memory_max too large", pf(lProc, lRS, "memory_max 2000000G"), []string{
		`t.pfile:3:12: memory_max: "2000000G" is not a size: expected a whole number of bytes, or with K, M or G, e.g. 512M, from 1 to 1024T`}},
	{"cpu_max a fraction", pf(lProc, lRS, "cpu_max 50.5"), []string{
		`t.pfile:3:9: cpu_max: "50.5" is not a whole number (expected at least 1)`}},
	{"fds_max 0", pf(lProc, lRS, "fds_max 0"), []string{
		`t.pfile:3:9: fds_max: 0 is too small (expected at least 1)`}},
	{"limit_action unknown", pf(lProc, lRS, "fds_max 10", "limit_action restrat"), []string{
		`t.pfile:4:14: limit_action: "restrat" is not restart or log (did you mean restart?)`}},
	{"limit_for without a limit", pf(lProc, lRS, "limit_for 10"), []string{
		`t.pfile:3:1: limit_for: only allowed with memory_max, cpu_max, fds_max or threads_max (no limit is set)`}},
	{"retry_backoff below 1", pf(lProc, lRS, "retry_interval 1", "retry_backoff 0.5"), []string{
		`t.pfile:4:15: retry_backoff: "0.5" is not a factor from 1 to 10 (a number such as 2 or 1.5, at most 3 decimals)`}},
	{"retry_backoff too large", pf(lProc, lRS, "retry_interval 1", "retry_backoff 11"), []string{
		`t.pfile:4:15: retry_backoff: "11" is not a factor from 1 to 10 (a number such as 2 or 1.5, at most 3 decimals)`}},
	{"retry_backoff not a number", pf(lProc, lRS, "retry_interval 1", "retry_backoff 2x"), []string{
		`t.pfile:4:15: retry_backoff: "2x" is not a factor from 1 to 10 (a number such as 2 or 1.5, at most 3 decimals)`}},
	{"retry_backoff without retry_interval", pf(lProc, lRS, "retry_backoff 2"), []string{
		`t.pfile:3:1: retry_backoff: grows retry_interval, which is 0: set retry_interval to 1 second or more`}},
	{"retry_interval_max without retry_backoff", pf(lProc, lRS, "retry_interval_max 60"), []string{
		`t.pfile:3:1: retry_interval_max: only allowed with retry_backoff (without it every pause is retry_interval)`}},
	{"retry_interval_max below retry_interval", pf(lProc, lRS, "retry_interval 10", "retry_backoff 2", "retry_interval_max 5"), []string{
		`t.pfile:5:1: retry_interval_max: 5 is less than retry_interval (10)`}},
	{"stable_uptime 0", pf(lProc, lRS, "stable_uptime 0"), []string{
		`t.pfile:3:15: stable_uptime: 0 is too small (expected at least 1 second)`}},
	{"rearm_after 0", pf(lProc, lRS, "rearm_after 0"), []string{
		`t.pfile:3:13: rearm_after: 0 is too small (expected at least 1 second)`}},
	{"rearm_after with exit", pf(lProc, lRS, "retry_over_action exit", "rearm_after 60"), []string{
		`t.pfile:4:1: rearm_after: only allowed with retry_over_action continue or reboot (retry_over_action is exit: pcheck ends)`}},
	{"retry_over_action unknown", pf(lProc, lRS, "retry_over_action restart"), []string{
		`t.pfile:3:19: retry_over_action: "restart" is not one of continue, shutdown, exit, reboot`}},
	{"retry_over_action typo", pf(lProc, lRS, "retry_over_action rebot"), []string{
		`t.pfile:3:19: retry_over_action: "rebot" is not one of continue, shutdown, exit, reboot (did you mean reboot?)`}},
	{"start_on_load not yes/no", pf(lProc, lRS, "start_on_load true"), []string{
		`t.pfile:3:15: start_on_load: "true" is not yes or no`}},
	{"user with a space", pf(lProc, lRS, `user "www data"`), []string{
		`t.pfile:3:6: user: "www data" is not a user name or numeric uid`}},
	{"uid too large", pf(lProc, lRS, "user 4294967295"), []string{
		`t.pfile:3:6: user: 4294967295 is too large (expected at most 4294967294)`}},
	{"process not absolute", pf("process apache2", lRS), []string{
		`t.pfile:1:9: process: "apache2" is not an absolute path`}},
	{"process a directory", pf("process /usr/sbin/", lRS), []string{
		`t.pfile:1:9: process: "/usr/sbin/" is not an absolute path`}},
	{"pidfile not absolute", pf(lProc, lRS, "pidfile run/apache2.pid"), []string{
		`t.pfile:3:9: pidfile: "run/apache2.pid" is not an absolute path`}},
	{"restart_script not absolute", pf(lProc, "restart_script apache2.restart --now"), []string{
		`t.pfile:2:16: restart_script: "apache2.restart" is not an absolute path`}},
	{"restart_script empty", pf(lProc, "restart_script"), []string{
		`t.pfile:2:1: restart_script: expected an absolute path and optional arguments`}},
	{"retry_over_script not absolute", pf(lProc, lRS, "retry_over_script ./alert"), []string{
		`t.pfile:3:19: retry_over_script: "./alert" is not an absolute path`}},
	{"args invalid regexp", pf(lProc, lRS, "args -k (start"), []string{
		"t.pfile:3:6: args: invalid regexp: error parsing regexp: missing closing ): `-k (start`"}},
	{"value missing", pf(lProc, lRS, "grace"), []string{
		`t.pfile:3:1: grace: expected a value`}},
	{"two values", pf(lProc, lRS, "grace 60 120"), []string{
		`t.pfile:3:10: grace: expected one value, got 2 (quote a value that holds spaces)`}},

	// ---- required keys and combinations ----
	{"process missing", pf(lRS), []string{
		`t.pfile:1: missing required key process (the absolute path of the watched executable)`}},
	{"restart_script missing", pf(lProc), []string{
		`t.pfile:1: missing required key restart_script (the absolute path of the script that brings the service back)`}},
	{"empty file", "", []string{
		`t.pfile:1: missing required key process (the absolute path of the watched executable)`,
		`t.pfile:1: missing required key restart_script (the absolute path of the script that brings the service back)`}},
	{"recovery_timeout without reboot", pf(lProc, lRS, "retry_over_action exit", "recovery_timeout 300"), []string{
		`t.pfile:4:1: recovery_timeout: only allowed with retry_over_action reboot (retry_over_action is exit)`}},
	{"duplicate key", pf(lProc, lRS, "retry_count 3", "Retry_Count 5"), []string{
		`t.pfile:4:1: retry_count: set twice (first on line 3)`}},

	// ---- unknown keys ----
	{"unknown key with suggestion", pf(lProc, lRS, "retry_cont 3"), []string{
		`t.pfile:3:1: unknown key "retry_cont" (did you mean retry_count?)`}},
	{"unknown key prefix of two", pf(lProc, lRS, "retry_over exit"), []string{
		`t.pfile:3:1: unknown key "retry_over" (did you mean retry_over_action or retry_over_script?)`}},
	{"unknown key far from any", pf(lProc, lRS, "colour blue"), []string{
		`t.pfile:3:1: unknown key "colour"`}},
	{"not a key", pf(lProc, lRS, "<port>:80"), []string{
		`t.pfile:3:1: expected a key, a _bi_ block or a PS_ entry, got "<port>:80"`}},

	// ---- lexical ----
	{"unclosed quote", pf(lProc, `restart_script "/opt/my app/restart`), []string{
		`t.pfile:2:16: quoted value is not closed: expected " before the end of the line`}},
	{"text after closing quote", pf(lProc, `restart_script "/opt/a"b`), []string{
		`t.pfile:2:24: expected white space after the closing ", got 'b'`}},
	{"backslash on the last line", lProc + "\n" + lRS + " \\", []string{
		`t.pfile:2:52: line ends with \ but no line follows it`}},
	{"invalid UTF-8", pf(lProc, lRS, "# caf\xe9"), []string{
		`t.pfile:3:6: invalid UTF-8: a pfile must be UTF-8 text`}},
	{"control character", pf(lProc, lRS, "# \x01"), []string{
		`t.pfile:3:3: control character U+0001: expected text`}},

	// ---- PS_EXEC ----
	{"argc larger than argv", pf(lProc, lRS, lOpen, execHead+"-:60:0:3:600:8080", lAct, lClose), []string{
		`t.pfile:4:64: PS_EXEC argc: argc is 3 but 2 argv field(s) follow`}},
	{"argc smaller than argv", pf(lProc, lRS, lOpen, execHead+"-:60:0:2:600:8080:localhost", lAct, lClose), []string{
		`t.pfile:4:64: PS_EXEC argc: argc is 2 but 3 argv field(s) follow`}},
	{"argc not a number", pf(lProc, lRS, lOpen, execHead+"-:60:0:two:600:8080", lAct, lClose), []string{
		`t.pfile:4:64: PS_EXEC argc: "two" is not a whole number (expected at least 0)`}},
	{"port missing", pf(lProc, lRS, lOpen, execHead+"-:60:0:1:600", lAct, lClose), []string{
		`t.pfile:4:66: PS_EXEC: argv[1] port is required: expected argc >= 2 and duration:port[:host[:timeout[:path]]] after it`}},
	{"too many argv", pf(lProc, lRS, lOpen, execHead+"-:60:0:6:600:8080:h:5:/:x", lAct, lClose), []string{
		`t.pfile:4:81: PS_EXEC: 6 argv fields, expected at most 5: duration:port:host:timeout:path`}},
	{"too few fields", pf(lProc, lRS, lOpen, execHead+"-:60", lAct, lClose), []string{
		`t.pfile:4:3: PS_EXEC: expected type:file:call:timeout:interval:error:argc:duration:port[:host[:timeout[:path]]], got 5 fields`}},
	{"interval below 10", pf(lProc, lRS, lOpen, execHead+"-:5:0:2:600:8080", lAct, lClose), []string{
		`t.pfile:4:59: PS_EXEC interval: 5 is too small (expected at least 10 seconds)`}},
	{"duration shorter than interval", pf(lProc, lRS, lOpen, execHead+"-:60:0:2:30:8080", lAct, lClose), []string{
		`t.pfile:4:66: PS_EXEC duration: 30 is shorter than the interval 60: expected duration >= interval`}},
	{"interval longer than default duration", pf(lProc, lRS, lOpen, execHead+"-:900:0:2:-:8080", lAct, lClose), []string{
		`t.pfile:4:59: PS_EXEC interval: 900 is longer than the default duration 600: give argv[0] duration >= interval`}},
	{"port 0", pf(lProc, lRS, lOpen, execHead+"-:60:0:2:600:0", lAct, lClose), []string{
		`t.pfile:4:70: PS_EXEC port: 0 is too small (expected at least 1)`}},
	{"port 65536", pf(lProc, lRS, lOpen, execHead+"-:60:0:2:600:65536", lAct, lClose), []string{
		`t.pfile:4:70: PS_EXEC port: 65536 is too large (expected at most 65535)`}},
	{"port empty", pf(lProc, lRS, lOpen, execHead+"-:60:0:2:600:", lAct, lClose), []string{
		`t.pfile:4:70: PS_EXEC port: argv[1] is empty: expected a port 1-65535`}},
	{"port not a number", pf(lProc, lRS, lOpen, execHead+"-:60:0:2:600:http", lAct, lClose), []string{
		`t.pfile:4:70: PS_EXEC port: "http" is not a port number (expected 1-65535)`}},
	{"error field", pf(lProc, lRS, lOpen, execHead+"-:60:2:2:600:8080", lAct, lClose), []string{
		`t.pfile:4:62: PS_EXEC error: "2" is not 0 or 1 (0: keep checking after a detection, 1: stop this check after the first)`}},
	{"bad host", pf(lProc, lRS, lOpen, execHead+"-:60:0:3:600:8080:web server", lAct, lClose), []string{
		`t.pfile:4:75: PS_EXEC host: "web server" is not a host name or IP address (write an IPv6 address as [::1])`}},
	{"probe timeout longer than interval", pf(lProc, lRS, lOpen, execHead+"-:30:0:4:600:8080:-:45", lAct, lClose), []string{
		`t.pfile:4:77: PS_EXEC timeout: 45 is longer than the interval 30: expected timeout <= interval`}},
	{"path without slash", pf(lProc, lRS, lOpen, execHead+"-:60:0:5:600:8080:-:-:index.html", lAct, lClose), []string{
		`t.pfile:4:79: PS_EXEC path: "index.html" is not a request path: expected one starting with /`}},
	{"path on a tcp check", pf(lProc, lRS, "_bi_socket{",
		"  PS_EXEC DLL:/opt/HA/PSWE/lib/lib_bi_socket.so:DIRECT:-:60:0:5:600:8080:-:-:/",
		"  PS_ACTION DLL:/opt/HA/PSWE/lib/lib_bi_socket.so:DIRECT:-::-:1:0", lClose), []string{
		`t.pfile:4:78: PS_EXEC path: argv[4] is only for http and https checks: a tcp check takes duration:port[:host[:timeout]]`}},
	{"error on the continued line", pf(lProc, lRS, lOpen,
		"  PS_EXEC DLL:/opt/HA/PSWE/lib/lib_bi_webserv.so:",
		"          DIRECT:-:60:0:2:600:99999", lAct, lClose), []string{
		`t.pfile:5:31: PS_EXEC port: 99999 is too large (expected at most 65535)`}},

	// ---- PS_ACTION ----
	{"action argc not 0", pf(lProc, lRS, lOpen, lExec, "  PS_ACTION DLL:/opt/HA/PSWE/lib/lib_bi_webserv.so:DIRECT:-::-:1:1", lClose), []string{
		`t.pfile:5:66: PS_ACTION argc: "1" must be 0 (the last field)`}},
	{"action error not 0/1", pf(lProc, lRS, lOpen, lExec, "  PS_ACTION DLL:/opt/HA/PSWE/lib/lib_bi_webserv.so:DIRECT:-::-:yes:0", lClose), []string{
		`t.pfile:5:64: PS_ACTION error: "yes" is not 0 or 1 (0: on a failed kill do nothing more, 1: run retry_over_action)`}},
	{"action too short", pf(lProc, lRS, lOpen, lExec, "  PS_ACTION DLL:/opt/HA/PSWE/lib/lib_bi_webserv.so:DIRECT:0", lClose), []string{
		`t.pfile:5:3: PS_ACTION: expected type:file:call:...:error:argc, got 4 fields`}},

	// ---- entries: type, file, call ----
	{"unknown library", pf(lProc, lRS, lOpen, "  PS_EXEC DLL:/opt/HA/PSWE/lib/lib_bi_sockets.so:DIRECT:-:60:0:2:600:8080", lAct, lClose), []string{
		`t.pfile:4:15: PS_EXEC: unknown library "lib_bi_sockets.so": expected lib_bi_webserv.so (http), lib_bi_webservs.so (https) or lib_bi_socket.so (tcp) (did you mean lib_bi_socket.so?)`,
		`t.pfile:5:17: PS_ACTION: library /opt/HA/PSWE/lib/lib_bi_webserv.so differs from /opt/HA/PSWE/lib/lib_bi_sockets.so named on line 4: all entries of a block must name the same library`}},
	// The guide's spelling is accepted (with a warning), but a block must
	// still name one file: mixing it with the sample's is an error.
	{"websevs mixed with webservs", pf(lProc, lRS, "_bi_webservs{",
		"  PS_EXEC DLL:/opt/HA/PSWE/lib/lib_bi_websevs.so:DIRECT:-:60:0:2:600:443",
		"  PS_ACTION DLL:/opt/HA/PSWE/lib/lib_bi_webservs.so:DIRECT:-::-:1:0", lClose), []string{
		`t.pfile:5:17: PS_ACTION: library /opt/HA/PSWE/lib/lib_bi_webservs.so differs from /opt/HA/PSWE/lib/lib_bi_websevs.so named on line 4: all entries of a block must name the same library`}},
	{"mixed libraries", pf(lProc, lRS, lOpen, lExec, "  PS_ACTION DLL:/opt/HA/PSWE/lib/lib_bi_socket.so:DIRECT:-::-:1:0", lClose), []string{
		`t.pfile:5:17: PS_ACTION: library /opt/HA/PSWE/lib/lib_bi_socket.so differs from /opt/HA/PSWE/lib/lib_bi_webserv.so named on line 4: all entries of a block must name the same library`}},
	{"type not DLL", pf(lProc, lRS, lOpen, lExec, "  PS_ACTION SO:/opt/HA/PSWE/lib/lib_bi_webserv.so:DIRECT:-::-:1:0", lClose), []string{
		`t.pfile:5:13: PS_ACTION: type "SO" is not DLL`}},
	{"call not DIRECT", pf(lProc, lRS, lOpen, lExec, "  PS_ACTION DLL:/opt/HA/PSWE/lib/lib_bi_webserv.so:SHELL:-::-:1:0", lClose), []string{
		`t.pfile:5:52: PS_ACTION: call "SHELL" is not DIRECT`}},
	{"empty file field", pf(lProc, lRS, lOpen, lExec, "  PS_QUIT DLL::DIRECT:-::-:0", lAct, lClose), []string{
		`t.pfile:5:15: PS_QUIT: file is empty: expected a library path such as /opt/HA/PSWE/lib/lib_bi_webserv.so`}},
	{"unknown entry", pf(lProc, lRS, lOpen, lExec, lAct, "  PS_EXIT DLL:/opt/HA/PSWE/lib/lib_bi_webserv.so:DIRECT:-::-:0", lClose), []string{
		`t.pfile:6:3: unknown entry "PS_EXIT": expected PS_INIT, PS_EXEC, PS_ACTION or PS_QUIT (did you mean PS_INIT, PS_EXEC or PS_QUIT?)`}},
	{"duplicate entry", pf(lProc, lRS, lOpen, lExec, lAct, lExec, lClose), []string{
		`t.pfile:6:3: PS_EXEC: duplicate entry in this block (first on line 4)`}},
	{"entry without fields", pf(lProc, lRS, lOpen, lExec, lAct, "  PS_QUIT", lClose), []string{
		`t.pfile:6:3: PS_QUIT: expected its fields, type:file:call:...`}},
	{"entry outside a block", pf(lProc, lRS, lExec), []string{
		`t.pfile:3:3: PS_EXEC outside a _bi_ block: expected _bi_NAME{ before it`}},

	// ---- blocks ----
	{"block without PS_EXEC", pf(lProc, lRS, lOpen, lAct, lClose), []string{
		`t.pfile:3: _bi_webserv: block has no PS_EXEC entry (each block needs PS_EXEC and PS_ACTION)`}},
	{"block without PS_ACTION", pf(lProc, lRS, lOpen, lExec, lClose), []string{
		`t.pfile:3: _bi_webserv: block has no PS_ACTION entry (each block needs PS_EXEC and PS_ACTION)`}},
	{"empty block", pf(lProc, lRS, lOpen, lClose), []string{
		`t.pfile:3: _bi_webserv: block has no PS_EXEC entry (each block needs PS_EXEC and PS_ACTION)`,
		`t.pfile:3: _bi_webserv: block has no PS_ACTION entry (each block needs PS_EXEC and PS_ACTION)`}},
	{"unclosed block", pf(lProc, lRS, lOpen, lExec, lAct), []string{
		`t.pfile:3: _bi_webserv: block is not closed: expected } before the end of the file`}},
	{"block not closed before the next", pf(lProc, lRS, lOpen, lExec, lAct, "_bi_socket{",
		"  PS_EXEC DLL:/opt/HA/PSWE/lib/lib_bi_socket.so:DIRECT:-:60:0:2:600:8081",
		"  PS_ACTION DLL:/opt/HA/PSWE/lib/lib_bi_socket.so:DIRECT:-::-:1:0", lClose), []string{
		`t.pfile:6:1: _bi_webserv: the block opened on line 3 is not closed: expected } before a new block`}},
	{"close without block", pf(lProc, lRS, lClose), []string{
		`t.pfile:3:1: unexpected }: no _bi_ block is open`}},
	{"close twice", pf(lProc, lRS, lOpen, lExec, lAct, lClose, lClose), []string{
		`t.pfile:7:1: unexpected }: no _bi_ block is open`}},
	{"open brace alone", pf(lProc, lRS, "{"), []string{
		`t.pfile:3:1: unexpected {: a block starts with its _bi_ name, e.g. _bi_webserv{`}},
	{"block name without brace", pf(lProc, lRS, "_bi_webserv", lExec, lAct, lClose), []string{
		`t.pfile:3: _bi_webserv: expected { after the block name`}},
	{"garbage after block name", pf(lProc, lRS, "_bi_webserv check{", lExec, lAct, lClose), []string{
		`t.pfile:3:12: expected { after the block name _bi_webserv, got "check{"`}},
	{"bare _bi_", pf(lProc, lRS, "_bi_{", lExec, lAct, lClose), []string{
		`t.pfile:3:1: expected a block name after _bi_, e.g. _bi_webserv`}},
	{"duplicate check", pf(lProc, lRS, lOpen, lExec, lAct, lClose, "_bi_webserv2{", lExec, lAct, lClose), []string{
		`t.pfile:7: _bi_webserv2: the same http check of 127.0.0.1 port 8080 as the block on line 3`}},
	{"process key inside a block", pf(lProc, lRS, lOpen, lExec, lAct, "  retry_count 5", lClose), []string{
		`t.pfile:6:3: retry_count belongs to the process entry: put it outside the _bi_ block`}},

	// ---- extension lines ----
	{"extension outside a block", pf(lProc, lRS, "listen_check no"), []string{
		`t.pfile:3:1: listen_check is only allowed inside a _bi_ block`}},
	{"tls on an http check", pf(lProc, lRS, lOpen, lExec, lAct, "  tls_verify yes", lClose), []string{
		`t.pfile:6:14: tls_verify: only for https checks (lib_bi_webservs.so); this block is http`}},
	{"expect_status on tcp", pf(lProc, lRS, "_bi_socket{",
		"  PS_EXEC DLL:/opt/HA/PSWE/lib/lib_bi_socket.so:DIRECT:-:60:0:2:600:8080",
		"  PS_ACTION DLL:/opt/HA/PSWE/lib/lib_bi_socket.so:DIRECT:-::-:1:0", "  expect_status 200", lClose), []string{
		`t.pfile:6:17: expect_status: only for http and https checks; this block is tcp`}},
	{"expect_status reversed", pf(lProc, lRS, lOpen, lExec, lAct, "  expect_status 399-200", lClose), []string{
		`t.pfile:6:17: expect_status: "399-200" is not a range of HTTP statuses: expected MIN-MAX within 100-599, MIN <= MAX`}},
	{"expect_status words", pf(lProc, lRS, lOpen, lExec, lAct, "  expect_status 2xx", lClose), []string{
		`t.pfile:6:17: expect_status: "2xx" is not a status or range: expected e.g. 200 or 200-399`}},
	{"listen_check not yes/no", pf(lProc, lRS, lOpen, lExec, lAct, "  listen_check off", lClose), []string{
		`t.pfile:6:16: listen_check: "off" is not yes or no`}},
	{"tls_ca relative", pf(lProc, lRS, "_bi_webservs{",
		"  PS_EXEC DLL:/opt/HA/PSWE/lib/lib_bi_webservs.so:DIRECT:-:60:0:2:600:443",
		"  PS_ACTION DLL:/opt/HA/PSWE/lib/lib_bi_webservs.so:DIRECT:-::-:1:0", "  tls_ca ca.pem", lClose), []string{
		`t.pfile:6:10: tls_ca: "ca.pem" is not an absolute path`}},
	{"extension twice", pf(lProc, lRS, lOpen, lExec, lAct, "  listen_check no", "  listen_check yes", lClose), []string{
		`t.pfile:7:3: listen_check: set twice in this block (first on line 6)`}},

	// ---- every error of a file is reported ----
	{"several errors", pf("process apache2", "retry_count x", "retry_cont 3", lOpen, execHead+"-:5:0:2:600:8080", lClose), []string{
		`t.pfile:1: missing required key restart_script (the absolute path of the script that brings the service back)`,
		`t.pfile:1:9: process: "apache2" is not an absolute path`,
		`t.pfile:2:13: retry_count: "x" is not a whole number (expected at least 0)`,
		`t.pfile:3:1: unknown key "retry_cont" (did you mean retry_count?)`,
		`t.pfile:4: _bi_webserv: block has no PS_ACTION entry (each block needs PS_EXEC and PS_ACTION)`,
		`t.pfile:5:59: PS_EXEC interval: 5 is too small (expected at least 10 seconds)`}},
}

func TestErrors(t *testing.T) {
	for _, tc := range errorCases {
		t.Run(tc.name, func(t *testing.T) {
			svc, _, err := Parse("t.pfile", []byte(tc.src))
			if svc != nil {
				t.Errorf("got a service together with the error")
			}
			if err == nil {
				t.Fatalf("no error; want:\n%s", strings.Join(tc.want, "\n"))
			}
			es, ok := err.(Errors)
			if !ok {
				t.Fatalf("error is %T, want Errors", err)
			}
			var got []string
			for _, e := range es {
				if e.Line < 1 {
					t.Errorf("error without a line: %v", e)
				}
				got = append(got, e.Error())
			}
			if strings.Join(got, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("source:\n%s\ngot:\n%s\nwant:\n%s", tc.src, strings.Join(got, "\n"), strings.Join(tc.want, "\n"))
			}
		})
	}
}
