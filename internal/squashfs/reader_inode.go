package squashfs

import (
	"encoding/binary"
	"fmt"
)

// Inode is one decoded inode: what FileInfo.Sys returns and Walk passes.
type Inode struct {
	// Type is TypeRegular, TypeDir, TypeSymlink, TypeCharDevice, TypeBlockDevice, TypeFIFO or
	// TypeSocket; an inode is never a TypeHardlink (hardlinks share an InodeNumber).
	Type Type
	// Mode holds the permission bits with setuid, setgid and sticky (07777).
	Mode    uint32
	UID     uint32
	GID     uint32
	ModTime int64
	Nlink   uint32
	// Size is a regular file's length, a symlink's target length, or a directory's listing size
	// as squashfs stores it (which unsquashfs prints).
	Size        int64
	InodeNumber uint32
	DevMajor    uint32
	DevMinor    uint32
	Linkname    string
	// Xattr indexes the xattr id table, or is NoXattrs.
	Xattr uint32

	ref uint64 // where the inode is: block << 16 | offset

	// Regular files: where the blocks start, their size words, the fragment holding the tail.
	start      uint64
	blocks     []uint32
	blockPos   []uint64 // absolute position of each block
	fragment   uint32
	fragOffset uint32

	// Directories: where the listing starts, its length, the index for large listings.
	dirBlock  uint32
	dirOffset uint16
	dirLen    uint32
	dirIndex  []dirIndexEntry
	parentIno uint32
}

// NoXattrs is the Inode.Xattr of an inode without extended attributes.
const NoXattrs = noXattr

// dirIndexEntry locates a directory header whose first name is name.
type dirIndexEntry struct {
	index uint32 // byte offset into the listing
	start uint32 // metadata block of that header, relative to the directory table
	name  string
}

// inodeReader wraps a cursor with little-endian decoding that remembers the first error.
type inodeReader struct {
	c   *metaCursor
	err error
	buf [8]byte
}

func (ir *inodeReader) next(n int) []byte {
	if ir.err != nil {
		return make([]byte, n)
	}
	ir.err = ir.c.read(ir.buf[:n])
	return ir.buf[:n]
}
func (ir *inodeReader) u16() uint16 { return binary.LittleEndian.Uint16(ir.next(2)) }
func (ir *inodeReader) u32() uint32 { return binary.LittleEndian.Uint32(ir.next(4)) }
func (ir *inodeReader) u64() uint64 { return binary.LittleEndian.Uint64(ir.next(8)) }

// Symlink targets longer than this are refused; Linux allows 4095 bytes.
const maxLinknameLen = 64 << 10

// inodeAt decodes the inode at offset off of the metadata block that starts block bytes into
// the inode table.
func (r *Reader) inodeAt(block uint64, off uint16) (*Inode, error) {
	c, err := r.cursorRel(r.inodes, block, off)
	if err != nil {
		return nil, err
	}
	ir := &inodeReader{c: c}
	at := c.where()
	kind := ir.u16()
	in := &Inode{ref: inodeRef(block, off), Xattr: noXattr, Nlink: 1}
	in.Mode = uint32(ir.u16()) & 07777
	uidIdx, gidIdx := ir.u16(), ir.u16()
	in.ModTime = int64(ir.u32())
	in.InodeNumber = ir.u32()
	if ir.err != nil {
		return nil, ir.err
	}
	if in.UID, err = r.id(uidIdx); err != nil {
		return nil, fmt.Errorf("inode table: inode at %s: uid %w", at, err)
	}
	if in.GID, err = r.id(gidIdx); err != nil {
		return nil, fmt.Errorf("inode table: inode at %s: gid %w", at, err)
	}
	if err := r.decodeInodeBody(ir, kind, in); err != nil {
		return nil, fmt.Errorf("inode table: inode at %s: %w", at, err)
	}
	return in, nil
}

func (r *Reader) id(i uint16) (uint32, error) {
	if int(i) >= len(r.ids) {
		return 0, fmt.Errorf("index %d: outside the id table of %d", i, len(r.ids))
	}
	return r.ids[i], nil
}

func (r *Reader) decodeInodeBody(ir *inodeReader, kind uint16, in *Inode) error {
	var err error
	switch kind {
	case inodeBasicDir, inodeExtDir:
		in.Type = TypeDir
		err = r.decodeDir(ir, kind == inodeExtDir, in)
	case inodeBasicFile, inodeExtFile:
		in.Type = TypeRegular
		err = r.decodeFile(ir, kind == inodeExtFile, in)
	case inodeBasicSymlink, inodeExtSymlink:
		in.Type = TypeSymlink
		err = decodeSymlink(ir, kind == inodeExtSymlink, in)
	case inodeBasicBlock, inodeExtBlock, inodeBasicChar, inodeExtChar:
		in.Type = TypeBlockDevice
		if kind == inodeBasicChar || kind == inodeExtChar {
			in.Type = TypeCharDevice
		}
		in.Nlink = ir.u32()
		in.DevMajor, in.DevMinor = decodeDev(ir.u32())
		if kind >= inodeExtDir {
			in.Xattr = ir.u32()
		}
	case inodeBasicFifo, inodeExtFifo, inodeBasicSocket, inodeExtSocket:
		in.Type = TypeFIFO
		if kind == inodeBasicSocket || kind == inodeExtSocket {
			in.Type = TypeSocket
		}
		in.Nlink = ir.u32()
		if kind >= inodeExtDir {
			in.Xattr = ir.u32()
		}
	default:
		return fmt.Errorf("unknown inode type %d", kind)
	}
	if err != nil {
		return err
	}
	return ir.err
}

