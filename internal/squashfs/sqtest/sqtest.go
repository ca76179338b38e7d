// Package sqtest writes and opens squashfs images for the tests of squashfs and of the packages
// that serve its images (sqfuse). Only tests import it (TestOnlyTestsImport holds that): it
// imports squashfs, so squashfs's own tests use it from the external package squashfs_test.
package sqtest

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/hpcctl/hpcctl/internal/squashfs"
)

// Add returns a fill function for Write that adds the entries in order.
func Add(entries []squashfs.Entry) func(*squashfs.Writer) error {
	return func(w *squashfs.Writer) error {
		for _, e := range entries {
			if err := w.Add(e); err != nil {
				return err
			}
		}
		return nil
	}
}

// Write makes a Writer on dst, fills it and closes it, failing the test on any error. It returns
// the closed Writer for callers that check its Stats.
func Write(t testing.TB, dst io.WriteSeeker, opts squashfs.Options, fill func(*squashfs.Writer) error) *squashfs.Writer {
	t.Helper()
	w, err := squashfs.NewWriter(dst, opts)
	if err != nil {
		t.Fatalf("new writer: %v", err)
	}
	if err := fill(w); err != nil {
		t.Fatalf("fill image: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("close writer: %v", err)
	}
	return w
}

// WriteImage writes the entries into a new image file under t.TempDir and returns its path.
func WriteImage(t testing.TB, opts squashfs.Options, entries []squashfs.Entry) string {
	t.Helper()
	return WriteImageFunc(t, opts, Add(entries))
}

// WriteImageFunc is WriteImage for images filled some other way than from a list of entries
// (squashfs.WriteTree from a directory).
func WriteImageFunc(t testing.TB, opts squashfs.Options, fill func(*squashfs.Writer) error) string {
	t.Helper()
	img := filepath.Join(t.TempDir(), "img.sqfs")
	f, err := os.OpenFile(img, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		t.Fatalf("create image: %v", err)
	}
	defer f.Close()
	Write(t, f, opts, fill)
	if err := f.Close(); err != nil {
		t.Fatalf("close %s: %v", img, err)
	}
	return img
}

// OpenImage opens an image file with the reader; the file stays open until the test ends,
// since the Reader reads from it on demand.
func OpenImage(t testing.TB, img string) *squashfs.Reader {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	st, err := f.Stat()
	if err != nil {
		t.Fatalf("stat %s: %v", img, err)
	}
	r, err := squashfs.Open(f, st.Size())
	if err != nil {
		t.Fatalf("Open %s: %v", img, err)
	}
	return r
}
