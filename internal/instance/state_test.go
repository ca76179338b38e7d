package instance

import (
	"regexp"
	"strings"
	"testing"
)

// TestCheckName checks the hand-written name check against the rule it replaced, the regexp
// `^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`, on fixed names and on every short name over an alphabet
// of each class of byte.
func TestCheckName(t *testing.T) {
	rule := regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)
	names := []string{"", "a", "Z9", "job-1.x_y", ".hidden", "-x", "_x", "a/b", "a b", "ä", "a\x00",
		strings.Repeat("a", 64), strings.Repeat("a", 65), "a" + strings.Repeat("-", 63), "a" + strings.Repeat("-", 64), "../x"}
	alphabet := []string{"a", "Q", "7", ".", "_", "-", "/", " ", "\xff"}
	var gen func(prefix string, n int)
	gen = func(prefix string, n int) {
		names = append(names, prefix)
		if n == 0 {
			return
		}
		for _, c := range alphabet {
			gen(prefix+c, n-1)
		}
	}
	gen("", 3)
	for _, name := range names {
		if got, want := CheckName(name) == nil, rule.MatchString(name); got != want {
			t.Errorf("CheckName(%q) accepts: %v, want %v", name, got, want)
		}
	}
}
