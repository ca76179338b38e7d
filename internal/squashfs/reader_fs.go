package squashfs

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"syscall"
	"time"
)

// Reader implements these io/fs interfaces over slash paths with "." as the root.
var (
	_ fs.FS         = (*Reader)(nil)
	_ fs.StatFS     = (*Reader)(nil)
	_ fs.ReadDirFS  = (*Reader)(nil)
	_ fs.ReadFileFS = (*Reader)(nil)
	_ fs.ReadLinkFS = (*Reader)(nil)
)

// maxSymlinkHops is Linux's limit (MAXSYMLINKS) on links followed in one lookup.
const maxSymlinkHops = 40

// resolve returns the inode name leads to. Intermediate symlinks are always followed, a final
// one when follow is set; links resolve as if the image root were "/" (absolute targets and
// ".." stop at the root), so no lookup leaves the image.
func (r *Reader) resolve(op, name string, follow bool) (*Inode, error) {
	if !validPath(name) {
		return nil, &fs.PathError{Op: op, Path: name, Err: fs.ErrInvalid}
	}
	in, err := r.walkPath(name, follow)
	if err != nil {
		return nil, &fs.PathError{Op: op, Path: name, Err: err}
	}
	return in, nil
}

func (r *Reader) walkPath(name string, follow bool) (*Inode, error) {
	stack := []*Inode{r.root}
	parts := splitPath(name)
	hops := 0
	for len(parts) > 0 {
		p := parts[0]
		parts = parts[1:]
		switch p {
		case "", ".":
			continue
		case "..":
			if len(stack) > 1 {
				stack = stack[:len(stack)-1]
			}
			continue
		}
		cur := stack[len(stack)-1]
		if cur.Type != TypeDir {
			return nil, syscall.ENOTDIR
		}
		d, err := r.lookup(cur, p)
		if err != nil {
			return nil, err
		}
		in, err := r.direntInode(d)
		if err != nil {
			return nil, err
		}
		if in.Type == TypeSymlink && (len(parts) > 0 || follow) {
			if hops++; hops > maxSymlinkHops {
				return nil, syscall.ELOOP
			}
			if strings.HasPrefix(in.Linkname, "/") {
				stack = stack[:1]
			}
			parts = append(splitPath(in.Linkname), parts...)
			continue
		}
		stack = append(stack, in)
	}
	return stack[len(stack)-1], nil
}

// validPath applies fs.ValidPath's rules except that names need not be UTF-8: Linux file names
// are bytes, and an image with Latin-1 names must still be readable by path.
func validPath(name string) bool {
	if name == "." {
		return true
	}
	for {
		i := strings.IndexByte(name, '/')
		elem := name
		if i >= 0 {
			elem = name[:i]
		}
		if elem == "" || elem == "." || elem == ".." {
			return false
		}
		if i < 0 {
			return true
		}
		name = name[i+1:]
	}
}

func splitPath(p string) []string {
	if p == "." || p == "" {
		return nil
	}
	return strings.Split(p, "/")
}

// direntInode reads the inode a directory entry names and checks that the types agree.
func (r *Reader) direntInode(d dirent) (*Inode, error) {
	block, off := splitInodeRef(d.ref)
	in, err := r.inodeAt(block, off)
	if err != nil {
		return nil, fmt.Errorf("entry %q: %w", d.name, err)
	}
	if direntType(d.kind) != in.Type {
		return nil, fmt.Errorf("directory table: entry %q says %s but its inode is a %s", d.name, direntType(d.kind), in.Type)
	}
	return in, nil
}

func direntType(kind uint16) Type {
	switch kind {
	case inodeBasicDir:
		return TypeDir
	case inodeBasicFile:
		return TypeRegular
	case inodeBasicSymlink:
		return TypeSymlink
	case inodeBasicBlock:
		return TypeBlockDevice
	case inodeBasicChar:
		return TypeCharDevice
	case inodeBasicFifo:
		return TypeFIFO
	case inodeBasicSocket:
		return TypeSocket
	}
	return 0
}

// Stat returns the FileInfo of name, following symlinks.
func (r *Reader) Stat(name string) (fs.FileInfo, error) {
	in, err := r.resolve("stat", name, true)
	if err != nil {
		return nil, err
	}
	return &fileInfo{name: path.Base(name), in: in}, nil
}

// Lstat returns the FileInfo of name without following a final symlink.
func (r *Reader) Lstat(name string) (fs.FileInfo, error) {
	in, err := r.resolve("lstat", name, false)
	if err != nil {
		return nil, err
	}
	return &fileInfo{name: path.Base(name), in: in}, nil
}

// Readlink returns the target of symlink name as stored.
func (r *Reader) Readlink(name string) (string, error) {
	in, err := r.resolve("readlink", name, false)
	if err != nil {
		return "", err
	}
	if in.Type != TypeSymlink {
		return "", &fs.PathError{Op: "readlink", Path: name, Err: syscall.EINVAL}
	}
	return in.Linkname, nil
}

// ReadLink is Readlink under the name io/fs.ReadLinkFS uses.
func (r *Reader) ReadLink(name string) (string, error) { return r.Readlink(name) }

