package squashfs

import (
	"bytes"
	"encoding/binary"
	"fmt"

	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// compressor compresses one block (data, fragment or metadata) at a time. Each goroutine owns its
// own compressor, so implementations keep and reuse their state without locking.
type compressor interface {
	// compress appends the compressed form of src to dst[:0] and returns it. A result that is not
	// shorter than src tells the caller to store the block uncompressed.
	compress(dst, src []byte) ([]byte, error)
}

// blockCodec describes the chosen compressor and level; it makes one compressor per goroutine.
type blockCodec struct {
	kind      Compression
	level     int
	blockSize uint32
}

// Defaults as squashfs-tools documents them, except zstd: mksquashfs defaults to 15, which costs
// ten times the time of 3 for a few percent; hpcctl defaults to 3 (see DESIGN.md).
const (
	defaultGzipLevel = 9
	defaultZstdLevel = 3
	// squashfs-tools writes no options record for these values.
	toolsGzipLevel  = 9
	toolsGzipWindow = 15
	toolsZstdLevel  = 15
	lz4Legacy       = 1 // squashfs-tools' LZ4_LEGACY options version, the only one the kernel takes
	lz4FlagHC       = 1
)

// newBlockCodec validates the compression and level and fills in defaults.
func newBlockCodec(kind Compression, level int, blockSize uint32) (blockCodec, error) {
	c := blockCodec{kind: kind, level: level, blockSize: blockSize}
	switch kind {
	case Gzip:
		if level == 0 {
			c.level = defaultGzipLevel
		}
		if c.level < 1 || c.level > 9 {
			return c, fmt.Errorf("gzip compression level %d: use 1 to 9", level)
		}
	case Zstd:
		if level == 0 {
			c.level = defaultZstdLevel
		}
		if c.level < 1 || c.level > 22 {
			return c, fmt.Errorf("zstd compression level %d: use 1 to 22", level)
		}
	case XZ:
		if level != 0 {
			return c, fmt.Errorf("xz compression level %d: xz takes no level, use 0", level)
		}
	case LZ4:
		if level < 0 || level > 9 {
			return c, fmt.Errorf("lz4 compression level %d: use 0 (fast) or 1 to 9 (high compression)", level)
		}
	default:
		return c, fmt.Errorf("squashfs compression %v is not supported for writing: use gzip, zstd, xz or lz4", kind)
	}
	return c, nil
}

// EffectiveLevel checks a compression level and returns the one the writer will use (0 picks the
// compressor's default), so that callers can validate early and record what was used.
func EffectiveLevel(kind Compression, level int) (int, error) {
	c, err := newBlockCodec(kind, level, DefaultBlockSize)
	return c.level, err
}

// newCompressor makes a compressor for one goroutine.
func (c blockCodec) newCompressor() (compressor, error) {
	switch c.kind {
	case Gzip:
		return &gzipCompressor{level: c.level}, nil
	case Zstd:
		return c.newZstd(zstd.EncoderLevelFromZstd(c.level))
	case XZ:
		// The kernel's xz decoder takes LZMA2 with a CRC32 check; the dictionary need not exceed
		// the block size, and without an options record the kernel assumes exactly that.
		return &xzCompressor{cfg: xz.WriterConfig{DictCap: int(max(c.blockSize, metadataBlockSize)), CheckSum: xz.CRC32}}, nil
	case LZ4:
		if c.level > 0 {
			return &lz4HCCompressor{c: lz4.CompressorHC{Level: lz4.CompressionLevel(1 << (8 + c.level - 1))}}, nil
		}
		return &lz4Compressor{}, nil
	}
	return nil, fmt.Errorf("squashfs compression %v is not supported for writing", c.kind)
}

// newFragmentCompressor makes the compressor for fragment blocks, or returns data when they use
// the same settings (the caller's goroutine then uses one compressor for both).
//
// At zstd levels 3 to 5 fragments use the fastest encoder (what levels 1 and 2 use for every
// block) and data blocks the default one. The pure-Go default encoder needs about twice libzstd's
// CPU; issue #2 asks for mksquashfs -Xcompression-level 3's time within 3% of its size. On the
// Debian tree fragments (93 of 256 MB: the tails of small files) encode in 0.46 s instead of
// 0.66 s and grow the image by 1.5% (2.0 MB of 120); doing the same for data blocks saved as much
// time for 2.3%, and all blocks at the fastest speed would be 4.5% larger.
func (c blockCodec) newFragmentCompressor(data compressor) (compressor, error) {
	if c.kind == Zstd && zstd.EncoderLevelFromZstd(c.level) == zstd.SpeedDefault {
		return c.newZstd(zstd.SpeedFastest)
	}
	return data, nil
}

// newZstd makes a zstd encoder for one goroutine with a fixed window, so that the output
// depends only on the input.
func (c blockCodec) newZstd(speed zstd.EncoderLevel) (compressor, error) {
	enc, err := zstd.NewWriter(nil,
		zstd.WithEncoderLevel(speed),
		zstd.WithEncoderConcurrency(1),
		zstd.WithWindowSize(int(max(c.blockSize, metadataBlockSize))),
		zstd.WithEncoderCRC(false),
		zstd.WithZeroFrames(true),
		zstd.WithLowerEncoderMem(false))
	if err != nil {
		return nil, fmt.Errorf("zstd encoder: %w", err)
	}
	return &zstdCompressor{enc: enc}, nil
}

// options returns the compressor options record squashfs-tools would write for these settings,
// or nil where it writes none (the reader then assumes the defaults).
func (c blockCodec) options() []byte {
	le := binary.LittleEndian
	switch c.kind {
	case Gzip:
		if c.level == toolsGzipLevel {
			return nil
		}
		b := le.AppendUint32(nil, uint32(c.level))
		b = le.AppendUint16(b, toolsGzipWindow)
		return le.AppendUint16(b, 0) // no strategies
	case Zstd:
		if c.level == toolsZstdLevel {
			return nil
		}
		return le.AppendUint32(nil, uint32(c.level))
	case LZ4:
		// The kernel refuses an lz4 image without this record.
		flags := uint32(0)
		if c.level > 0 {
			flags = lz4FlagHC
		}
		return le.AppendUint32(le.AppendUint32(nil, lz4Legacy), flags)
	}
	return nil
}

type gzipCompressor struct {
	level int
	buf   bytes.Buffer
	w     *zlib.Writer
}

// compress writes a zlib stream: squashfs "gzip" blocks are zlib, not gzip, framed.
func (g *gzipCompressor) compress(dst, src []byte) ([]byte, error) {
	g.buf.Reset()
	if g.w == nil {
		w, err := zlib.NewWriterLevel(&g.buf, g.level)
		if err != nil {
			return nil, fmt.Errorf("zlib writer: %w", err)
		}
		g.w = w
	} else {
		g.w.Reset(&g.buf)
	}
	if _, err := g.w.Write(src); err != nil {
		return nil, fmt.Errorf("zlib: %w", err)
	}
	if err := g.w.Close(); err != nil {
		return nil, fmt.Errorf("zlib: %w", err)
	}
	return append(dst[:0], g.buf.Bytes()...), nil
}

type zstdCompressor struct{ enc *zstd.Encoder }

func (z *zstdCompressor) compress(dst, src []byte) ([]byte, error) {
	return z.enc.EncodeAll(src, dst[:0]), nil
}

type xzCompressor struct {
	cfg xz.WriterConfig
	buf bytes.Buffer
}

func (x *xzCompressor) compress(dst, src []byte) ([]byte, error) {
	x.buf.Reset()
	w, err := x.cfg.NewWriter(&x.buf)
	if err != nil {
		return nil, fmt.Errorf("xz writer: %w", err)
	}
	if _, err := w.Write(src); err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	return append(dst[:0], x.buf.Bytes()...), nil
}

type lz4Compressor struct{ c lz4.Compressor }

func (l *lz4Compressor) compress(dst, src []byte) ([]byte, error) {
	return lz4Block(dst, src, l.c.CompressBlock)
}

type lz4HCCompressor struct{ c lz4.CompressorHC }

func (l *lz4HCCompressor) compress(dst, src []byte) ([]byte, error) {
	return lz4Block(dst, src, l.c.CompressBlock)
}

// lz4Block runs a raw lz4 block compression; squashfs stores lz4 without frame headers.
func lz4Block(dst, src []byte, fn func(src, dst []byte) (int, error)) ([]byte, error) {
	bound := lz4.CompressBlockBound(len(src))
	if cap(dst) < bound {
		dst = make([]byte, bound)
	}
	dst = dst[:bound]
	n, err := fn(src, dst)
	if err != nil {
		return nil, fmt.Errorf("lz4: %w", err)
	}
	if n == 0 { // incompressible: signal "store as is"
		return append(dst[:0], src...), nil
	}
	return dst[:n], nil
}
