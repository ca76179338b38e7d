package squashfs

import "context"

// The tests of this package are in package squashfs_test, so that they can use sqtest (which
// imports squashfs: an in-package test importing it would be an import cycle). They dot-import
// squashfs to read as the package's own, the one use of import . that Go's code review comments
// accept (go.dev/wiki/CodeReviewComments#import-dot). This file, in package squashfs but built
// only for tests, hands them the few internals they check; tests of unexported code that need
// no shared helper stay in the package (writer_internal_test.go).

// Format constants the tests find in written images.
const (
	MetadataUncompressed  = metadataUncompressed
	DataUncompressed      = dataUncompressed
	FlagCompressorOptions = flagCompressorOptions
	FlagExportable        = flagExportable
	NoTable               = noTable
	HeldBytes             = heldBytes
)

// DirIndex returns the number of directory index entries of a directory inode and the size of
// its listing.
func DirIndex(in *Inode) (entries int, listing uint32) { return len(in.dirIndex), in.dirLen }

// ListXattrs and GetXattr read a source file's attributes the way WriteTree does.
func ListXattrs(full string) ([]string, error)   { return (&treeWalker{}).listXattrs(full) }
func GetXattr(full, name string) (string, error) { return (&treeWalker{}).getXattr(full, name) }

// WriteTreeCounted is WriteTree with the choice whether to count file sizes first.
func WriteTreeCounted(ctx context.Context, w Adder, dir string, countFirst bool) error {
	return writeTree(ctx, w, dir, countFirst)
}

// CountSizes counts the regular files below dir per size (hardlinks once, 2 meaning 2 or more).
func CountSizes(ctx context.Context, dir string) map[int64]int { return countSizes(ctx, dir) }
