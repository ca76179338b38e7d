package audit

import (
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"
)

// Difference is one result that differs from the reference run.
type Difference struct {
	Profile   string `json:"profile"`
	Reference string `json:"reference"`
	// Item is "status", "stdout", "stderr" or "file PATH".
	Item string `json:"item"`
	Got  string `json:"got"`
	Want string `json:"want"`
	// Causes are the leaks present in this run and not in the reference, likely ones first.
	Causes []Cause `json:"causes"`
}

// Cause is a leak that can explain a difference; Likely when its value shows in the output or
// it changes where programs find code.
type Cause struct {
	Leak
	Likely bool `json:"likely"`
}

// items lists what a run produced, by name.
func items(r Run) map[string]string {
	m := map[string]string{"status": r.status(), "stdout": r.Stdout.Digest, "stderr": r.Stderr.Digest}
	for name, d := range r.Outputs {
		m["file "+name] = d
	}
	return m
}

// Compare checks every run against the reference run (the strictest profile, last) and explains
// each difference by the leaks the run has and the reference has not.
func Compare(runs []Run, ref Run) []Difference {
	var diffs []Difference
	want := items(ref)
	for _, r := range runs {
		if r.Profile == ref.Profile {
			continue
		}
		got := items(r)
		causes := Attribute(r, ref)
		for _, name := range unionKeys(got, want) {
			if got[name] == want[name] {
				continue
			}
			diffs = append(diffs, Difference{Profile: r.Profile, Reference: ref.Profile, Item: name,
				Got: orAbsent(got[name]), Want: orAbsent(want[name]), Causes: causes})
		}
	}
	return diffs
}

// Attribute lists the leaks of r that ref lacks, likely causes first.
func Attribute(r, ref Run) []Cause {
	have := map[string]bool{}
	for _, l := range ref.Leaks {
		have[l.key()] = true
	}
	var cs []Cause
	for _, l := range r.Leaks {
		if have[l.key()] {
			continue
		}
		likely := l.Kind == LeakUserSite || l.Kind == LeakSearchPath || shows(r.text, l.value)
		cs = append(cs, Cause{Leak: l, Likely: likely})
	}
	sortLeaks(cs)
	return cs
}

// shows reports whether a leaked value appears in what the program printed: anywhere for a
// value of three characters or more, as a whole word for a shorter one (OMP_NUM_THREADS=8).
func shows(text, value string) bool {
	switch {
	case value == "" || text == "":
		return false
	case len(value) >= 3:
		return strings.Contains(text, value)
	}
	words := strings.FieldsFunc(text, func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_' && r != '-'
	})
	return slices.Contains(words, value)
}

func unionKeys(a, b map[string]string) []string {
	seen := map[string]bool{}
	var ks []string
	for _, m := range []map[string]string{a, b} {
		for k := range m {
			if !seen[k] {
				seen[k] = true
				ks = append(ks, k)
			}
		}
	}
	sort.Slice(ks, func(i, j int) bool {
		return itemRank(ks[i]) < itemRank(ks[j]) || (itemRank(ks[i]) == itemRank(ks[j]) && ks[i] < ks[j])
	})
	return ks
}

func itemRank(item string) int {
	switch item {
	case "status":
		return 0
	case "stdout":
		return 1
	case "stderr":
		return 2
	}
	return 3
}

func orAbsent(s string) string {
	if s == "" {
		return "absent"
	}
	return s
}

func itoa(n int) string { return strconv.Itoa(n) }
