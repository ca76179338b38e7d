package layertest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/opencontainers/go-digest"
	specs "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// WriteLayout adds an image made of layers (blobs as Tar, Gzip or Zstd return them, bottom first)
// and cfg to the OCI image layout in dir, creating the layout if needed, under the tag ref
// ("org.opencontainers.image.ref.name"). It returns the manifest digest. The same arguments always
// give the same digests: no timestamps are written.
func WriteLayout(dir, ref string, cfg v1.ImageConfig, layers ...[]byte) (digest.Digest, error) {
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return "", err
	}
	if err := writeJSON(filepath.Join(dir, v1.ImageLayoutFile), v1.ImageLayout{Version: v1.ImageLayoutVersion}); err != nil {
		return "", err
	}
	img := v1.Image{
		Platform: v1.Platform{Architecture: runtime.GOARCH, OS: "linux"},
		Config:   cfg,
		RootFS:   v1.RootFS{Type: "layers"},
	}
	man := v1.Manifest{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageManifest}
	for i, l := range layers {
		mediaType, diffID, err := inspectLayer(l)
		if err != nil {
			return "", fmt.Errorf("layer %d: %w", i, err)
		}
		img.RootFS.DiffIDs = append(img.RootFS.DiffIDs, diffID)
		d, err := writeBlob(dir, l)
		if err != nil {
			return "", err
		}
		man.Layers = append(man.Layers, v1.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(l))})
	}
	cfgBlob, err := json.Marshal(img)
	if err != nil {
		return "", err
	}
	cd, err := writeBlob(dir, cfgBlob)
	if err != nil {
		return "", err
	}
	man.Config = v1.Descriptor{MediaType: v1.MediaTypeImageConfig, Digest: cd, Size: int64(len(cfgBlob))}
	manBlob, err := json.Marshal(man)
	if err != nil {
		return "", err
	}
	md, err := writeBlob(dir, manBlob)
	if err != nil {
		return "", err
	}
	desc := v1.Descriptor{MediaType: v1.MediaTypeImageManifest, Digest: md, Size: int64(len(manBlob)),
		Annotations: map[string]string{v1.AnnotationRefName: ref}}
	return md, addToIndex(dir, desc)
}

// inspectLayer returns the media type, from the magic bytes, and the digest of the uncompressed tar.
func inspectLayer(b []byte) (string, digest.Digest, error) {
	var r io.Reader = bytes.NewReader(b)
	mediaType := v1.MediaTypeImageLayer
	switch {
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b}):
		zr, err := gzip.NewReader(r)
		if err != nil {
			return "", "", err
		}
		r, mediaType = zr, v1.MediaTypeImageLayerGzip
	case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		zr, err := zstd.NewReader(r)
		if err != nil {
			return "", "", err
		}
		defer zr.Close()
		r, mediaType = zr, v1.MediaTypeImageLayerZstd
	}
	d, err := digest.SHA256.FromReader(r)
	return mediaType, d, err
}

func writeBlob(dir string, b []byte) (digest.Digest, error) {
	d := digest.FromBytes(b)
	return d, os.WriteFile(filepath.Join(dir, "blobs", "sha256", d.Encoded()), b, 0o644)
}

// addToIndex replaces the manifest tagged like desc, or appends desc, in dir's index.json.
func addToIndex(dir string, desc v1.Descriptor) error {
	path := filepath.Join(dir, v1.ImageIndexFile)
	idx := v1.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: v1.MediaTypeImageIndex}
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &idx); err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	ref := desc.Annotations[v1.AnnotationRefName]
	var kept []v1.Descriptor
	for _, m := range idx.Manifests {
		if m.Annotations[v1.AnnotationRefName] != ref {
			kept = append(kept, m)
		}
	}
	idx.Manifests = append(kept, desc)
	return writeJSON(path, idx)
}

func writeJSON(path string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}
