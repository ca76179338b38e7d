package e2e

// Shell completion and man pages, as installed: the scripts load in the shells, completion of
// the companion's verbs reaches hpcctl-image, and make install-suid installs the man pages.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/testutil"
)

// TestCompletionLoads: `source <(hpcctl completion bash)` defines hpcctl's completion in bash,
// as root and as a plain user; zsh and fish scripts parse where those shells are installed.
func TestCompletionLoads(t *testing.T) {
	testutil.NeedCommands(t, "bash")
	u := needUser(t)
	for _, who := range []string{"root", u.Name} {
		t.Run(who, func(t *testing.T) {
			script := "source <(" + bins.hpcctl + " completion bash) && complete -p hpcctl"
			var r result
			if who == "root" {
				r = run(t, "bash", "-c", script)
			} else {
				r = runAsUser(t, u, "bash", "-c", script)
			}
			if r.Code != 0 || strings.TrimSpace(r.Stdout) != "complete -o default -F __start_hpcctl hpcctl" {
				t.Errorf("bash: exit %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
			}
		})
	}
	// What the scripts run on TAB (`hpcctl __complete ARGS... WORD`): `hpcctl build --comp<TAB>`
	// asks hpcctl-image for build's flags, since hpcctl hands build's command line over unparsed.
	r := run(t, bins.hpcctl, "__complete", "build", "--comp")
	if r.Code != 0 || !strings.Contains(r.Stdout, "--compression\t") {
		t.Errorf("completion of 'hpcctl build --comp': exit %d, %q, %q", r.Code, r.Stdout, r.Stderr)
	}
	for _, shell := range []string{"zsh", "fish"} {
		path, err := exec.LookPath(shell)
		if err != nil {
			continue // not installed: the unit test checks the script is made
		}
		f := filepath.Join(t.TempDir(), "hpcctl."+shell)
		out := run(t, bins.hpcctl, "completion", shell).mustSucceed(t, "completion "+shell)
		if err := os.WriteFile(f, []byte(out.Stdout), 0o644); err != nil {
			t.Fatal(err)
		}
		if r := run(t, path, "-n", f); r.Code != 0 {
			t.Errorf("%s -n on hpcctl's script: %s", shell, r.Stderr)
		}
	}
}

// TestManPagesInstalled: make install-suid (the harness's suid/ prefix) installs one page per
// command under share/man/man1, and man reads them.
func TestManPagesInstalled(t *testing.T) {
	needRoot(t)
	testutil.Need(t, bins.suid != "", "needs make install-suid's prefix (tests as root with the starter built)")
	dir := filepath.Join(bins.suid, "share", "man", "man1")
	for _, p := range []string{"hpcctl.1", "hpcctl-exec.1", "hpcctl-build.1", "hpcctl-instance-start.1", "hpcctl-completion-bash.1"} {
		st, err := os.Stat(filepath.Join(dir, p))
		if err != nil || st.Mode().Perm() != 0o644 {
			t.Errorf("%s: %v (mode %v)", p, err, st)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "hpcctl-instance-monitor.1")); err == nil {
		t.Error("a page for the hidden instance monitor")
	}
	if _, err := exec.LookPath("man"); err == nil {
		r := run(t, "man", "-l", filepath.Join(dir, "hpcctl-exec.1"))
		if r.Code != 0 || !strings.Contains(r.Stdout, "--nv") {
			t.Errorf("man -l hpcctl-exec.1: exit %d: %.300s %s", r.Code, r.Stdout, r.Stderr)
		}
	}
}
