// SPDX-License-Identifier: Apache-2.0

package pfile

import (
	"bytes"
	"encoding/json"
	"os"
	"reflect"
	"strings"
	"testing"
)

const docsPfile = "../../docs/pfile.md"

// docs/pfile.md's key reference is what the key table generates.
func TestKeyReferenceInDocs(t *testing.T) {
	doc, err := os.ReadFile(docsPfile)
	if err != nil {
		t.Fatal(err)
	}
	want, err := UpdateKeyReference(bytes.Clone(doc))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(doc, want) {
		t.Errorf("%s: the key reference differs from pkg/pfile/keys.go: run go generate ./pkg/pfile", docsPfile)
	}
}

func TestUpdateKeyReferenceNeedsMarkers(t *testing.T) {
	if _, err := UpdateKeyReference([]byte("# pfiles\n")); err == nil || !strings.Contains(err.Error(), "markers of the process keys") {
		t.Errorf("err = %v, want the missing markers named", err)
	}
}

// jsonFields is the json names of a struct's fields.
func jsonFields(v any) map[string]bool {
	m := map[string]bool{}
	rt := reflect.TypeOf(v)
	for i := 0; i < rt.NumField(); i++ {
		m[strings.Split(rt.Field(i).Tag.Get("json"), ",")[0]] = true
	}
	return m
}

// Every row is complete, and the JSON views hold exactly the keys' fields
// and the fields that are no key's.
func TestKeyTable(t *testing.T) {
	nonKey := map[bool][]string{
		false: {"name", "checks"},
		true: {"check", "block", "line", "library", "interval", "error", "duration", "port", "host",
			"timeout", "path", "action_error"},
	}
	fields := map[bool]map[string]bool{false: jsonFields(Rules{}), true: jsonFields(CheckRules{})}
	seen := map[string]bool{}
	for _, tab := range [][]keySpec{processKeys, blockKeys} {
		for _, k := range tab {
			if seen[k.name] || strings.ToLower(k.name) != k.name || !isIdent(k.name) {
				t.Errorf("%s: duplicate or not a lower-case name", k.name)
			}
			seen[k.name] = true
			if k.doc == "" || k.example == "" || k.valueDoc() == "" {
				t.Errorf("%s: no doc, example or value form", k.name)
			}
			for _, cell := range []string{k.doc, k.valueDoc(), k.defaultDoc()} {
				if strings.ContainsAny(cell, "|\n") {
					t.Errorf("%s: %q breaks the markdown table", k.name, cell)
				}
			}
			if (k.value.word == nil) == (k.value.line == nil) {
				t.Errorf("%s: its value type needs word or line", k.name)
			}
			if k.block && (k.setCheck == nil || k.checkRule == nil || k.set != nil || k.value.line != nil) ||
				!k.block && (k.set == nil || k.rule == nil || k.setCheck != nil) {
				t.Errorf("%s: setters do not fit a %s key", k.name, map[bool]string{false: "process", true: "block"}[k.block])
			}
			if k.only != nil && !strings.Contains(k.onlyMsg, "%s") {
				t.Errorf("%s: onlyMsg %q does not name the block's kind", k.name, k.onlyMsg)
			}
			if !fields[k.block][k.json] {
				t.Errorf("%s: fills %q, which the JSON view does not have", k.name, k.json)
			}
			delete(fields[k.block], k.json)
		}
	}
	for block, left := range fields {
		for _, f := range nonKey[block] {
			delete(left, f)
		}
		if len(left) > 0 {
			t.Errorf("JSON fields filled by no key: %v", left)
		}
	}
}

// exampleWith is what a key's example needs beside it to be valid.
var exampleWith = map[string][]string{
	"retry_backoff":      {"retry_interval 5"},
	"retry_interval_max": {"retry_interval 5", "retry_backoff 2"},
	"recovery_timeout":   {"retry_over_action reboot"},
	"tls_ca":             {"tls_verify yes"},
	"limit_for":          {"memory_max 1G"},
	"limit_action":       {"memory_max 1G"},
	"limit_grace":        {"memory_max 1G"},
}

// alsoChanges are the fields a key's example fills as a derived default.
var alsoChanges = map[string]string{
	"retry_backoff": "retry_interval_max", // 300 with a backoff, null without
}

// Each key's example parses and changes exactly its own field of the JSON
// view (and only that field: what fills it is the key's row).
func TestEveryKeyFillsItsField(t *testing.T) {
	base := func(lines ...string) map[string]any {
		t.Helper()
		var proc, blk []string
		given := map[string]bool{}
		for _, l := range lines {
			k := allKeys[strings.Fields(l)[0]]
			given[k.name] = true
			if k.block {
				blk = append(blk, l)
			} else {
				proc = append(proc, l)
			}
		}
		// The required keys, unless given.
		for _, l := range []string{lProc, lRS} {
			if !given[strings.Fields(l)[0]] {
				proc = append(proc, l)
			}
		}
		src := pf(append(proc, append(append([]string{"_bi_webservs{",
			"PS_EXEC DLL:/l/lib_bi_webservs.so:DIRECT:-:60:0:2:600:443",
			"PS_ACTION DLL:/l/lib_bi_webservs.so:DIRECT:-::-:1:0"}, blk...), "}")...)...)
		svc, _, err := Parse("t.pfile", []byte(src))
		if err != nil {
			t.Fatalf("%v\n%s", err, src)
		}
		b, err := json.Marshal(svc)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		c := m["checks"].([]any)[0].(map[string]any)
		delete(m, "checks")
		delete(c, "line") // where the block is, not what it says
		for k, v := range c {
			m["check."+k] = v
		}
		return m
	}
	for _, tab := range [][]keySpec{processKeys, blockKeys} {
		for _, k := range tab {
			t.Run(k.name, func(t *testing.T) {
				with := exampleWith[k.name]
				before := base(with...)
				after := base(append(with, k.name+" "+k.example)...)
				field := k.json
				if k.block {
					field = "check." + field
				}
				for f := range after {
					if changed := !reflect.DeepEqual(before[f], after[f]); changed != (f == field || f == alsoChanges[k.name]) {
						t.Errorf("%s %s: field %s changed: %v, from %v to %v", k.name, k.example, f, changed, before[f], after[f])
					}
				}
			})
		}
	}
}
