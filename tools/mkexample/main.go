// Command mkexample writes the example image of `make demo`: a two-layer OCI layout holding the
// probe program, made locally and deterministically (no registry, no network).
package main

import (
	"archive/tar"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/hpcctl/hpcctl/internal/testutil/layertest"
	"github.com/hpcctl/hpcctl/internal/testutil/ocitest"
)

func main() {
	probe := flag.String("probe", "", "the static probe binary to put at /usr/bin/probe")
	out := flag.String("out", "_out/example-oci", "OCI layout directory to write")
	flag.Parse()
	if err := run(*probe, *out); err != nil {
		fmt.Fprintln(os.Stderr, "mkexample:", err)
		os.Exit(1)
	}
}

func run(probePath, out string) error {
	probe, err := os.ReadFile(probePath)
	if err != nil {
		return fmt.Errorf("read the probe binary: %w (build it with 'make demo')", err)
	}
	epoch := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	base := layertest.Tar([]layertest.File{
		layertest.Dir("usr"), layertest.Dir("usr/bin"), layertest.Dir("etc"), layertest.Dir("data"),
		{Name: "usr/bin/probe", Type: tar.TypeReg, Mode: 0o755, Body: string(probe), ModTime: epoch},
		layertest.Symlink("bin", "usr/bin"),
		layertest.Reg("etc/example-release", "hpcctl example image 1\n"),
		layertest.Reg("data/draft.txt", "removed by the second layer\n"),
	})
	top := layertest.Tar([]layertest.File{
		layertest.Whiteout("data/draft.txt"),
		layertest.Reg("data/input.txt", "the same bytes on every machine\n"),
	})
	if err = os.RemoveAll(out); err != nil {
		return err
	}
	_, err = ocitest.Layout(out, "latest", ocitest.Image{
		Layers:     [][]byte{base, top},
		Gzip:       true,
		Entrypoint: []string{"/usr/bin/probe"},
		Env:        []string{"PATH=/usr/bin:/bin", "EXAMPLE_GREETING=hello from the image"},
		WorkingDir: "/data",
		Labels:     map[string]string{"org.opencontainers.image.title": "hpcctl example"},
		Created:    epoch,
	})
	return err
}
