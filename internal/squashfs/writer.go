package squashfs

import (
	"bufio"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"strings"
)

// Options configure a Writer. The zero value writes zstd level 3 with 128 KiB blocks and every
// feature on, like mksquashfs with defaults apart from the zstd level.
type Options struct {
	Compression Compression // default Zstd
	// Level 0 is the compressor's default (zstd 3, gzip 9). Zstd levels 1 to 22 map onto the
	// pure-Go encoder's four speeds (1-2 fastest, 3-5 default with fragments at the fastest,
	// 6-9 better, 10+ best); gzip takes 1 to 9; lz4 uses its high-compression mode for 1 to 9;
	// xz takes no level.
	Level     int
	BlockSize uint32 // default DefaultBlockSize; a power of two from 4 KiB to 1 MiB
	// ModTime is the superblock time (callers pass SOURCE_DATE_EPOCH) and the time of implicit
	// directories.
	ModTime int64
	Workers int // parallel compressors; 0 means runtime.GOMAXPROCS(0)
	// Like mksquashfs -no-fragments, -no-duplicates, -no-exports, -no-xattrs.
	NoFragments, NoDuplicates, NoExport, NoXattrs bool
}

// Stats count what a Writer stored.
type Stats struct {
	Inodes         uint32
	Files          uint64 // regular file entries, hardlinks not counted
	Dirs           uint64 // explicit and implicit
	BytesIn        uint64 // regular file content, duplicates included
	BytesOut       uint64 // image size including padding, known after Close
	Duplicates     uint64 // files whose content an earlier file already stored
	DuplicateBytes uint64
	Fragments      uint32 // fragment blocks
	SparseBytes    uint64 // bytes of all-zero blocks stored as holes
}

// Writer writes one squashfs image. Entries arrive through Add in any order; Close lays out the
// inode, directory and lookup tables and the superblock. A Writer is not safe for concurrent use.
type Writer struct {
	opts       Options
	blockCodec blockCodec
	w          io.WriteSeeker
	base       int64 // where the image starts in w; every squashfs offset is relative to it
	bw         *bufio.Writer
	pos        uint64 // output position relative to base, owned by the data pipeline until Close
	max        uint64 // furthest byte written, for trimming after a final rewind

	tree  *entryTree
	pipe  *pipeline
	frag  []byte // the fragment block being filled
	dups  map[dupKey]*fileData
	tail  []byte
	stats Stats

	err    error // sticky: after the first error Add refuses and Close returns it
	closed bool
}

// dupKey identifies file content for duplicate detection: size and SHA-256.
type dupKey struct {
	size int64
	sum  [sha256.Size]byte
}

// CheckBlockSize says whether bs is a block size the format allows.
func CheckBlockSize(bs uint32) error {
	if bs < MinBlockSize || bs > MaxBlockSize || bs&(bs-1) != 0 {
		return fmt.Errorf("block size %d: use a power of two from 4K to 1M", bs)
	}
	return nil
}

// NewWriter starts an image at the current position of w.
func NewWriter(w io.WriteSeeker, opts Options) (*Writer, error) {
	if opts.Compression == 0 {
		opts.Compression = Zstd
	}
	if opts.BlockSize == 0 {
		opts.BlockSize = DefaultBlockSize
	}
	bs := opts.BlockSize
	if err := CheckBlockSize(bs); err != nil {
		return nil, err
	}
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	c, err := newBlockCodec(opts.Compression, opts.Level, bs)
	if err != nil {
		return nil, err
	}
	base, err := w.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, fmt.Errorf("squashfs: find start position: %w", err)
	}
	sw := &Writer{opts: opts, blockCodec: c, w: w, base: base, bw: bufio.NewWriterSize(w, 1<<20),
		tree: newTree(opts.ModTime), dups: map[dupKey]*fileData{}}
	// The superblock is written last; reserve its place and write the options record now.
	head := make([]byte, SuperblockSize)
	if o := c.options(); o != nil {
		head = append(head, byte(len(o)), byte(metadataUncompressed>>8))
		head = append(head, o...)
	}
	if err = sw.write(head); err != nil {
		return nil, err
	}
	sw.pipe, err = startPipeline(sw, opts.Workers)
	if err != nil {
		return nil, err
	}
	return sw, nil
}

