package squashfs

import (
	"encoding/binary"
	"fmt"
	"io"
)

// fragment is one fragment table entry: a block holding the tails of several files.
type fragment struct {
	start uint64
	size  uint32 // size word: bit 24 set when stored uncompressed
}

func (r *Reader) fragmentEntry(i uint32) (fragment, error) {
	if i >= r.sb.FragmentCount {
		return fragment{}, fmt.Errorf("fragment table: fragment %d: outside the table of %d", i, r.sb.FragmentCount)
	}
	b, err := r.indexedEntry(region{"fragment table", SuperblockSize, r.sb.BytesUsed}, r.sb.FragmentTableStart, uint64(i), 16)
	if err != nil {
		return fragment{}, err
	}
	return fragment{start: binary.LittleEndian.Uint64(b), size: binary.LittleEndian.Uint32(b[8:])}, nil
}

// dataBlock returns the decompressed block stored at pos with size word w, which must expand
// to exactly want bytes. table names the block in messages.
func (r *Reader) dataBlock(table string, pos uint64, w uint32, want int) ([]byte, error) {
	n := uint64(w &^ dataUncompressed)
	if n > uint64(r.sb.BlockSize) {
		return nil, fmt.Errorf("%s at 0x%x: size word 0x%x: larger than the block size %d", table, pos, w, r.sb.BlockSize)
	}
	if cb, ok := r.data.get(pos); ok && len(cb.data) == want {
		return cb.data, nil
	}
	raw, err := r.readAt(table, pos, n)
	if err != nil {
		return nil, err
	}
	data := raw
	if w&dataUncompressed == 0 {
		if data, err = r.dec.decompress(raw, int(r.sb.BlockSize)); err != nil {
			return nil, fmt.Errorf("%s at 0x%x: %w", table, pos, err)
		}
	}
	if len(data) != want {
		return nil, fmt.Errorf("%s at 0x%x: %d bytes, want %d", table, pos, len(data), want)
	}
	r.data.put(pos, cachedBlock{data: data})
	return data, nil
}

// fileBlock returns block i of regular file in: a data block, a run of zeros for a sparse
// block, or the tail stored in a fragment.
func (r *Reader) fileBlock(in *Inode, i int64) ([]byte, error) {
	bs := int64(r.sb.BlockSize)
	want := int(min(bs, in.Size-i*bs))
	if i < int64(len(in.blocks)) {
		w := in.blocks[i]
		if w&^dataUncompressed == 0 {
			return r.zeros()[:want], nil
		}
		return r.dataBlock("data block", in.blockPos[i], w, want)
	}
	f, err := r.fragmentEntry(in.fragment)
	if err != nil {
		return nil, err
	}
	// Fragments are cached whole; their length is whatever they expand to.
	frag, err := r.fragmentBlock(f)
	if err != nil {
		return nil, err
	}
	end := uint64(in.fragOffset) + uint64(want)
	if end > uint64(len(frag)) {
		return nil, fmt.Errorf("fragment %d at 0x%x: tail %d+%d past its %d bytes: %w", in.fragment, f.start, in.fragOffset, want, len(frag), ErrTruncated)
	}
	return frag[in.fragOffset:end], nil
}

func (r *Reader) fragmentBlock(f fragment) ([]byte, error) {
	if cb, ok := r.data.get(f.start); ok {
		return cb.data, nil
	}
	n := uint64(f.size &^ dataUncompressed)
	if n == 0 || n > uint64(r.sb.BlockSize) {
		return nil, fmt.Errorf("fragment block at 0x%x: size word 0x%x: bad size", f.start, f.size)
	}
	raw, err := r.readAt("fragment block", f.start, n)
	if err != nil {
		return nil, err
	}
	data := raw
	if f.size&dataUncompressed == 0 {
		if data, err = r.dec.decompress(raw, int(r.sb.BlockSize)); err != nil {
			return nil, fmt.Errorf("fragment block at 0x%x: %w", f.start, err)
		}
	}
	r.data.put(f.start, cachedBlock{data: data})
	return data, nil
}

// readFileAt implements io.ReaderAt for regular file in.
func (r *Reader) readFileAt(in *Inode, p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at negative offset %d", off)
	}
	bs := int64(r.sb.BlockSize)
	n := 0
	for n < len(p) && off < in.Size {
		b, err := r.fileBlock(in, off/bs)
		if err != nil {
			return n, err
		}
		k := copy(p[n:], b[off%bs:])
		n += k
		off += int64(k)
	}
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

// FileReader returns the content of regular file in (from Walk or FileInfo.Sys) without a
// path lookup. The SectionReader's ReadAt is safe for concurrent use.
func (r *Reader) FileReader(in *Inode) (*io.SectionReader, error) {
	if in.Type != TypeRegular {
		return nil, fmt.Errorf("inode %d: is a %s, not a regular file", in.InodeNumber, in.Type)
	}
	return io.NewSectionReader(inodeReaderAt{r, in}, 0, in.Size), nil
}

type inodeReaderAt struct {
	r  *Reader
	in *Inode
}

func (ia inodeReaderAt) ReadAt(p []byte, off int64) (int, error) {
	return ia.r.readFileAt(ia.in, p, off)
}
