package squashfs

import (
	"encoding/binary"
	"fmt"
)

// metaWriter builds one metadata table (inodes, directories, xattr pairs): 8 KiB blocks, each
// compressed as it fills, kept in memory until Close writes the tables in order.
type metaWriter struct {
	c       compressor
	pending []byte
	out     []byte
	starts  []uint64 // compressed offset of each flushed block
	scratch []byte
}

func newMetaWriter(c compressor) *metaWriter {
	return &metaWriter{c: c, pending: make([]byte, 0, 2*metadataBlockSize)}
}

// ref is the position of the next byte: the start of its block in the table, and its offset
// inside the uncompressed block. Inode, directory and xattr references are made of these.
func (m *metaWriter) ref() (uint64, uint16) {
	return uint64(len(m.out)), uint16(len(m.pending))
}

// upos is the number of uncompressed bytes written so far.
func (m *metaWriter) upos() uint64 {
	return uint64(len(m.starts))*metadataBlockSize + uint64(len(m.pending))
}

// blockStart is the compressed offset of uncompressed block k, which must be flushed or current.
func (m *metaWriter) blockStart(k uint64) uint64 {
	if k < uint64(len(m.starts)) {
		return m.starts[k]
	}
	return uint64(len(m.out))
}

func (m *metaWriter) write(b []byte) error {
	m.pending = append(m.pending, b...)
	for len(m.pending) >= metadataBlockSize {
		if err := m.flush(metadataBlockSize); err != nil {
			return err
		}
	}
	return nil
}

// flush compresses the first n pending bytes into one block.
func (m *metaWriter) flush(n int) error {
	m.starts = append(m.starts, uint64(len(m.out)))
	var err error
	m.out, m.scratch, err = appendMetaBlock(m.out, m.scratch, m.pending[:n], m.c)
	if err != nil {
		return err
	}
	m.pending = append(m.pending[:0], m.pending[n:]...)
	return nil
}

// finish flushes the last, partial block and returns the table.
func (m *metaWriter) finish() ([]byte, error) {
	if len(m.pending) > 0 {
		if err := m.flush(len(m.pending)); err != nil {
			return nil, err
		}
	}
	return m.out, nil
}

// appendMetaBlock appends one metadata block (16-bit header, then data) to dst, stored as is when
// compression does not shrink it.
func appendMetaBlock(dst, scratch, src []byte, c compressor) ([]byte, []byte, error) {
	out, err := c.compress(scratch, src)
	if err != nil {
		return dst, scratch, fmt.Errorf("squashfs: compress metadata: %w", err)
	}
	if len(out) >= len(src) {
		dst = binary.LittleEndian.AppendUint16(dst, uint16(len(src))|metadataUncompressed)
		return append(dst, src...), out, nil
	}
	dst = binary.LittleEndian.AppendUint16(dst, uint16(len(out)))
	return append(dst, out...), out, nil
}

// writeTable writes a table of fixed-size entries (fragments, export, ids, xattr ids) as
// metadata blocks followed by the index of their positions, and returns the index position.
func (w *Writer) writeTable(c compressor, data []byte) (uint64, error) {
	var index []byte
	var blk, scratch []byte
	var err error
	for len(data) > 0 {
		n := min(len(data), metadataBlockSize)
		index = binary.LittleEndian.AppendUint64(index, w.pos)
		blk, scratch, err = appendMetaBlock(blk[:0], scratch, data[:n], c)
		if err != nil {
			return 0, err
		}
		if err := w.write(blk); err != nil {
			return 0, err
		}
		data = data[n:]
	}
	start := w.pos
	return start, w.write(index)
}
