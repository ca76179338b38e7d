package squashfs_test

import (
	"io"
	"testing"

	. "github.com/hpcctl/hpcctl/internal/squashfs"
	"github.com/hpcctl/hpcctl/internal/squashfs/sqtest"
)

// BenchmarkReadTree reads every file of a generated zstd image through one Reader, as an
// extraction or an audit would. The image is made once; each iteration opens it afresh so
// that the caches start cold.
func BenchmarkReadTree(b *testing.B) {
	src := b.TempDir()
	makeTree(b, src, treeOptions{blockSize: DefaultBlockSize, bigDir: 1000})
	img := mksquashfs(b, src, "-comp", "zstd")
	var total int64
	for b.Loop() {
		r := sqtest.OpenImage(b, img)
		total = 0
		err := r.Walk(func(p string, in *Inode) error {
			if in.Type != TypeRegular {
				return nil
			}
			f, err := r.FileReader(in)
			if err != nil {
				return err
			}
			n, err := io.Copy(io.Discard, f)
			total += n
			return err
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.SetBytes(total)
}
