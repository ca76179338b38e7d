package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/testutil"
)

// The tests in this file check the machine, not hpcctl: the capabilities the launcher depends on.
// They fail early and plainly on a broken CI machine, instead of deep inside a launcher test.

// TestUserNamespaceAsUser: the unprivileged user maps itself to root in a new user namespace.
func TestUserNamespaceAsUser(t *testing.T) {
	u := needUser(t)
	needUserNS(t, u)
	r := runAsUser(t, u, "unshare", "--user", "--map-root-user", "--mount", "sh", "-c", "id -u; cat /proc/self/uid_map")
	r.mustSucceed(t, "unshare")
	fields := strings.Fields(r.Stdout)
	if len(fields) != 4 || fields[0] != "0" || fields[2] != itoa(u.UID) || fields[3] != "1" {
		t.Errorf("in the namespace: %q, want uid 0 mapped to %d (count 1)", r.Stdout, u.UID)
	}
}

// TestSquashfuseAsUser mounts a squashfs image with squashfuse_ll as the unprivileged user, in a
// user and mount namespace, the launcher's unprivileged mount path.
func TestSquashfuseAsUser(t *testing.T) {
	u := needUser(t)
	needUserNS(t, u)
	needFUSE(t, u)
	testutil.NeedCommands(t, "mksquashfs", "squashfuse_ll")
	dir := workDir(t, u)
	img := makeSquashfs(t, u, dir)
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(mnt, u.UID, u.GID) //nolint:errcheck // the mount below fails, and says so, if this did
	script := `set -e
squashfuse_ll -f "$1" "$2" & pid=$!
i=0; until mountpoint -q "$2"; do i=$((i+1)); [ $i -lt 100 ] || { echo mount timed out >&2; exit 1; }; sleep 0.1; done
cat "$2/hello"
umount "$2"
wait $pid`
	r := runAsUser(t, u, "unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script, "sh", img, mnt)
	r.mustSucceed(t, "squashfuse_ll in a user namespace")
	if r.Stdout != "hello from squashfs\n" {
		t.Errorf("read %q through squashfuse, want the file's content", r.Stdout)
	}
}

// TestKernelSquashfsLoop mounts a squashfs image with the kernel driver on a read-only loop
// device, the root (and setuid starter) mount path.
func TestKernelSquashfsLoop(t *testing.T) {
	needLoop(t)
	testutil.NeedCommands(t, "mksquashfs", "mount", "umount")
	u := needUser(t)
	dir := workDir(t, u)
	img := makeSquashfs(t, u, dir)
	mnt := filepath.Join(dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	// unshare keeps the mount private to this test and lets the kernel clean up if it dies.
	script := `set -e
loop=$(losetup --find --show --read-only "$1")
trap 'losetup -d "$loop"' EXIT
mount -t squashfs -o ro "$loop" "$2"
cat "$2/hello"
umount "$2"`
	r := run(t, "unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", img, mnt)
	r.mustSucceed(t, "kernel squashfs on a loop device")
	if r.Stdout != "hello from squashfs\n" {
		t.Errorf("read %q from the kernel mount, want the file's content", r.Stdout)
	}
}

// makeSquashfs makes a one-file squashfs image in dir, readable by u.
func makeSquashfs(t testing.TB, u testUser, dir string) string {
	t.Helper()
	src := filepath.Join(dir, "src")
	if err := os.Mkdir(src, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, u, filepath.Join(src, "hello"), "hello from squashfs\n", 0o644)
	img := filepath.Join(dir, "img.sqfs")
	out, err := exec.Command("mksquashfs", src, img, "-quiet", "-noappend", "-all-root").CombinedOutput()
	if err != nil {
		t.Fatalf("mksquashfs: %v: %s", err, out)
	}
	if err := os.Chmod(img, 0o644); err != nil {
		t.Fatal(err)
	}
	return img
}
