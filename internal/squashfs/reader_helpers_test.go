package squashfs_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hpcctl/hpcctl/internal/testutil"
	"golang.org/x/sys/unix"

	. "github.com/hpcctl/hpcctl/internal/squashfs"
)

// mksquashfs builds an image of src with extra options and returns its path.
func mksquashfs(t testing.TB, src string, args ...string) string {
	t.Helper()
	testutil.NeedCommands(t, "mksquashfs")
	img := filepath.Join(t.TempDir(), "img.sqfs")
	cmd := exec.Command("mksquashfs", append([]string{src, img, "-noappend", "-no-progress", "-quiet"}, args...)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs %v: %v\n%s", args, err, out)
	}
	return img
}

// treeOptions shape the generated tree.
type treeOptions struct {
	blockSize int
	bigDir    int // entries in "many"
}

// makeTree fills dir with every kind of file the reader must handle. Device nodes and foreign
// owners are added only as root.
func makeTree(t testing.TB, dir string, o treeOptions) {
	t.Helper()
	bs := o.blockSize
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		return b
	}
	files := map[string][]byte{
		"empty":            nil,
		"small":            []byte("hello\n"),
		"oneblock":         random(bs),
		"multi":            random(3*bs + bs/2),
		"twoblocks":        random(2 * bs),
		"tail":             random(bs - 1),
		"compressible":     bytes.Repeat([]byte("squashfs "), bs/3),
		"dup1":             bytes.Repeat([]byte("dup"), 1000),
		"sub/dup2":         bytes.Repeat([]byte("dup"), 1000),
		"sub/deeper/x/y/z": []byte("deep"),
		"setuid":           []byte("#!/bin/sh\n"),
		"hard":             []byte("linked\n"),
	}
	for name, data := range files {
		mustWrite(t, filepath.Join(dir, name), data, 0o644)
	}
	// Sparse: a hole, some data, a hole; and a file of zeros only.
	sparse := make([]byte, 5*bs)
	copy(sparse[2*bs+5:], "in the middle of holes")
	mustWrite(t, filepath.Join(dir, "sparse"), sparse, 0o644)
	mustWrite(t, filepath.Join(dir, "zeros"), make([]byte, 2*bs+7), 0o600)
	must(t, unix.Chmod(filepath.Join(dir, "setuid"), 04755)) // os.Chmod would drop the set-id bits
	mustWrite(t, filepath.Join(dir, "setgid"), nil, 02710)
	must(t, unix.Chmod(filepath.Join(dir, "setgid"), 02710))
	must(t, os.Mkdir(filepath.Join(dir, "sticky"), 0o755))
	must(t, unix.Chmod(filepath.Join(dir, "sticky"), 01777))
	must(t, os.Link(filepath.Join(dir, "hard"), filepath.Join(dir, "hard2")))
	must(t, os.Link(filepath.Join(dir, "hard"), filepath.Join(dir, "sub", "hard3")))
	long := strings.Repeat("n", 255)
	mustWrite(t, filepath.Join(dir, long), []byte("long name"), 0o644)
	must(t, os.Symlink("small", filepath.Join(dir, "link-rel")))
	must(t, os.Symlink("/small", filepath.Join(dir, "link-abs")))
	must(t, os.Symlink("../sub/../small", filepath.Join(dir, "sub", "link-up")))
	must(t, os.Symlink("nowhere", filepath.Join(dir, "link-dangling")))
	must(t, os.Symlink("loop2", filepath.Join(dir, "loop1")))
	must(t, os.Symlink("loop1", filepath.Join(dir, "loop2")))
	must(t, os.Symlink("sub", filepath.Join(dir, "link-dir")))
	must(t, os.Symlink(strings.Repeat("a/", 2000)+"end", filepath.Join(dir, "link-long")))
	must(t, unix.Mkfifo(filepath.Join(dir, "fifo"), 0o640))
	must(t, unix.Mknod(filepath.Join(dir, "socket"), unix.S_IFSOCK|0o755, 0))
	must(t, os.Mkdir(filepath.Join(dir, "emptydir"), 0o700))
	many := filepath.Join(dir, "many")
	must(t, os.Mkdir(many, 0o755))
	for i := range o.bigDir {
		mustWrite(t, filepath.Join(many, fmt.Sprintf("entry-%05d-%s", i, strings.Repeat("x", i%40))), []byte(fmt.Sprint(i)), 0o644)
	}
	setXattrs(t, dir)
	if os.Geteuid() == 0 {
		must(t, unix.Mknod(filepath.Join(dir, "null"), unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3))))
		must(t, unix.Mknod(filepath.Join(dir, "blk"), unix.S_IFBLK|0o600, int(unix.Mkdev(259, 70000))))
		must(t, os.Lchown(filepath.Join(dir, "small"), 1000, 2000))
		must(t, os.Lchown(filepath.Join(dir, "link-rel"), 3000, 4000))
		must(t, os.Lchown(filepath.Join(dir, "sub"), 65534, 65534))
	}
	// Distinct mtimes, applied last (children change their directory's mtime).
	i := int64(0)
	must(t, filepath.WalkDir(dir, func(p string, _ os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		i++
		ts := []unix.Timespec{{Sec: 1e9 + i*3607}, {Sec: 1e9 + i*3607}}
		return unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW)
	}))
}

