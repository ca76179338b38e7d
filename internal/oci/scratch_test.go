package oci

import (
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/testutil/ocitest"
)

// names lists a directory, sorted.
func names(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range ents {
		n = append(n, e.Name())
	}
	slices.Sort(n)
	return n
}

// leave makes a scratch directory as a process would have, with a file in it, and returns its lock
// file; locked, it stands for a live process, unlocked for a killed one.
func leave(t *testing.T, parent, name string, locked bool) {
	t.Helper()
	dir := filepath.Join(parent, name)
	if err := os.MkdirAll(filepath.Join(dir, "container_images_oci1"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "container_images_oci1", "blob"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(dir + ".lock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if locked {
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			t.Fatal(err)
		}
	}
}

// A pull sweeps what a killed pull left, and leaves nothing of its own.
func TestPullLeavesNoScratch(t *testing.T) {
	dir := t.TempDir()
	archive := filepath.Join(dir, "img.tar")
	ocitest.WriteOCIArchive(t, archive, "", testImage("plain"))
	cache := t.TempDir()
	if err := os.MkdirAll(tempDir(cache), 0o700); err != nil {
		t.Fatal(err)
	}
	leave(t, tempDir(cache), "pull-killed", false)
	pull(t, "oci-archive:"+archive, SourceOptions{CacheDir: cache})
	if got := names(t, tempDir(cache)); len(got) != 0 {
		t.Errorf("the cache's tmp holds %q after a pull, want nothing", got)
	}
}
