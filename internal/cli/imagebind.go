package cli

import (
	"errors"
	"fmt"
	"os"
	"slices"

	"github.com/hpcctl/hpcctl/internal/isolation"
	"github.com/hpcctl/hpcctl/internal/sif"
	"github.com/hpcctl/hpcctl/internal/spec"
	"github.com/hpcctl/hpcctl/internal/squashfs/superblock"
)

// isImageFile reports whether an --overlay path is a file (an image) rather than a directory.
func isImageFile(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular()
}

// wantsImages reports whether the launch binds an image (image-src=, id=) or layers an image
// file: those take the user-namespace path, where squashfuse_ll serves them, not the setuid
// starter. Options that do not parse say nothing here; buildSpec reports them.
func (o *launchOptions) wantsImages() bool {
	cwd, err := os.Getwd()
	if err != nil {
		return false
	}
	for _, specs := range [][]string{o.binds, o.apptainer.envBinds} {
		binds, _ := isolation.ParseBinds(specs, cwd)
		if slices.ContainsFunc(binds, func(b isolation.Bind) bool { return b.Image != nil }) {
			return true
		}
	}
	for _, specs := range [][]string{o.apptainer.mounts, o.apptainer.envMounts} {
		binds, _ := isolation.ParseMounts(specs, cwd)
		if slices.ContainsFunc(binds, func(b isolation.Bind) bool { return b.Image != nil }) {
			return true
		}
	}
	ovs, _ := isolation.ParseOverlaysWith(o.overlays, cwd, isImageFile)
	return slices.ContainsFunc(ovs, func(ov spec.Overlay) bool { return ov.Image > 0 })
}

// resolveImages locates the squashfs of each of the Spec's extra images (image binds, image
// overlays): a squashfs file as it is, a SIF's partition by ID, its overlay partition for an
// overlay, else its root partition. ext3 images, which Apptainer can also bind, are refused with
// one line: hpcctl mounts squashfs only.
func resolveImages(s *spec.Spec, viaStarter bool) error {
	if len(s.Images) == 0 {
		return nil
	}
	if viaStarter {
		return errors.New("image binds (image-src=, id=) and image overlays are not available through the setuid starter: run with --userns")
	}
	overlay := map[int]bool{}
	for _, o := range s.Overlays {
		overlay[o.Image] = o.Image > 0
	}
	for i := range s.Images {
		if err := locateExtraImage(&s.Images[i], overlay[i+1]); err != nil {
			return err
		}
	}
	return nil
}

func locateExtraImage(im *spec.Image, overlay bool) error {
	what := "bind"
	if overlay {
		what = "overlay"
	}
	f, err := os.Open(im.Path)
	if err != nil {
		return fmt.Errorf("%s image %s: %w", what, im.Path, errors.Unwrap(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("%s image %s: %w", what, im.Path, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("bind image %s: image-src= and id= take an image file, and this is not one: leave them out to bind it as it is", im.Path)
	}
	switch extraImageKind(f) {
	case "squashfs":
		if im.Partition != 0 {
			return fmt.Errorf("bind image %s: id=%d selects a SIF partition, but this is a squashfs file: leave out id=", im.Path, im.Partition)
		}
		im.Offset, im.Size = 0, st.Size()
	case "sif":
		p, err := sif.FindPartition(f, uint32(im.Partition), overlay)
		if errors.Is(err, sif.ErrNotSquashfs) {
			return fmt.Errorf("%s image %v: hpcctl mounts squashfs partitions only (an ext3 overlay partition is Apptainer's writable overlay: use a directory with --overlay)", what, err)
		}
		if errors.Is(err, sif.ErrNotSIF) {
			return fmt.Errorf("%s image %s is neither a squashfs image nor a SIF", what, im.Path)
		}
		if err != nil {
			return fmt.Errorf("%s image: %w (hpcctl inspect %s lists its partitions)", what, err, im.Path)
		}
		im.Offset, im.Size = p.Offset, p.Size
	case "ext3":
		return fmt.Errorf("%s image %s is an ext3 image: hpcctl mounts squashfs only; make one with mksquashfs (or use a directory)", what, im.Path)
	}
	if _, err := superblock.ReadAt(f, im.Offset, im.Size); err != nil {
		return fmt.Errorf("%s image %s: its squashfs file system is damaged or cut short (%v): copy or build it again", what, im.Path, err)
	}
	return nil
}

// extraImageKind names what the file holds by its magic numbers: "squashfs", "ext3", or "sif" for
// anything else, which sif.FindPartition then checks.
func extraImageKind(f *os.File) string {
	b := make([]byte, 1082)
	n, _ := f.ReadAt(b, 0)
	b = b[:n]
	switch {
	case len(b) >= 4 && string(b[:4]) == "hsqs":
		return "squashfs"
	case len(b) == 1082 && b[1080] == 0x53 && b[1081] == 0xef:
		// The ext2/3/4 superblock's magic, 1024+56 bytes in.
		return "ext3"
	}
	return "sif"
}
