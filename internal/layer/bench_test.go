package layer

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/squashfs"
	lt "github.com/hpcctl/hpcctl/internal/testutil/layertest"
)

// benchLayers is three gzip layers of 1500 files of 4 KiB in 30 directories, the upper ones
// overwriting and whiting out part of the lower ones.
func benchLayers() ([]Layer, int64) {
	var tars [][]byte
	var total int64
	body := strings.Repeat("0123456789abcdef", 256)
	for li := range 3 {
		var files []F
		for i := range 1500 {
			files = append(files, lt.Reg(fmt.Sprintf("usr/d%02d/f%04d", i%30, i+li*500), body))
		}
		if li > 0 {
			files = append(files, lt.Whiteout(fmt.Sprintf("usr/d%02d", li)))
		}
		tar := lt.Tar(files)
		total += int64(len(tar))
		tars = append(tars, lt.Gzip(tar))
	}
	return blobs(tars...), total
}

func BenchmarkFlatten(b *testing.B) {
	ls, total := benchLayers()
	sink := func(e squashfs.Entry) error {
		if e.Body != nil {
			_, err := io.Copy(io.Discard, e.Body)
			return err
		}
		return nil
	}
	b.SetBytes(total)
	for b.Loop() {
		if _, err := Flatten(context.Background(), ls, sink, Options{}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkIndex measures the header-only first pass alone: the price of reading each layer twice.
func BenchmarkIndex(b *testing.B) {
	ls, total := benchLayers()
	b.SetBytes(total)
	for b.Loop() {
		if _, err := indexAll(context.Background(), ls, Options{Parallel: 1}); err != nil {
			b.Fatal(err)
		}
	}
}
