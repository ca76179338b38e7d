// Package testutil holds helpers shared by hpcctl's tests: capability probes that skip a test with
// the reason on a developer machine and fail it under CI, where every capability is provided.
package testutil

import (
	"os"
	"os/exec"
	"testing"
)

// StrictEnv names the variable that turns a missing capability into a failure. .ci/run sets it,
// so that a test that would silently skip in CI fails instead.
const StrictEnv = "HPCCTL_TEST_STRICT"

// Need skips (or, under HPCCTL_TEST_STRICT=1, fails) the test when ok is false.
func Need(t testing.TB, ok bool, reason string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv(StrictEnv) == "1" {
		t.Fatalf("missing capability in strict mode: %s", reason)
	}
	t.Skip(reason)
}

// NeedRoot requires an effective UID of 0.
func NeedRoot(t testing.TB) {
	t.Helper()
	Need(t, os.Geteuid() == 0, "needs root")
}

// NeedCommands requires every named program on PATH and returns their paths in order.
func NeedCommands(t testing.TB, names ...string) []string {
	t.Helper()
	paths := make([]string, len(names))
	for i, name := range names {
		p, err := exec.LookPath(name)
		Need(t, err == nil, "needs "+name+" on PATH")
		paths[i] = p
	}
	return paths
}

// NeedEnvDir requires the environment variable to name an existing directory (a test fixture made
// by scripts/fixtures.sh) and returns it.
func NeedEnvDir(t testing.TB, name string) string {
	t.Helper()
	dir := os.Getenv(name)
	st, err := os.Stat(dir)
	Need(t, dir != "" && err == nil && st.IsDir(), "needs $"+name+" naming a fixture directory (make fixtures)")
	return dir
}
