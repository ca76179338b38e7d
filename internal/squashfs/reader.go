package squashfs

import (
	"encoding/binary"
	"fmt"
	"io"
	"sync"

	"github.com/hpcctl/hpcctl/internal/squashfs/superblock"
)

// Reader reads a squashfs 4.0 image through an io.ReaderAt.
//
// A Reader is safe for concurrent use by multiple goroutines, provided the io.ReaderAt is (an
// *os.File is): its state after Open is read-only except for the block caches, which lock.
// Paths follow fs.ValidPath except that they need not be UTF-8, since Linux names are bytes.
// Every structure read from the image is bounds-checked; a damaged or hostile image yields an
// error naming the table and offset, never a panic, a hang or an allocation larger than a few
// blocks.
type Reader struct {
	ra  io.ReaderAt
	sb  Superblock
	dec decompressor
	ids []uint32

	inodes, dirs region
	meta, data   *lru

	xattrKV    uint64 // start of the xattr key/value metadata blocks
	xattrCount uint32

	root *Inode

	// zeros returns a shared, read-only block of zeros: what a sparse block reads as.
	zeros func() []byte
}

// Cache sizes: 64 metadata blocks is 512 KiB; 8 data blocks is at most 8 MiB with 1 MiB blocks,
// enough for a few goroutines to read files sequentially without thrashing.
const (
	metaCacheBlocks = 64
	dataCacheBlocks = 8
)

// ErrTruncated is wrapped by errors for structures that run past the end of the image or table.
var ErrTruncated = superblock.ErrTruncated

// region is the byte range a table's metadata blocks must lie in.
type region struct {
	name   string
	lo, hi uint64
}

// Open reads and checks the superblock, compressor options and id table of the image held in
// the first size bytes of ra, and the root directory inode. Other tables are read when needed.
func Open(ra io.ReaderAt, size int64) (*Reader, error) {
	r := &Reader{ra: ra, meta: newLRU(metaCacheBlocks), data: newLRU(dataCacheBlocks)}
	if err := r.readSuperblock(size); err != nil {
		return nil, err
	}
	opts, err := r.readCompressorOptions()
	if err != nil {
		return nil, err
	}
	bs := int(r.sb.BlockSize)
	r.zeros = sync.OnceValue(func() []byte { return make([]byte, bs) })
	if r.dec, err = newDecompressor(r.sb.Compression, opts, int(r.sb.BlockSize)); err != nil {
		return nil, err
	}
	if err = r.readIDTable(); err != nil {
		return nil, err
	}
	if err = r.readXattrHeader(); err != nil {
		return nil, err
	}
	if err = r.checkOptionalTables(); err != nil {
		return nil, err
	}
	block, off := splitInodeRef(r.sb.RootInode)
	if r.root, err = r.inodeAt(block, off); err != nil {
		return nil, fmt.Errorf("root inode: %w", err)
	}
	if r.root.Type != TypeDir {
		return nil, fmt.Errorf("root inode: is a %s, not a directory", r.root.Type)
	}
	return r, nil
}

// Superblock returns a copy of the image's superblock.
func (r *Reader) Superblock() Superblock { return r.sb }

func (r *Reader) readSuperblock(size int64) error {
	if size < SuperblockSize {
		return fmt.Errorf("superblock: image is %d bytes: %w", size, ErrTruncated)
	}
	b := make([]byte, SuperblockSize)
	if _, err := r.ra.ReadAt(b, 0); err != nil {
		return fmt.Errorf("superblock: %w", err)
	}
	if err := r.sb.UnmarshalBinary(b); err != nil {
		return err
	}
	sb := &r.sb
	if err := sb.CheckLayout(size); err != nil {
		return err
	}
	r.inodes = region{"inode table", sb.InodeTableStart, sb.DirectoryTableStart}
	dirEnd := sb.BytesUsed
	for _, t := range []uint64{sb.FragmentTableStart, sb.ExportTableStart, sb.IDTableStart, sb.XattrIDTableStart} {
		if t != noTable && t >= sb.DirectoryTableStart && t < dirEnd {
			dirEnd = t
		}
	}
	r.dirs = region{"directory table", sb.DirectoryTableStart, dirEnd}
	return nil
}

