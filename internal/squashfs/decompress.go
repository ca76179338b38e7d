package squashfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/klauspost/compress/zlib"
	"github.com/klauspost/compress/zstd"
	"github.com/pierrec/lz4/v4"
	"github.com/ulikunitz/xz"
)

// decompressor expands one block. limit is the most the block may expand to (the block size,
// or 8 KiB for metadata): a hostile image cannot make the reader allocate more than that.
type decompressor interface {
	decompress(src []byte, limit int) ([]byte, error)
}

// errTooLarge marks a block that expands beyond its limit.
var errTooLarge = errors.New("decompressed data larger than the block size")

// newDecompressor returns the decompressor for c after checking the compressor options block
// (nil when the image has none).
func newDecompressor(c Compression, opts []byte, blockSize int) (decompressor, error) {
	switch c {
	case Gzip:
		if err := checkOptionsLen(c, opts, 8); err != nil {
			return nil, err
		}
		return &zlibDecompressor{}, nil
	case XZ:
		if err := checkOptionsLen(c, opts, 8); err != nil {
			return nil, err
		}
		// The filters word selects branch/call/jump filters, which ulikunitz/xz cannot undo.
		if len(opts) == 8 && binary.LittleEndian.Uint32(opts[4:]) != 0 {
			return nil, fmt.Errorf("compressor options: xz filters 0x%x are not supported: recreate the image without -Xbcj", binary.LittleEndian.Uint32(opts[4:]))
		}
		return xzDecompressor{}, nil
	case LZ4:
		if err := checkOptionsLen(c, opts, 8); err != nil {
			return nil, err
		}
		// Version 1 is the only one squashfs-tools writes: raw LZ4 blocks with no frame.
		if len(opts) == 8 && binary.LittleEndian.Uint32(opts) != 1 {
			return nil, fmt.Errorf("compressor options: lz4 version %d is not supported (need 1)", binary.LittleEndian.Uint32(opts))
		}
		return lz4Decompressor{}, nil
	case Zstd:
		if err := checkOptionsLen(c, opts, 4); err != nil {
			return nil, err
		}
		limit := max(blockSize, metadataBlockSize)
		// DecodeAll is safe for concurrent use; the limits keep a hostile frame from asking for
		// a large window or output.
		d, err := zstd.NewReader(nil, zstd.WithDecoderMaxMemory(uint64(limit)),
			zstd.WithDecoderMaxWindow(uint64(max(limit, zstd.MinWindowSize))), zstd.WithDecoderConcurrency(0))
		if err != nil {
			return nil, fmt.Errorf("zstd: %w", err)
		}
		return zstdDecompressor{d}, nil
	case LZMA, LZO:
		return nil, fmt.Errorf("unsupported compression %s: hpcctl reads gzip, xz, lz4 and zstd images; recreate the image with one of them", c)
	}
	return nil, fmt.Errorf("unsupported compression %s: unknown compressor id", c)
}

func checkOptionsLen(c Compression, opts []byte, want int) error {
	if opts != nil && len(opts) != want {
		return fmt.Errorf("compressor options: %s options are %d bytes, want %d", c, len(opts), want)
	}
	return nil
}

// zlibDecompressor reuses zlib readers: each one carries a 32 KiB window worth keeping.
type zlibDecompressor struct{ pool sync.Pool }

func (z *zlibDecompressor) decompress(src []byte, limit int) ([]byte, error) {
	var zr io.ReadCloser
	if v := z.pool.Get(); v != nil {
		zr = v.(io.ReadCloser)
		if err := zr.(zlib.Resetter).Reset(bytes.NewReader(src), nil); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
	} else {
		var err error
		if zr, err = zlib.NewReader(bytes.NewReader(src)); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
	}
	out, err := readLimited(zr, limit)
	if err != nil {
		return nil, fmt.Errorf("gzip: %w", err)
	}
	z.pool.Put(zr)
	return out, nil
}

type xzDecompressor struct{}

func (xzDecompressor) decompress(src []byte, limit int) ([]byte, error) {
	// The output never exceeds limit, so a dictionary of that size is enough; the default
	// (8 MiB) would be allocated for every block.
	cfg := xz.ReaderConfig{DictCap: max(limit, 4096), SingleStream: true}
	xr, err := cfg.NewReader(bytes.NewReader(src))
	if err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	out, err := readLimited(xr, limit)
	if err != nil {
		return nil, fmt.Errorf("xz: %w", err)
	}
	return out, nil
}

type lz4Decompressor struct{}

func (lz4Decompressor) decompress(src []byte, limit int) ([]byte, error) {
	dst := make([]byte, limit)
	n, err := lz4.UncompressBlock(src, dst)
	if err != nil {
		return nil, fmt.Errorf("lz4: %w", err)
	}
	return dst[:n], nil
}

type zstdDecompressor struct{ d *zstd.Decoder }

func (z zstdDecompressor) decompress(src []byte, limit int) ([]byte, error) {
	out, err := z.d.DecodeAll(src, make([]byte, 0, limit))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	if len(out) > limit {
		return nil, fmt.Errorf("zstd: %w", errTooLarge)
	}
	return out, nil
}

// readLimited reads r to its end, failing if it yields more than limit bytes. It does not use
// io.ReadFull, which would confuse a truncated stream (io.ErrUnexpectedEOF) with a short one.
func readLimited(r io.Reader, limit int) ([]byte, error) {
	out := make([]byte, limit+1)
	total := 0
	for {
		n, err := r.Read(out[total:])
		total += n
		if total > limit {
			return nil, errTooLarge
		}
		if errors.Is(err, io.EOF) {
			return out[:total], nil
		}
		if err != nil {
			return nil, err
		}
		if n == 0 && total == len(out) {
			return nil, errTooLarge
		}
	}
}
