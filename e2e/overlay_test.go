package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestProfileOverlay covers --overlay as root and as the plain user: a writable overlay directory
// keeps the container's changes from one run to the next (in DIR/upper, created when missing),
// DIR:ro adds a read-only layer, and bad combinations are one-line errors.
func TestProfileOverlay(t *testing.T) {
	e := ltSetup(t)
	before := ltTake(t)
	for _, as := range ltWho {
		t.Run(string(as), func(t *testing.T) {
			dir := e.workdir(t)
			ov := filepath.Join(dir, "ov")
			r := e.run(t, as, dir, nil, "", "exec", "--overlay", ov, e.bb, "sh", "-c", "echo kept > /newfile && mkdir -p /opt/x && echo a > /opt/x/a")
			if r.code != 0 {
				t.Fatalf("write through the overlay: exit %d, stderr %q", r.code, r.stderr)
			}
			if b, err := os.ReadFile(filepath.Join(ov, "upper", "newfile")); err != nil || string(b) != "kept\n" {
				t.Errorf("upper/newfile on the host: %q, %v", b, err)
			}
			r = e.run(t, as, dir, nil, "", "exec", "--overlay", ov, e.bb, "sh", "-c", "cat /newfile /opt/x/a")
			if r.code != 0 || r.stdout != "kept\na\n" {
				t.Errorf("second run: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
			// The first run's changes as a read-only layer, under the strictest profile.
			r = e.run(t, as, dir, nil, "", "exec", "--isolate", "--overlay", filepath.Join(ov, "upper")+":ro", e.bb, "sh", "-c", "cat /newfile; touch /newfile2")
			if r.code == 0 || r.stdout != "kept\n" || !strings.Contains(r.stderr, "Read-only") {
				t.Errorf("read-only layer: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
			// Nothing of hpcctl's own (mount points, /etc/passwd) lands in the user's directory.
			if _, err := os.Stat(filepath.Join(ov, "upper", "etc", "passwd")); err == nil {
				t.Error("hpcctl wrote /etc/passwd into the overlay")
			}
			r = e.run(t, as, dir, nil, "", "exec", "--writable-tmpfs", "--overlay", ov, e.bb, "true")
			if r.code != 255 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "--writable-tmpfs") {
				t.Errorf("--writable-tmpfs with an overlay: exit %d, stderr %q", r.code, r.stderr)
			}
			r = e.run(t, as, dir, nil, "", "exec", "--overlay", "/a:/b", e.bb, "true")
			if r.code != 255 || !strings.Contains(r.stderr, "dir:ro") {
				t.Errorf("bad --overlay: exit %d, stderr %q", r.code, r.stderr)
			}
			if as == asUser {
				r = e.run(t, as, dir, nil, "", "exec", "--overlay", "/tmp", e.bb, "true")
				if r.code != 255 || !strings.Contains(r.stderr, "not to you") {
					t.Errorf("overlay not owned: exit %d, stderr %q", r.code, r.stderr)
				}
			}
		})
	}
	e.nothingLeft(t, before, e.bb)
}

// TestProfileOverlayOtherOwner: root may use a plain user's writable overlay directory, as
// Apptainer's root can (its changes land in the user's DIR/upper); the plain user may not use
// root's.
func TestProfileOverlayOtherOwner(t *testing.T) {
	e := ltSetup(t)
	u := ltNeedUser(t)
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	dir := e.workdir(t)
	ov := filepath.Join(dir, "users")
	if err := os.Mkdir(ov, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(ov, uid, gid); err != nil {
		t.Fatal(err)
	}
	r := e.run(t, asRoot, dir, nil, "", "exec", "--overlay", ov, e.bb, "sh", "-c", "echo root > /by-root")
	if r.code != 0 {
		t.Fatalf("root with the user's overlay: exit %d, stderr %q", r.code, r.stderr)
	}
	if b, err := os.ReadFile(filepath.Join(ov, "upper", "by-root")); err != nil || string(b) != "root\n" {
		t.Errorf("upper/by-root: %q, %v", b, err)
	}
	mine := filepath.Join(dir, "roots")
	if err := os.Mkdir(mine, 0o755); err != nil {
		t.Fatal(err)
	}
	r = e.run(t, asUser, dir, nil, "", "exec", "--overlay", mine, e.bb, "true")
	if r.code != 255 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "not to you") {
		t.Errorf("the user with root's overlay: exit %d, stderr %q", r.code, r.stderr)
	}
}