// readCompressorOptions returns the options block that follows the superblock, or nil.
// squashfs-tools always stores it uncompressed.
func (r *Reader) readCompressorOptions() ([]byte, error) {
	if r.sb.Flags&flagCompressorOptions == 0 {
		return nil, nil
	}
	hdr, err := r.readAt("compressor options", SuperblockSize, 2)
	if err != nil {
		return nil, err
	}
	h := binary.LittleEndian.Uint16(hdr)
	n := uint64(h & metadataSizeMask)
	if h&metadataUncompressed == 0 || n > 64 {
		return nil, fmt.Errorf("compressor options: block header 0x%04x at 0x%x: want an uncompressed block of at most 64 bytes", h, SuperblockSize)
	}
	return r.readAt("compressor options", SuperblockSize+2, n)
}

// readAt reads n bytes at off, which must lie within bytes_used.
func (r *Reader) readAt(table string, off, n uint64) ([]byte, error) {
	if off > r.sb.BytesUsed || n > r.sb.BytesUsed-off {
		return nil, fmt.Errorf("%s: %d bytes at 0x%x: past the end of the image (0x%x): %w", table, n, off, r.sb.BytesUsed, ErrTruncated)
	}
	b := make([]byte, n)
	if _, err := r.ra.ReadAt(b, int64(off)); err != nil {
		return nil, fmt.Errorf("%s: %d bytes at 0x%x: %w", table, n, off, err)
	}
	return b, nil
}

// readU64At reads one table pointer.
func (r *Reader) readU64At(table string, off uint64) (uint64, error) {
	b, err := r.readAt(table, off, 8)
	if err != nil {
		return 0, err
	}
	return binary.LittleEndian.Uint64(b), nil
}

// metaBlock returns the decompressed metadata block at absolute position pos, which must lie
// in reg, and the position of the block after it.
func (r *Reader) metaBlock(reg region, pos uint64) (cachedBlock, error) {
	if cb, ok := r.meta.get(pos); ok {
		return cb, nil
	}
	if pos < reg.lo || pos >= reg.hi || reg.hi-pos < 2 {
		return cachedBlock{}, fmt.Errorf("%s: metadata block at 0x%x: outside the table (0x%x-0x%x): %w", reg.name, pos, reg.lo, reg.hi, ErrTruncated)
	}
	hdr, err := r.readAt(reg.name, pos, 2)
	if err != nil {
		return cachedBlock{}, err
	}
	h := binary.LittleEndian.Uint16(hdr)
	n := uint64(h & metadataSizeMask)
	if n == 0 || n > metadataBlockSize {
		return cachedBlock{}, fmt.Errorf("%s: metadata block at 0x%x: bad size %d", reg.name, pos, n)
	}
	if n > reg.hi-pos-2 {
		return cachedBlock{}, fmt.Errorf("%s: metadata block at 0x%x: %d bytes run past the table end 0x%x: %w", reg.name, pos, n, reg.hi, ErrTruncated)
	}
	raw, err := r.readAt(reg.name, pos+2, n)
	if err != nil {
		return cachedBlock{}, err
	}
	data := raw
	if h&metadataUncompressed == 0 {
		if data, err = r.dec.decompress(raw, metadataBlockSize); err != nil {
			return cachedBlock{}, fmt.Errorf("%s: metadata block at 0x%x: %w", reg.name, pos, err)
		}
	}
	cb := cachedBlock{data: data, next: pos + 2 + n}
	r.meta.put(pos, cb)
	return cb, nil
}

// metaCursor reads a byte stream that runs through consecutive metadata blocks of one table.
// It only moves forward, so a hostile chain of blocks cannot loop.
type metaCursor struct {
	r   *Reader
	reg region
	pos uint64 // absolute position of the current block
	cur cachedBlock
	off int
}

// cursorAt starts reading at offset off of the block at absolute position pos.
func (r *Reader) cursorAt(reg region, pos uint64, off uint16) (*metaCursor, error) {
	cb, err := r.metaBlock(reg, pos)
	if err != nil {
		return nil, err
	}
	if int(off) > len(cb.data) {
		return nil, fmt.Errorf("%s: offset %d in metadata block at 0x%x: past its %d bytes: %w", reg.name, off, pos, len(cb.data), ErrTruncated)
	}
	return &metaCursor{r: r, reg: reg, pos: pos, cur: cb, off: int(off)}, nil
}

// cursorRel is cursorAt for a block given relative to the table start, as inode references
// and directory headers store it.
func (r *Reader) cursorRel(reg region, block uint64, off uint16) (*metaCursor, error) {
	if block >= reg.hi-reg.lo {
		return nil, fmt.Errorf("%s: metadata block 0x%x (relative): outside the table: %w", reg.name, block, ErrTruncated)
	}
	return r.cursorAt(reg, reg.lo+block, off)
}

