package ocitest

import (
	"path"
	"sort"
	"strings"
)

func sortedKeys(m map[string][]byte) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// parents lists the directories above a slash-separated name, outermost first.
func parents(name string) []string {
	var out []string
	for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
		out = append(out, d)
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out
}

// Layer builds the tar bytes of a layer holding the given files (name → content).
func Layer(files map[string]string) []byte {
	m := make(map[string][]byte, len(files))
	for k, v := range files {
		m[strings.TrimPrefix(k, "/")] = []byte(v)
	}
	return TarFiles(m)
}
