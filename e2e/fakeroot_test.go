package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hpcctl/hpcctl/internal/testutil"
)

// frImage builds the busybox fixture into a SIF in a directory u can read.
func frImage(t *testing.T, u testUser) (dir, img string) {
	t.Helper()
	busybox := btNeedEnvFile(t, "HPCCTL_TEST_BUSYBOX_OCI_ARCHIVE")
	dir = workDir(t, u)
	img = filepath.Join(dir, "busybox.sif")
	btRun(t, dir, []string{"HPCCTL_CACHEDIR=" + filepath.Join(dir, "root-cache")}, "build", img, "oci-archive:"+busybox).mustSucceed(t, "build the busybox image")
	return dir, img
}

// TestFakeroot runs a plain user's programs with --fakeroot: root inside, other IDs from the
// user's /etc/subuid range for chown in a writable tmpfs root and a persistent overlay, and the
// user's own files on a bound host directory. Real root's --fakeroot changes nothing (said at
// -v).
func TestFakeroot(t *testing.T) {
	u := needUser(t)
	needUserNS(t, u)
	needFUSE(t, u)
	testutil.NeedCommands(t, "newuidmap", "newgidmap", "squashfuse_ll")
	dir, img := frImage(t, u)
	hpc := func(args ...string) result {
		t.Helper()
		return runCmd(t, userCmd(t, u, dir, append([]string{bins.hpcctl}, args...)...))
	}
	if out := hpc("exec", "--fakeroot", img, "id", "-u").mustSucceed(t, "exec --fakeroot id -u").Stdout; out != "0\n" {
		t.Errorf("id -u under --fakeroot printed %q, want 0", out)
	}
	if out := runCmd(t, userCmd(t, u, dir, "sh", "-c", "echo 'id -g' | "+bins.hpcctl+" shell -f "+img)).mustSucceed(t, "shell -f").Stdout; out != "0\n" {
		t.Errorf("shell -f: id -g printed %q, want 0", out)
	}
	chown := "mkdir -p /made && chown 5:7 /made && stat -c %u:%g /made"
	if out := hpc("exec", "-f", "--writable-tmpfs", img, "sh", "-c", chown).mustSucceed(t, "chown in a writable tmpfs").Stdout; out != "5:7\n" {
		t.Errorf("chown 5:7 in the writable tmpfs: stat printed %q", out)
	}
	ov := filepath.Join(dir, "overlay")
	if out := hpc("exec", "-f", "--overlay", ov, img, "sh", "-c", chown).mustSucceed(t, "chown in an overlay").Stdout; out != "5:7\n" {
		t.Errorf("chown 5:7 in the overlay: stat printed %q", out)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(ov, "upper", "made"), &st); err != nil {
		t.Fatal(err)
	} else if st.Uid == uint32(u.UID) || st.Uid == 5 {
		t.Errorf("the overlay's /made belongs to host UID %d: want the user's subordinate ID for 5", st.Uid)
	}
	data := filepath.Join(dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		t.Fatal(err)
	}
	run(t, "chown", fmt.Sprintf("%d:%d", u.UID, u.GID), data).mustSucceed(t, "chown data")
	hpc("exec", "-f", "-B", data+":/data", img, "sh", "-c", "echo x > /data/by-root && mkdir /data/dir").mustSucceed(t, "write on a bind")
	for _, name := range []string{"by-root", "dir"} {
		if err := syscall.Stat(filepath.Join(data, name), &st); err != nil {
			t.Error(err)
		} else if int(st.Uid) != u.UID || int(st.Gid) != u.GID {
			t.Errorf("%s made by root inside belongs to %d:%d on the host, want the user's %d:%d", name, st.Uid, st.Gid, u.UID, u.GID)
		}
	}
	// An instance started with --fakeroot: what joins it is root there too.
	name := fmt.Sprintf("fakeroot-%d", os.Getpid())
	hpc("instance", "start", "-f", img, name).mustSucceed(t, "instance start -f")
	t.Cleanup(func() { hpc("instance", "stop", name) })
	if out := hpc("exec", "instance://"+name, "id", "-u").mustSucceed(t, "exec in the instance").Stdout; out != "0\n" {
		t.Errorf("id -u in a --fakeroot instance printed %q, want 0", out)
	}
	hpc("instance", "stop", name).mustSucceed(t, "instance stop")
	// Without --fakeroot nothing changes.
	if out := hpc("exec", img, "id", "-u").mustSucceed(t, "exec id -u").Stdout; out != fmt.Sprintf("%d\n", u.UID) {
		t.Errorf("id -u without --fakeroot printed %q", out)
	}
	r := btRun(t, dir, nil, "-v", "exec", "--fakeroot", img, "id", "-u").mustSucceed(t, "root's --fakeroot")
	if r.Stdout != "0\n" || !strings.Contains(r.Stderr, "--fakeroot: you are root already") {
		t.Errorf("root's --fakeroot: stdout %q, stderr %q (want 0 and the -v note)", r.Stdout, r.Stderr)
	}
	frNoRange(t, img)
}

// frNoRange runs --fakeroot as a user without subordinate IDs (an ID with no /etc/subuid line):
// root inside through the single-ID mapping, one warning line, and a chown that fails.
func frNoRange(t *testing.T, img string) {
	t.Helper()
	const id = 2999
	home := filepath.Join(filepath.Dir(img), "nouser-home")
	if err := os.Mkdir(home, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(home, id, id); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile("/etc/subuid"); strings.Contains(string(b), fmt.Sprintf("\n%d:", id)) || strings.HasPrefix(string(b), fmt.Sprintf("%d:", id)) {
		t.Fatalf("/etc/subuid has a range for %d", id)
	}
	cmd := exec.Command("setpriv", fmt.Sprintf("--reuid=%d", id), fmt.Sprintf("--regid=%d", id), "--clear-groups",
		"env", "-i", "PATH=/usr/bin:/bin", "USER=nouser", "HOME="+home,
		bins.hpcctl, "exec", "-f", "--writable-tmpfs", img, "sh", "-c", "id -u; mkdir /made && chown 5 /made")
	cmd.Dir = home
	r := runCmd(t, cmd)
	if r.Code == 0 || !strings.HasPrefix(r.Stdout, "0\n") {
		t.Errorf("single-ID --fakeroot: exit status %d, stdout %q (want 0 from id -u, then chown failing)", r.Code, r.Stdout)
	}
	lines := strings.Split(strings.TrimSpace(r.Stderr), "\n")
	if !strings.HasPrefix(lines[0], "hpcctl: warning: --fakeroot: no range for nouser in /etc/subuid") {
		t.Errorf("stderr %q, want the warning naming /etc/subuid first", r.Stderr)
	}
}
