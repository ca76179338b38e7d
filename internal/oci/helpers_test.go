package oci

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/hpcctl/hpcctl/internal/testutil/ocitest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// testImage returns a two-layer image whose layers carry the given tag in their contents.
func testImage(tag string) ocitest.Image {
	return ocitest.Image{
		Layers: [][]byte{
			ocitest.Layer(map[string]string{"etc/os-release": "ID=test\n", "bin/hello": "#!/bin/sh\necho " + tag + "\n"}),
			ocitest.Layer(map[string]string{"data/" + tag: tag}),
		},
		Env:        []string{"PATH=/usr/bin:/bin", "TAG=" + tag},
		Cmd:        []string{"/bin/hello"},
		Entrypoint: []string{"/bin/sh", "-c"},
		WorkingDir: "/data",
		User:       "1000:1000",
		Labels:     map[string]string{"org.example.tag": tag},
	}
}

// randomLayer returns a tar holding one file of n pseudo-random (incompressible) bytes.
func randomLayer(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	data := make([]byte, n)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	return ocitest.TarFiles(map[string][]byte{fmt.Sprintf("blob-%d", seed): data})
}

func pull(t testing.TB, ref string, opts SourceOptions) *Image {
	t.Helper()
	img, err := Pull(context.Background(), ref, opts)
	if err != nil {
		t.Fatalf("Pull(%s): %v", ref, err)
	}
	return img
}

// readLayer reads a layer through its verifying reader and returns the uncompressed tar.
func readLayer(t testing.TB, l LayerBlob) []byte {
	t.Helper()
	rc, err := l.Open()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read layer %s: %v", l.Digest, err)
	}
	if l.MediaType == imgspecv1.MediaTypeImageLayerGzip {
		zr, err := gzip.NewReader(bytes.NewReader(data))
		if err != nil {
			t.Fatal(err)
		}
		if data, err = io.ReadAll(zr); err != nil {
			t.Fatal(err)
		}
	}
	return data
}

// checkImage compares a pulled image with the fixture it came from.
func checkImage(t *testing.T, img *Image, want ocitest.Image) {
	t.Helper()
	c := img.Config.Config
	if fmt.Sprint(c.Env) != fmt.Sprint(want.Env) || fmt.Sprint(c.Cmd) != fmt.Sprint(want.Cmd) ||
		fmt.Sprint(c.Entrypoint) != fmt.Sprint(want.Entrypoint) || c.WorkingDir != want.WorkingDir ||
		c.User != want.User || fmt.Sprint(c.Labels) != fmt.Sprint(want.Labels) {
		t.Errorf("config = %+v, want fields of %+v", c, want)
	}
	if img.Config.Created == nil || !img.Config.Created.Equal(ocitest.Epoch) {
		t.Errorf("created = %v, want %v", img.Config.Created, ocitest.Epoch)
	}
	if len(img.Layers) != len(want.Layers) {
		t.Fatalf("%d layers, want %d", len(img.Layers), len(want.Layers))
	}
	for i, l := range img.Layers {
		if got := readLayer(t, l); !bytes.Equal(got, want.Layers[i]) {
			t.Errorf("layer %d (%s) differs from the fixture", i, l.Digest)
		}
	}
}

func readAll(rc io.ReadCloser) ([]byte, error) {
	defer rc.Close()
	return io.ReadAll(rc)
}

func readLayerErr(l LayerBlob) ([]byte, error) {
	rc, err := l.Open()
	if err != nil {
		return nil, err
	}
	return readAll(rc)
}
