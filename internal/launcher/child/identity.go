package child

import "strings"

// MergeEntries adds lines to the contents of a passwd or group file: an existing line with the same
// name (field 1) or ID (field 3) as a new one is dropped, so that the user's own entry wins, and
// the new lines go at the end.
func MergeEntries(old string, lines []string) string {
	names, ids := map[string]bool{}, map[string]bool{}
	for _, l := range lines {
		f := strings.Split(l, ":")
		names[f[0]] = true
		if len(f) > 2 {
			ids[f[2]] = true
		}
	}
	var b strings.Builder
	for _, l := range strings.Split(old, "\n") {
		if l == "" {
			continue
		}
		f := strings.Split(l, ":")
		if names[f[0]] || (len(f) > 2 && ids[f[2]]) {
			continue
		}
		b.WriteString(l + "\n")
	}
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	return b.String()
}
