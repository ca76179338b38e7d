package oci

import (
	"io"
	"path/filepath"
	"testing"

	"github.com/hpcctl/hpcctl/internal/testutil/ocitest"
)

// benchImage is a ~5 MiB image: a small base layer plus 5 MiB of incompressible data.
func benchImage() ocitest.Image {
	img := testImage("bench")
	img.Gzip = true
	img.Layers = append(img.Layers, randomLayer(7, 5<<20))
	return img
}

func benchPull(b *testing.B, ref string, opts SourceOptions, warm bool) {
	b.SetBytes(5 << 20)
	if warm {
		opts.CacheDir = b.TempDir()
		pull(b, ref, opts)
	}
	for b.Loop() {
		if !warm {
			b.StopTimer()
			opts.CacheDir = b.TempDir()
			b.StartTimer()
		}
		img := pull(b, ref, opts)
		if img.Stats.CacheHit != warm {
			b.Fatalf("cache hit %v, want %v", img.Stats.CacheHit, warm)
		}
	}
}

func BenchmarkPullLayout(b *testing.B) {
	dir := b.TempDir()
	ocitest.WriteLayout(b, dir, "", benchImage())
	b.Run("cold", func(b *testing.B) { benchPull(b, "oci:"+dir, SourceOptions{}, false) })
	b.Run("warm", func(b *testing.B) { benchPull(b, "oci:"+dir, SourceOptions{}, true) })
}

func BenchmarkPullOCIArchive(b *testing.B) {
	path := filepath.Join(b.TempDir(), "img.tar")
	ocitest.WriteOCIArchive(b, path, "", benchImage())
	b.Run("cold", func(b *testing.B) { benchPull(b, "oci-archive:"+path, SourceOptions{}, false) })
	b.Run("warm", func(b *testing.B) { benchPull(b, "oci-archive:"+path, SourceOptions{}, true) })
}

func BenchmarkPullRegistry(b *testing.B) {
	reg := startRegistry(b, "", "")
	dir := b.TempDir()
	ocitest.WriteLayout(b, dir, "", benchImage())
	reg.push(b, dir, "bench/img:1")
	ref := "docker://" + reg.addr + "/bench/img:1"
	opts := SourceOptions{Insecure: true, AuthFile: emptyAuth(b)}
	b.Run("cold", func(b *testing.B) { benchPull(b, ref, opts, false) })
	b.Run("warm", func(b *testing.B) { benchPull(b, ref, opts, true) })
}

// BenchmarkOpenLayer measures reading a 5 MiB layer through the verifying reader.
func BenchmarkOpenLayer(b *testing.B) {
	dir := b.TempDir()
	ocitest.WriteLayout(b, dir, "", benchImage())
	img := pull(b, "oci:"+dir, SourceOptions{CacheDir: b.TempDir()})
	l := img.Layers[len(img.Layers)-1]
	b.SetBytes(l.Size)
	buf := make([]byte, 256<<10)
	for b.Loop() {
		rc, err := l.Open()
		if err != nil {
			b.Fatal(err)
		}
		if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{rc}, buf); err != nil {
			b.Fatal(err)
		}
		rc.Close()
	}
}
