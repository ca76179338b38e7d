package oci

import (
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