// setXattrs adds user attributes (which a plain user may set), including a value large enough
// that mksquashfs stores it once out of line for the two files that share it.
func setXattrs(t testing.TB, dir string) {
	big := strings.Repeat("v", 3000)
	attrs := map[string]map[string]string{
		"small":  {"user.one": "1", "user.two": "second value"},
		"multi":  {"user.big": big, "user.empty": ""},
		"tail":   {"user.big": big},
		"sticky": {"user.dir": "on a directory"},
	}
	if os.Geteuid() == 0 {
		attrs["oneblock"] = map[string]string{"trusted.overlay.opaque": "y", "security.test": "sec"}
	}
	for name, kv := range attrs {
		for k, v := range kv {
			if err := unix.Lsetxattr(filepath.Join(dir, name), k, []byte(v), 0); err != nil {
				testutil.Need(t, false, "needs xattrs on the temporary directory's file system: "+err.Error())
			}
		}
	}
}

func mustWrite(t testing.TB, p string, data []byte, mode os.FileMode) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, data, mode))
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func sha(t testing.TB, r io.Reader) string {
	t.Helper()
	h := sha256.New()
	if _, err := io.Copy(h, r); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// srcXattrs lists a source file's attributes.
func srcXattrs(t testing.TB, p string) map[string]string {
	t.Helper()
	buf := make([]byte, 64<<10)
	n, err := unix.Llistxattr(p, buf)
	if err != nil {
		t.Fatalf("listxattr %s: %v", p, err)
	}
	out := map[string]string{}
	for _, k := range strings.Split(string(buf[:n]), "\x00") {
		if k == "" {
			continue
		}
		v := make([]byte, 64<<10)
		m, err := unix.Lgetxattr(p, k, v)
		if err != nil {
			t.Fatalf("getxattr %s %s: %v", p, k, err)
		}
		out[k] = string(v[:m])
	}
	return out
}

// srcType maps a stat mode to the entry type.
func srcType(mode uint32) Type {
	switch mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		return TypeDir
	case syscall.S_IFREG:
		return TypeRegular
	case syscall.S_IFLNK:
		return TypeSymlink
	case syscall.S_IFCHR:
		return TypeCharDevice
	case syscall.S_IFBLK:
		return TypeBlockDevice
	case syscall.S_IFIFO:
		return TypeFIFO
	case syscall.S_IFSOCK:
		return TypeSocket
	}
	return 0
}

// listing renders a walk the way `unsquashfs -lln` does, spacing normalised.
func listing(t testing.TB, r *Reader) []string {
	t.Helper()
	var out []string
	err := r.Walk(func(p string, in *Inode) error {
		size := fmt.Sprint(in.Size)
		if in.Type == TypeCharDevice || in.Type == TypeBlockDevice {
			// unsquashfs 4.5 prints the stored word as old_decode_dev would (rdev>>8, rdev&0xff),
			// which differs from the kernel's reading (ours) once the minor exceeds 255.
			rdev := in.DevMinor&0xff | in.DevMajor<<8 | (in.DevMinor&^0xff)<<12
			size = fmt.Sprintf("%d,%d", rdev>>8, rdev&0xff)
		}
		name := "squashfs-root"
		if p != "." {
			name += "/" + p
		}
		if in.Type == TypeSymlink {
			name += " -> " + in.Linkname
		}
		mt := time.Unix(in.ModTime, 0).UTC().Format("2006-01-02 15:04")
		out = append(out, fmt.Sprintf("%s %d/%d %s %s %s", modeString(in.Type, in.Mode), in.UID, in.GID, size, mt, name))
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	return out
}

// unsquashfsListing runs unsquashfs -lln on img with spacing normalised like listing.
func unsquashfsListing(t testing.TB, img string) []string {
	t.Helper()
	testutil.NeedCommands(t, "unsquashfs")
	cmd := exec.Command("unsquashfs", "-lln", img)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("unsquashfs -lln: %v", err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		f := strings.Fields(l)
		// Device numbers print as "1,  3": join them back into one field.
		if len(f) > 3 && strings.HasSuffix(f[2], ",") {
			f = append(f[:2], append([]string{f[2] + f[3]}, f[4:]...)...)
		}
		lines = append(lines, strings.Join(f, " "))
	}
	return lines
}

// readAll opens data as an image and reads everything in it: every inode, listing, file
// (files over 4 MiB only at both ends, so that a fuzzed sparse size stays cheap), link and
// xattr, plus lookups by path. It returns the first error.
func readAll(data []byte) error {
	r, err := Open(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return err
	}
	return readReader(r)
}

func readReader(r *Reader) error {
	return r.Walk(func(p string, in *Inode) error {
		if _, err := r.InodeXattrs(in); err != nil {
			return err
		}
		if _, err := r.Lstat(p); err != nil {
			return err
		}
		if r.Superblock().Flags&FlagExportable != 0 {
			if _, err := r.InodeByNumber(in.InodeNumber); err != nil {
				return err
			}
		}
		switch in.Type {
		case TypeRegular:
			if _, err := r.FileReader(in); err != nil {
				return err
			}
			return readContent(r, p, in)
		case TypeSymlink:
			_, _ = r.Stat(p) // may dangle or loop; must not panic
		case TypeDir:
			if _, err := r.ReadDir(p); err != nil {
				return err
			}
		}
		return nil
	})
}

func readContent(r *Reader, p string, in *Inode) error {
	f, err := r.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	if in.Size <= 4<<20 {
		_, err := io.Copy(io.Discard, f)
		return err
	}
	buf := make([]byte, 64<<10)
	for _, off := range []int64{0, in.Size - int64(len(buf))} {
		if _, err := f.(io.ReaderAt).ReadAt(buf, off); err != nil && err != io.EOF {
			return err
		}
	}
	return nil
}

func readFileBytes(p string) ([]byte, error) { return os.ReadFile(p) }
