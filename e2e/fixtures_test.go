package e2e

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/testutil"
)

// TestDebianFixture unpacks the Debian OCI fixture with umoci, an independent implementation of
// layer application, and checks that the awkward cases of its top layer mean what the tests of
// hpcctl's own flattener assume they mean.
func TestDebianFixture(t *testing.T) {
	needRoot(t)
	layout := testutil.NeedEnvDir(t, "HPCCTL_TEST_DEBIAN_OCI")
	testutil.NeedCommands(t, "umoci", "chroot")
	u := needUser(t)
	root := filepath.Join(workDir(t, u), "rootfs")
	run(t, "umoci", "raw", "unpack", "--image", layout+":latest", root).mustSucceed(t, "umoci raw unpack")

	for _, gone := range []string{"etc/issue.net", "etc/skel/.bashrc", "usr/share/doc/python3.11"} {
		if _, err := os.Lstat(filepath.Join(root, gone)); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s: %v, want it whited out", gone, err)
		}
	}
	modes := map[string]os.FileMode{
		"opt/hpcctl-fixture/setuid":     os.ModeSetuid | 0o755,
		"opt/hpcctl-fixture/mode-0000":  0,
		"opt/hpcctl-fixture/sticky":     os.ModeDir | os.ModeSticky | 0o777,
		"opt/hpcctl-fixture/setgid-dir": os.ModeDir | os.ModeSetgid | 0o775,
		"opt/hpcctl-fixture/link-abs":   os.ModeSymlink | 0o777,
		"etc/skel/only-this":            0o644,
	}
	for name, want := range modes {
		st, err := os.Lstat(filepath.Join(root, name))
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if st.Mode() != want {
			t.Errorf("%s: mode %v, want %v", name, st.Mode(), want)
		}
	}
	if a, b := inode(t, root, "usr/bin/python3.11"), inode(t, root, "opt/hpcctl-fixture/python-hardlink"); a != b {
		t.Errorf("python-hardlink is inode %d, /usr/bin/python3.11 is %d: want one file", b, a)
	}
	buf := make([]byte, 64)
	n, err := unix.Lgetxattr(filepath.Join(root, "opt/hpcctl-fixture/xattr-user"), "user.hpcctl", buf)
	if err != nil || string(buf[:n]) != "fixture" {
		t.Errorf("user.hpcctl = %q, %v; want \"fixture\"", buf[:max(n, 0)], err)
	}
	r := run(t, "chroot", root, "python3", "-c", "import json; print(json.dumps([1+1]))").mustSucceed(t, "python3 in the unpacked image")
	if r.Stdout != "[2]\n" {
		t.Errorf("python3 printed %q, want [2]", r.Stdout)
	}
}

func inode(t *testing.T, root, name string) uint64 {
	t.Helper()
	st, err := os.Lstat(filepath.Join(root, name))
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Ino
}
