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

// AddEntries appends to the passwd or group file content old the lines whose name and ID (third
// field) it lacks; the lines it has stay as they are.
func AddEntries(old string, lines []string) string {
	names, ids := map[string]bool{}, map[string]bool{}
	for _, l := range strings.Split(old, "\n") {
		f := strings.Split(l, ":")
		names[f[0]] = true
		if len(f) > 2 {
			ids[f[2]] = true
		}
	}
	var add []string
	for _, l := range lines {
		f := strings.Split(l, ":")
		if !names[f[0]] && (len(f) < 3 || !ids[f[2]]) {
			add = append(add, l)
		}
	}
	if len(add) == 0 {
		return old
	}
	if old != "" && !strings.HasSuffix(old, "\n") {
		old += "\n"
	}
	return old + strings.Join(add, "\n") + "\n"
}
