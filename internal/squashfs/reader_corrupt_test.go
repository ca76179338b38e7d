package squashfs_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"testing"
	"time"

	. "github.com/hpcctl/hpcctl/internal/squashfs"
)

// corruptNames are the words every error about a damaged image must contain one of.
var corruptNames = []string{"superblock", "compressor options", "unsupported compression", "not a squashfs",
	"inode table", "directory table", "directory index", "fragment", "export table", "id table", "xattr",
	"data block", "root inode"}

func namesTable(err error) bool {
	for _, n := range corruptNames {
		if strings.Contains(err.Error(), n) {
			return true
		}
	}
	// A damaged directory index can only make a lookup miss.
	return errors.Is(err, fs.ErrNotExist)
}

// readAllGuarded is readAll that fails the test on a panic or after a generous time limit.
func readAllGuarded(t *testing.T, what string, read func() error) error {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("PANIC: %v", p)
			}
		}()
		done <- read()
	}()
	select {
	case err := <-done:
		if err != nil && strings.HasPrefix(err.Error(), "PANIC") {
			t.Fatalf("%s: %v", what, err)
		}
		return err
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: hung", what)
	}
	return nil
}

// corruptImages are a compressed image and one with uncompressed tables, both with every table.
func corruptImages(t *testing.T) map[string][]byte {
	src := t.TempDir()
	makeTree(t, src, treeOptions{blockSize: MinBlockSize, bigDir: 300})
	out := map[string][]byte{}
	for name, args := range map[string][]string{"gzip": {"-b", "4K"}, "plain": {"-b", "4K", "-noI", "-noF", "-noX"}} {
		b, err := readFileBytes(mksquashfs(t, src, args...))
		must(t, err)
		if err := readAll(b); err != nil {
			t.Fatalf("%s: intact image: %v", name, err)
		}
		out[name] = b
	}
	return out
}

// TestTruncated cuts images short two ways: a short size given to Open, and a reader that
// fails past the cut while Open is told the full size. Every cut must give an error that
// names what could not be read.
func TestTruncated(t *testing.T) {
	for name, img := range corruptImages(t) {
		var sb Superblock
		must(t, sb.UnmarshalBinary(img))
		used := int(sb.BytesUsed)
		step := max(1, used/200)
		for n := 0; n < used; n += step {
			if n > SuperblockSize && n < SuperblockSize+step {
				n = SuperblockSize // just past the superblock
			}
			if _, err := Open(bytes.NewReader(img[:n]), int64(n)); err == nil || !namesTable(err) {
				t.Errorf("%s cut at %d: Open: %v", name, n, err)
			}
			err := readAllGuarded(t, fmt.Sprintf("%s cut at %d", name, n), func() error {
				r, err := Open(&shortReader{img, n}, int64(len(img)))
				if err != nil {
					return err
				}
				return readReader(r)
			})
			if err == nil || !namesTable(err) {
				t.Errorf("%s cut at %d of %d: %v, want an error naming a table", name, n, used, err)
			}
		}
	}
}

// shortReader holds len(b) bytes but fails to read past n, like a file truncated under us.
type shortReader struct {
	b []byte
	n int
}

func (s *shortReader) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > int64(s.n) {
		return 0, io.ErrUnexpectedEOF
	}
	return copy(p, s.b[off:]), nil
}

// TestFlippedBytes damages bytes in every table; reading may fail, but only with an error that
// names a table, and flips in each table's structures must be caught.
func TestFlippedBytes(t *testing.T) {
	for name, img := range corruptImages(t) {
		var sb Superblock
		must(t, sb.UnmarshalBinary(img))
		for _, reg := range tableRegions(sb) {
			caught := 0
			step := max(1, (reg.hi-reg.lo)/80)
			for off := reg.lo; off < reg.hi; off += step {
				for _, x := range []byte{0xff, 0x01} {
					b := slices.Clone(img)
					b[off] ^= x
					err := readAllGuarded(t, fmt.Sprintf("%s: %s byte 0x%x ^ 0x%x", name, reg.name, off, x), func() error { return readAll(b) })
					if err == nil {
						continue
					}
					caught++
					if !namesTable(err) {
						t.Errorf("%s: %s byte 0x%x ^ 0x%x: error names no table: %v", name, reg.name, off, x, err)
					}
				}
			}
			t.Logf("%s: %s (0x%x-0x%x): %d damaged reads caught", name, reg.name, reg.lo, reg.hi, caught)
			if caught == 0 {
				t.Errorf("%s: %s: no damage caught", name, reg.name)
			}
		}
	}
}

// region is a named byte range of an image.
type region struct {
	name   string
	lo, hi uint64
}

// tableRegions splits an image at the table starts the superblock gives.
func tableRegions(sb Superblock) []region {
	starts := []region{{"superblock", 0, 0}, {"data", SuperblockSize, 0}, {"inode table", sb.InodeTableStart, 0},
		{"directory table", sb.DirectoryTableStart, 0}, {"id table", sb.IDTableStart, 0}}
	for _, o := range []region{{"fragment table", sb.FragmentTableStart, 0}, {"export table", sb.ExportTableStart, 0},
		{"xattr id table", sb.XattrIDTableStart, 0}} {
		if o.lo != NoTable {
			starts = append(starts, o)
		}
	}
	slices.SortFunc(starts, func(a, b region) int { return int(a.lo) - int(b.lo) })
	for i := range starts {
		starts[i].hi = sb.BytesUsed
		if i+1 < len(starts) {
			starts[i].hi = starts[i+1].lo
		}
	}
	return slices.DeleteFunc(starts, func(r region) bool { return r.hi <= r.lo })
}
