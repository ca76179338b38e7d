// Package sqfuse serves a squashfs image over FUSE from inside the process (go-fuse's raw API),
// answering so that a warm mount sends the server almost no requests: the image never changes.
package sqfuse

import (
	"errors"
	"io"
	"io/fs"
	"log/slog"
	"slices"
	"strings"
	"sync"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/hpcctl/hpcctl/internal/squashfs"
)

// forever is the entry and attribute timeout, in seconds: the image is immutable, so nothing the
// kernel learned ever needs asking again (the kernel caps it at its longest jiffies offset).
const forever = 1 << 32

// FS is a read-only fuse.RawFileSystem over one squashfs image. Node ids are inode references
// plus two (below 2^48+2), so that every request names its inode without a table; the root is
// FUSE_ROOT_ID. Requests it does not implement get ENOSYS from the embedded default.
type FS struct {
	fuse.RawFileSystem
	r      *squashfs.Reader
	root   *squashfs.Inode
	xattrs bool
	log    *slog.Logger
	counts counters
	files  fileCache
}

// New serves r; log gets a debug line for each request that fails on bad image data.
func New(r *squashfs.Reader, log *slog.Logger) *FS {
	return &FS{RawFileSystem: fuse.NewDefaultRawFileSystem(), r: r, root: r.Root(),
		xattrs: r.HasXattrTable(), log: log, files: fileCache{m: map[uint64]*squashfs.Inode{}}}
}

func (f *FS) String() string { return "hpcctl-sqfuse" }

// nodeID is the FUSE node id of in.
func (f *FS) nodeID(in *squashfs.Inode) uint64 {
	if in.Ref() == f.root.Ref() {
		return fuse.FUSE_ROOT_ID
	}
	return in.Ref() + 2
}

// inode decodes the inode of a node id the kernel had from nodeID.
func (f *FS) inode(op string, id uint64) (*squashfs.Inode, fuse.Status) {
	if id == fuse.FUSE_ROOT_ID {
		return f.root, fuse.OK
	}
	if id < 2 {
		return nil, fuse.EIO
	}
	in, err := f.r.InodeAt(id - 2)
	if err != nil {
		return nil, f.bad(op, id, err)
	}
	return in, fuse.OK
}

// bad logs image data that cannot be read and answers EIO: that request fails, the server goes on.
func (f *FS) bad(op string, id uint64, err error) fuse.Status {
	f.log.Debug("squashfs image: bad data", "op", op, "node", id, "err", err)
	return fuse.EIO
}

// fill sets a's fields from in as the kernel's squashfs shows them: the inode number (hardlinks
// share it), the stored times for all three, a directory's stored listing size, a symlink's
// target length, 512-byte blocks of a regular file's length.
func (f *FS) fill(in *squashfs.Inode, a *fuse.Attr) {
	*a = fuse.Attr{Ino: uint64(in.InodeNumber), Mode: in.Type.ModeBits() | in.Mode, Nlink: in.Nlink,
		Owner: fuse.Owner{Uid: in.UID, Gid: in.GID}, Blksize: f.r.Superblock().BlockSize}
	switch in.Type {
	case squashfs.TypeRegular:
		a.Size = uint64(in.Size)
		a.Blocks = (a.Size + 511) / 512
	case squashfs.TypeDir, squashfs.TypeSymlink:
		a.Size = uint64(in.Size)
	case squashfs.TypeCharDevice, squashfs.TypeBlockDevice:
		// The kernel's new_decode_dev layout, which squashfs stores too.
		a.Rdev = in.DevMinor&0xff | in.DevMajor&0xfff<<8 | (in.DevMinor&^0xff)<<12
	}
	t := uint64(in.ModTime)
	a.Atime, a.Mtime, a.Ctime = t, t, t
}

func (f *FS) entry(in *squashfs.Inode, out *fuse.EntryOut) {
	out.NodeId = f.nodeID(in)
	out.EntryValid, out.AttrValid = forever, forever
	f.fill(in, &out.Attr)
}

// Lookup answers a missing name with node id 0 and a timeout: a negative entry the kernel keeps
// (fuse_lookup_name), so a search path probed again costs nothing.
func (f *FS) Lookup(_ <-chan struct{}, h *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	f.counts.add(opLookup)
	dir, st := f.inode("lookup", h.NodeId)
	if !st.Ok() {
		return st
	}
	if dir.Type != squashfs.TypeDir {
		return fuse.ENOTDIR
	}
	in, err := f.r.LookupInode(dir, name)
	if errors.Is(err, fs.ErrNotExist) {
		*out = fuse.EntryOut{EntryValid: forever}
		return fuse.OK
	}
	if err != nil {
		return f.bad("lookup", h.NodeId, err)
	}
	f.entry(in, out)
	return fuse.OK
}

