package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/hpcctl/hpcctl/internal/config"
	"github.com/hpcctl/hpcctl/internal/hostfacts"
	"github.com/hpcctl/hpcctl/internal/isolation"
	"github.com/hpcctl/hpcctl/internal/refcache"
	"github.com/hpcctl/hpcctl/internal/sif"
	"github.com/hpcctl/hpcctl/internal/spec"
	"github.com/hpcctl/hpcctl/internal/squashfs/superblock"
)

// resolvedImage is an image ready to launch.
type resolvedImage struct {
	isolation.Image
	// File is the image, opened once and checked against the site's signature policy: what the
	// launcher mounts (nil after --unsquash).
	File *os.File
	// Squashfuse is the squashfuse_ll that serves the image (BackendSquashfuse only).
	Squashfuse string
}

// resolveImage opens the image once, checks it against the site's signature policy, reads a SIF
// image or takes a plain squashfs file or a sandbox directory, and picks the mount backend.
// cleanup closes the file.
func resolveImage(ctx context.Context, g *Globals, o *launchOptions, conf *config.Config, image string) (resolvedImage, func(), error) {
	none := func() {}
	if refcache.IsReference(image) {
		path, release, err := fetchReference(ctx, g, o.ref, conf, image)
		if err != nil {
			return resolvedImage{}, none, err
		}
		defer release() // the image is open when this returns
		image = path
	}
	abs, err := filepath.Abs(image)
	if err != nil {
		return resolvedImage{}, none, fmt.Errorf("image: %w", err)
	}
	if err = checkImageLimits(ctx, conf, abs); err != nil {
		return resolvedImage{}, none, err
	}
	f, err := openUserFile(abs, "image", "a SIF image, a squashfs file or a sandbox directory", true)
	if err != nil {
		return resolvedImage{}, none, err
	}
	img, cleanup, err := resolveOpen(ctx, g, o, conf, f)
	if err != nil || img.Path != abs {
		f.Close()
		f = nil
	}
	if err != nil {
		return img, none, err
	}
	img.File = f
	return img, func() {
		cleanup()
		if f != nil {
			f.Close()
		}
	}, nil
}

func resolveOpen(ctx context.Context, g *Globals, o *launchOptions, conf *config.Config, f *os.File) (resolvedImage, func(), error) {
	none := func() {}
	abs := f.Name()
	st, err := f.Stat()
	if err != nil {
		return resolvedImage{}, none, fmt.Errorf("image: %w", err)
	}
	kind := kindSIF
	switch {
	case st.IsDir():
		kind = kindDir
	case isSquashfs(f):
		kind = kindSquashfs
	}
	sig := conf.Signature
	sig.VerifyData = sig.VerifyData || o.verifyData
	if err = checkPolicy(ctx, g, sig, f, kind); err != nil {
		return resolvedImage{}, none, err
	}
	if kind == kindDir {
		// The starter mounts no directory (it could not stop the user changing it): where user
		// namespaces are disabled, the error says what to run instead (starterHint).
		o.starter = starterChoice{why: "sandbox directories run in a user namespace", refused: o.starter.path != ""}
		if o.starter.refused {
			o.starter.why = "the setuid starter does not run sandbox directories: build a SIF of it (hpcctl build IMAGE.sif " + abs + ") and run that, installed where you cannot change it"
		}
		return resolvedImage{Image: isolation.Image{Path: abs, Backend: spec.BackendDir}}, none, nil
	}
	img := isolation.Image{Path: abs, Size: st.Size()}
	if kind == kindSIF {
		var si *sif.Image
		si, err = sif.OpenFile(f)
		if err != nil {
			return resolvedImage{Image: img}, none, fmt.Errorf("%w (hpcctl runs SIF images, squashfs files and sandbox directories)", err)
		}
		img.Offset, img.Size = si.Offset, si.Size
		// An Apptainer-built SIF may carry an OCI config; Apptainer ignores it for its own
		// /.singularity.d, and so does hpcctl.
		if c := si.Config; c != nil && !si.Apptainer {
			img.OCIConfig, img.Env, img.WorkingDir, img.Entrypoint, img.Cmd = true, c.Env, c.WorkingDir, c.Entrypoint, c.Cmd
		}
	}
	// squashfuse_ll serves a damaged image anyway, and the program then fails oddly ("command
	// not found"): refuse it here, with what to do, whichever way it would be mounted.
	if _, err = superblock.ReadAt(f, img.Offset, img.Size); err != nil {
		return resolvedImage{Image: img}, none, fmt.Errorf("image %s: its squashfs file system is damaged or cut short (%v): copy or build it again", abs, err)
	}
	if o.unsquash {
		var dir string
		var cleanup func()
		dir, cleanup, err = unsquash(ctx, g, f, img.Offset, img.Size)
		if err != nil {
			return resolvedImage{Image: img}, none, err
		}
		img.Backend, img.Path = spec.BackendDir, dir
		return resolvedImage{Image: img}, cleanup, nil
	}
	if o.starter.path != "" {
		why := starterImage(o.starter, f)
		if why == "" {
			img.Backend = spec.BackendLoop
			return resolvedImage{Image: img}, none, nil
		}
		o.starter = starterChoice{why: why, refused: true}
	}
	env := hostfacts.Probe(conf.Squashfuse)
	img.Backend, err = hostfacts.ChooseBackend(hostfacts.Choice(o.backend), env)
	r := resolvedImage{Image: img}
	if img.Backend == spec.BackendSquashfuse {
		r.Squashfuse = env.Squashfuse
	}
	return r, none, err
}

// isSquashfs reports whether the file starts with the squashfs magic (a bare image, as Apptainer
// also runs).
func isSquashfs(f *os.File) bool {
	magic := make([]byte, 4)
	n, _ := f.ReadAt(magic, 0)
	return n == len(magic) && string(magic) == "hsqs"
}
