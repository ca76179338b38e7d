package oci

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"golang.org/x/sys/unix"
)

// cache is the content-addressed blob cache: one OCI image layout (root/oci) whose blobs every
// cached image shares, with one tag per source manifest digest.
type cache struct {
	root   string // the cache directory
	layout string // root/oci, the OCI image layout
}

// errMiss means the cache lacks the image, or part of it, and it must be copied in.
var errMiss = errors.New("not in the cache")

// blobSizeError is a cached blob whose size differs from its descriptor's. Before a copy it is a
// miss (the copy fetches the blob again); after one, the source's own manifest gives the wrong
// size, which a pull reports as such rather than as "not in the cache".
type blobSizeError struct {
	desc imgspecv1.Descriptor
	size int64
}

func (e *blobSizeError) Error() string {
	return fmt.Sprintf("blob %s is %d bytes, its descriptor says %d", e.desc.Digest, e.size, e.desc.Size)
}

func (e *blobSizeError) Unwrap() error { return errMiss }

// inSource says what the error means once the blob has just been copied from the source.
func (e *blobSizeError) inSource() error {
	return &Error{Kind: ErrCorrupt, Err: e, Msg: fmt.Sprintf(
		"%s %s is %d bytes where the source's manifest says %d: the source image is corrupt; rebuild it or push it again",
		blobKind(e.desc.MediaType), e.desc.Digest, e.size, e.desc.Size)}
}

// blobKind names a blob by its media type: "layer", "config", "manifest".
func blobKind(mediaType string) string {
	switch {
	case strings.Contains(mediaType, "layer") || strings.Contains(mediaType, "rootfs"):
		return "layer"
	case strings.Contains(mediaType, "config"):
		return "config"
	case strings.Contains(mediaType, "manifest"):
		return "manifest"
	}
	return "blob"
}

// maxMetadataBlob bounds manifests and configs read into memory; real ones are a few KiB.
const maxMetadataBlob = 4 << 20

func openCache(root string) (*cache, error) {
	c := &cache{root: root, layout: filepath.Join(root, "oci")}
	for _, d := range []string{c.layout, tempDir(root)} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, &Error{Kind: ErrCache, Err: err, Msg: fmt.Sprintf(
				"create image cache: %v: set $%s to a writable directory", err, CacheDirEnv)}
		}
	}
	return c, nil
}

// tagFor names the cached copy of the source manifest d. The OCI layout transport allows
// [a-zA-Z0-9._-] in tags, so the digest's colon becomes a dash.
func tagFor(d digest.Digest) string {
	return d.Algorithm().String() + "-" + d.Encoded()
}

func (c *cache) blobPath(d digest.Digest) string {
	return filepath.Join(c.layout, imgspecv1.ImageBlobsDir, d.Algorithm().String(), d.Encoded())
}

// lock takes an exclusive flock on the layout: containers/image rewrites index.json in place, so
// two writers must not overlap. Blobs themselves appear by atomic rename and are read without it.
// It polls rather than blocking so that ctx can cancel the wait.
func (c *cache) lock(ctx context.Context, log *slog.Logger) (unlock func(), err error) {
	path := filepath.Join(c.root, "oci.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open cache lock %s: %w", path, err)
	}
	for waited := false; ; waited = true {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock cache %s: %w", path, err)
		}
		if !waited {
			log.Info("waiting for another hpcctl using the image cache", "lock", path)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for cache lock %s: %w", path, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return func() { f.Close() }, nil // closing the descriptor drops the flock
}

// putBlobPrefix starts the names of the files containers/image's OCI layout writer stages blobs
// in, in the layout directory itself (oci/layout/oci_dest.go, os.CreateTemp(dir, "oci-put-blob")),
// renamed into blobs/ when complete. A pull killed meanwhile leaves them, as large as a layer.
const putBlobPrefix = "oci-put-blob"

// sweepPutBlobs removes staged blobs left by killed pulls. The caller holds the cache lock, and
// every writer of the layout holds it while copying: any such file now is nobody's.
func (c *cache) sweepPutBlobs(log *slog.Logger) {
	ents, err := os.ReadDir(c.layout)
	if err != nil {
		return
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), putBlobPrefix) || !e.Type().IsRegular() {
			continue
		}
		p := filepath.Join(c.layout, e.Name())
		if err := os.Remove(p); err != nil {
			log.Warn("remove a blob left by an interrupted pull", "file", p, "err", err)
		} else {
			log.Debug("removed a blob left by an interrupted pull", "file", p)
		}
	}
}

