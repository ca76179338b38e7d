package squashfs_test

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"testing"
	"testing/fstest"

	. "github.com/hpcctl/hpcctl/internal/squashfs"
	"github.com/hpcctl/hpcctl/internal/squashfs/sqtest"
)

// fsTree is a tree without FIFOs, sockets or devices, whose reads fstest would expect to work.
func fsTree(t *testing.T) (src string, r *Reader) {
	return fsTreeLinks(t, true)
}

// fsTreeLinks makes the tree, with dangling, looping and not-a-directory links when broken.
func fsTreeLinks(t *testing.T, broken bool) (src string, r *Reader) {
	t.Helper()
	src = t.TempDir()
	files := map[string]string{"a": "alpha", "dir/b": "beta", "dir/sub/c": "gamma", "empty": ""}
	for name, data := range files {
		mustWrite(t, filepath.Join(src, name), []byte(data), 0o644)
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), 20000)
	mustWrite(t, filepath.Join(src, "big"), big, 0o644)
	links := [][2]string{{"a", "link"}, {"/dir/sub", "dir/abs"}, {"../../../../a", "escape"}, {"dir", "dirlink"}}
	if broken {
		links = append(links, [][2]string{{"nowhere", "dangling"}, {"loop2", "loop1"}, {"loop1", "loop2"}, {"a/x", "notdir"}}...)
	}
	for _, l := range links {
		must(t, os.Symlink(l[0], filepath.Join(src, l[1])))
	}
	must(t, os.Mkdir(filepath.Join(src, "many"), 0o755))
	for i := range 2000 {
		mustWrite(t, filepath.Join(src, "many", "file-with-a-longish-name-"+itoa(i)), nil, 0o644)
	}
	return src, sqtest.OpenImage(t, mksquashfs(t, src, "-b", "4K"))
}

func itoa(i int) string {
	return string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676))
}

func TestFSConformance(t *testing.T) {
	// fstest opens every symlink, so the tree has no broken ones.
	_, r := fsTreeLinks(t, false)
	if err := fstest.TestFS(r, "a", "big", "dir/b", "dir/sub/c", "empty", "link", "many/file-with-a-longish-name-aaa"); err != nil {
		t.Fatal(err)
	}
}

func TestSymlinkResolution(t *testing.T) {
	_, r := fsTree(t)
	for _, c := range []struct {
		name string
		want string // content, or "" with err
		err  error
	}{
		{"link", "alpha", nil},
		{"escape", "alpha", nil}, // ".." stops at the image root, like a chroot
		{"dir/abs/c", "gamma", nil},
		{"dirlink/sub/c", "gamma", nil},
		{"dangling", "", fs.ErrNotExist},
		{"loop1", "", syscall.ELOOP},
		{"notdir", "", syscall.ENOTDIR},
		{"/a", "", fs.ErrInvalid},
		{"dir/../a", "", fs.ErrInvalid},
		{"a/", "", fs.ErrInvalid},
		{"missing", "", fs.ErrNotExist},
		{"a/b", "", syscall.ENOTDIR},
	} {
		b, err := r.ReadFile(c.name)
		if c.err != nil {
			var pe *fs.PathError
			if !errors.Is(err, c.err) || !errors.As(err, &pe) {
				t.Errorf("ReadFile(%q) = %v, want a PathError wrapping %v", c.name, err, c.err)
			}
			continue
		}
		if err != nil || string(b) != c.want {
			t.Errorf("ReadFile(%q) = %q, %v, want %q", c.name, b, err, c.want)
		}
	}
	fi, err := r.Lstat("loop1")
	if err != nil || fi.Mode().Type() != fs.ModeSymlink {
		t.Errorf("Lstat(loop1) = %v, %v: want a symlink", fi, err)
	}
	if got, err := r.Readlink("dir/abs"); err != nil || got != "/dir/sub" {
		t.Errorf("Readlink(dir/abs) = %q, %v", got, err)
	}
	if _, err := r.Readlink("a"); err == nil {
		t.Error("Readlink of a regular file: no error")
	}
	if ents, err := r.ReadDir("dirlink"); err != nil || len(ents) != 3 {
		t.Errorf("ReadDir(dirlink) = %v, %v", ents, err)
	}
}

