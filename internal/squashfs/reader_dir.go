package squashfs

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io/fs"
	"sort"
)

// dirent is one decoded directory entry.
type dirent struct {
	name string
	kind uint16 // basic inode type
	ref  uint64 // inode reference
	ino  uint32
}

// dirHeaderSize and direntSize are the fixed parts of a directory header and entry.
const (
	dirHeaderSize = 12
	direntSize    = 8
)

// readDir decodes the whole listing of directory inode in.
func (r *Reader) readDir(in *Inode) ([]dirent, error) {
	return r.scanDir(in, in.dirBlock, in.dirOffset, in.dirLen, nil)
}

// scanDir decodes len bytes of listing starting at (block, off) of the directory table. When
// stop is set it returns as soon as stop says the wanted entry cannot come later (names are
// sorted), with that entry only. Names are compared in place and turned into strings only
// when kept, so a lookup allocates little.
func (r *Reader) scanDir(in *Inode, block uint32, off uint16, n uint32, stop func(name []byte) bool) ([]dirent, error) {
	if n == 0 {
		return nil, nil
	}
	c, err := r.cursorRel(r.dirs, uint64(block), off)
	if err != nil {
		return nil, fmt.Errorf("directory of inode %d: %w", in.InodeNumber, err)
	}
	var out []dirent
	var bufs [2][maxNameLen + 1]byte
	var prev []byte
	left := uint64(n)
	for i := 0; left > 0; {
		at := c.where()
		if left < dirHeaderSize {
			return nil, fmt.Errorf("directory table: header at %s: %d bytes left in the listing: %w", at, left, ErrTruncated)
		}
		var hdr [dirHeaderSize]byte
		if err := c.read(hdr[:]); err != nil {
			return nil, err
		}
		left -= dirHeaderSize
		count := uint64(binary.LittleEndian.Uint32(hdr[0:])) + 1
		start := uint64(binary.LittleEndian.Uint32(hdr[4:]))
		base := binary.LittleEndian.Uint32(hdr[8:])
		if count > maxDirHeaderEntries {
			return nil, fmt.Errorf("directory table: header at %s: %d entries (at most %d)", at, count, maxDirHeaderEntries)
		}
		for range count {
			name := bufs[i%2][:]
			i++
			d, used, err := readDirent(c, left, start, base, &name)
			if err != nil {
				return nil, err
			}
			left -= used
			if prev != nil && string(name) <= string(prev) {
				return nil, fmt.Errorf("directory table: entry %q at %s: not after %q (names must be sorted and unique)", name, c.where(), prev)
			}
			prev = name
			if stop == nil {
				d.name = string(name)
				out = append(out, d)
			} else if stop(name) {
				d.name = string(name)
				return []dirent{d}, nil
			}
		}
	}
	return out, nil
}

// readDirent decodes one entry that must fit in the left bytes of the listing. The name is
// read into *name (which has room for the longest) and *name is cut to its length.
func readDirent(c *metaCursor, left, start uint64, base uint32, name *[]byte) (dirent, uint64, error) {
	at := c.where()
	if left < direntSize {
		return dirent{}, 0, fmt.Errorf("directory table: entry at %s: %d bytes left in the listing: %w", at, left, ErrTruncated)
	}
	var b [direntSize]byte
	if err := c.read(b[:]); err != nil {
		return dirent{}, 0, err
	}
	off := binary.LittleEndian.Uint16(b[0:])
	delta := int16(binary.LittleEndian.Uint16(b[2:]))
	kind := binary.LittleEndian.Uint16(b[4:])
	size := uint64(binary.LittleEndian.Uint16(b[6:])) + 1
	if size > maxNameLen+1 || size > left-direntSize {
		return dirent{}, 0, fmt.Errorf("directory table: entry at %s: name of %d bytes", at, size)
	}
	*name = (*name)[:size]
	if err := c.read(*name); err != nil {
		return dirent{}, 0, err
	}
	if !validName(*name) {
		return dirent{}, 0, fmt.Errorf("directory table: entry at %s: invalid name %q", at, *name)
	}
	if kind < inodeBasicDir || kind > inodeBasicSocket {
		return dirent{}, 0, fmt.Errorf("directory table: entry %q at %s: bad type %d", *name, at, kind)
	}
	return dirent{kind: kind, ref: inodeRef(start, off), ino: uint32(int64(base) + int64(delta))}, direntSize + size, nil
}

// validName rejects names that would let a listing step outside its directory.
func validName(name []byte) bool {
	s := string(name) // no copy: the compiler elides it in comparisons
	return s != "" && s != "." && s != ".." && bytes.IndexByte(name, '/') < 0 && bytes.IndexByte(name, 0) < 0
}

// lookup finds name in directory inode in, using the directory index to skip to the right
// metadata block of a large listing.
func (r *Reader) lookup(in *Inode, name string) (dirent, error) {
	block, off, n := in.dirBlock, in.dirOffset, in.dirLen
	// The last index entry whose first name is <= name is where name must be, if anywhere.
	i := sort.Search(len(in.dirIndex), func(i int) bool { return in.dirIndex[i].name > name }) - 1
	if i >= 0 {
		e := in.dirIndex[i]
		if e.index > in.dirLen {
			return dirent{}, fmt.Errorf("directory index of inode %d: entry %d points past the listing", in.InodeNumber, i)
		}
		block, off, n = e.start, uint16((uint32(in.dirOffset)+e.index)%metadataBlockSize), in.dirLen-e.index
	}
	ents, err := r.scanDir(in, block, off, n, func(s []byte) bool { return string(s) >= name })
	if err != nil {
		return dirent{}, err
	}
	if len(ents) > 0 && ents[len(ents)-1].name == name {
		return ents[len(ents)-1], nil
	}
	return dirent{}, fs.ErrNotExist
}
