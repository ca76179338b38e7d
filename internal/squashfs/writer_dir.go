package squashfs

import (
	"encoding/binary"
	"math"
)

// listingIndex is one directory index entry: where a header starts in the listing, in which directory
// table block, and the first name under it. The kernel binary-searches these on lookup.
type listingIndex struct {
	off    uint32
	ublock uint64 // uncompressed block number in the directory table
	name   string
}

// dirInode writes n's listing to the directory table and returns its inode.
func (w *Writer) dirInode(l *layout, n *treeNode) ([]byte, error) {
	startU := l.dirs.upos()
	listing, index := buildListing(n, startU)
	if err := l.dirs.write(listing); err != nil {
		return nil, err
	}
	// Every block the listing touched is now flushed or current, so their offsets are known.
	start := l.dirs.blockStart(startU / metadataBlockSize)
	offset := uint16(startU % metadataBlockSize)
	xattr, err := l.xattr(n.attr.Xattrs)
	if err != nil {
		return nil, err
	}
	size := uint64(len(listing)) + 3 // the kernel counts "." and ".." as 3 bytes
	parent := l.count + 1            // the root's parent, as mksquashfs writes it
	if n.parent != nil {
		parent = n.parent.ino
	}
	if len(index) == 0 && size <= math.MaxUint16 && xattr == noXattr {
		b, herr := l.header(n, inodeBasicDir)
		if herr != nil {
			return nil, herr
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(start))
		b = binary.LittleEndian.AppendUint32(b, n.nlink)
		b = binary.LittleEndian.AppendUint16(b, uint16(size))
		b = binary.LittleEndian.AppendUint16(b, offset)
		return binary.LittleEndian.AppendUint32(b, parent), nil
	}
	b, err := l.header(n, inodeExtDir)
	if err != nil {
		return nil, err
	}
	b = binary.LittleEndian.AppendUint32(b, n.nlink)
	b = binary.LittleEndian.AppendUint32(b, uint32(size))
	b = binary.LittleEndian.AppendUint32(b, uint32(start))
	b = binary.LittleEndian.AppendUint32(b, parent)
	b = binary.LittleEndian.AppendUint16(b, uint16(len(index)))
	b = binary.LittleEndian.AppendUint16(b, offset)
	b = binary.LittleEndian.AppendUint32(b, xattr)
	for _, ix := range index {
		b = binary.LittleEndian.AppendUint32(b, ix.off)
		b = binary.LittleEndian.AppendUint32(b, uint32(l.dirs.blockStart(ix.ublock)))
		b = binary.LittleEndian.AppendUint32(b, uint32(len(ix.name)-1))
		b = append(b, ix.name...)
	}
	return b, nil
}

// buildListing encodes a directory's entries. A new header starts at 256 entries, when the
// inode block changes, when the inode number delta leaves int16, and when an entry starts in a
// later directory-table block than its header, so that every block has a header to index.
func buildListing(n *treeNode, startU uint64) ([]byte, []listingIndex) {
	var b []byte
	var index []listingIndex
	countAt, count := -1, 0
	var hdrBlock, hdrUBlock uint64
	var hdrIno uint32
	lastIndexed := startU / metadataBlockSize
	for _, c := range n.sorted {
		o := c.inodeOwner()
		block, off := splitInodeRef(o.ref)
		entU := (startU + uint64(len(b))) / metadataBlockSize
		delta := int64(o.ino) - int64(hdrIno)
		if countAt < 0 || count == maxDirHeaderEntries || block != hdrBlock || entU != hdrUBlock ||
			delta < math.MinInt16 || delta > math.MaxInt16 {
			if countAt >= 0 {
				binary.LittleEndian.PutUint32(b[countAt:], uint32(count-1))
			}
			if len(b) > 0 && entU != lastIndexed {
				index = append(index, listingIndex{off: uint32(len(b)), ublock: entU, name: c.name})
				lastIndexed = entU
			}
			countAt, count = len(b), 0
			hdrBlock, hdrUBlock, hdrIno = block, entU, o.ino
			b = binary.LittleEndian.AppendUint32(b, 0)
			b = binary.LittleEndian.AppendUint32(b, uint32(block))
			b = binary.LittleEndian.AppendUint32(b, o.ino)
			delta = 0
		}
		b = binary.LittleEndian.AppendUint16(b, off)
		b = binary.LittleEndian.AppendUint16(b, uint16(int16(delta)))
		b = binary.LittleEndian.AppendUint16(b, dirEntryType(o.attr.Type))
		b = binary.LittleEndian.AppendUint16(b, uint16(len(c.name)-1))
		b = append(b, c.name...)
		count++
	}
	if countAt >= 0 {
		binary.LittleEndian.PutUint32(b[countAt:], uint32(count-1))
	}
	return b, index
}