// lookup returns the descriptor that the layout's index.json tags with tag.
func (c *cache) lookup(tag string) (imgspecv1.Descriptor, error) {
	data, err := os.ReadFile(filepath.Join(c.layout, imgspecv1.ImageIndexFile))
	if errors.Is(err, os.ErrNotExist) {
		return imgspecv1.Descriptor{}, errMiss
	}
	if err != nil {
		return imgspecv1.Descriptor{}, fmt.Errorf("read cache index: %w", err)
	}
	var index imgspecv1.Index
	if err := json.Unmarshal(data, &index); err != nil {
		return imgspecv1.Descriptor{}, &Error{Kind: ErrCorrupt, Err: err, Msg: fmt.Sprintf(
			"image cache index %s is corrupt (%v): remove the directory %s", filepath.Join(c.layout, "index.json"), err, c.layout)}
	}
	for _, d := range index.Manifests {
		if d.Annotations[imgspecv1.AnnotationRefName] == tag {
			return d, nil
		}
	}
	return imgspecv1.Descriptor{}, errMiss
}

// readBlob reads a small blob and checks its size and digest. A blob that fails the check is
// removed, so that the next copy fetches it again, and errMiss is returned.
func (c *cache) readBlob(desc imgspecv1.Descriptor) ([]byte, error) {
	if desc.Size > maxMetadataBlob {
		return nil, fmt.Errorf("cache blob %s is %d bytes, larger than a manifest or config can be", desc.Digest, desc.Size)
	}
	if err := desc.Digest.Validate(); err != nil {
		return nil, fmt.Errorf("cache blob digest %q: %w", desc.Digest, err)
	}
	data, err := os.ReadFile(c.blobPath(desc.Digest))
	if errors.Is(err, os.ErrNotExist) {
		return nil, errMiss
	}
	if err != nil {
		return nil, fmt.Errorf("read cache blob %s: %w", desc.Digest, err)
	}
	if int64(len(data)) != desc.Size {
		os.Remove(c.blobPath(desc.Digest))
		return nil, &blobSizeError{desc: desc, size: int64(len(data))}
	}
	if desc.Digest.Algorithm().FromBytes(data) != desc.Digest {
		os.Remove(c.blobPath(desc.Digest))
		return nil, errMiss
	}
	return data, nil
}

// checkBlob reports errMiss when a layer blob is absent or has the wrong size; a wrong-sized blob
// is removed so that the copy fetches it again. Contents are verified when the blob is read.
func (c *cache) checkBlob(desc imgspecv1.Descriptor) error {
	if err := desc.Digest.Validate(); err != nil {
		return fmt.Errorf("cache blob digest %q: %w", desc.Digest, err)
	}
	st, err := os.Stat(c.blobPath(desc.Digest))
	if errors.Is(err, os.ErrNotExist) {
		return errMiss
	}
	if err != nil {
		return fmt.Errorf("stat cache blob %s: %w", desc.Digest, err)
	}
	if st.Size() != desc.Size {
		os.Remove(c.blobPath(desc.Digest))
		return &blobSizeError{desc: desc, size: st.Size()}
	}
	return nil
}

// load reads the image cached under tag: manifest, config, and the layer list. Any missing or
// damaged piece yields errMiss.
func (c *cache) load(tag string) (*Image, error) {
	desc, err := c.lookup(tag)
	if err != nil {
		return nil, err
	}
	if desc.MediaType != imgspecv1.MediaTypeImageManifest {
		return nil, fmt.Errorf("cache entry %s is a %s, not an image manifest: remove %s", tag, desc.MediaType, c.layout)
	}
	raw, err := c.readBlob(desc)
	if err != nil {
		return nil, err
	}
	var m imgspecv1.Manifest
	if err = json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("parse cached manifest %s: %w", desc.Digest, err)
	}
	rawConfig, err := c.readBlob(m.Config)
	if err != nil {
		return nil, err
	}
	img := &Image{CachedManifest: desc.Digest, ConfigDigest: m.Config.Digest, ConfigJSON: rawConfig}
	if err = json.Unmarshal(rawConfig, &img.Config); err != nil {
		return nil, &Error{Kind: ErrCorrupt, Err: err, Msg: fmt.Sprintf("image config %s is not valid JSON: %v", m.Config.Digest, err)}
	}
	for _, l := range m.Layers {
		if err = c.checkBlob(l); err != nil {
			return nil, err
		}
		if l.MediaType, err = c.trueMediaType(l); err != nil {
			return nil, err
		}
		img.Layers = append(img.Layers, c.layerBlob(l))
	}
	return img, nil
}

func (c *cache) layerBlob(desc imgspecv1.Descriptor) LayerBlob {
	return LayerBlob{
		Digest: desc.Digest, MediaType: desc.MediaType, Size: desc.Size,
		Open: func() (io.ReadCloser, error) { return c.openVerified(desc) },
	}
}
