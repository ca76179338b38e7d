package squashfs

import (
	"fmt"
	"io/fs"
)

// The inode-level API: what a file system server needs to answer by inode instead of by path.
// An inode is named by its reference (Inode.Ref), which stays valid for the life of the image.

// DirEntry is one entry of a directory listing.
type DirEntry struct {
	Name string
	Type Type
	// InodeNumber is the entry's inode number (hardlinks share it).
	InodeNumber uint32
	// Ref locates the entry's inode for InodeAt.
	Ref uint64
}

// Root returns the root directory's inode.
func (r *Reader) Root() *Inode { return r.root }

// HasXattrTable reports whether the image carries an xattr table at all (mksquashfs -no-xattrs
// and images of trees without attributes have none).
func (r *Reader) HasXattrTable() bool { return r.sb.XattrIDTableStart != noTable }

// Ref is where the inode is stored (InodeAt reads it again): an opaque, stable handle below 2^48.
func (in *Inode) Ref() uint64 { return in.ref }

// ParentInodeNumber is a directory's parent's inode number (the root's is the image's inode
// count plus one, as mksquashfs writes it); 0 for other types.
func (in *Inode) ParentInodeNumber() uint32 { return in.parentIno }

// InodeAt decodes the inode at ref (from Inode.Ref or DirEntry.Ref).
func (r *Reader) InodeAt(ref uint64) (*Inode, error) {
	if ref>>48 != 0 {
		return nil, fmt.Errorf("inode table: reference 0x%x: out of range", ref)
	}
	block, off := splitInodeRef(ref)
	return r.inodeAt(block, off)
}

// LookupInode finds name in directory dir and returns its inode; an error wrapping
// fs.ErrNotExist when there is no such entry.
func (r *Reader) LookupInode(dir *Inode, name string) (*Inode, error) {
	if dir.Type != TypeDir {
		return nil, fmt.Errorf("inode %d: is a %s, not a directory", dir.InodeNumber, dir.Type)
	}
	if !validName([]byte(name)) {
		return nil, fs.ErrNotExist
	}
	d, err := r.lookup(dir, name)
	if err != nil {
		return nil, err
	}
	return r.direntInode(d)
}

// DirEntries returns directory dir's listing, sorted by name, without "." and "..".
func (r *Reader) DirEntries(dir *Inode) ([]DirEntry, error) {
	if dir.Type != TypeDir {
		return nil, fmt.Errorf("inode %d: is a %s, not a directory", dir.InodeNumber, dir.Type)
	}
	ds, err := r.readDir(dir)
	if err != nil {
		return nil, err
	}
	out := make([]DirEntry, len(ds))
	for i, d := range ds {
		out[i] = DirEntry{Name: d.name, Type: direntType(d.kind), InodeNumber: d.ino, Ref: d.ref}
	}
	return out, nil
}

// ReadFileAt reads regular file in's content at off into p, as io.ReaderAt does (io.EOF at the
// end). It is safe for concurrent use.
func (r *Reader) ReadFileAt(in *Inode, p []byte, off int64) (int, error) {
	if in.Type != TypeRegular {
		return 0, fmt.Errorf("inode %d: is a %s, not a regular file", in.InodeNumber, in.Type)
	}
	return r.readFileAt(in, p, off)
}