// Forget needs nothing: node ids are not counted references to a table.
func (f *FS) Forget(uint64, uint64) { f.counts.add(opForget) }

func (f *FS) GetAttr(_ <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	f.counts.add(opGetattr)
	i, st := f.inode("getattr", in.NodeId)
	if !st.Ok() {
		return st
	}
	out.AttrValid = forever
	f.fill(i, &out.Attr)
	return fuse.OK
}

// Open and OpenDir answer ENOSYS: the kernel then stops sending OPEN (or OPENDIR) and RELEASE
// for the connection and opens with FOPEN_KEEP_CACHE (and FOPEN_CACHE_DIR), keeping pages and
// listings across opens (fs/fuse/file.c fuse_file_open, FUSE_NO_OPEN_SUPPORT).
func (f *FS) Open(<-chan struct{}, *fuse.OpenIn, *fuse.OpenOut) fuse.Status {
	f.counts.add(opOpen)
	return fuse.ENOSYS
}

func (f *FS) OpenDir(<-chan struct{}, *fuse.OpenIn, *fuse.OpenOut) fuse.Status {
	f.counts.add(opOpendir)
	return fuse.ENOSYS
}

func (f *FS) Release(<-chan struct{}, *fuse.ReleaseIn) { f.counts.add(opRelease) }

// Flush answers ENOSYS, after which the kernel sets no_flush and sends no more FLUSH for the
// connection (fs/fuse/file.c, fuse_flush). go-fuse's default answers OK, which made every
// close(2) of an image file a round trip to this server: 30 µs each, measured, 2.5 times the
// cost of opening, reading and closing a cached file on the kernel's squashfs.
func (f *FS) Flush(<-chan struct{}, *fuse.FlushIn) fuse.Status {
	f.counts.add(opFlush)
	return fuse.ENOSYS
}
func (f *FS) ReleaseDir(*fuse.ReleaseIn) { f.counts.add(opReleasedir) }

func (f *FS) Read(_ <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	f.counts.add(opRead)
	i, st := f.file(in.NodeId)
	if !st.Ok() {
		return nil, st
	}
	if i.Type != squashfs.TypeRegular {
		return nil, fuse.EINVAL
	}
	n, err := f.r.ReadFileAt(i, buf[:min(len(buf), int(in.Size))], int64(in.Offset))
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, f.bad("read", in.NodeId, err)
	}
	return fuse.ReadResultData(buf[:n]), fuse.OK
}

// file is inode for READ, through a cache: a large file's inode lists every block, and the
// kernel reads it in max_read pieces.
func (f *FS) file(id uint64) (*squashfs.Inode, fuse.Status) {
	if in := f.files.get(id); in != nil {
		return in, fuse.OK
	}
	in, st := f.inode("read", id)
	if st.Ok() {
		f.files.put(id, in)
	}
	return in, st
}

func (f *FS) Readlink(_ <-chan struct{}, h *fuse.InHeader) ([]byte, fuse.Status) {
	f.counts.add(opReadlink)
	in, st := f.inode("readlink", h.NodeId)
	if !st.Ok() {
		return nil, st
	}
	if in.Type != squashfs.TypeSymlink {
		return nil, fuse.EINVAL
	}
	return []byte(in.Linkname), fuse.OK
}

func (f *FS) ReadDir(_ <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	f.counts.add(opReaddir)
	return f.readDir(in, out, false)
}

// ReadDirPlus also gives each entry's attributes, so that a listed directory's names need no
// LOOKUP ("." and ".." get none, as the kernel ignores them).
func (f *FS) ReadDirPlus(_ <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	f.counts.add(opReaddirplus)
	return f.readDir(in, out, true)
}

