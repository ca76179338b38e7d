package oci

import (
	"context"
	"errors"
	"fmt"

	"github.com/opencontainers/go-digest"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/docker"
	"go.podman.io/image/v5/docker/reference"
	"go.podman.io/image/v5/manifest"
	ocilayout "go.podman.io/image/v5/oci/layout"
	"go.podman.io/image/v5/types"
)

// Pull copies the image ref names into the cache (fetching only blobs it lacks) and returns it.
// A second pull of an unchanged image reads only the source manifest and copies nothing.
func Pull(ctx context.Context, ref string, opts SourceOptions) (*Image, error) {
	transport, name, err := ParseRef(ref)
	if err != nil {
		return nil, err
	}
	srcRef, err := imageReference(ref)
	if err != nil {
		return nil, err
	}
	root, err := opts.cacheDir()
	if err != nil {
		return nil, err
	}
	c, err := openCache(root)
	if err != nil {
		return nil, err
	}
	sys := opts.sourceContext(root)
	tmp := &pullScratch{parent: tempDir(root), log: opts.logger()}
	defer tmp.release()
	src, err := resolveSource(ctx, transport, name, srcRef, sys, tmp)
	if err != nil {
		return nil, classify(err, ref, transport, name, opts)
	}
	img, err := c.pull(ctx, src, sys, tmp, opts)
	var copyErr *copyError
	if errors.As(err, &copyErr) {
		if missing := missingBlob(copyErr.err, ref); missing != nil {
			return nil, missing
		}
		return nil, classify(copyErr.err, ref, transport, name, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("pull %s: %w", ref, err)
	}
	img.Ref, img.Digest, img.IndexDigest = ref, src.digest, src.index
	warnPlatform(opts, img)
	return img, nil
}

// pull returns the cached image for src, copying it in first when it is missing or damaged.
func (c *cache) pull(ctx context.Context, src resolved, sys *types.SystemContext, tmp *pullScratch, opts SourceOptions) (*Image, error) {
	log := opts.logger()
	unlock, err := c.lock(ctx, log)
	if err != nil {
		return nil, err
	}
	defer unlock()
	c.sweepPutBlobs(log)
	tag := tagFor(src.digest)
	img, err := c.load(tag)
	if err == nil {
		err = c.bound(img, src)
	}
	if err == nil {
		log.Debug("image in cache", "digest", src.digest, "cache", c.layout)
		img.Stats.CacheHit = true
		return img, nil
	}
	var unbound *unboundError
	if errors.As(err, &unbound) {
		// The copy below replaces the entry under tag with the source's own manifest.
		log.Warn("image cache entry does not match its source; copying the image again", "digest", src.digest, "err", err)
	} else if !errors.Is(err, errMiss) {
		return nil, err
	}
	if err = tmp.use(sys); err != nil {
		return nil, err
	}
	stats, err := c.copyIn(ctx, src, tag, sys, opts)
	if err != nil {
		return nil, err
	}
	if img, err = c.load(tag); err == nil {
		err = c.bound(img, src)
	}
	var size *blobSizeError
	if errors.As(err, &size) {
		return nil, size.inSource()
	}
	if err != nil {
		return nil, fmt.Errorf("read %s back from the cache after copying: %w", src.digest, err)
	}
	img.Stats = stats
	return img, nil
}

// copyIn copies the source image into the cache layout under tag. containers/image verifies every
// blob's digest as it copies, and reuses blobs the layout already holds.
func (c *cache) copyIn(ctx context.Context, src resolved, tag string, sys *types.SystemContext, opts SourceOptions) (PullStats, error) {
	pc, err := policyContext()
	if err != nil {
		return PullStats{}, err
	}
	defer pc.Destroy() //nolint:errcheck // it only releases the policy's resources
	destRef, err := ocilayout.NewReference(c.layout, tag)
	if err != nil {
		return PullStats{}, fmt.Errorf("cache reference %s: %w", tag, err)
	}
	progress := newProgress(opts)
	defer progress.close()
	opts.logger().Debug("copying image into cache", "source", src.ref.StringWithinTransport(), "digest", src.digest)
	out, err := copy.Image(ctx, pc, destRef, src.ref, &copy.Options{
		SourceCtx:          sys,
		DestinationCtx:     destContext(c.root, sys.BigFilesTemporaryDir),
		ImageListSelection: copy.CopySystemImage,
		ReportWriter:       progress.report,
		Progress:           progress.events,
		ProgressInterval:   progressInterval,
	})
	stats := progress.close()
	if err != nil {
		return stats, &copyError{err}
	}
	// A source that is already OCI is stored unchanged; make sure copy chose the instance we did.
	if got := digest.FromBytes(out); got != src.digest && src.nativeOCI {
		return stats, fmt.Errorf("copy stored manifest %s, expected %s: the source changed during the pull; try again", got, src.digest)
	}
	return stats, nil
}

// copyError marks a failure of containers/image's copy, which classify explains; other failures
// in the cache are reported as they are.
type copyError struct{ err error }

func (e *copyError) Error() string { return e.err.Error() }
func (e *copyError) Unwrap() error { return e.err }

// resolved is a source pinned to one platform's manifest.
type resolved struct {
	ref       types.ImageReference // what to copy from: pinned by digest where the transport allows
	digest    digest.Digest        // the chosen manifest
	index     digest.Digest        // the index it was chosen from, if any
	nativeOCI bool                 // the chosen manifest is OCI, so the cache stores it unchanged
	manifest  []byte               // the chosen manifest as the source has it
	mime      string               // its media type
}

// resolveSource is resolve, reading an oci-archive in place when it can (resolveArchive).
// Otherwise the source may unpack an archive: into this process's scratch directory.
func resolveSource(ctx context.Context, transport, name string, ref types.ImageReference, sys *types.SystemContext, tmp *pullScratch) (resolved, error) {
	if transport == TransportOCIArchive {
		if r, ok, err := resolveArchive(name, ref, sys); ok {
			return r, err
		}
	}
	if err := tmp.use(sys); err != nil {
		return resolved{}, err
	}
	return resolve(ctx, ref, sys)
}

// resolve reads the source's manifest and picks the instance for the requested platform.
func resolve(ctx context.Context, ref types.ImageReference, sys *types.SystemContext) (resolved, error) {
	src, err := ref.NewImageSource(ctx, sys)
	if err != nil {
		return resolved{}, err
	}
	defer src.Close()
	raw, mime, err := src.GetManifest(ctx, nil)
	if err != nil {
		return resolved{}, err
	}
	r := resolved{ref: ref}
	if manifest.MIMETypeIsMultiImage(mime) {
		r.index = digest.FromBytes(raw)
		if r.digest, err = chooseInstance(raw, mime, sys); err != nil {
			return resolved{}, err
		}
		if _, mime, err = src.GetManifest(ctx, &r.digest); err != nil {
			return resolved{}, err
		}
	} else if r.digest, err = manifest.Digest(raw); err != nil {
		return resolved{}, err
	}
	r.nativeOCI = mime == "application/vnd.oci.image.manifest.v1+json"
	r.manifest, r.mime = raw, mime
	r.ref, err = pinned(ref, r.digest)
	return r, err
}

// pinned returns a registry reference by the chosen manifest's digest, so the copy cannot pick up
// a tag that moved, nor make its own platform choice. Other transports are local and stay as given.
func pinned(ref types.ImageReference, d digest.Digest) (types.ImageReference, error) {
	named := ref.DockerReference()
	if ref.Transport().Name() != TransportDocker || named == nil {
		return ref, nil
	}
	withDigest, err := reference.WithDigest(reference.TrimNamed(named), d)
	if err != nil {
		return nil, fmt.Errorf("pin %s to %s: %w", named, d, err)
	}
	return docker.NewReference(withDigest)
}

// warnPlatform notes an explicitly requested architecture that a single-platform image does not
// match; image configs are often mislabelled, so this is not an error.
func warnPlatform(opts SourceOptions, img *Image) {
	if opts.Arch != "" && img.Config.Architecture != "" && opts.Arch != img.Config.Architecture && img.IndexDigest == "" {
		opts.logger().Warn("image architecture differs from the one requested",
			"image", img.Ref, "image_arch", img.Config.Architecture, "requested", opts.Arch)
	}
}
