package build

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// commitRace starts n pending outputs to the same path, writes each one's number into it, and
// commits them all at once: what n parallel builds do at their end.
func commitRace(t *testing.T, dest string, n int, force bool) (wins int, errs []error) {
	t.Helper()
	pending := make([]*pendingFile, n)
	for i := range pending {
		p, err := createPending(dest, force)
		if err != nil {
			t.Fatal(err)
		}
		defer p.discard()
		if _, err := fmt.Fprintf(p, "build %d\n", i); err != nil {
			t.Fatal(err)
		}
		pending[i] = p
	}
	results := make([]error, n)
	var wg sync.WaitGroup
	for i, p := range pending {
		wg.Add(1)
		go func() { defer wg.Done(); results[i] = p.commit() }()
	}
	wg.Wait()
	for _, err := range results {
		if err == nil {
			wins++
		} else {
			errs = append(errs, err)
		}
	}
	return wins, errs
}

// TestCommitNoReplace: without --force, of 8 builds to the same new path exactly one names the
// file and the others fail saying so (the existence check at the start of a build is no guard
// against a build that finishes meanwhile); with --force every build replaces atomically.
func TestCommitNoReplace(t *testing.T) {
	for _, force := range []bool{false, true} {
		t.Run(fmt.Sprintf("force=%v", force), func(t *testing.T) {
			dir := t.TempDir()
			dest := filepath.Join(dir, "out.sif")
			wins, errs := commitRace(t, dest, 8, force)
			want := 1
			if force {
				want = 8
			}
			if wins != want {
				t.Errorf("%d builds named the output, want %d (errors %v)", wins, want, errs)
			}
			for _, err := range errs {
				if !strings.Contains(err.Error(), dest) || !strings.Contains(err.Error(), "--force") {
					t.Errorf("error %q does not name the output and --force", err)
				}
			}
			if b, err := os.ReadFile(dest); err != nil || !strings.HasPrefix(string(b), "build ") {
				t.Errorf("output holds %q, %v; want one build's whole content", b, err)
			}
			if names := dirEntries(t, dir); len(names) != 1 {
				t.Errorf("directory holds %q, want only out.sif", names)
			}
		})
	}
}

// TestCommitNamedTemp: where O_TMPFILE is missing the pending file is a named temporary; it
// must not replace a file that appeared meanwhile either, and it must not be left behind.
func TestCommitNamedTemp(t *testing.T) {
	dir := t.TempDir()
	dest := filepath.Join(dir, "out.sif")
	f, err := os.CreateTemp(dir, ".out.sif.tmp-*")
	if err != nil {
		t.Fatal(err)
	}
	p := &pendingFile{File: f, dest: dest}
	if err := os.WriteFile(dest, []byte("precious\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := p.commit(); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("commit over a file made meanwhile: %v, want an error naming --force", err)
	}
	p.discard()
	if b, _ := os.ReadFile(dest); string(b) != "precious\n" {
		t.Errorf("the existing file was replaced: %q", b)
	}
	if names := dirEntries(t, dir); len(names) != 1 {
		t.Errorf("directory holds %q, want only out.sif", names)
	}
}
