package squashfs_test

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/hpcctl/hpcctl/internal/squashfs/sqtest"
)

// seedImages returns the checked-in images made by testdata/gen.sh, by file name.
func seedImages(t testing.TB) map[string][]byte {
	t.Helper()
	paths, err := filepath.Glob("testdata/*.sqfs")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no seed images in testdata (run testdata/gen.sh): %v", err)
	}
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		must(t, err)
		out[filepath.Base(p)] = b
	}
	return out
}

// TestSeedImages reads every seed image completely and compares it with unsquashfs.
func TestSeedImages(t *testing.T) {
	for name, b := range seedImages(t) {
		t.Run(name, func(t *testing.T) {
			if err := readAll(b); err != nil {
				t.Fatal(err)
			}
			r := sqtest.OpenImage(t, filepath.Join("testdata", name))
			if got, want := listing(t, r), unsquashfsListing(t, filepath.Join("testdata", name)); !slices.Equal(got, want) {
				t.Errorf("listing differs from unsquashfs -lln:\n%s", diffLines(got, want))
			}
			x, err := r.Xattrs("b")
			if err != nil || len(x["user.long"]) != 300 {
				t.Errorf("Xattrs(b) = %v, %v", x, err)
			}
		})
	}
}

// FuzzOpen opens mutated images and reads everything in them: any outcome but a panic, a
// hang or a huge allocation is fine.
func FuzzOpen(f *testing.F) {
	seeds := seedImages(f)
	for _, name := range slices.Sorted(maps.Keys(seeds)) {
		f.Add(seeds[name])
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		_ = readAll(data)
	})
}
