package sqfuse

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/squashfs"
	"github.com/hpcctl/hpcctl/internal/squashfs/sqtest"
)

const mtime = 1700000000

// content is deterministic file content of n bytes.
func content(seed string, n int) []byte {
	return bytes.Repeat([]byte(seed+" 0123456789\n"), n/(len(seed)+12)+1)[:n]
}

// testEntries cover every inode type the server maps: hardlinks, symlinks, odd modes, devices,
// xattrs, a file of several blocks and a large directory.
func testEntries() []squashfs.Entry {
	file := func(p string, mode, uid, gid uint32, body []byte, x map[string]string) squashfs.Entry {
		return squashfs.Entry{Path: p, Type: squashfs.TypeRegular, Mode: mode, UID: uid, GID: gid, ModTime: mtime,
			Size: int64(len(body)), Body: bytes.NewReader(body), Xattrs: x}
	}
	es := []squashfs.Entry{
		{Path: ".", Type: squashfs.TypeDir, Mode: 0o755, ModTime: mtime},
		{Path: "d", Type: squashfs.TypeDir, Mode: 0o750, UID: 1000, GID: 1001, ModTime: mtime, Xattrs: map[string]string{"user.dir": "yes"}},
		file("d/small", 0o644, 1000, 1001, content("small", 100), map[string]string{"user.a": "1", "trusted.b": "two"}),
		file("d/big", 0o600, 0, 0, content("big", 5*4096+17), nil),
		file("d/empty", 0o644, 0, 0, nil, nil),
		file("su", 0o4755, 0, 0, content("su", 10), nil),
		file("sg", 0o2711, 0, 0, content("sg", 10), nil),
		{Path: "tmp", Type: squashfs.TypeDir, Mode: 0o1777, ModTime: mtime},
		{Path: "d/hard", Type: squashfs.TypeHardlink, Linkname: "d/small"},
		{Path: "link", Type: squashfs.TypeSymlink, Mode: 0o777, Linkname: "d/small", ModTime: mtime},
		{Path: "dev/null", Type: squashfs.TypeCharDevice, Mode: 0o666, DevMajor: 1, DevMinor: 3, ModTime: mtime},
		{Path: "dev/big", Type: squashfs.TypeBlockDevice, Mode: 0o660, DevMajor: 259, DevMinor: 70000, ModTime: mtime},
		{Path: "fifo", Type: squashfs.TypeFIFO, Mode: 0o600, ModTime: mtime},
		{Path: "sock", Type: squashfs.TypeSocket, Mode: 0o755, ModTime: mtime},
	}
	for i := range 300 {
		es = append(es, file(fmt.Sprintf("many/f%03d", i), 0o644, 0, 0, content("m", i), nil))
	}
	return es
}

// newFS writes the entries into an image and serves it.
func newFS(t testing.TB, opts squashfs.Options, entries []squashfs.Entry) *FS {
	t.Helper()
	return openFS(t, sqtest.WriteImage(t, opts, entries))
}

// openFS serves the image file img.
func openFS(t testing.TB, img string) *FS {
	t.Helper()
	return New(sqtest.OpenImage(t, img), slog.New(slog.DiscardHandler))
}

// lookup walks a slash path from the root and returns the last entry.
func lookup(t *testing.T, f *FS, p string) fuse.EntryOut {
	t.Helper()
	out := fuse.EntryOut{NodeId: fuse.FUSE_ROOT_ID}
	for _, name := range strings.Split(p, "/") {
		parent := out.NodeId
		out = fuse.EntryOut{}
		if st := f.Lookup(nil, &fuse.InHeader{NodeId: parent}, name, &out); !st.Ok() {
			t.Fatalf("lookup %s in %s: %v", name, p, st)
		}
	}
	return out
}

