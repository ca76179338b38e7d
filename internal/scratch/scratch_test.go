package scratch

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"golang.org/x/sys/unix"
)

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

// leave makes a directory as a process would have, with a read-only directory inside (as an
// extracted image has), and its lock file: locked, it stands for a live process, unlocked for a
// killed one.
func leave(t *testing.T, parent, name string, locked bool) {
	t.Helper()
	dir := filepath.Join(parent, name)
	if err := os.MkdirAll(filepath.Join(dir, "ro", "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ro", "sub", "f"), []byte("x"), 0o400); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{filepath.Join(dir, "ro", "sub"), filepath.Join(dir, "ro")} {
		if err := os.Chmod(d, 0o500); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Create(dir + ".lock")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close(); RemoveAll(dir) }) //nolint:errcheck // test cleanup
	if locked {
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			t.Fatal(err)
		}
	}
}

func TestMakeSweepsAndRemoves(t *testing.T) {
	parent := t.TempDir()
	leave(t, parent, "x-killed", false)
	leave(t, parent, "x-live", true)
	leave(t, parent, "other-killed", false) // another prefix: not ours to sweep
	d, err := Make(parent, "x-", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ours := filepath.Base(d.Path)
	want := []string{"other-killed", "other-killed.lock", ours, ours + ".lock", "x-live", "x-live.lock"}
	slices.Sort(want)
	if got := names(t, parent); !slices.Equal(got, want) {
		t.Errorf("after Make: %q, want %q (the killed x- directory removed, the rest kept)", got, want)
	}
	if err := unix.Flock(int(d.LockFile().Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Errorf("our lock is not held: %v", err)
	}
	if err := d.Remove(); err != nil {
		t.Fatal(err)
	}
	if got := names(t, parent); slices.Contains(got, ours) || slices.Contains(got, ours+".lock") {
		t.Errorf("after Remove: %q still holds %s", got, ours)
	}
}

// Another user's lock file in a shared directory is left alone, even when free.
func TestSweepLeavesOthers(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to make a file owned by another user")
	}
	parent := t.TempDir()
	leave(t, parent, "x-theirs", false)
	if err := os.Chown(filepath.Join(parent, "x-theirs.lock"), 2000, 2000); err != nil {
		t.Fatal(err)
	}
	sweep(parent, "x-", slog.New(slog.DiscardHandler), nil)
	if got := names(t, parent); !slices.Contains(got, "x-theirs") {
		t.Errorf("another user's directory was swept: %q", got)
	}
}

// SweepWith removes killed directories, counts them, leaves live ones, and calls its remover
// only for what RemoveAll could not remove.
func TestSweepWith(t *testing.T) {
	parent := t.TempDir()
	leave(t, parent, "x-killed1", false)
	leave(t, parent, "x-killed2", false)
	leave(t, parent, "x-live", true)
	called := 0
	n := SweepWith(parent, "x-", slog.New(slog.DiscardHandler), func(string) error { called++; return nil })
	if n != 2 || called != 0 {
		t.Errorf("removed %d (want 2), remover called %d times (want 0)", n, called)
	}
	if got := names(t, parent); !slices.Equal(got, []string{"x-live", "x-live.lock"}) {
		t.Errorf("after SweepWith: %q", got)
	}
}