// TestDirectoryIndex checks that large listings carry an index and every name is found
// through it, and that names between and around the entries are not.
func TestDirectoryIndex(t *testing.T) {
	_, r := fsTree(t)
	fi, err := r.Stat("many")
	must(t, err)
	if entries, listing := DirIndex(fi.Sys().(*Inode)); entries < 2 {
		t.Fatalf("directory of %d bytes has %d index entries", listing, entries)
	}
	for i := range 2000 {
		name := "many/file-with-a-longish-name-" + itoa(i)
		if _, err := r.Lstat(name); err != nil {
			t.Fatalf("Lstat(%s): %v", name, err)
		}
		if _, err := r.Lstat(name + "0"); !errors.Is(err, fs.ErrNotExist) {
			t.Fatalf("Lstat(%s0) = %v, want not found", name, err)
		}
	}
	for _, name := range []string{"0", "zzz", "file-with-a-longish-name-"} {
		if _, err := r.Lstat("many/" + name); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Lstat(many/%s) = %v, want not found", name, err)
		}
	}
}

func TestFileReadSeek(t *testing.T) {
	src, r := fsTree(t)
	want, err := os.ReadFile(filepath.Join(src, "big"))
	must(t, err)
	f, err := r.Open("big")
	must(t, err)
	defer f.Close()
	rs := f.(io.ReadSeeker)
	if n, serr := rs.Seek(-10, io.SeekEnd); serr != nil || n != int64(len(want)-10) {
		t.Fatalf("Seek end-10 = %d, %v", n, serr)
	}
	b, err := io.ReadAll(rs)
	if err != nil || !bytes.Equal(b, want[len(want)-10:]) {
		t.Errorf("read after seek = %q, %v", b, err)
	}
	if n, err := rs.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Errorf("read at end = %d, %v, want 0, EOF", n, err)
	}
	buf := make([]byte, 100)
	if n, err := f.(io.ReaderAt).ReadAt(buf, int64(len(want)-50)); n != 50 || err != io.EOF {
		t.Errorf("ReadAt past end = %d, %v, want 50, EOF", n, err)
	}
	if _, err := rs.Seek(-1, io.SeekStart); err == nil {
		t.Error("Seek to -1: no error")
	}
	must(t, f.Close())
	if _, err := rs.Read(buf); !errors.Is(err, fs.ErrClosed) {
		t.Errorf("Read after Close = %v", err)
	}
	if _, err := r.ReadFile("dir"); err == nil {
		t.Error("ReadFile of a directory: no error")
	}
}

func TestWalkSkip(t *testing.T) {
	_, r := fsTree(t)
	var got []string
	must(t, r.Walk(func(p string, in *Inode) error {
		got = append(got, p)
		switch p {
		case "many", "dir/sub":
			return fs.SkipDir
		case "loop1":
			return fs.SkipAll
		}
		return nil
	}))
	want := []string{".", "a", "big", "dangling", "dir", "dir/abs", "dir/b", "dir/sub", "dirlink", "empty", "escape", "link", "loop1"}
	if !slices.Equal(got, want) {
		t.Errorf("walk = %v, want %v", got, want)
	}
}

// TestConcurrentReads reads the whole image from several goroutines through one Reader.
func TestConcurrentReads(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src, treeOptions{blockSize: MinBlockSize, bigDir: 50})
	r := sqtest.OpenImage(t, mksquashfs(t, src, "-b", "4K", "-comp", "zstd"))
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			err := r.Walk(func(p string, in *Inode) error {
				if in.Type != TypeRegular {
					return nil
				}
				got, err := r.ReadFile(p)
				if err != nil {
					return err
				}
				want, err := os.ReadFile(filepath.Join(src, p))
				if err != nil {
					return err
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s: content differs", p)
				}
				return nil
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}

// TestSpecialFiles opens a FIFO: Stat works, Read says why not.
func TestSpecialFiles(t *testing.T) {
	src := t.TempDir()
	makeTree(t, src, treeOptions{blockSize: DefaultBlockSize})
	r := sqtest.OpenImage(t, mksquashfs(t, src))
	f, err := r.Open("fifo")
	must(t, err)
	fi, err := f.Stat()
	if err != nil || fi.Mode() != fs.ModeNamedPipe|0o640 {
		t.Errorf("Stat(fifo) = %v, %v", fi.Mode(), err)
	}
	if _, err = f.Read(make([]byte, 1)); err == nil {
		t.Error("Read of a FIFO: no error")
	}
	fi, err = r.Stat("setuid")
	if err != nil || fi.Mode() != fs.ModeSetuid|0o755 {
		t.Errorf("Stat(setuid) = %v, %v", fi.Mode(), err)
	}
	fi, err = r.Stat("sticky")
	if err != nil || fi.Mode() != fs.ModeDir|fs.ModeSticky|0o777 {
		t.Errorf("Stat(sticky) = %v, %v", fi.Mode(), err)
	}
}