func TestAttributes(t *testing.T) {
	f := newFS(t, squashfs.Options{BlockSize: 4096}, testEntries())
	for _, c := range []struct {
		path  string
		mode  uint32
		nlink uint32
		uid   uint32
		gid   uint32
		size  uint64
		rdev  uint32
	}{
		{"d", unix.S_IFDIR | 0o750, 2, 1000, 1001, 0, 0},
		{"d/small", unix.S_IFREG | 0o644, 2, 1000, 1001, 100, 0},
		{"d/hard", unix.S_IFREG | 0o644, 2, 1000, 1001, 100, 0},
		{"d/big", unix.S_IFREG | 0o600, 1, 0, 0, 5*4096 + 17, 0},
		{"d/empty", unix.S_IFREG | 0o644, 1, 0, 0, 0, 0},
		{"su", unix.S_IFREG | 0o4755, 1, 0, 0, 10, 0},
		{"sg", unix.S_IFREG | 0o2711, 1, 0, 0, 10, 0},
		{"tmp", unix.S_IFDIR | 0o1777, 2, 0, 0, 0, 0},
		{"link", unix.S_IFLNK | 0o777, 1, 0, 0, 7, 0},
		{"dev/null", unix.S_IFCHR | 0o666, 1, 0, 0, 0, uint32(unix.Mkdev(1, 3))},
		{"dev/big", unix.S_IFBLK | 0o660, 1, 0, 0, 0, uint32(unix.Mkdev(259, 70000))},
		{"fifo", unix.S_IFIFO | 0o600, 1, 0, 0, 0, 0},
		{"sock", unix.S_IFSOCK | 0o755, 1, 0, 0, 0, 0},
	} {
		e := lookup(t, f, c.path)
		a := e.Attr
		if a.Mode != c.mode || a.Nlink != c.nlink || a.Uid != c.uid || a.Gid != c.gid || a.Rdev != c.rdev || a.Mtime != mtime || a.Ctime != mtime {
			t.Errorf("%s: mode %o nlink %d owner %d:%d rdev %x mtime %d, want %o %d %d:%d %x %d", c.path, a.Mode, a.Nlink, a.Uid, a.Gid, a.Rdev, a.Mtime, c.mode, c.nlink, c.uid, c.gid, c.rdev, mtime)
		}
		if a.Mode&unix.S_IFMT != unix.S_IFDIR && a.Size != c.size {
			t.Errorf("%s: size %d, want %d", c.path, a.Size, c.size)
		}
		if a.Mode&unix.S_IFMT == unix.S_IFREG && a.Blocks != (c.size+511)/512 {
			t.Errorf("%s: %d blocks for %d bytes", c.path, a.Blocks, c.size)
		}
		if e.EntryValid < 1<<30 || e.AttrValid < 1<<30 {
			t.Errorf("%s: timeouts %d/%d, want long ones", c.path, e.EntryValid, e.AttrValid)
		}
		var got fuse.AttrOut
		if st := f.GetAttr(nil, &fuse.GetAttrIn{InHeader: fuse.InHeader{NodeId: e.NodeId}}, &got); !st.Ok() || got.Attr != a {
			t.Errorf("%s: GetAttr %v %+v, want %+v", c.path, st, got.Attr, a)
		}
	}
	small, hard := lookup(t, f, "d/small"), lookup(t, f, "d/hard")
	if small.NodeId != hard.NodeId || small.Ino != hard.Ino {
		t.Errorf("hardlinks: node %d ino %d vs node %d ino %d", small.NodeId, small.Ino, hard.NodeId, hard.Ino)
	}
	var root fuse.AttrOut
	if st := f.GetAttr(nil, &fuse.GetAttrIn{InHeader: fuse.InHeader{NodeId: fuse.FUSE_ROOT_ID}}, &root); !st.Ok() || root.Mode != unix.S_IFDIR|0o755 {
		t.Errorf("root: %v %o", st, root.Mode)
	}
	target, st := f.Readlink(nil, &fuse.InHeader{NodeId: lookup(t, f, "link").NodeId})
	if !st.Ok() || string(target) != "d/small" {
		t.Errorf("readlink: %q %v", target, st)
	}
}

// TestNegativeLookup checks that a missing name is a cached negative entry (node 0, a timeout),
// and that a lookup below a file is ENOTDIR.
func TestNegativeLookup(t *testing.T) {
	f := newFS(t, squashfs.Options{}, testEntries())
	var out fuse.EntryOut
	if st := f.Lookup(nil, &fuse.InHeader{NodeId: fuse.FUSE_ROOT_ID}, "nope", &out); !st.Ok() || out.NodeId != 0 || out.EntryValid == 0 {
		t.Errorf("missing name: %v node %d valid %d", st, out.NodeId, out.EntryValid)
	}
	file := lookup(t, f, "su")
	if st := f.Lookup(nil, &fuse.InHeader{NodeId: file.NodeId}, "x", &out); st != fuse.ENOTDIR {
		t.Errorf("lookup in a file: %v", st)
	}
}

