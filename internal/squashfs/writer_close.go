package squashfs

import (
	"encoding/binary"
	"fmt"
	"io"
)

// layout holds what Close builds after the data: the metadata tables and the lookup tables.
type layout struct {
	c       compressor
	inodes  *metaWriter
	dirs    *metaWriter
	xattrs  *metaWriter
	count   uint32            // inode count
	ids     map[uint32]uint16 // uid/gid -> id table index
	idList  []uint32
	xsets   map[string]uint32 // serialized xattr set -> xattr id
	xids    []byte            // xattr id table entries
	export  []uint64          // inode number-1 -> inode reference
	scratch []byte            //nolint:unused // unused today; left to the image packages' owner (issue 18 keeps its edits there minimal)
}

// Close drains the data pipeline, writes the inode, directory, fragment, export, id and xattr
// tables and the superblock, and leaves w positioned at the end of the (4 KiB padded) image.
// The image is complete only when Close returns nil; after an error the output holds a partial
// image that the caller removes (the build writes to a temporary file and renames it).
func (w *Writer) Close() error {
	if w.closed {
		return w.err
	}
	w.closed = true
	if w.err == nil {
		if err := w.flushFragment(); err != nil {
			w.fail(err)
		}
	}
	if err := w.pipe.wait(); err != nil && w.err == nil {
		w.err = err
	}
	if w.err != nil {
		return w.err
	}
	if err := w.finish(); err != nil {
		w.err = err
	}
	return w.err
}

func (w *Writer) finish() error {
	t := w.tree
	if err := t.resolveHardlinks(); err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}
	t.prepare()
	c, err := w.blockCodec.newCompressor()
	if err != nil {
		return err
	}
	l := &layout{c: c, inodes: newMetaWriter(c), dirs: newMetaWriter(c), xattrs: newMetaWriter(c),
		ids: map[uint32]uint16{}, xsets: map[string]uint32{}}
	// Number inodes in the order they are written; directories need their parent's number.
	if err := t.postOrder(func(n *treeNode) error { l.count++; n.ino = l.count; return nil }); err != nil {
		return err
	}
	l.export = make([]uint64, l.count)
	if err := t.postOrder(func(n *treeNode) error { return w.writeInode(l, n) }); err != nil {
		return err
	}
	sb := Superblock{Magic: Magic, InodeCount: l.count, ModTime: clampTime(w.opts.ModTime),
		BlockSize: w.opts.BlockSize, FragmentCount: w.stats.Fragments, Compression: w.opts.Compression,
		BlockLog: uint16(blockLog(w.opts.BlockSize)), Flags: w.flags(), VersionMajor: 4, RootInode: t.root.ref}
	if err := w.writeTables(l, &sb); err != nil {
		return err
	}
	w.stats.Inodes = l.count
	for _, n := range t.byPath {
		if n.attr.Type == TypeDir {
			w.stats.Dirs++
		}
	}
	return w.writeSuperblock(&sb)
}

func blockLog(v uint32) int {
	n := 0
	for v > 1 {
		v >>= 1
		n++
	}
	return n
}

func (w *Writer) flags() uint16 {
	f := uint16(0)
	if w.opts.NoFragments {
		f |= flagNoFragments
	} else {
		f |= flagAlwaysFragments // tails of large files go to fragments too
	}
	if !w.opts.NoDuplicates {
		f |= flagDuplicates
	}
	if !w.opts.NoExport {
		f |= flagExportable
	}
	if w.opts.NoXattrs {
		f |= flagNoXattrs
	}
	if w.blockCodec.options() != nil {
		f |= flagCompressorOptions
	}
	return f
}

