package oci

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// trueMediaType returns the layer media type that matches the blob's actual compression.
// docker-archive manifests always claim gzip while `docker save` stores plain tar, and
// containers/image keeps that claim when it stores the layer unchanged; a reader that trusted it
// would fail on the first byte. Only the OCI layer types are corrected; others are kept as given.
func (c *cache) trueMediaType(desc imgspecv1.Descriptor) (string, error) {
	switch desc.MediaType {
	case imgspecv1.MediaTypeImageLayer, imgspecv1.MediaTypeImageLayerGzip, imgspecv1.MediaTypeImageLayerZstd:
	default:
		return desc.MediaType, nil
	}
	f, err := os.Open(c.blobPath(desc.Digest))
	if err != nil {
		return "", fmt.Errorf("open cache blob %s: %w", desc.Digest, err)
	}
	defer f.Close()
	head := make([]byte, 4)
	n, err := io.ReadFull(f, head)
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read cache blob %s: %w", desc.Digest, err)
	}
	head = head[:n]
	switch {
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return imgspecv1.MediaTypeImageLayerGzip, nil
	case bytes.HasPrefix(head, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return imgspecv1.MediaTypeImageLayerZstd, nil
	}
	return imgspecv1.MediaTypeImageLayer, nil
}