// decodeDev splits a device number stored the way the kernel's new_encode_dev does (and
// squashfs-tools decodes): minor bits 0-7 and 20-31, major bits 8-19.
func decodeDev(rdev uint32) (major, minor uint32) {
	return (rdev >> 8) & 0xfff, (rdev & 0xff) | ((rdev >> 12) & 0xfff00)
}

func (r *Reader) decodeDir(ir *inodeReader, ext bool, in *Inode) error {
	var size uint32
	if !ext {
		in.dirBlock = ir.u32()
		in.Nlink = ir.u32()
		size = uint32(ir.u16())
		in.dirOffset = ir.u16()
		in.parentIno = ir.u32()
	} else {
		in.Nlink = ir.u32()
		size = ir.u32()
		in.dirBlock = ir.u32()
		in.parentIno = ir.u32()
		count := ir.u16()
		in.dirOffset = ir.u16()
		in.Xattr = ir.u32()
		if ir.err != nil {
			return ir.err
		}
		if err := r.decodeDirIndex(ir, count, in); err != nil {
			return err
		}
	}
	if ir.err != nil {
		return ir.err
	}
	// The stored size counts three bytes for the "." and ".." entries squashfs leaves out.
	if size < 3 {
		return fmt.Errorf("directory size %d: less than 3", size)
	}
	if in.dirOffset >= metadataBlockSize {
		return fmt.Errorf("directory listing offset %d: past a metadata block", in.dirOffset)
	}
	in.Size = int64(size)
	in.dirLen = size - 3
	return nil
}

func (r *Reader) decodeDirIndex(ir *inodeReader, count uint16, in *Inode) error {
	for i := 0; i < int(count); i++ {
		e := dirIndexEntry{index: ir.u32(), start: ir.u32()}
		n := ir.u32()
		if ir.err != nil {
			return ir.err
		}
		if n >= maxNameLen+1 {
			return fmt.Errorf("directory index entry %d: name of %d bytes", i, n+1)
		}
		name, err := ir.c.bytes(uint64(n) + 1)
		if err != nil {
			return err
		}
		e.name = string(name)
		in.dirIndex = append(in.dirIndex, e)
	}
	return nil
}

func (r *Reader) decodeFile(ir *inodeReader, ext bool, in *Inode) error {
	var size uint64
	if !ext {
		in.start = uint64(ir.u32())
		in.fragment = ir.u32()
		in.fragOffset = ir.u32()
		size = uint64(ir.u32())
	} else {
		in.start = ir.u64()
		size = ir.u64()
		ir.u64() // bytes saved by sparse blocks: informational
		in.Nlink = ir.u32()
		in.fragment = ir.u32()
		in.fragOffset = ir.u32()
		in.Xattr = ir.u32()
	}
	if ir.err != nil {
		return ir.err
	}
	if size > 1<<62 {
		return fmt.Errorf("file size %d: too large", size)
	}
	in.Size = int64(size)
	bs := uint64(r.sb.BlockSize)
	n := size / bs
	if in.fragment == noFragment {
		n = (size + bs - 1) / bs
	} else if size%bs == 0 {
		return fmt.Errorf("file of %d bytes (whole blocks) has a fragment", size)
	}
	// Read the block list in chunks so that a hostile size costs only what the table holds.
	for n > 0 {
		k := min(n, metadataBlockSize/4)
		raw, err := ir.c.bytes(k * 4)
		if err != nil {
			return fmt.Errorf("block list: %w", err)
		}
		for i := range k {
			in.blocks = append(in.blocks, binary.LittleEndian.Uint32(raw[4*i:]))
		}
		n -= k
	}
	pos := in.start
	in.blockPos = make([]uint64, len(in.blocks))
	for i, w := range in.blocks {
		in.blockPos[i] = pos
		pos += uint64(w & (dataUncompressed - 1))
	}
	return nil
}

func decodeSymlink(ir *inodeReader, ext bool, in *Inode) error {
	in.Nlink = ir.u32()
	n := ir.u32()
	if ir.err != nil {
		return ir.err
	}
	if n == 0 || n > maxLinknameLen {
		return fmt.Errorf("symlink target of %d bytes", n)
	}
	target, err := ir.c.bytes(uint64(n))
	if err != nil {
		return err
	}
	in.Linkname = string(target)
	in.Size = int64(n)
	if ext {
		in.Xattr = ir.u32()
	}
	return ir.err
}