// read fills p, crossing block boundaries as needed.
func (c *metaCursor) read(p []byte) error {
	for len(p) > 0 {
		if c.off == len(c.cur.data) {
			next := c.cur.next
			cb, err := c.r.metaBlock(c.reg, next)
			if err != nil {
				return err
			}
			c.pos, c.cur, c.off = next, cb, 0
		}
		n := copy(p, c.cur.data[c.off:])
		c.off += n
		p = p[n:]
	}
	return nil
}

// bytes reads n bytes into a new slice, growing it only as data arrives so that a hostile
// length costs no more memory than the table really holds.
func (c *metaCursor) bytes(n uint64) ([]byte, error) {
	var out []byte
	for n > 0 {
		chunk := min(n, metadataBlockSize)
		start := len(out)
		out = append(out, make([]byte, chunk)...)
		if err := c.read(out[start:]); err != nil {
			return nil, err
		}
		n -= chunk
	}
	return out, nil
}

// where is the cursor position for messages, formatted only if an error needs it.
func (c *metaCursor) where() mark { return mark{c.pos, c.off} }

// mark is a position in a table: a metadata block and an offset in it.
type mark struct {
	pos uint64
	off int
}

func (m mark) String() string { return fmt.Sprintf("0x%x+%d", m.pos, m.off) }

// readIDTable loads the uid/gid table eagerly: at most 65536 ids.
func (r *Reader) readIDTable() error {
	n := uint64(r.sb.IDCount)
	if n == 0 {
		return fmt.Errorf("id table: no ids in the superblock")
	}
	raw, err := r.readIndexedTable(region{"id table", SuperblockSize, r.sb.BytesUsed}, r.sb.IDTableStart, n*4)
	if err != nil {
		return err
	}
	r.ids = make([]uint32, n)
	for i := range r.ids {
		r.ids[i] = binary.LittleEndian.Uint32(raw[4*i:])
	}
	return nil
}

// readIndexedTable reads size bytes of a table stored as metadata blocks whose positions are
// listed, one uint64 per block, at index.
func (r *Reader) readIndexedTable(reg region, index, size uint64) ([]byte, error) {
	out := make([]byte, 0, size)
	for i := uint64(0); uint64(len(out)) < size; i++ {
		pos, err := r.readU64At(reg.name, index+8*i)
		if err != nil {
			return nil, err
		}
		cb, err := r.metaBlock(reg, pos)
		if err != nil {
			return nil, err
		}
		want := min(size-uint64(len(out)), metadataBlockSize)
		if uint64(len(cb.data)) < want {
			return nil, fmt.Errorf("%s: metadata block at 0x%x: %d bytes, want %d: %w", reg.name, pos, len(cb.data), want, ErrTruncated)
		}
		out = append(out, cb.data[:want]...)
	}
	return out, nil
}

// indexedEntry reads entry i (of size bytes) of a lazily read indexed table.
func (r *Reader) indexedEntry(reg region, index uint64, i, size uint64) ([]byte, error) {
	byteOff := i * size
	pos, err := r.readU64At(reg.name, index+8*(byteOff/metadataBlockSize))
	if err != nil {
		return nil, err
	}
	c, err := r.cursorAt(reg, pos, uint16(byteOff%metadataBlockSize))
	if err != nil {
		return nil, err
	}
	b := make([]byte, size)
	if err := c.read(b); err != nil {
		return nil, err
	}
	return b, nil
}

// checkOptionalTables checks that the fragment and export table indexes lie inside the image.
func (r *Reader) checkOptionalTables() error {
	if n := uint64(r.sb.FragmentCount); n > 0 {
		if err := r.checkIndex("fragment table", r.sb.FragmentTableStart, n*16); err != nil {
			return err
		}
	}
	if r.sb.ExportTableStart != noTable && r.sb.Flags&flagExportable != 0 {
		if err := r.checkIndex("export table", r.sb.ExportTableStart, uint64(r.sb.InodeCount)*8); err != nil {
			return err
		}
	}
	return nil
}

func (r *Reader) checkIndex(table string, start, size uint64) error {
	blocks := (size + metadataBlockSize - 1) / metadataBlockSize
	if start == noTable || start > r.sb.BytesUsed || blocks*8 > r.sb.BytesUsed-start {
		return fmt.Errorf("%s: index of %d blocks at 0x%x: past the end of the image (0x%x): %w", table, blocks, start, r.sb.BytesUsed, ErrTruncated)
	}
	return nil
}
