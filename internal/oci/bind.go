package oci

import (
	"fmt"

	"go.podman.io/image/v5/manifest"
)

// unboundError means the cache entry tagged with a source's digest holds another image. The tag
// is only a name in index.json, which any process (or a damaged disk) can rewrite; blobs are
// checked against the digests the index gives, so a wrong entry would otherwise build another
// image while printing and recording the requested digest (issue 12).
type unboundError struct {
	tag, why, layout string
}

func (e *unboundError) Error() string {
	return fmt.Sprintf("image cache entry %s %s: remove the cache directory %s", e.tag, e.why, e.layout)
}

func (e *unboundError) Unwrap() error { return ErrCorrupt }

// bound checks that img, read from the cache under src's tag, is src's image: the same manifest
// when the source is OCI (stored unchanged), else the same config and layers as the source's
// manifest, which the conversion to OCI keeps (the cache never recompresses layers).
func (c *cache) bound(img *Image, src resolved) error {
	tag := tagFor(src.digest)
	unbound := func(format string, args ...any) error {
		return &unboundError{tag: tag, why: fmt.Sprintf(format, args...), layout: c.layout}
	}
	if src.nativeOCI {
		if img.CachedManifest != src.digest {
			return unbound("holds manifest %s, not the source's %s", img.CachedManifest, src.digest)
		}
		return nil
	}
	mime := src.mime
	if mime == "" {
		mime = manifest.GuessMIMEType(src.manifest)
	}
	m, err := manifest.FromBlob(src.manifest, mime)
	if err != nil {
		return fmt.Errorf("parse the source manifest %s: %w", src.digest, err)
	}
	if cfg := m.ConfigInfo().Digest; cfg != "" && cfg != img.ConfigDigest {
		return unbound("holds config %s, not the source's %s", img.ConfigDigest, cfg)
	}
	layers := m.LayerInfos()
	if len(layers) != len(img.Layers) {
		return unbound("holds %d layers, the source %d", len(img.Layers), len(layers))
	}
	for i, l := range layers {
		if l.Digest != img.Layers[i].Digest {
			return unbound("holds layer %s where the source has %s", img.Layers[i].Digest, l.Digest)
		}
	}
	return nil
}
