package squashfs_test

import (
	"bytes"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	. "github.com/hpcctl/hpcctl/internal/squashfs"
	"github.com/hpcctl/hpcctl/internal/squashfs/sqtest"
)

func TestExtract(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src, treeOptions{blockSize: DefaultBlockSize, bigDir: 300})
	img := mksquashfs(t, src, "-comp", "zstd")
	for _, keep := range []bool{true, false} {
		r := sqtest.OpenImage(t, img)
		dst := t.TempDir()
		if err := Extract(r, dst, ExtractOptions{KeepSetuid: keep, Xattrs: true}); err != nil {
			t.Fatalf("Extract: %v", err)
		}
		compareExtracted(t, src, dst, keep)
		// Sparse files come back with holes.
		var st unix.Stat_t
		must(t, unix.Stat(filepath.Join(dst, "sparse"), &st))
		if st.Blocks*512 >= st.Size {
			t.Errorf("sparse: %d bytes allocated for %d: holes not kept", st.Blocks*512, st.Size)
		}
	}
}

// compareExtracted checks an extracted tree against the source tree it was made from.
func compareExtracted(t *testing.T, src, dst string, keepSetuid bool) {
	t.Helper()
	links := map[uint64]uint64{} // source inode -> extracted inode
	must(t, filepath.WalkDir(src, func(p string, _ fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		q := filepath.Join(dst, rel)
		var a, b unix.Stat_t
		must(t, unix.Lstat(p, &a))
		if err := unix.Lstat(q, &b); err != nil {
			t.Errorf("%s: not extracted: %v", rel, err)
			return nil
		}
		mode := a.Mode
		if !keepSetuid {
			mode &^= 06000
		}
		if b.Mode != mode || b.Mtim.Sec != a.Mtim.Sec || (os.Geteuid() == 0 && (a.Uid != b.Uid || a.Gid != b.Gid)) {
			t.Errorf("%s: mode %o mtime %d owner %d:%d, want %o %d %d:%d", rel, b.Mode, b.Mtim.Sec, b.Uid, b.Gid, mode, a.Mtim.Sec, a.Uid, a.Gid)
		}
		switch a.Mode & unix.S_IFMT {
		case unix.S_IFREG:
			x, _ := os.ReadFile(p)
			y, _ := os.ReadFile(q)
			if !bytes.Equal(x, y) {
				t.Errorf("%s: content differs", rel)
			}
			if prev, ok := links[a.Ino]; ok && prev != b.Ino {
				t.Errorf("%s: hardlink not recreated", rel)
			}
			links[a.Ino] = b.Ino
			if a.Nlink != b.Nlink {
				t.Errorf("%s: nlink %d, want %d", rel, b.Nlink, a.Nlink)
			}
		case unix.S_IFLNK:
			x, _ := os.Readlink(p)
			y, _ := os.Readlink(q)
			if x != y {
				t.Errorf("%s: link %q, want %q", rel, y, x)
			}
		case unix.S_IFCHR, unix.S_IFBLK:
			if a.Rdev != b.Rdev {
				t.Errorf("%s: rdev %x, want %x", rel, b.Rdev, a.Rdev)
			}
		}
		if want, got := srcXattrs(t, p), srcXattrs(t, q); !mapsEqual(got, want) {
			t.Errorf("%s: xattrs %v, want %v", rel, got, want)
		}
		return nil
	}))
}

func TestExtractRefusesNonEmpty(t *testing.T) {
	src := t.TempDir()
	mustWrite(t, filepath.Join(src, "f"), []byte("x"), 0o644)
	r := sqtest.OpenImage(t, mksquashfs(t, src))
	dst := t.TempDir()
	mustWrite(t, filepath.Join(dst, "already"), nil, 0o644)
	if err := Extract(r, dst, ExtractOptions{}); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Errorf("Extract into a non-empty directory: %v", err)
	}
}

// TestExtractCleansUp damages a data block: Extract fails and leaves dst empty.
func TestExtractCleansUp(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src, treeOptions{blockSize: DefaultBlockSize, bigDir: 10})
	img := mksquashfs(t, src, "-no-fragments")
	b, err := os.ReadFile(img)
	must(t, err)
	// The data of the first files follows the superblock; garble the compressed bytes.
	for i := SuperblockSize + 10; i < SuperblockSize+200; i++ {
		b[i] ^= 0x5a
	}
	r, err := Open(bytes.NewReader(b), int64(len(b)))
	must(t, err)
	dst := t.TempDir()
	err = Extract(r, dst, ExtractOptions{})
	if err == nil || !strings.Contains(err.Error(), "data block") {
		t.Fatalf("Extract of a damaged image: %v, want a data block error", err)
	}
	if ents, _ := os.ReadDir(dst); len(ents) != 0 {
		t.Errorf("Extract left %d entries behind after an error", len(ents))
	}
}

// TestHostileNames patches names in an uncompressed directory table into "..", "a/b" and a
// duplicate: the reader refuses the listing, and Extract writes nothing.
func TestHostileNames(t *testing.T) {
	src := t.TempDir()
	for _, name := range []string{"Q7", "Q8", "W7-W7"} {
		mustWrite(t, filepath.Join(src, name), []byte(name), 0o644)
	}
	img, err := readFileBytes(mksquashfs(t, src, "-noI", "-noD", "-noF", "-noX"))
	must(t, err)
	var sb Superblock
	must(t, sb.UnmarshalBinary(img))
	dirs := img[sb.DirectoryTableStart:sb.FragmentTableStart]
	for _, c := range []struct{ from, to, want string }{
		{"Q8", "..", "invalid name"},
		{"W7-W7", "W7/W7", "invalid name"},
		{"Q8", "Q7", "not after"},
		{"Q7", "Q9", "not after"},
	} {
		b := slices.Clone(img)
		i := bytes.Index(dirs, []byte(c.from))
		if i < 0 {
			t.Fatalf("name %q not in the directory table", c.from)
		}
		copy(b[int(sb.DirectoryTableStart)+i:], c.to)
		r, err := Open(bytes.NewReader(b), int64(len(b)))
		must(t, err)
		if _, err := r.ReadDir("."); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s -> %s: ReadDir: %v, want %q", c.from, c.to, err, c.want)
		}
		parent := t.TempDir()
		dst := filepath.Join(parent, "dst")
		must(t, os.Mkdir(dst, 0o755))
		if err := Extract(r, dst, ExtractOptions{}); err == nil {
			t.Errorf("%s -> %s: Extract: no error", c.from, c.to)
		}
		if ents, _ := os.ReadDir(parent); len(ents) != 1 {
			t.Errorf("%s -> %s: Extract wrote next to its destination: %v", c.from, c.to, ents)
		}
		if ents, _ := os.ReadDir(dst); len(ents) != 0 {
			t.Errorf("%s -> %s: Extract left %d entries", c.from, c.to, len(ents))
		}
	}
}
