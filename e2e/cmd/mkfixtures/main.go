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
	if err := writeImage(*out, "debian-oci", func(l *layout) (imageConfig, error) {
		return debianImage(l, *rootfs)
	}); err != nil {
		return fmt.Errorf("debian image: %w", err)
	}
	if err := writeImage(*out, "busybox-oci", func(l *layout) (imageConfig, error) {
		return busyboxImage(l, *busybox)
	}); err != nil {
		return fmt.Errorf("busybox image: %w", err)
	}
	return nil
}

// writeImage makes OUT/NAME as an OCI layout with the layers fill adds, then OUT/NAME.tar.
func writeImage(out, name string, fill func(*layout) (imageConfig, error)) error {
	dir := filepath.Join(out, name)
	l, err := newLayout(dir)
	if err != nil {
		return err
	}
	cfg, err := fill(l)
	if err != nil {
		return err
	}
	if err := l.finish(cfg, tag); err != nil {
		return err
	}
	return archiveDir(dir, filepath.Join(out, name+".tar"))
}