func (f *FS) readDir(in *fuse.ReadIn, out *fuse.DirEntryList, plus bool) fuse.Status {
	dir, st := f.inode("readdir", in.NodeId)
	if !st.Ok() {
		return st
	}
	if dir.Type != squashfs.TypeDir {
		return fuse.ENOTDIR
	}
	ents, err := f.r.DirEntries(dir)
	if err != nil {
		return f.bad("readdir", in.NodeId, err)
	}
	ents = append([]squashfs.DirEntry{{Name: ".", Type: squashfs.TypeDir, InodeNumber: dir.InodeNumber},
		{Name: "..", Type: squashfs.TypeDir, InodeNumber: dir.ParentInodeNumber()}}, ents...)
	for i := in.Offset; i < uint64(len(ents)); i++ {
		e := ents[i]
		de := fuse.DirEntry{Name: e.Name, Mode: e.Type.ModeBits(), Ino: uint64(e.InodeNumber), Off: i + 1}
		if !plus {
			if !out.AddDirEntry(de) {
				break
			}
			continue
		}
		eo := out.AddDirLookupEntry(de)
		if eo == nil {
			break
		}
		if i < 2 {
			continue
		}
		child, err := f.r.InodeAt(e.Ref)
		if err != nil {
			// Left without attributes: the kernel looks the name up, and that fails.
			f.log.Debug("squashfs image: bad data", "op", "readdirplus", "name", e.Name, "err", err)
			continue
		}
		f.entry(child, eo)
	}
	return fuse.OK
}

// GetXAttr answers ENOSYS on an image without an xattr table: the kernel then stops asking for
// the connection (fuse_getxattr sets no_getxattr), which spares every overlayfs lookup and exec
// a round trip (user.overlay.*, security.capability).
func (f *FS) GetXAttr(_ <-chan struct{}, h *fuse.InHeader, name string, dest []byte) (uint32, fuse.Status) {
	f.counts.add(opGetxattr)
	if !f.xattrs {
		return 0, fuse.ENOSYS
	}
	x, st := f.inodeXattrs(h.NodeId)
	if !st.Ok() {
		return 0, st
	}
	v, ok := x[name]
	if !ok {
		return 0, fuse.ENODATA
	}
	return copyOut(dest, v)
}

// ListXAttr lists none on an image without an xattr table, as the kernel's squashfs and
// squashfuse_ll do (ENOSYS would make every listxattr fail with EOPNOTSUPP).
func (f *FS) ListXAttr(_ <-chan struct{}, h *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	f.counts.add(opListxattr)
	x, st := f.inodeXattrs(h.NodeId)
	if !st.Ok() {
		return 0, st
	}
	names := make([]string, 0, len(x))
	for k := range x {
		names = append(names, k+"\x00")
	}
	slices.Sort(names)
	return copyOut(dest, strings.Join(names, ""))
}

func (f *FS) inodeXattrs(id uint64) (map[string]string, fuse.Status) {
	in, st := f.inode("xattr", id)
	if !st.Ok() || in.Xattr == squashfs.NoXattrs || !f.xattrs {
		return nil, st
	}
	x, err := f.r.InodeXattrs(in)
	if err != nil {
		return nil, f.bad("xattr", id, err)
	}
	return x, fuse.OK
}

// copyOut answers a size query (an empty buffer) with the size, a short buffer with ERANGE.
func copyOut(dest []byte, v string) (uint32, fuse.Status) {
	if len(dest) == 0 {
		return uint32(len(v)), fuse.OK
	}
	if len(dest) < len(v) {
		return uint32(len(v)), fuse.ERANGE
	}
	return uint32(copy(dest, v)), fuse.OK
}

func (f *FS) Ioctl(<-chan struct{}, *fuse.IoctlIn, []byte, *fuse.IoctlOut, []byte) fuse.Status {
	f.counts.add(opIoctl)
	return fuse.ENOSYS
}

func (f *FS) StatFs(_ <-chan struct{}, _ *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	f.counts.add(opStatfs)
	sb := f.r.Superblock()
	*out = fuse.StatfsOut{Blocks: (sb.BytesUsed + uint64(sb.BlockSize) - 1) / uint64(sb.BlockSize),
		Files: uint64(sb.InodeCount), Bsize: sb.BlockSize, Frsize: sb.BlockSize, NameLen: 256}
	return fuse.OK
}

// fileCache keeps the inodes of the last files read, by node id.
type fileCache struct {
	mu sync.Mutex
	m  map[uint64]*squashfs.Inode
}

const fileCacheSize = 1024

func (c *fileCache) get(id uint64) *squashfs.Inode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m[id]
}

func (c *fileCache) put(id uint64, in *squashfs.Inode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= fileCacheSize {
		clear(c.m) // a warm mount reads nothing: no need for a finer eviction
	}
	c.m[id] = in
}
