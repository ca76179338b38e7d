package child

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/spec"
)

func TestUpperWriter(t *testing.T) {
	lower, upper := t.TempDir(), t.TempDir()
	for _, d := range []string{"usr/bin", "etc", "home"} {
		if err := os.MkdirAll(filepath.Join(lower, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(filepath.Join(lower, "home"), 0o711); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("usr/bin", filepath.Join(lower, "bin")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/real-group", filepath.Join(lower, "etc/group")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lower, "etc/real-group"), []byte("root:x:0:\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(lower, "etc/passwd"), []byte("root:x:0:0::/root:/bin/sh\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	lfd, err := unix.Open(lower, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lfd)
	u := upperWriter{lower: lfd, lowerDir: lower, upperDir: upper}

	if err := u.mountPoint("/home/alice/data", true); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(filepath.Join(upper, "home")); err != nil || st.Mode().Perm() != 0o711 {
		t.Errorf("upper /home: %v %v, want the image's mode 0711", st.Mode(), err)
	}
	if st, err := os.Stat(filepath.Join(upper, "home/alice/data")); err != nil || !st.IsDir() {
		t.Errorf("mount point directory: %v", err)
	}
	if err := u.mountPoint("/bin/tool", false); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(filepath.Join(upper, "usr/bin/tool")); err != nil || !st.Mode().IsRegular() {
		t.Errorf("file mount point not created where the image's symlink leads: %v", err)
	}
	if _, err := os.Lstat(filepath.Join(upper, "bin")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("upper shadows the image's /bin symlink: %v", err)
	}
	if err := u.mountPoint("/etc", true); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(upper, "etc")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("an existing mount point was copied to upper: %v", err)
	}

	if err := u.identity(&spec.Identity{Passwd: "alice:x:1000:100::/home/alice:/bin/sh", Groups: []string{"users:x:100:alice"}}); err != nil {
		t.Fatal(err)
	}
	for file, want := range map[string]string{
		"etc/passwd":     "root:x:0:0::/root:/bin/sh\nalice:x:1000:100::/home/alice:/bin/sh\n",
		"etc/real-group": "root:x:0:\nusers:x:100:alice\n",
	} {
		b, err := os.ReadFile(filepath.Join(upper, file))
		if err != nil || string(b) != want {
			t.Errorf("%s = %q, %v; want %q", file, b, err, want)
		}
	}
}

func TestUpperWriterRejectsFileParent(t *testing.T) {
	lower, upper := t.TempDir(), t.TempDir()
	if err := os.WriteFile(filepath.Join(lower, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	lfd, err := unix.Open(lower, unix.O_PATH|unix.O_DIRECTORY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(lfd)
	u := upperWriter{lower: lfd, lowerDir: lower, upperDir: upper}
	if err := u.mountPoint("/file/sub", true); err == nil {
		t.Error("created a mount point under a regular file")
	}
}
