package oci

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"go.podman.io/image/v5/types"
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

func TestScratch(t *testing.T) {
	parent := t.TempDir()
	leave(t, parent, "pull-killed", false)
	leave(t, parent, "pull-live", true)
	s := &scratch{parent: parent, log: slog.New(slog.DiscardHandler)}
	var sys types.SystemContext
	if err := s.use(&sys); err != nil {
		t.Fatal(err)
	}
	ours := filepath.Base(sys.BigFilesTemporaryDir)
	if filepath.Dir(sys.BigFilesTemporaryDir) != parent {
		t.Fatalf("scratch directory %s is not in %s", sys.BigFilesTemporaryDir, parent)
	}
	if got, want := names(t, parent), []string{"pull-live", "pull-live.lock", ours, ours + ".lock"}; !slices.Equal(got, sortedCopy(want)) {
		t.Errorf("after use: %q, want %q (the killed pull's directory removed, the live one kept)", got, sortedCopy(want))
	}
	if err := s.use(&sys); err != nil || filepath.Base(sys.BigFilesTemporaryDir) != ours {
		t.Errorf("second use: %v, %s: want the same directory", err, sys.BigFilesTemporaryDir)
	}
	s.release()
	if got := names(t, parent); !slices.Equal(got, []string{"pull-live", "pull-live.lock"}) {
		t.Errorf("after release: %q, want only the live pull's", got)
	}
}

func sortedCopy(s []string) []string {
	c := slices.Clone(s)
	slices.Sort(c)
	return c
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
