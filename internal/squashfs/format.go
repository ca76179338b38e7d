// Package squashfs writes and reads squashfs 4.0 file systems, the format the kernel, squashfuse and
// squashfs-tools share.
//
// The on-disk layout follows the squashfs-tools documentation and the kernel's fs/squashfs:
// superblock, compressor options, data blocks and fragments, inode table, directory table, fragment
// table, export table, id table, xattr tables. Every number on disk is little-endian.
package squashfs

import "github.com/hpcctl/hpcctl/internal/squashfs/superblock"

// Magic is "hsqs" read as a little-endian uint32.
const Magic = superblock.Magic

// SuperblockSize is the size of the on-disk superblock.
const SuperblockSize = superblock.Size

// Block size limits from the format: a power of two from 4 KiB to 1 MiB.
const (
	MinBlockSize     = superblock.MinBlockSize
	MaxBlockSize     = superblock.MaxBlockSize
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
type Compression = superblock.Compression

// Compressor IDs as stored in the superblock.
const (
	Gzip = superblock.Gzip
	LZMA = superblock.LZMA
	LZO  = superblock.LZO
	XZ   = superblock.XZ
	LZ4  = superblock.LZ4
	Zstd = superblock.Zstd
)

// ParseCompression accepts the names mksquashfs accepts for the compressors hpcctl writes.
func ParseCompression(name string) (Compression, error) { return superblock.ParseCompression(name) }

// Superblock is the first 96 bytes of an image.
type Superblock = superblock.Superblock

// ErrNotSquashfs is returned when the magic number does not match.
var ErrNotSquashfs = superblock.ErrNotSquashfs

// inodeRef packs the position of an inode: the offset of its metadata block from the start of
// the inode table, and its offset inside the uncompressed block.
func inodeRef(block uint64, offset uint16) uint64 { return block<<16 | uint64(offset) }

// splitInodeRef is the inverse of inodeRef.
func splitInodeRef(ref uint64) (block uint64, offset uint16) {
	return ref >> 16, uint16(ref & 0xffff)
}