// Xattrs returns the extended attributes of name itself (a final symlink is not followed).
func (r *Reader) Xattrs(name string) (map[string]string, error) {
	in, err := r.resolve("xattrs", name, false)
	if err != nil {
		return nil, err
	}
	x, err := r.xattrs(in.Xattr)
	if err != nil {
		return nil, &fs.PathError{Op: "xattrs", Path: name, Err: err}
	}
	return x, nil
}

// InodeXattrs returns the extended attributes of an inode from Walk or FileInfo.Sys.
func (r *Reader) InodeXattrs(in *Inode) (map[string]string, error) { return r.xattrs(in.Xattr) }

// ReadDir lists directory name in directory order (sorted by name).
func (r *Reader) ReadDir(name string) ([]fs.DirEntry, error) {
	in, err := r.resolve("readdir", name, true)
	if err != nil {
		return nil, err
	}
	if in.Type != TypeDir {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: syscall.ENOTDIR}
	}
	ents, err := r.readDir(in)
	if err != nil {
		return nil, &fs.PathError{Op: "readdir", Path: name, Err: err}
	}
	out := make([]fs.DirEntry, len(ents))
	for i, d := range ents {
		out[i] = &dirEntry{r: r, d: d}
	}
	return out, nil
}

// ReadFile returns the content of regular file name, following symlinks.
func (r *Reader) ReadFile(name string) ([]byte, error) {
	in, err := r.resolve("readfile", name, true)
	if err != nil {
		return nil, err
	}
	if in.Type != TypeRegular {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: fmt.Errorf("is a %s, not a regular file", in.Type)}
	}
	b := make([]byte, in.Size)
	if _, err := r.readFileAt(in, b, 0); err != nil {
		return nil, &fs.PathError{Op: "readfile", Path: name, Err: err}
	}
	return b, nil
}

// InodeByNumber finds an inode through the export table, which images made with
// mksquashfs -exports (the default) carry.
func (r *Reader) InodeByNumber(n uint32) (*Inode, error) {
	if r.sb.Flags&flagExportable == 0 || r.sb.ExportTableStart == noTable {
		return nil, errors.New("export table: the image has none (made with -no-exports)")
	}
	if n == 0 || n > r.sb.InodeCount {
		return nil, fmt.Errorf("export table: inode %d: outside 1-%d", n, r.sb.InodeCount)
	}
	b, err := r.indexedEntry(region{"export table", SuperblockSize, r.sb.BytesUsed}, r.sb.ExportTableStart, uint64(n-1), 8)
	if err != nil {
		return nil, err
	}
	var ref uint64
	for i := 7; i >= 0; i-- {
		ref = ref<<8 | uint64(b[i])
	}
	block, off := splitInodeRef(ref)
	return r.inodeAt(block, off)
}

// fileInfo is the fs.FileInfo of an inode.
type fileInfo struct {
	name string
	in   *Inode
}

func (fi *fileInfo) Name() string       { return fi.name }
func (fi *fileInfo) Size() int64        { return fi.in.Size }
func (fi *fileInfo) Mode() fs.FileMode  { return fi.in.FileMode() }
func (fi *fileInfo) ModTime() time.Time { return time.Unix(fi.in.ModTime, 0) }
func (fi *fileInfo) IsDir() bool        { return fi.in.Type == TypeDir }
func (fi *fileInfo) Sys() any           { return fi.in }

// FileMode converts the inode's type and permission bits to an fs.FileMode.
func (in *Inode) FileMode() fs.FileMode {
	m := fs.FileMode(in.Mode&0777) | typeMode(in.Type)
	if in.Mode&04000 != 0 {
		m |= fs.ModeSetuid
	}
	if in.Mode&02000 != 0 {
		m |= fs.ModeSetgid
	}
	if in.Mode&01000 != 0 {
		m |= fs.ModeSticky
	}
	return m
}

func typeMode(t Type) fs.FileMode {
	switch t {
	case TypeDir:
		return fs.ModeDir
	case TypeSymlink:
		return fs.ModeSymlink
	case TypeCharDevice:
		return fs.ModeDevice | fs.ModeCharDevice
	case TypeBlockDevice:
		return fs.ModeDevice
	case TypeFIFO:
		return fs.ModeNamedPipe
	case TypeSocket:
		return fs.ModeSocket
	}
	return 0
}

// dirEntry is an fs.DirEntry; Info reads the inode.
type dirEntry struct {
	r *Reader
	d dirent
}

func (e *dirEntry) Name() string      { return e.d.name }
func (e *dirEntry) IsDir() bool       { return e.d.kind == inodeBasicDir }
func (e *dirEntry) Type() fs.FileMode { return typeMode(direntType(e.d.kind)) }
func (e *dirEntry) Info() (fs.FileInfo, error) {
	in, err := e.r.direntInode(e.d)
	if err != nil {
		return nil, err
	}
	return &fileInfo{name: e.d.name, in: in}, nil
}
func (e *dirEntry) String() string { return fs.FormatDirEntry(e) }