func TestRead(t *testing.T) {
	f := newFS(t, squashfs.Options{BlockSize: 4096}, testEntries())
	want := content("big", 5*4096+17)
	id := lookup(t, f, "d/big").NodeId
	for _, c := range []struct{ off, size int }{{0, 4096}, {100, 9000}, {5 * 4096, 4096}, {5*4096 + 17, 10}, {1 << 20, 10}} {
		buf := make([]byte, c.size)
		res, st := f.Read(nil, &fuse.ReadIn{InHeader: fuse.InHeader{NodeId: id}, Offset: uint64(c.off), Size: uint32(c.size)}, buf)
		if !st.Ok() {
			t.Fatalf("read %+v: %v", c, st)
		}
		got, _ := res.Bytes(nil)
		end := min(len(want), c.off+c.size)
		if exp := want[min(c.off, end):end]; !bytes.Equal(got, exp) {
			t.Errorf("read %+v: %d bytes, want %d", c, len(got), len(exp))
		}
	}
	if _, st := f.Read(nil, &fuse.ReadIn{InHeader: fuse.InHeader{NodeId: fuse.FUSE_ROOT_ID}, Size: 10}, make([]byte, 10)); st.Ok() {
		t.Error("read of a directory succeeded")
	}
}

// TestConcurrentReads reads every file from many goroutines at once (run with -race).
func TestConcurrentReads(t *testing.T) {
	f := newFS(t, squashfs.Options{BlockSize: 4096}, testEntries())
	ids := map[uint64][]byte{lookup(t, f, "d/big").NodeId: content("big", 5*4096+17)}
	for i := 0; i < 300; i += 37 {
		ids[lookup(t, f, fmt.Sprintf("many/f%03d", i)).NodeId] = content("m", i)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for id, want := range ids {
				for off := g * 100 % (len(want) + 1); off < len(want); off += 3000 {
					buf := make([]byte, 4096)
					res, st := f.Read(nil, &fuse.ReadIn{InHeader: fuse.InHeader{NodeId: id}, Offset: uint64(off), Size: 4096}, buf)
					got, _ := res.Bytes(nil)
					if !st.Ok() || !bytes.Equal(got, want[off:min(len(want), off+4096)]) {
						t.Errorf("node %d at %d: %v, %d bytes", id, off, st, len(got))
						return
					}
				}
			}
		})
	}
	wg.Wait()
}

