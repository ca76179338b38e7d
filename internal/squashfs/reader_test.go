package squashfs_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	. "github.com/hpcctl/hpcctl/internal/squashfs"
	"github.com/hpcctl/hpcctl/internal/squashfs/sqtest"
)

// compareOptions say what mksquashfs was asked to drop or change.
type compareOptions struct {
	allRoot  bool
	noXattrs bool
}

// TestDifferential builds generated trees with mksquashfs under every compressor and layout
// option and checks the reader against the source tree and against unsquashfs -lln.
func TestDifferential(t *testing.T) {
	cases := []struct {
		name string
		bs   int
		args []string
		cmp  compareOptions
	}{
		// The 3000-entry directory (which needs the directory index) is in the first few only,
		// to keep the run short.
		{"gzip", DefaultBlockSize, nil, compareOptions{}},
		{"uncompressed", DefaultBlockSize, []string{"-noI", "-noD", "-noF", "-noX"}, compareOptions{}},
		{"gzip-4K", MinBlockSize, []string{"-b", "4K"}, compareOptions{}},
		{"zstd", DefaultBlockSize, []string{"-comp", "zstd"}, compareOptions{}},
		{"xz", DefaultBlockSize, []string{"-comp", "xz"}, compareOptions{}},
		{"lz4", DefaultBlockSize, []string{"-comp", "lz4"}, compareOptions{}},
		{"lz4-hc", DefaultBlockSize, []string{"-comp", "lz4", "-Xhc"}, compareOptions{}},
		{"zstd-1M", MaxBlockSize, []string{"-comp", "zstd", "-b", "1M"}, compareOptions{}},
		{"xz-4K", MinBlockSize, []string{"-comp", "xz", "-b", "4K"}, compareOptions{}},
		{"no-fragments", DefaultBlockSize, []string{"-no-fragments"}, compareOptions{}},
		{"always-fragments", DefaultBlockSize, []string{"-always-use-fragments"}, compareOptions{}},
		{"no-sparse-no-dups-no-exports", DefaultBlockSize, []string{"-no-sparse", "-no-duplicates", "-no-exports"}, compareOptions{}},
		{"all-root-no-xattrs", DefaultBlockSize, []string{"-all-root", "-no-xattrs"}, compareOptions{allRoot: true, noXattrs: true}},
	}
	if testing.Short() {
		cases = cases[:4]
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			src := t.TempDir()
			big := 100
			if i < 4 {
				big = 3000
			}
			makeTree(t, src, treeOptions{blockSize: c.bs, bigDir: big})
			img := mksquashfs(t, src, c.args...)
			r := sqtest.OpenImage(t, img)
			if got := int(r.Superblock().BlockSize); got != c.bs {
				t.Errorf("block size %d, want %d", got, c.bs)
			}
			compareTree(t, r, src, c.cmp)
			if got, want := listing(t, r), unsquashfsListing(t, img); !slices.Equal(got, want) {
				t.Errorf("listing differs from unsquashfs -lln:\n%s", diffLines(got, want))
			}
		})
	}
}

// compareTree checks every inode of r against the tree at src.
func compareTree(t *testing.T, r *Reader, src string, o compareOptions) {
	t.Helper()
	seen := map[string]bool{}
	byIno := map[uint32]uint64{} // image inode number -> source inode
	srcIno := map[uint64]uint32{}
	err := r.Walk(func(p string, in *Inode) error {
		seen[p] = true
		compareEntry(t, r, src, p, in, o)
		var st unix.Stat_t
		if unix.Lstat(filepath.Join(src, p), &st) == nil && in.Type != TypeDir {
			if prev, ok := byIno[in.InodeNumber]; ok && prev != st.Ino {
				t.Errorf("%s: image inode %d is two source files", p, in.InodeNumber)
			}
			if prev, ok := srcIno[st.Ino]; ok && prev != in.InodeNumber {
				t.Errorf("%s: hardlinked source file is image inodes %d and %d", p, prev, in.InodeNumber)
			}
			byIno[in.InodeNumber], srcIno[st.Ino] = st.Ino, in.InodeNumber
		}
		return nil
	})
	if err != nil {
		t.Fatalf("Walk: %v", err)
	}
	must(t, filepath.WalkDir(src, func(p string, _ fs.DirEntry, err error) error {
		rel, _ := filepath.Rel(src, p)
		if err == nil && !seen[filepath.ToSlash(rel)] {
			t.Errorf("%s: in the source tree, missing from the image", rel)
		}
		return err
	}))
}

