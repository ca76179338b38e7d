package oci

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/hpcctl/hpcctl/internal/testutil/ocitest"
)

// A pull sweeps what a killed pull left (package scratch has the details), and leaves nothing of
// its own.
func TestPullLeavesNoScratch(t *testing.T) {
	dir := t.TempDir()
	archive := filepath.Join(dir, "img.tar")
	ocitest.WriteOCIArchive(t, archive, "", testImage("plain"))
	cache := t.TempDir()
	killed := filepath.Join(tempDir(cache), "pull-killed")
	if err := os.MkdirAll(filepath.Join(killed, "container_images_oci1"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(killed+".lock", nil, 0o600); err != nil { // nobody holds its lock
		t.Fatal(err)
	}
	pull(t, "oci-archive:"+archive, SourceOptions{CacheDir: cache})
	if ents, err := os.ReadDir(tempDir(cache)); err != nil || len(ents) != 0 {
		t.Errorf("the cache's tmp holds %d entries after a pull (%v), want none", len(ents), err)
	}
}

// A pull killed while containers/image staged a blob leaves "oci-put-blob*" in the layout
// directory; the next pull, holding the cache lock, removes it.
func TestPullSweepsStagedBlobs(t *testing.T) {
	dir := t.TempDir()
	ocitest.WriteLayout(t, dir, "v1", testImage("plain"))
	cache := t.TempDir()
	pull(t, "oci:"+dir+":v1", SourceOptions{CacheDir: cache})
	left := filepath.Join(cache, "oci", "oci-put-blob123456")
	if err := os.WriteFile(left, make([]byte, 4096), 0o600); err != nil {
		t.Fatal(err)
	}
	pull(t, "oci:"+dir+":v1", SourceOptions{CacheDir: cache})
	if _, err := os.Stat(left); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("%s survived the next pull (%v)", left, err)
	}
}
