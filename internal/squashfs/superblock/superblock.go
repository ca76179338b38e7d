// Package superblock decodes and checks the 96-byte superblock that starts every squashfs 4.0
// image. It is apart from package squashfs, whose compressors' initialisation would cost hpcctl's
// launch path, so that hpcctl can refuse a damaged image before it mounts it.
package superblock

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Magic is "hsqs" read as a little-endian uint32.
const Magic = 0x73717368

// Size is the size of the on-disk superblock.
const Size = 96

// Block size limits from the format: a power of two from 4 KiB to 1 MiB.
const (
	MinBlockSize = 4 << 10
	MaxBlockSize = 1 << 20
)

// ErrTruncated is wrapped by errors about data that ends before the image says it does.
var ErrTruncated = errors.New("truncated")

// Compression identifies the compressor used for every block of an image.
type Compression uint16

// Compressor IDs as stored in the superblock.
const (
	Gzip Compression = 1
	LZMA Compression = 2
	LZO  Compression = 3
	XZ   Compression = 4
	LZ4  Compression = 5
	Zstd Compression = 6
)

// String returns the name squashfs-tools uses for the compressor.
func (c Compression) String() string {
	switch c {
	case Gzip:
		return "gzip"
	case LZMA:
		return "lzma"
	case LZO:
		return "lzo"
	case XZ:
		return "xz"
	case LZ4:
		return "lz4"
	case Zstd:
		return "zstd"
	}
	return fmt.Sprintf("compression(%d)", uint16(c))
}

// ParseCompression accepts the names mksquashfs accepts for the compressors hpcctl writes.
func ParseCompression(name string) (Compression, error) {
	for _, c := range []Compression{Gzip, XZ, LZ4, Zstd} {
		if c.String() == name {
			return c, nil
		}
	}
	return 0, fmt.Errorf("unknown squashfs compression %q: use gzip, zstd, xz or lz4", name)
}

// Superblock is the first 96 bytes of an image.
type Superblock struct {
	Magic               uint32
	InodeCount          uint32
	ModTime             uint32
	BlockSize           uint32
	FragmentCount       uint32
	Compression         Compression
	BlockLog            uint16
	Flags               uint16
	IDCount             uint16
	VersionMajor        uint16
	VersionMinor        uint16
	RootInode           uint64 // inode reference: metadata block start << 16 | offset in block
	BytesUsed           uint64
	IDTableStart        uint64
	XattrIDTableStart   uint64
	InodeTableStart     uint64
	DirectoryTableStart uint64
	FragmentTableStart  uint64
	ExportTableStart    uint64
}

// MarshalBinary encodes the superblock in its on-disk form.
func (s *Superblock) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, Size)
	return binary.Append(b, binary.LittleEndian, s)
}

// ErrNotSquashfs is returned when the magic number does not match.
var ErrNotSquashfs = errors.New("not a squashfs image (bad magic)")

// UnmarshalBinary decodes and checks a superblock: magic, version and block size.
func (s *Superblock) UnmarshalBinary(b []byte) error {
	if len(b) < Size {
		return fmt.Errorf("superblock: truncated at %d of %d bytes", len(b), Size)
	}
	if _, err := binary.Decode(b[:Size], binary.LittleEndian, s); err != nil {
		return fmt.Errorf("superblock: %w", err)
	}
	if s.Magic != Magic {
		return ErrNotSquashfs
	}
	if s.VersionMajor != 4 || s.VersionMinor != 0 {
		return fmt.Errorf("superblock: squashfs version %d.%d is not supported (need 4.0)", s.VersionMajor, s.VersionMinor)
	}
	if s.BlockSize < MinBlockSize || s.BlockSize > MaxBlockSize || s.BlockSize&(s.BlockSize-1) != 0 ||
		uint32(1)<<s.BlockLog != s.BlockSize {
		return fmt.Errorf("superblock: invalid block size %d (log %d)", s.BlockSize, s.BlockLog)
	}
	return nil
}

// CheckLayout checks the superblock against an image of size bytes: the image holds what
// bytes_used says, and the tables every image has lie in order inside it.
func (s *Superblock) CheckLayout(size int64) error {
	if s.BytesUsed > uint64(size) {
		return fmt.Errorf("superblock: image is %d bytes but bytes_used is %d: %w", size, s.BytesUsed, ErrTruncated)
	}
	if !(Size <= s.InodeTableStart && s.InodeTableStart < s.DirectoryTableStart &&
		s.DirectoryTableStart <= s.BytesUsed && s.IDTableStart < s.BytesUsed) {
		return fmt.Errorf("superblock: table offsets out of order (inodes 0x%x, directories 0x%x, ids 0x%x, bytes used 0x%x)",
			s.InodeTableStart, s.DirectoryTableStart, s.IDTableStart, s.BytesUsed)
	}
	return nil
}

// ReadAt reads and checks the superblock of the image at off..off+size of r (a SIF's partition, or
// a whole squashfs file).
func ReadAt(r io.ReaderAt, off, size int64) (*Superblock, error) {
	if size < Size {
		return nil, fmt.Errorf("superblock: image is %d bytes: %w", size, ErrTruncated)
	}
	b := make([]byte, Size)
	if _, err := r.ReadAt(b, off); err != nil {
		if errors.Is(err, io.EOF) {
			err = ErrTruncated
		}
		return nil, fmt.Errorf("superblock: %w", err)
	}
	var s Superblock
	if err := s.UnmarshalBinary(b); err != nil {
		return nil, err
	}
	return &s, s.CheckLayout(size)
}