func compareEntry(t *testing.T, r *Reader, src, p string, in *Inode, o compareOptions) {
	t.Helper()
	full := filepath.Join(src, p)
	var st unix.Stat_t
	if err := unix.Lstat(full, &st); err != nil {
		t.Errorf("%s: in the image, not in the source: %v", p, err)
		return
	}
	if want := srcType(st.Mode); in.Type != want {
		t.Errorf("%s: type %s, want %s", p, in.Type, want)
		return
	}
	uid, gid := st.Uid, st.Gid
	if o.allRoot {
		uid, gid = 0, 0
	}
	if in.Mode != st.Mode&07777 || in.UID != uid || in.GID != gid || in.ModTime != st.Mtim.Sec {
		t.Errorf("%s: mode %o %d:%d mtime %d, want %o %d:%d %d", p, in.Mode, in.UID, in.GID, in.ModTime, st.Mode&07777, uid, gid, st.Mtim.Sec)
	}
	if in.Nlink != uint32(st.Nlink) {
		t.Errorf("%s: nlink %d, want %d", p, in.Nlink, st.Nlink)
	}
	switch in.Type {
	case TypeRegular:
		compareContent(t, r, full, p, in)
	case TypeSymlink:
		target, _ := os.Readlink(full)
		got, err := r.Readlink(p)
		if err != nil || got != target || in.Linkname != target || in.Size != int64(len(target)) {
			t.Errorf("%s: link %q %q (%v), want %q", p, in.Linkname, got, err, target)
		}
	case TypeCharDevice, TypeBlockDevice:
		if in.DevMajor != unix.Major(st.Rdev) || in.DevMinor != unix.Minor(st.Rdev) {
			t.Errorf("%s: device %d,%d, want %d,%d", p, in.DevMajor, in.DevMinor, unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
	}
	want := srcXattrs(t, full)
	if o.noXattrs {
		want = map[string]string{}
	}
	got, err := r.Xattrs(p)
	if err != nil {
		t.Errorf("%s: Xattrs: %v", p, err)
	}
	if len(got) != len(want) || !mapsEqual(got, want) {
		t.Errorf("%s: xattrs %v, want %v", p, got, want)
	}
}

func compareContent(t *testing.T, r *Reader, full, p string, in *Inode) {
	t.Helper()
	data, err := os.ReadFile(full)
	must(t, err)
	if in.Size != int64(len(data)) {
		t.Errorf("%s: size %d, want %d", p, in.Size, len(data))
	}
	f, err := r.Open(p)
	if err != nil {
		t.Errorf("%s: Open: %v", p, err)
		return
	}
	defer f.Close()
	want := sha(t, bytes.NewReader(data))
	if got := sha(t, f); got != want {
		t.Errorf("%s: content sha256 %s, want %s", p, got, want)
	}
	sr, err := r.FileReader(in)
	if err != nil {
		t.Errorf("%s: FileReader: %v", p, err)
	} else if got := sha(t, sr); got != want {
		t.Errorf("%s: FileReader content sha256 %s, want %s", p, got, want)
	}
	if len(data) > 10 {
		// A read across a block boundary through ReaderAt.
		off := int64(len(data) / 2)
		buf := make([]byte, min(len(data)-int(off), 70000))
		if _, err := f.(io.ReaderAt).ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
			t.Errorf("%s: ReadAt: %v", p, err)
		} else if !bytes.Equal(buf, data[off:off+int64(len(buf))]) {
			t.Errorf("%s: ReadAt(%d) differs", p, off)
		}
	}
}

func mapsEqual(a, b map[string]string) bool {
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return len(a) == len(b)
}

// diffLines shows the first lines where two listings differ.
func diffLines(got, want []string) string {
	var b strings.Builder
	n := 0
	for i := 0; i < max(len(got), len(want)) && n < 10; i++ {
		var g, w string
		if i < len(got) {
			g = got[i]
		}
		if i < len(want) {
			w = want[i]
		}
		if g != w {
			b.WriteString("got:  " + g + "\nwant: " + w + "\n")
			n++
		}
	}
	return b.String()
}

// TestPseudoDevices checks device numbers from mksquashfs pseudo definitions, which need no
// root, against unsquashfs.
func TestPseudoDevices(t *testing.T) {
	src := t.TempDir()
	mustWrite(t, filepath.Join(src, "f"), []byte("x"), 0o644)
	img := mksquashfs(t, src, "-p", "null c 0666 0 0 1 3", "-p", "sda b 0660 0 6 8 0",
		"-p", "tty c 0620 0 5 4 300", "-p", "pipe f 0644 0 0 true")
	r := sqtest.OpenImage(t, img)
	for name, want := range map[string][3]uint32{"null": {uint32(TypeCharDevice), 1, 3}, "sda": {uint32(TypeBlockDevice), 8, 0}, "tty": {uint32(TypeCharDevice), 4, 300}} {
		fi, err := r.Lstat(name)
		if err != nil {
			t.Fatal(err)
		}
		in := fi.Sys().(*Inode)
		if [3]uint32{uint32(in.Type), in.DevMajor, in.DevMinor} != want {
			t.Errorf("%s: %s %d,%d, want %v", name, in.Type, in.DevMajor, in.DevMinor, want)
		}
	}
	if got, want := listing(t, r), unsquashfsListing(t, img); !slices.Equal(got, want) {
		t.Errorf("listing differs from unsquashfs -lln:\n%s", diffLines(got, want))
	}
}

// TestExportTable looks every inode up by number.
func TestExportTable(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src, treeOptions{blockSize: DefaultBlockSize, bigDir: 10})
	r := sqtest.OpenImage(t, mksquashfs(t, src))
	must(t, r.Walk(func(p string, in *Inode) error {
		got, err := r.InodeByNumber(in.InodeNumber)
		if err != nil {
			return err
		}
		if got.Ref() != in.Ref() {
			t.Errorf("%s: inode %d at 0x%x, want 0x%x", p, in.InodeNumber, got.Ref(), in.Ref())
		}
		return nil
	}))
	r = sqtest.OpenImage(t, mksquashfs(t, src, "-no-exports"))
	if _, err := r.InodeByNumber(1); err == nil {
		t.Error("InodeByNumber without an export table: no error")
	}
}

// TestUnsupportedCompression checks the message for compressors hpcctl does not read.
func TestUnsupportedCompression(t *testing.T) {
	src := t.TempDir()
	mustWrite(t, filepath.Join(src, "f"), []byte("x"), 0o644)
	img := mksquashfs(t, src)
	b, err := os.ReadFile(img)
	must(t, err)
	for _, c := range []Compression{LZMA, LZO, 9} {
		b[20], b[21] = byte(c), 0
		_, err := Open(bytes.NewReader(b), int64(len(b)))
		if err == nil || !strings.Contains(err.Error(), "unsupported compression") {
			t.Errorf("%s: error %v, want unsupported compression", c, err)
		}
	}
	if _, err := Open(bytes.NewReader(b[:50]), 50); !errors.Is(err, ErrTruncated) {
		t.Errorf("50-byte image: %v, want truncated", err)
	}
	b[0] = 'x'
	if _, err := Open(bytes.NewReader(b), int64(len(b))); !errors.Is(err, ErrNotSquashfs) {
		t.Errorf("bad magic: %v", err)
	}
}

var _ = syscall.ENOTDIR
