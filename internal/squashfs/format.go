// Package squashfs writes and reads squashfs 4.0 file systems, the format the kernel, squashfuse and
// squashfs-tools share.
//
// The on-disk layout follows the squashfs-tools documentation and the kernel's fs/squashfs:
// superblock, compressor options, data blocks and fragments, inode table, directory table, fragment
// table, export table, id table, xattr tables. Every number on disk is little-endian.
package squashfs

import (
	"encoding/binary"
	"errors"
	"fmt"
)

// Magic is "hsqs" read as a little-endian uint32.
const Magic = 0x73717368

// SuperblockSize is the size of the on-disk superblock.
const SuperblockSize = 96

// Block size limits from the format: a power of two from 4 KiB to 1 MiB.
const (
	MinBlockSize     = 4 << 10
	MaxBlockSize     = 1 << 20
	DefaultBlockSize = 128 << 10
)

// Metadata blocks (inode, directory, fragment, id, export, xattr tables) hold at most 8 KiB of
// uncompressed data each and start with a 16-bit header.
const (
	metadataBlockSize    = 8192
	metadataUncompressed = 0x8000 // header bit: the block is stored uncompressed
	metadataSizeMask     = 0x7fff
)

// dataUncompressed is set in a data block or fragment size word when the block is stored as is.
const dataUncompressed = 1 << 24

// Superblock flags.
const (
	flagUncompressedInodes    = 0x0001
	flagUncompressedData      = 0x0002
	flagCheck                 = 0x0004
	flagUncompressedFragments = 0x0008
	flagNoFragments           = 0x0010
	flagAlwaysFragments       = 0x0020
	flagDuplicates            = 0x0040
	flagExportable            = 0x0080
	flagUncompressedXattrs    = 0x0100
	flagNoXattrs              = 0x0200
	flagCompressorOptions     = 0x0400
	flagUncompressedIDs       = 0x0800
)

// noTable marks an absent optional table (fragments, export, xattrs) in the superblock.
const noTable = ^uint64(0)

// noFragment marks a file whose tail is not in a fragment; noXattr an inode without xattrs.
const (
	noFragment = ^uint32(0)
	noXattr    = ^uint32(0)
)

// Inode types. Basic types are compact; extended ones add nlink, xattr index, sparse counts or
// large sizes. Directory entries store the basic type even for extended inodes.
const (
	inodeBasicDir     = 1
	inodeBasicFile    = 2
	inodeBasicSymlink = 3
	inodeBasicBlock   = 4
	inodeBasicChar    = 5
	inodeBasicFifo    = 6
	inodeBasicSocket  = 7
	inodeExtDir       = 8
	inodeExtFile      = 9
	inodeExtSymlink   = 10
	inodeExtBlock     = 11
	inodeExtChar      = 12
	inodeExtFifo      = 13
	inodeExtSocket    = 14
)

// Xattr name prefixes as stored: the prefix is replaced by a type, and an out-of-line value is
// flagged in the same field.
const (
	xattrUser     = 0
	xattrTrusted  = 1
	xattrSecurity = 2
	xattrOOL      = 0x100
)

// Directory limits from the format: a directory header covers at most 256 entries, all of whose
// inodes live in one metadata block; names are 1 to 256 bytes (Linux allows 255).
const (
	maxDirHeaderEntries = 256
	maxNameLen          = 255
	dirIndexStride      = metadataBlockSize // one index entry per metadata block of listing
)

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
	b := make([]byte, 0, SuperblockSize)
	return binary.Append(b, binary.LittleEndian, s)
}

// ErrNotSquashfs is returned when the magic number does not match.
var ErrNotSquashfs = errors.New("not a squashfs image (bad magic)")

// UnmarshalBinary decodes and checks a superblock: magic, version and block size.
func (s *Superblock) UnmarshalBinary(b []byte) error {
	if len(b) < SuperblockSize {
		return fmt.Errorf("superblock: truncated at %d of %d bytes", len(b), SuperblockSize)
	}
	if _, err := binary.Decode(b[:SuperblockSize], binary.LittleEndian, s); err != nil {
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

// inodeRef packs the position of an inode: the offset of its metadata block from the start of
// the inode table, and its offset inside the uncompressed block.
func inodeRef(block uint64, offset uint16) uint64 { return block<<16 | uint64(offset) }

// splitInodeRef is the inverse of inodeRef.
func splitInodeRef(ref uint64) (block uint64, offset uint16) {
	return ref >> 16, uint16(ref & 0xffff)
}
