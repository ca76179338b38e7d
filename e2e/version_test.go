package e2e

import (
	"fmt"
	"strings"
	"testing"
)

func checkVersion(t *testing.T, r result) {
	t.Helper()
	r.mustSucceed(t, "hpcctl version")
	if want := "hpcctl " + testVersion + " ("; !strings.HasPrefix(r.Stdout, want) {
		t.Errorf("stdout = %q, want a line starting %q", r.Stdout, want)
	}
	if strings.Count(r.Stdout, "\n") != 1 || r.Stderr != "" {
		t.Errorf("want one line on stdout and nothing on stderr; stdout %q, stderr %q", r.Stdout, r.Stderr)
	}
}

func TestVersionAsRoot(t *testing.T) {
	needRoot(t)
	checkVersion(t, run(t, bins.hpcctl, "version"))
}

func TestVersionAsUser(t *testing.T) {
	u := needUser(t)
	checkVersion(t, runAsUser(t, u, bins.hpcctl, "version"))
}

// TestUserEnvironment checks the harness itself: commands run as the user see the user's own
// identity and home, the variables a test adds, and none of root's.
func TestUserEnvironment(t *testing.T) {
	u := needUser(t)
	t.Setenv("HPCCTL_E2E_ROOT_ONLY", "leak")
	r := runAsUserEnv(t, u, []string{"HPCCTL_E2E_ADDED=yes"}, "sh", "-c", `echo "$(id -u) $HOME $USER ${HPCCTL_E2E_ADDED:-} ${HPCCTL_E2E_ROOT_ONLY:-none}"`)
	r.mustSucceed(t, "sh as the user")
	want := fmt.Sprintf("%d %s %s yes none\n", u.UID, u.Home, u.Name)
	if r.Stdout != want {
		t.Errorf("as the user: %q, want %q", r.Stdout, want)
	}
}

// TestUsageErrors checks that a bad command line exits 2 with one line on stderr that names the
// problem and where to look, and prints nothing on stdout.
func TestUsageErrors(t *testing.T) {
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown global flag", []string{"--no-such-flag"}, "--no-such-flag"},
		{"unknown command flag", []string{"version", "--no-such-flag"}, "--no-such-flag"},
		{"unknown shorthand", []string{"version", "-Z"}, "-Z"},
		{"unknown command", []string{"frobnicate"}, "frobnicate"},
		{"unknown subcommand", []string{"key", "frobnicate"}, "frobnicate"},
		{"extra argument", []string{"version", "extra"}, "extra"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := run(t, append([]string{bins.hpcctl}, tt.args...)...)
			if r.Code != 255 {
				t.Errorf("exit status %d, want 2 (stderr %q)", r.Code, r.Stderr)
			}
			if r.Stdout != "" {
				t.Errorf("stdout = %q, want nothing", r.Stdout)
			}
			lines := strings.Split(strings.TrimSuffix(r.Stderr, "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "hpcctl: ") || !strings.Contains(lines[0], tt.want) || !strings.Contains(lines[0], "--help") {
				t.Errorf("stderr = %q, want one line 'hpcctl: ...' naming %q and pointing at --help", r.Stderr, tt.want)
			}
		})
	}
}
