package squashfs_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"path"
	"strings"
	"testing"

	. "github.com/hpcctl/hpcctl/internal/squashfs"
	"github.com/hpcctl/hpcctl/internal/squashfs/sqtest"
)

// TestInodeAPI walks the test tree by inode only (Root, LookupInode, DirEntries, InodeAt,
// ReadFileAt) and checks every path against what the tree expects.
func TestInodeAPI(t *testing.T) {
	tt := newTestTree(DefaultBlockSize)
	r := sqtest.OpenImage(t, sqtest.WriteImage(t, Options{}, tt.fresh()))
	if !r.HasXattrTable() {
		t.Error("HasXattrTable = false for an image with xattrs")
	}
	for p, w := range tt.expected() {
		in := r.Root()
		if p != "." {
			for _, name := range strings.Split(p, "/") {
				next, err := r.LookupInode(in, name)
				if err != nil {
					t.Fatalf("LookupInode(%s in %s): %v", name, p, err)
				}
				in = next
			}
		}
		if in.Type != w.Type || (in.Type != TypeDir && in.Nlink != w.nlink) {
			t.Errorf("%s: type %s nlink %d, want %s %d", p, in.Type, in.Nlink, w.Type, w.nlink)
		}
		again, err := r.InodeAt(in.Ref())
		if err != nil || again.InodeNumber != in.InodeNumber {
			t.Errorf("%s: InodeAt(Ref) = %v, %v", p, again, err)
		}
		if in.Type == TypeRegular {
			got := make([]byte, in.Size+10)
			n, rerr := r.ReadFileAt(in, got, 0)
			if !bytes.Equal(got[:n], w.content) || (rerr != nil && !errors.Is(rerr, io.EOF)) {
				t.Errorf("%s: ReadFileAt read %d bytes, %v", p, n, rerr)
			}
		}
		if in.Type != TypeDir {
			continue
		}
		ents, err := r.DirEntries(in)
		if err != nil {
			t.Fatalf("DirEntries(%s): %v", p, err)
		}
		for _, e := range ents {
			child, err := r.InodeAt(e.Ref)
			if err != nil || child.InodeNumber != e.InodeNumber || child.Type != e.Type {
				t.Errorf("%s: entry %+v: inode %+v, %v", p, e, child, err)
			}
			if child.Type == TypeDir && child.ParentInodeNumber() != in.InodeNumber {
				t.Errorf("%s: parent of %s is %d, want %d", p, e.Name, child.ParentInodeNumber(), in.InodeNumber)
			}
			if _, ok := tt.expected()[path.Join(p, e.Name)]; !ok {
				t.Errorf("%s: unexpected entry %s", p, e.Name)
			}
		}
	}
}

func TestInodeAPIErrors(t *testing.T) {
	tt := newTestTree(DefaultBlockSize)
	r := sqtest.OpenImage(t, sqtest.WriteImage(t, Options{NoXattrs: true}, tt.fresh()))
	if r.HasXattrTable() {
		t.Error("HasXattrTable = true for -no-xattrs")
	}
	root := r.Root()
	for _, name := range []string{"nope", "", ".", "..", "a/b"} {
		if _, err := r.LookupInode(root, name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("LookupInode(%q) = %v, want not found", name, err)
		}
	}
	file, err := r.LookupInode(root, "random")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.LookupInode(file, "x"); err == nil {
		t.Error("LookupInode in a file: no error")
	}
	if _, err := r.DirEntries(file); err == nil {
		t.Error("DirEntries of a file: no error")
	}
	if _, err := r.ReadFileAt(root, make([]byte, 1), 0); err == nil {
		t.Error("ReadFileAt of a directory: no error")
	}
	for _, ref := range []uint64{1 << 48, 1 << 40, root.Ref() + 1<<32} {
		if _, err := r.InodeAt(ref); err == nil {
			t.Errorf("InodeAt(0x%x): no error", ref)
		}
	}
}
