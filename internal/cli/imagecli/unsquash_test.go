package imagecli

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/cli"
	"github.com/hpcctl/hpcctl/internal/squashfs"
)

// imageAt writes a file of junk bytes followed by a squashfs of a one-file tree, as a SIF holds
// its partition, and returns it open with the partition's offset and size.
func imageAt(t *testing.T, junk int) (*os.File, int64, int64) {
	t.Helper()
	tree := t.TempDir()
	if err := os.WriteFile(filepath.Join(tree, "hello"), []byte("from the image\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.Create(filepath.Join(t.TempDir(), "img.sif"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	if _, err = f.Write(make([]byte, junk)); err != nil {
		t.Fatal(err)
	}
	w, err := squashfs.NewWriter(f, squashfs.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err = squashfs.WriteTree(context.Background(), w, tree); err != nil {
		t.Fatal(err)
	}
	if err = w.Close(); err != nil {
		t.Fatal(err)
	}
	end, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		t.Fatal(err)
	}
	return f, int64(junk), end - int64(junk)
}

func TestExtractPartition(t *testing.T) {
	g := &cli.Globals{Logger: slog.New(slog.DiscardHandler)}
	f, off, size := imageAt(t, 4096)
	for _, sz := range []int64{size, 0} { // 0: to the end of the image
		dest := t.TempDir()
		if err := extract(g, f, off, sz, dest); err != nil {
			t.Fatalf("extract (size %d): %v", sz, err)
		}
		if b, err := os.ReadFile(filepath.Join(dest, "hello")); err != nil || string(b) != "from the image\n" {
			t.Errorf("extracted hello = %q, %v", b, err)
		}
	}
}

func TestExtractRefuses(t *testing.T) {
	g := &cli.Globals{Logger: slog.New(slog.DiscardHandler)}
	f, off, size := imageAt(t, 4096)
	notEmpty := t.TempDir()
	if err := os.WriteFile(filepath.Join(notEmpty, "mine"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		off, size int64
		dest      string
		want      []string
	}{
		{"not a squashfs there", 0, size, t.TempDir(), []string{f.Name()}},
		{"truncated after the superblock", off, 96, t.TempDir(), []string{f.Name()}},
		{"negative offset", -1, size, t.TempDir(), []string{"--offset -1"}},
		{"offset past the end", off + size + 1, 0, t.TempDir(), []string{"do not locate a partition"}},
		{"destination not empty", off, size, notEmpty, []string{notEmpty, "not empty"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := extract(g, f, tc.off, tc.size, tc.dest)
			if err == nil {
				t.Fatal("extracted, want an error")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) || strings.Contains(err.Error(), "\n") {
					t.Errorf("err = %q, want one line saying %q", err, w)
				}
			}
		})
	}
	if ents, _ := os.ReadDir(notEmpty); len(ents) != 1 {
		t.Errorf("the non-empty destination now holds %d entries, want its own one", len(ents))
	}
}

func TestUnsquashIsHidden(t *testing.T) {
	code, out, _ := run(t, "--help")
	if code != 0 || strings.Contains(out, cli.UnsquashVerb) {
		t.Errorf("--help (status %d) should not list %s:\n%s", code, cli.UnsquashVerb, out)
	}
}