// writeTables writes every table after the data, in the order the kernel's sanity checks expect:
// inodes, directories, fragments, export, ids, xattrs.
func (w *Writer) writeTables(l *layout, sb *Superblock) error {
	inodes, err := l.inodes.finish()
	if err != nil {
		return err
	}
	dirs, err := l.dirs.finish()
	if err != nil {
		return err
	}
	sb.InodeTableStart = w.pos
	if err = w.write(inodes); err != nil {
		return err
	}
	sb.DirectoryTableStart = w.pos
	if err = w.write(dirs); err != nil {
		return err
	}
	if sb.FragmentTableStart, err = w.writeTable(l.c, fragmentTable(w.pipe.frags)); err != nil {
		return err
	}
	sb.ExportTableStart = noTable
	if !w.opts.NoExport {
		if sb.ExportTableStart, err = w.writeTable(l.c, u64Table(l.export)); err != nil {
			return err
		}
	}
	if len(l.idList) > 1<<16 {
		return fmt.Errorf("squashfs: %d distinct uids and gids, the format holds at most 65536", len(l.idList))
	}
	sb.IDCount = uint16(len(l.idList))
	var ids []byte
	for _, id := range l.idList {
		ids = binary.LittleEndian.AppendUint32(ids, id)
	}
	if sb.IDTableStart, err = w.writeTable(l.c, ids); err != nil {
		return err
	}
	sb.XattrIDTableStart = noTable
	if len(l.xids) > 0 {
		if sb.XattrIDTableStart, err = w.writeXattrTables(l); err != nil {
			return err
		}
	}
	sb.BytesUsed = w.pos
	return nil
}

// writeXattrTables writes the key/value pairs, the xattr id entries, and the id table header
// with its index; the superblock points at the header.
func (w *Writer) writeXattrTables(l *layout) (uint64, error) {
	kv, err := l.xattrs.finish()
	if err != nil {
		return 0, err
	}
	kvStart := w.pos
	if err = w.write(kv); err != nil {
		return 0, err
	}
	var index []byte
	var blk, scratch []byte
	data := l.xids
	for len(data) > 0 {
		n := min(len(data), metadataBlockSize)
		index = binary.LittleEndian.AppendUint64(index, w.pos)
		if blk, scratch, err = appendMetaBlock(blk[:0], scratch, data[:n], l.c); err != nil {
			return 0, err
		}
		if err := w.write(blk); err != nil {
			return 0, err
		}
		data = data[n:]
	}
	start := w.pos
	head := binary.LittleEndian.AppendUint64(nil, kvStart)
	head = binary.LittleEndian.AppendUint32(head, uint32(len(l.xids)/16))
	head = binary.LittleEndian.AppendUint32(head, 0)
	return start, w.write(append(head, index...))
}

func fragmentTable(frags []fragmentRecord) []byte {
	b := make([]byte, 0, 16*len(frags))
	for _, f := range frags {
		b = binary.LittleEndian.AppendUint64(b, f.start)
		b = binary.LittleEndian.AppendUint32(b, f.size)
		b = binary.LittleEndian.AppendUint32(b, 0)
	}
	return b
}

func u64Table(v []uint64) []byte {
	b := make([]byte, 0, 8*len(v))
	for _, x := range v {
		b = binary.LittleEndian.AppendUint64(b, x)
	}
	return b
}

// writeSuperblock pads the image to 4 KiB (loop devices read whole blocks), writes the
// superblock at the start and leaves the output at the end of the image.
func (w *Writer) writeSuperblock(sb *Superblock) error {
	end := (sb.BytesUsed + 4095) &^ 4095
	if err := w.write(make([]byte, end-sb.BytesUsed)); err != nil {
		return err
	}
	w.stats.BytesOut = end
	head, err := sb.MarshalBinary()
	if err != nil {
		return fmt.Errorf("squashfs: superblock: %w", err)
	}
	if err := w.seek(0); err != nil {
		return err
	}
	if err := w.write(head); err != nil {
		return err
	}
	if err := w.seek(end); err != nil {
		return err
	}
	return w.trim(end)
}

// trim removes bytes past the end that a rewind over a final duplicate left behind.
func (w *Writer) trim(end uint64) error {
	if w.max <= end {
		return nil
	}
	t, ok := w.w.(interface{ Truncate(int64) error })
	if !ok {
		// Cannot shorten the output: blank the stale bytes so no old data follows the image.
		if err := w.write(make([]byte, w.max-end)); err != nil {
			return err
		}
		return w.seek(end)
	}
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("squashfs: write image: %w", err)
	}
	if err := t.Truncate(w.base + int64(end)); err != nil {
		return fmt.Errorf("squashfs: truncate image: %w", err)
	}
	_, err := w.w.Seek(w.base+int64(end), io.SeekStart)
	return err
}