// write appends to the image at pos.
func (w *Writer) write(b []byte) error {
	if _, err := w.bw.Write(b); err != nil {
		return fmt.Errorf("squashfs: write image: %w", err)
	}
	w.pos += uint64(len(b))
	w.max = max(w.max, w.pos)
	return nil
}

// seek moves the output to pos (relative to base), flushing buffered bytes first.
func (w *Writer) seek(pos uint64) error {
	if err := w.bw.Flush(); err != nil {
		return fmt.Errorf("squashfs: write image: %w", err)
	}
	if _, err := w.w.Seek(w.base+int64(pos), io.SeekStart); err != nil {
		return fmt.Errorf("squashfs: seek in image: %w", err)
	}
	w.pos = pos
	return nil
}

// Add stores one entry. A regular file's Body is read to the end during the call.
func (w *Writer) Add(e Entry) error {
	if w.closed {
		return errors.New("squashfs: Add after Close")
	}
	if w.err != nil {
		return w.err
	}
	if err := w.add(e); err != nil {
		w.fail(err)
		return w.err
	}
	return nil
}

// fail records the first error; the pipeline's own errors win because they happened earlier.
func (w *Writer) fail(err error) {
	if w.err == nil {
		if perr := w.pipe.error(); perr != nil {
			err = perr
		}
		w.err = err
	}
}

func (w *Writer) add(e Entry) error {
	p, err := CleanPath(e.Path)
	if err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}
	e.Path = p
	if err = w.check(&e); err != nil {
		return fmt.Errorf("squashfs: %s: %w", e.Path, err)
	}
	body := e.Body
	e.Body = nil
	if w.opts.NoXattrs {
		e.Xattrs = nil
	}
	n, err := w.tree.insert(e)
	if err != nil {
		return fmt.Errorf("squashfs: %w", err)
	}
	switch e.Type {
	case TypeRegular:
		w.stats.Files++
		f, err := w.addFile(e, body)
		if err != nil {
			return fmt.Errorf("squashfs: %s: %w", e.Path, err)
		}
		n.file = f
	}
	return nil
}

// check validates an entry's fields for its type and normalises the hardlink target.
func (w *Writer) check(e *Entry) error {
	if e.Path == "." && e.Type != TypeDir {
		return fmt.Errorf("the root must be a directory, not a %s", e.Type)
	}
	if e.Mode&^0o7777 != 0 {
		e.Mode &= 0o7777 // type bits are ignored, as documented on Entry
	}
	switch e.Type {
	case TypeRegular:
		if e.Size < 0 {
			return fmt.Errorf("negative size %d", e.Size)
		}
		if e.Body == nil && e.Size > 0 {
			return fmt.Errorf("no body for %d bytes", e.Size)
		}
	case TypeDir, TypeFIFO, TypeSocket:
	case TypeSymlink:
		if e.Linkname == "" || len(e.Linkname) > 4095 || strings.ContainsRune(e.Linkname, 0) {
			return fmt.Errorf("symlink target must be 1 to 4095 bytes without NUL (got %d bytes)", len(e.Linkname))
		}
	case TypeHardlink:
		t, err := CleanPath(e.Linkname)
		if err != nil || t == "." {
			return fmt.Errorf("bad hardlink target %q", e.Linkname)
		}
		e.Linkname = t
	case TypeCharDevice, TypeBlockDevice:
		if e.DevMajor > 0xfff || e.DevMinor > 0xfffff {
			return fmt.Errorf("device number %d:%d does not fit squashfs's 12-bit major and 20-bit minor", e.DevMajor, e.DevMinor)
		}
	default:
		return fmt.Errorf("unknown entry type %v", e.Type)
	}
	if !w.opts.NoXattrs {
		for name := range e.Xattrs {
			if _, _, err := splitXattrName(name); err != nil {
				return err
			}
		}
	}
	return nil
}

// mtime clamps a time to squashfs's unsigned 32-bit seconds.
func clampTime(t int64) uint32 {
	return uint32(min(max(t, 0), math.MaxUint32))
}

// Stats reports what the writer stored so far; Inodes, Dirs and BytesOut are set by Close.
func (w *Writer) Stats() Stats { return w.stats }