// readDir lists a directory through READDIR or READDIRPLUS with a small buffer, so that the
// listing takes several requests that continue from their offsets.
func readDir(t *testing.T, f *FS, id uint64, plus bool) ([]fuse.DirEntry, []fuse.EntryOut) {
	t.Helper()
	var ents []fuse.DirEntry
	var outs []fuse.EntryOut
	for off := uint64(0); ; {
		l := fuse.NewDirEntryList(make([]byte, 1024), off)
		in := &fuse.ReadIn{InHeader: fuse.InHeader{NodeId: id}, Offset: off, Size: 1024}
		var st fuse.Status
		if plus {
			st = f.ReadDirPlus(nil, in, l)
		} else {
			st = f.ReadDir(nil, in, l)
		}
		if !st.Ok() {
			t.Fatalf("readdir: %v", st)
		}
		var es []fuse.DirEntry
		var more []fuse.EntryOut
		var err error
		if plus {
			es, more, err = fuse.ParseDirLookupEntries(l.Bytes())
		} else {
			es, err = fuse.ParseDirEntries(l.Bytes())
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(es) == 0 {
			return ents, outs
		}
		ents, outs = append(ents, es...), append(outs, more...)
		off = es[len(es)-1].Off
	}
}

func TestReadDir(t *testing.T) {
	f := newFS(t, squashfs.Options{}, testEntries())
	for _, plus := range []bool{false, true} {
		ents, outs := readDir(t, f, lookup(t, f, "many").NodeId, plus)
		if len(ents) != 302 || ents[0].Name != "." || ents[1].Name != ".." {
			t.Fatalf("plus=%v: %d entries, first %v", plus, len(ents), ents[:min(2, len(ents))])
		}
		names := []string{}
		for i, e := range ents[2:] {
			names = append(names, e.Name)
			if e.Mode != unix.S_IFREG {
				t.Errorf("%s: type %o", e.Name, e.Mode)
			}
			if plus {
				want := lookup(t, f, "many/"+e.Name)
				if o := outs[i+2]; o.NodeId != want.NodeId || o.Attr != want.Attr || o.Ino != e.Ino {
					t.Errorf("%s: readdirplus entry %+v, lookup %+v", e.Name, o, want)
				}
			}
		}
		if !slices.IsSorted(names) || names[0] != "f000" || names[299] != "f299" {
			t.Errorf("plus=%v: names %v...", plus, names[:3])
		}
		if plus && (outs[0].NodeId != 0 || outs[1].NodeId != 0) {
			t.Errorf(". and .. carry node ids %d, %d", outs[0].NodeId, outs[1].NodeId)
		}
	}
	root, _ := readDir(t, f, fuse.FUSE_ROOT_ID, false)
	var types []string
	for _, e := range root[2:] {
		types = append(types, fmt.Sprintf("%s:%o", e.Name, e.Mode))
	}
	want := "d:40000 dev:40000 fifo:10000 link:120000 many:40000 sg:100000 sock:140000 su:100000 tmp:40000"
	if got := strings.Join(types, " "); got != want {
		t.Errorf("root listing %s, want %s", got, want)
	}
}

func TestXattrs(t *testing.T) {
	f := newFS(t, squashfs.Options{}, testEntries())
	id := lookup(t, f, "d/small").NodeId
	h := &fuse.InHeader{NodeId: id}
	if n, st := f.GetXAttr(nil, h, "user.a", nil); !st.Ok() || n != 1 {
		t.Errorf("size query: %d %v", n, st)
	}
	buf := make([]byte, 16)
	if n, st := f.GetXAttr(nil, h, "trusted.b", buf); !st.Ok() || string(buf[:n]) != "two" {
		t.Errorf("trusted.b: %q %v", buf[:n], st)
	}
	if _, st := f.GetXAttr(nil, h, "trusted.b", buf[:1]); st != fuse.ERANGE {
		t.Errorf("short buffer: %v", st)
	}
	for _, c := range []struct {
		id   uint64
		name string
	}{{id, "user.overlay.metacopy"}, {lookup(t, f, "su").NodeId, "security.capability"}} {
		if _, st := f.GetXAttr(nil, &fuse.InHeader{NodeId: c.id}, c.name, buf); st != fuse.ENODATA {
			t.Errorf("missing %s: %v, want ENODATA", c.name, st)
		}
	}
	n, st := f.ListXAttr(nil, h, make([]byte, 64))
	if want := "trusted.b\x00user.a\x00"; !st.Ok() || n != uint32(len(want)) {
		t.Errorf("list: %d %v", n, st)
	}
	if n, st := f.ListXAttr(nil, &fuse.InHeader{NodeId: lookup(t, f, "su").NodeId}, make([]byte, 64)); !st.Ok() || n != 0 {
		t.Errorf("list without xattrs: %d %v", n, st)
	}

	bare := newFS(t, squashfs.Options{NoXattrs: true}, testEntries())
	h = &fuse.InHeader{NodeId: lookup(t, bare, "d/small").NodeId}
	if _, st := bare.GetXAttr(nil, h, "user.overlay.metacopy", buf); st != fuse.ENOSYS {
		t.Errorf("no xattr table: getxattr %v, want ENOSYS", st)
	}
	if n, st := bare.ListXAttr(nil, h, buf); !st.Ok() || n != 0 {
		t.Errorf("no xattr table: listxattr %d %v, want an empty list", n, st)
	}
}

// TestNoOpenNoWrites checks the answers that make the kernel stop asking (ENOSYS) and the
// read-only ones, and the counters that count them.
func TestNoOpenNoWrites(t *testing.T) {
	f := newFS(t, squashfs.Options{}, testEntries())
	if st := f.Open(nil, &fuse.OpenIn{}, &fuse.OpenOut{}); st != fuse.ENOSYS {
		t.Errorf("open: %v", st)
	}
	if st := f.OpenDir(nil, &fuse.OpenIn{}, &fuse.OpenOut{}); st != fuse.ENOSYS {
		t.Errorf("opendir: %v", st)
	}
	if st := f.Ioctl(nil, &fuse.IoctlIn{}, nil, &fuse.IoctlOut{}, nil); st != fuse.ENOSYS {
		t.Errorf("ioctl: %v", st)
	}
	for name, st := range map[string]fuse.Status{
		"flush":    f.Flush(nil, &fuse.FlushIn{}),
		"access":   f.Access(nil, &fuse.AccessIn{}),
		"lseek":    f.Lseek(nil, &fuse.LseekIn{}, &fuse.LseekOut{}),
		"getlk":    f.GetLk(nil, &fuse.LkIn{}, &fuse.LkOut{}),
		"setlk":    f.SetLk(nil, &fuse.LkIn{}),
		"setlkw":   f.SetLkw(nil, &fuse.LkIn{}),
		"fsync":    f.Fsync(nil, &fuse.FsyncIn{}),
		"fsyncdir": f.FsyncDir(nil, &fuse.FsyncIn{}),
		"statx":    f.Statx(nil, &fuse.StatxIn{}, &fuse.StatxOut{}),
	} {
		if st != fuse.ENOSYS {
			t.Errorf("%s: %v, want ENOSYS", name, st)
		}
	}
	for name, st := range map[string]fuse.Status{
		"mkdir":    f.Mkdir(nil, &fuse.MkdirIn{}, "x", &fuse.EntryOut{}),
		"unlink":   f.Unlink(nil, &fuse.InHeader{}, "x"),
		"create":   f.Create(nil, &fuse.CreateIn{}, "x", &fuse.CreateOut{}),
		"setattr":  f.SetAttr(nil, &fuse.SetAttrIn{}, &fuse.AttrOut{}),
		"setxattr": f.SetXAttr(nil, &fuse.SetXAttrIn{}, "user.x", nil),
	} {
		if st != fuse.EROFS {
			t.Errorf("%s: %v, want EROFS", name, st)
		}
	}
	var sf fuse.StatfsOut
	if st := f.StatFs(nil, &fuse.InHeader{}, &sf); !st.Ok() || sf.Files == 0 || sf.Blocks == 0 || sf.Bsize != squashfs.DefaultBlockSize {
		t.Errorf("statfs: %v %+v", st, sf)
	}
	if got := f.counts.String(); got != "OPEN=1 FLUSH=1 OPENDIR=1 IOCTL=1 STATFS=1 WRITES=5 ACCESS=1 LSEEK=1 LOCKS=3 FSYNC=2 STATX=1" {
		t.Errorf("counts %q", got)
	}
}

// TestCorruptImage serves an image with damaged metadata: every request over every node id
// the server hands out answers, with EIO where the data is bad, and none panics.
func TestCorruptImage(t *testing.T) {
	goodImg := sqtest.WriteImage(t, squashfs.Options{BlockSize: 4096}, testEntries())
	good := openFS(t, goodImg)
	sb := good.r.Superblock()
	served := 0
	for _, at := range []uint64{sb.InodeTableStart + 3, sb.DirectoryTableStart + 5, sb.InodeTableStart + 40} {
		img := filepath.Join(t.TempDir(), "bad.sqfs")
		data, err := os.ReadFile(goodImg)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 16 {
			data[int(at)+i] ^= 0x5a
		}
		if err = os.WriteFile(img, data, 0o644); err != nil {
			t.Fatal(err)
		}
		fh, err := os.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		r, err := squashfs.Open(fh, int64(len(data)))
		if err != nil {
			continue // refused at open: nothing to serve
		}
		walk(New(r, slog.New(slog.DiscardHandler)), fuse.FUSE_ROOT_ID, 0)
		served++
	}
	if served == 0 {
		t.Error("every damaged image was refused at open: nothing served")
	}
	// Node ids the kernel could not have had from the server.
	for _, id := range []uint64{0, 2, 3, 1 << 40, 1<<48 + 5, ^uint64(0) - 1} {
		var a fuse.AttrOut
		if st := good.GetAttr(nil, &fuse.GetAttrIn{InHeader: fuse.InHeader{NodeId: id}}, &a); st.Ok() && id != 2 {
			t.Errorf("node %d: %v", id, st)
		}
	}
}

// walk sends every read-side request to every node below id.
func walk(f *FS, id uint64, depth int) {
	var a fuse.AttrOut
	f.GetAttr(nil, &fuse.GetAttrIn{InHeader: fuse.InHeader{NodeId: id}}, &a)
	h := &fuse.InHeader{NodeId: id}
	f.Readlink(nil, h)
	f.GetXAttr(nil, h, "user.a", make([]byte, 64))
	f.ListXAttr(nil, h, make([]byte, 64))
	f.Read(nil, &fuse.ReadIn{InHeader: *h, Size: 8192}, make([]byte, 8192))
	l := fuse.NewDirEntryList(make([]byte, 1<<16), 0)
	if f.ReadDirPlus(nil, &fuse.ReadIn{InHeader: *h, Size: 1 << 16}, l).Ok() && depth < 4 {
		es, outs, _ := fuse.ParseDirLookupEntries(l.Bytes())
		for i, e := range es {
			var out fuse.EntryOut
			f.Lookup(nil, h, e.Name, &out)
			if outs[i].NodeId != 0 {
				walk(f, outs[i].NodeId, depth+1)
			}
		}
	}
}
