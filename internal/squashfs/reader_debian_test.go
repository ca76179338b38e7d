package squashfs_test

import (
	"slices"
	"testing"

	"github.com/hpcctl/hpcctl/internal/testutil"

	. "github.com/hpcctl/hpcctl/internal/squashfs"
	"github.com/hpcctl/hpcctl/internal/squashfs/sqtest"
)

// TestDebianRootfs reads a real Debian tree through mksquashfs images and an extraction.
// Root is needed to read every file of the tree (and to compare ownership after Extract).
func TestDebianRootfs(t *testing.T) {
	root := testutil.NeedEnvDir(t, "HPCCTL_TEST_DEBIAN_ROOTFS")
	testutil.NeedRoot(t)
	for _, comp := range []string{"zstd", "gzip"} {
		t.Run(comp, func(t *testing.T) {
			img := mksquashfs(t, root, "-comp", comp)
			r := sqtest.OpenImage(t, img)
			compareTree(t, r, root, compareOptions{})
			if got, want := listing(t, r), unsquashfsListing(t, img); !slices.Equal(got, want) {
				t.Errorf("listing differs from unsquashfs -lln:\n%s", diffLines(got, want))
			}
			if comp != "zstd" {
				return
			}
			dst := t.TempDir()
			if err := Extract(r, dst, ExtractOptions{KeepSetuid: true, Xattrs: true}); err != nil {
				t.Fatalf("Extract: %v", err)
			}
			compareExtracted(t, root, dst, true)
		})
	}
}
