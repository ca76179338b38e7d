package mount

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// realName returns the host path of an open descriptor.
func realName(t *testing.T, fd int) string {
	t.Helper()
	p, err := os.Readlink(FDPath(fd))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestOpenInRootStaysInside(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"etc", "data"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	links := map[string]string{"abs": "/etc", "up": "../../../../etc", "data/loop": "../..", "host": "/proc/self/root"}
	for name, target := range links {
		if err := os.Symlink(target, filepath.Join(root, name)); err != nil {
			t.Fatal(err)
		}
	}
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rfd)
	tests := []struct{ path, want string }{
		{"/abs", root + "/etc"},
		{"/up", root + "/etc"},
		{"/data/loop", root},
		{"/../../etc", root + "/etc"},
	}
	for _, tt := range tests {
		fd, err := OpenInRoot(rfd, tt.path, CreateNothing)
		if err != nil {
			t.Errorf("%s: %v", tt.path, err)
			continue
		}
		if got := realName(t, fd); got != tt.want {
			t.Errorf("%s resolved to %s, want %s", tt.path, got, tt.want)
		}
		unix.Close(fd)
	}
	if _, err := OpenInRoot(rfd, "/host/etc", CreateNothing); err == nil {
		t.Error("a magic link led out of the root")
	}
}

func TestOpenInRootCreates(t *testing.T) {
	root := t.TempDir()
	if err := os.Symlink("/real", filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(root, "real"), 0o755); err != nil {
		t.Fatal(err)
	}
	rfd, err := unix.Open(root, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(rfd)
	if _, err = OpenInRoot(rfd, "/a/b", CreateNothing); err == nil || !strings.Contains(err.Error(), "/a/b") {
		t.Errorf("missing path: err = %v", err)
	}
	fd, err := OpenInRoot(rfd, "/link/x/y", CreateDir)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if st, serr := os.Stat(filepath.Join(root, "real/x/y")); serr != nil || !st.IsDir() {
		t.Errorf("directory not created through the in-root symlink: %v", serr)
	}
	fd, err = OpenInRoot(rfd, "/etc/hosts", CreateFile)
	if err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if st, err := os.Stat(filepath.Join(root, "etc/hosts")); err != nil || !st.Mode().IsRegular() {
		t.Errorf("file not created: %v", err)
	}
}
