package squashfs_test

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/testutil"
	"golang.org/x/sys/unix"

	. "github.com/hpcctl/hpcctl/internal/squashfs"
	"github.com/hpcctl/hpcctl/internal/squashfs/sqtest"
)

// makeSourceTree builds a directory with every file type; as root also owners, devices and
// privileged xattrs.
func makeSourceTree(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "src")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "a/b/c"), 0o755))
	must(os.Mkdir(filepath.Join(dir, "private"), 0o700))
	must(os.WriteFile(filepath.Join(dir, "empty"), nil, 0o644))
	must(os.WriteFile(filepath.Join(dir, "a/small"), []byte("hello\n"), 0o644))
	must(os.WriteFile(filepath.Join(dir, "a/b/big"), testContent("big", 300000), 0o755))
	must(os.WriteFile(filepath.Join(dir, "a/b/c/big-copy"), testContent("big", 300000), 0o600))
	must(os.WriteFile(filepath.Join(dir, "suid"), []byte("#!/bin/sh\n"), 0o755))
	must(os.Chmod(filepath.Join(dir, "suid"), 0o4755))
	must(os.Symlink("a/small", filepath.Join(dir, "link")))
	must(os.Link(filepath.Join(dir, "a/small"), filepath.Join(dir, "private/hard")))
	must(unix.Mkfifo(filepath.Join(dir, "fifo"), 0o640))
	l, err := net.Listen("unix", filepath.Join(dir, "sock"))
	must(err)
	t.Cleanup(func() { l.Close() })
	must(unix.Lsetxattr(filepath.Join(dir, "a/small"), "user.note", []byte("kept"), 0))
	if os.Geteuid() == 0 {
		must(unix.Lchown(filepath.Join(dir, "a/b/big"), 1234, 5678))
		must(unix.Lchown(filepath.Join(dir, "link"), 42, 43))
		must(unix.Mknod(filepath.Join(dir, "a/null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(unix.Mknod(filepath.Join(dir, "a/loop0"), unix.S_IFBLK|0o660, int(unix.Mkdev(7, 0))))
		must(unix.Lsetxattr(filepath.Join(dir, "a/b/big"), "security.capability", []byte(capV2), 0))
		must(unix.Lsetxattr(filepath.Join(dir, "a/b"), "trusted.overlay.opaque", []byte("y"), 0))
	}
	return dir
}

// writeTreeImage packs dir with WriteTree.
func writeTreeImage(t *testing.T, dir string, opts Options) string {
	t.Helper()
	return sqtest.WriteImageFunc(t, opts, func(w *Writer) error { return WriteTree(context.Background(), w, dir) })
}

// maskDirSizes blanks directory sizes, which depend on each tool's directory table layout.
func maskDirSizes(m map[string]string) map[string]string {
	out := map[string]string{}
	for p, line := range m {
		if strings.HasPrefix(line, "d") {
			f := strings.Fields(line)
			f[2] = "-"
			line = strings.Join(f, " ")
		}
		out[p] = line
	}
	return out
}

// compareWithMksquashfs checks that unsquashfs lists our image of dir as it lists mksquashfs's.
func compareWithMksquashfs(t *testing.T, dir, img string) {
	t.Helper()
	ref := filepath.Join(t.TempDir(), "ref.sqfs")
	if out, err := exec.Command("mksquashfs", dir, ref, "-comp", "zstd", "-Xcompression-level", "3", "-noappend", "-no-progress", "-quiet").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v\n%s", err, out)
	}
	ours, theirs := maskDirSizes(unsquashfsEntries(t, img)), maskDirSizes(unsquashfsEntries(t, ref))
	for p, line := range theirs {
		if ours[p] != line {
			t.Errorf("%s:\n ours       %q\n mksquashfs %q", p, ours[p], line)
		}
	}
	for p, line := range ours {
		if _, ok := theirs[p]; !ok {
			t.Errorf("%s: only in ours: %q", p, line)
		}
	}
}

// compareDirs walks src and checks that every path in dst matches it: type, mode, owner, times,
// link count, device, target, content and xattrs.
func compareDirs(t *testing.T, src, dst string, o compareOpts) {
	t.Helper()
	n := 0
	err := filepath.Walk(src, func(full string, _ os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, full)
		n++
		var a, b unix.Stat_t
		if err := unix.Lstat(full, &a); err != nil {
			return err
		}
		other := filepath.Join(dst, rel)
		if err := unix.Lstat(other, &b); err != nil {
			t.Errorf("%s: %v", rel, err)
			return nil
		}
		isDir := a.Mode&unix.S_IFMT == unix.S_IFDIR
		switch {
		case a.Mode != b.Mode:
			t.Errorf("%s: mode %#o, want %#o", rel, b.Mode, a.Mode)
		case o.owners && (a.Uid != b.Uid || a.Gid != b.Gid):
			t.Errorf("%s: owner %d:%d, want %d:%d", rel, b.Uid, b.Gid, a.Uid, a.Gid)
		case a.Mtim.Sec != b.Mtim.Sec && a.Mode&unix.S_IFMT != unix.S_IFLNK:
			t.Errorf("%s: mtime %d, want %d", rel, b.Mtim.Sec, a.Mtim.Sec)
		case !isDir && (a.Size != b.Size || a.Nlink != b.Nlink || a.Rdev != b.Rdev):
			t.Errorf("%s: size/nlink/rdev %d/%d/%d, want %d/%d/%d", rel, b.Size, b.Nlink, b.Rdev, a.Size, a.Nlink, a.Rdev)
		}
		switch a.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			x, err1 := os.ReadFile(full)
			y, err2 := os.ReadFile(other)
			if err1 != nil || err2 != nil || !bytes.Equal(x, y) {
				t.Errorf("%s: content differs (%v, %v)", rel, err1, err2)
			}
		case unix.S_IFLNK:
			x, _ := os.Readlink(full)
			if y, _ := os.Readlink(other); x != y {
				t.Errorf("%s: target %q, want %q", rel, y, x)
			}
		}
		if o.xattrs {
			want := map[string]string{}
			names, _ := ListXattrs(full)
			for _, name := range names {
				if v, err := GetXattr(full, name); err == nil && !strings.HasPrefix(name, "system.") {
					want[name] = v
				}
			}
			compareXattrs(t, other, rel, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	count := 0
	filepath.Walk(dst, func(string, os.FileInfo, error) error { count++; return nil }) //nolint:errcheck // the walk function never fails
	if count != n {
		t.Errorf("%s has %d paths, %s has %d", dst, count, src, n)
	}
}

func TestWriteTreeLikeMksquashfs(t *testing.T) {
	testutil.NeedCommands(t, "mksquashfs", "unsquashfs")
	dir := makeSourceTree(t)
	img := writeTreeImage(t, dir, Options{ModTime: testModTime})
	compareWithMksquashfs(t, dir, img)
	out := filepath.Join(t.TempDir(), "x")
	args := []string{"-d", out, "-no-progress", img}
	if os.Geteuid() != 0 {
		args = append([]string{"-no-xattrs"}, args...)
	}
	if b, err := exec.Command("unsquashfs", args...).CombinedOutput(); err != nil {
		t.Fatalf("unsquashfs: %v\n%s", err, b)
	}
	compareDirs(t, dir, out, compareOpts{owners: os.Geteuid() == 0, xattrs: os.Geteuid() == 0})
}

func TestWriteTreeKernelMount(t *testing.T) {
	testutil.NeedRoot(t)
	testutil.NeedCommands(t, "mount", "umount")
	dir := makeSourceTree(t)
	img := writeTreeImage(t, dir, Options{ModTime: testModTime})
	compareDirs(t, dir, mountImage(t, img, false, 0), compareOpts{owners: true, xattrs: true})
}

func TestWriteTreeNotDir(t *testing.T) {
	w, err := NewWriter(&memFile{}, Options{})
	if err != nil {
		t.Fatal(err)
	}
	f := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteTree(context.Background(), w, f); err == nil || !strings.Contains(err.Error(), "not a directory") {
		t.Errorf("WriteTree on a file: %v", err)
	}
}

// TestDebianLikeMksquashfs packs the Debian fixture and compares with mksquashfs's image of the
// same tree (listing) and, through a kernel mount, with the tree itself.
func TestDebianLikeMksquashfs(t *testing.T) {
	dir := testutil.NeedEnvDir(t, "HPCCTL_TEST_DEBIAN_ROOTFS")
	testutil.NeedCommands(t, "mksquashfs", "unsquashfs")
	img := writeTreeImage(t, dir, Options{ModTime: testModTime})
	compareWithMksquashfs(t, dir, img)
	if os.Geteuid() == 0 {
		compareDirs(t, dir, mountImage(t, img, false, 0), compareOpts{owners: true, xattrs: true})
	}
}

// hintCounter passes entries on, counting WriteTree's UniqueSize hints or dropping them.
type hintCounter struct {
	w      *Writer
	drop   bool
	hinted int
}

func (h *hintCounter) Add(e Entry) error {
	if e.UniqueSize {
		h.hinted++
	}
	if h.drop {
		e.UniqueSize = false
	}
	return h.w.Add(e)
}

// TestWriteTreeSizeHints checks that skipping the duplicate hash for files of a unique size
// changes nothing: the image is the one every file hashed gives, duplicates found as before.
func TestWriteTreeSizeHints(t *testing.T) {
	dir := makeSourceTree(t)
	for name, size := range map[string]int{"a/b/c/same-size": 300000, "a/b/c/other-size": 300001} {
		if err := os.WriteFile(filepath.Join(dir, name), testContent(name, size), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write := func(hints bool) ([]byte, Stats) {
		t.Helper()
		var f memFile
		w, err := NewWriter(&f, Options{ModTime: testModTime})
		if err != nil {
			t.Fatal(err)
		}
		a := &hintCounter{w: w, drop: !hints}
		if err := WriteTreeCounted(context.Background(), a, dir, true); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
		// empty, suid, other-size and a/small (its hardlink counts once), not the three of 300000 bytes.
		if a.hinted != 4 {
			t.Errorf("%d files hinted as of a unique size, want 4", a.hinted)
		}
		return f.b, w.Stats()
	}
	withHints, st := write(true)
	without, _ := write(false)
	if !bytes.Equal(withHints, without) {
		t.Errorf("image with size hints (%d bytes) differs from the one without (%d bytes)", len(withHints), len(without))
	}
	if st.Duplicates != 1 || st.DuplicateBytes != 300000 {
		t.Errorf("duplicates %d (%d bytes), want big-copy: 1 (300000 bytes)", st.Duplicates, st.DuplicateBytes)
	}
}

func TestCountSizes(t *testing.T) {
	dir := makeSourceTree(t)
	sizes := CountSizes(context.Background(), dir)
	// a/small and its hardlink private/hard are one file; empty is the only empty one.
	for size, want := range map[int64]int{300000: 2, 6: 1, 0: 1, 10: 1} {
		if sizes[size] != want {
			t.Errorf("files of %d bytes: %d, want %d", size, sizes[size], want)
		}
	}
}
