package cli

import (
	"bytes"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

func TestParseCompletion(t *testing.T) {
	for _, tc := range []struct {
		out   string
		comps []string
		dir   cobra.ShellCompDirective
	}{
		{"--compression\tsquashfs compression\n--comp-level\n:4\n", []string{"--compression\tsquashfs compression", "--comp-level"}, cobra.ShellCompDirectiveNoFileComp},
		{":0\n", nil, cobra.ShellCompDirectiveDefault},
		{"", nil, cobra.ShellCompDirectiveDefault},
		{"a\nb\n", nil, cobra.ShellCompDirectiveDefault},
		{"a\n:x\n", nil, cobra.ShellCompDirectiveDefault},
	} {
		comps, dir := parseCompletion([]byte(tc.out))
		if strings.Join(comps, "|") != strings.Join(tc.comps, "|") || dir != tc.dir {
			t.Errorf("parseCompletion(%q) = %q, %d; want %q, %d", tc.out, comps, dir, tc.comps, tc.dir)
		}
	}
}

// TestCompletionScripts: cobra's scripts for the three shells, for hpcctl, and no hidden
// command among the completions of the top level or of instance.
func TestCompletionScripts(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		out := mainOutput(t, "completion", shell)
		if !strings.Contains(out, "hpcctl") || len(out) < 1000 {
			t.Errorf("completion %s: %d bytes", shell, len(out))
		}
	}
	for _, args := range [][]string{{"__complete", ""}, {"__complete", "instance", ""}} {
		out := mainOutput(t, args...)
		for _, hidden := range []string{"monitor", "__hpcctl", "__complete"} {
			if strings.Contains(out, hidden) {
				t.Errorf("%q completes the hidden %s:\n%s", args, hidden, out)
			}
		}
	}
	if out := mainOutput(t, "__complete", "instance", ""); !strings.Contains(out, "start\t") || !strings.Contains(out, "stop\t") {
		t.Errorf("instance completions:\n%s", out)
	}
}

// TestNoColour: hpcctl writes no terminal escape sequences (colour), whatever NO_COLOR says; a
// library that adds colour must keep it to terminals and honour NO_COLOR.
func TestNoColour(t *testing.T) {
	for _, nc := range []string{"", "1"} {
		t.Setenv("NO_COLOR", nc)
		t.Setenv("HOME", t.TempDir())
		for _, args := range [][]string{{"--help"}, {"exec", "--help"}, {"instance", "list"}, {"session", "list"}, {"version"}, {"exec"}, {"no-such-verb"}} {
			if out := mainOutput(t, args...); strings.Contains(out, "\x1b") {
				t.Errorf("NO_COLOR=%q hpcctl %q wrote an escape sequence: %q", nc, args, out)
			}
		}
	}
}

// mainOutput runs the launch binary's command line and returns stdout and stderr together.
func mainOutput(t *testing.T, args ...string) string {
	t.Helper()
	var out bytes.Buffer
	Main(args, strings.NewReader(""), &out, &out, CommonVerbs, LaunchVerbs, CompanionVerbs)
	return out.String()
}
