// SPDX-License-Identifier: Apache-2.0

package pfile

import (
	"bytes"
	"fmt"
	"strings"
)

// The key reference in docs/pfile.md stands between these markers; go
// generate ./pkg/pfile rewrites it from the key table and a test fails when
// the docs differ.
const (
	keyRefBegin = "<!-- BEGIN %s keys: generated from pkg/pfile/keys.go by go generate ./pkg/pfile; do not edit -->\n"
	keyRefEnd   = "<!-- END %s keys -->\n"
)

// UpdateKeyReference returns doc (docs/pfile.md) with its tables of
// process keys and block keys written from the key table.
func UpdateKeyReference(doc []byte) ([]byte, error) {
	for _, part := range []struct {
		name string
		keys []keySpec
	}{{"process", processKeys}, {"block", blockKeys}} {
		begin := []byte(fmt.Sprintf(keyRefBegin, part.name))
		end := []byte(fmt.Sprintf(keyRefEnd, part.name))
		i := bytes.Index(doc, begin)
		j := bytes.Index(doc, end)
		if i < 0 || j < i {
			return nil, fmt.Errorf("the markers of the %s keys are missing or out of order: expected %q, then %q", part.name, begin, end)
		}
		i += len(begin)
		doc = append(doc[:i:i], append([]byte(keyTable(part.keys)), doc[j:]...)...)
	}
	return doc, nil
}

// keyTable writes keys as a markdown table.
func keyTable(keys []keySpec) string {
	var b strings.Builder
	b.WriteString("| key | value | default | meaning |\n| --- | --- | --- | --- |\n")
	for i := range keys {
		k := &keys[i]
		fmt.Fprintf(&b, "| `%s` | %s | %s | %s |\n", k.name, k.valueDoc(), k.defaultDoc(), k.doc)
	}
	return b.String()
}

func (k *keySpec) valueDoc() string {
	if k.form != "" {
		return k.form
	}
	return k.value.form
}

func (k *keySpec) defaultDoc() string {
	switch {
	case k.def != "":
		return k.def
	case k.required != "":
		return "**required**"
	case k.dflt != nil && k.value.show != nil:
		return k.value.show(k.dflt)
	}
	return "none"
}
