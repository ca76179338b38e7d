package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestLauncherDebugSteps checks that -d shows each step the setup stage takes inside the
// namespaces, relayed by the parent with the same fields everywhere, and that without -d the
// stage says nothing (issue 18).
func TestLauncherDebugSteps(t *testing.T) {
	e := ltSetup(t)
	before := ltTake(t)
	for _, as := range ltWho {
		t.Run(string(as), func(t *testing.T) {
			dir := e.workdir(t)
			r := e.run(t, as, "/", nil, "", "-d", "exec", "-B", dir+":/data/in:ro", e.bb, "true")
			if r.code != 0 {
				t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
			}
			for _, want := range [][]string{
				{"step=bind", "source=" + dir, "target=/data/in", "flags=ro,bind"},
				{"step=image", "source=" + e.bb},
				{"step=overlay"},
				{"step=pivot_root"},
				{"step=privileges", "capabilities="},
				{"step=exec", "target=true"},
			} {
				if !hasLine(r.stderr, append([]string{`msg="container setup"`}, want...)) {
					t.Errorf("-d: no setup line with %q in\n%s", want, r.stderr)
				}
			}
			r = e.run(t, as, "/", nil, "", "exec", "-B", dir+":/data/in:ro", e.bb, "true")
			if r.code != 0 || strings.Contains(r.stderr, "container setup") {
				t.Errorf("without -d: exit %d, stderr %q; want 0 and no setup steps", r.code, r.stderr)
			}
		})
	}
	e.nothingLeft(t, before, e.bb)
}

// hasLine reports whether one line of text holds every one of words.
func hasLine(text string, words []string) bool {
	for _, l := range strings.Split(text, "\n") {
		all := true
		for _, w := range words {
			all = all && strings.Contains(l, w)
		}
		if all {
			return true
		}
	}
	return false
}

// TestLauncherOptionalMountDenied checks the contract of spec.Mount.Optional: an optional mount is
// skipped when its path is missing, and fails the launch, naming it, on any other error. The
// optional mount is an MPI rank's job directory, whose mount point lies under a directory of the
// image that the plain user cannot search (EACCES in its user namespace).
func TestLauncherOptionalMountDenied(t *testing.T) {
	e := ltSetup(t)
	u := ltNeedUser(t)
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	before := ltTake(t)

	// The same path on the host (a directory the user owns) and in the image (under a mode 0700
	// directory of root's).
	top, err := os.MkdirTemp("/", "hpcctl-e2e-locked-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(top) })
	if err := os.Chmod(top, 0o755); err != nil {
		t.Fatal(err)
	}
	job := filepath.Join(top, "job")
	if err := os.Mkdir(job, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(job, uid, gid); err != nil {
		t.Fatal(err)
	}
	sandbox := filepath.Join(e.workdir(t), "tree")
	if out, err := exec.Command("cp", "-a", e.bbTree, sandbox).CombinedOutput(); err != nil {
		t.Fatalf("copy the busybox tree: %v: %s", err, out)
	}
	if err := os.Mkdir(filepath.Join(sandbox, top), 0o700); err != nil {
		t.Fatal(err)
	}
	rank := []string{"PMI_RANK=0", "PMI_SIZE=1", "PMIX_SERVER_TMPDIR=" + job}

	r := e.run(t, asUser, "/", rank, "", "exec", sandbox, "true")
	if r.code != 255 || !strings.Contains(r.stderr, job) || !strings.Contains(r.stderr, "permission denied") {
		t.Errorf("an optional mount denied: exit %d, stderr %q; want 1 naming %s and the error", r.code, r.stderr, job)
	}
	// The same mount, once the user may search the directory, is made.
	if err := os.Chmod(filepath.Join(sandbox, top), 0o755); err != nil {
		t.Fatal(err)
	}
	r = e.run(t, asUser, "/", rank, "", "-d", "exec", sandbox, "sh", "-c", "test -d "+job+" && echo bound")
	if r.code != 0 || r.stdout != "bound\n" {
		t.Errorf("an optional mount allowed: exit %d, stdout %q, stderr %q; want it bound", r.code, r.stdout, r.stderr)
	}
	e.nothingLeft(t, before)
}
