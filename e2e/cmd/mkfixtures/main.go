// Command mkfixtures turns the cached Debian root file system into a deterministic multi-layer OCI
// image, and the host's static busybox into a small one, each as an OCI layout and an oci-archive:
// the images the build and launch tests use, made without any network.
//
// Usage: mkfixtures -debian-rootfs DIR -busybox FILE -out DIR
//
// It writes OUT/debian-oci/, OUT/debian-oci.tar, OUT/busybox-oci/ and OUT/busybox-oci.tar, each
// image tagged "latest". The same inputs give the same bytes.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/hpcctl/hpcctl/internal/testutil/ocitest"
)

// tag names the one image in each layout and archive.
const tag = "latest"

func main() {
	if err := run(os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "mkfixtures: %v\n", err)
		os.Exit(1)
	}
}

func run(args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("mkfixtures", flag.ContinueOnError)
	fs.SetOutput(stderr)
	rootfs := fs.String("debian-rootfs", "", "Debian root file system made by debootstrap (with python3)")
	busybox := fs.String("busybox", "/bin/busybox", "a static busybox binary")
	out := fs.String("out", "", "directory to write the images into (must exist)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *rootfs == "" || *out == "" || fs.NArg() > 0 {
		return errors.New("give -debian-rootfs DIR and -out DIR (see -h)")
	}
	debian, err := debianImage(*rootfs)
	if err != nil {
		return fmt.Errorf("debian image: %w", err)
	}
	if err = writeImage(*out, "debian-oci", debian); err != nil {
		return fmt.Errorf("debian image: %w", err)
	}
	bb, err := busyboxImage(*busybox)
	if err != nil {
		return fmt.Errorf("busybox image: %w", err)
	}
	if err := writeImage(*out, "busybox-oci", bb); err != nil {
		return fmt.Errorf("busybox image: %w", err)
	}
	return nil
}

// writeImage makes OUT/NAME as an OCI layout (ocitest's writer, shared with the unit tests), then
// OUT/NAME.tar, an oci-archive of that layout.
func writeImage(out, name string, img ocitest.Image) error {
	dir := filepath.Join(out, name)
	if _, err := ocitest.Layout(dir, tag, img); err != nil {
		return err
	}
	return archiveDir(dir, filepath.Join(out, name+".tar"))
}
