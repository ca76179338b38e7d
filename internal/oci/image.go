// Package oci fetches OCI and Docker images from registries, layouts and archives into hpcctl's
// content-addressed cache (itself an OCI image layout) and hands out their config and layers.
package oci

import (
	"io"

	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// Image is one pulled image, for one platform, readable from the cache.
type Image struct {
	Ref string // as given
	// Digest is the source's manifest digest for the chosen platform: what a reproducible build
	// records. IndexDigest is the digest of the multi-platform index it came from, if any.
	Digest      digest.Digest
	IndexDigest digest.Digest
	// CachedManifest is the digest of the manifest stored in the cache; it differs from Digest
	// when the source was a Docker manifest, which the cache stores converted to OCI.
	CachedManifest digest.Digest
	ConfigDigest   digest.Digest
	Config         imgspecv1.Image // parsed OCI image config
	ConfigJSON     []byte          // the config blob as cached (digest verified), to embed verbatim
	Layers         []LayerBlob     // bottom first
	Stats          PullStats
}

// PullStats says what a pull had to transfer.
type PullStats struct {
	CacheHit     bool  // the image was cached already: no blob was copied
	BlobsFetched int   // blobs copied from the source (layers and config)
	BlobsReused  int   // blobs the source listed that the cache already held
	BytesFetched int64 // bytes read from the source for the fetched blobs
}

// LayerBlob is one layer blob in the cache.
type LayerBlob struct {
	Digest    digest.Digest
	MediaType string // e.g. application/vnd.oci.image.layer.v1.tar+gzip
	Size      int64
	// Open reads the blob from the cache, verifying size and digest as it goes: the final Read
	// returns an error (kind ErrCorrupt) instead of io.EOF when they do not match.
	Open func() (io.ReadCloser, error)
}
