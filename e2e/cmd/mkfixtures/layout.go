package main

import (
	"archive/tar"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/go-digest"
	imgspec "github.com/opencontainers/image-spec/specs-go"
	v1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// epoch is the time stamp of everything mkfixtures makes up (config, archive entries).
var epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// compression of one layer blob.
type compression int

const (
	uncompressed compression = iota
	gzipped
)

// imageConfig is the part of the OCI config an image chooses; layers fill in the rest.
type imageConfig struct {
	Config  v1.ImageConfig
	History []v1.History
}

// layout is an OCI image layout being written, one layer at a time.
type layout struct {
	dir     string
	layers  []v1.Descriptor
	diffIDs []digest.Digest
}

func newLayout(dir string) (*layout, error) {
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return nil, err
	}
	return &layout{dir: dir}, nil
}

// addLayer streams the tar that write produces into a blob, compressed as asked, and records it.
func (l *layout) addLayer(c compression, write func(*tar.Writer) error) error {
	tmp, err := os.CreateTemp(filepath.Join(l.dir, "blobs"), ".layer-")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	blobHash := sha256.New()
	diffHash := sha256.New()
	counter := &countWriter{w: io.MultiWriter(tmp, blobHash)}
	zw, mediaType, err := compressor(c, counter)
	if err != nil {
		return err
	}
	tw := tar.NewWriter(io.MultiWriter(zw, diffHash))
	if err := write(tw); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	d := digestOf(blobHash)
	if err := os.Rename(tmp.Name(), l.blobPath(d)); err != nil {
		return err
	}
	l.layers = append(l.layers, v1.Descriptor{MediaType: mediaType, Digest: d, Size: counter.n})
	l.diffIDs = append(l.diffIDs, digestOf(diffHash))
	return nil
}

// compressor wraps w; the gzip encoder gives the same bytes for the same input (no name, no
// time in its header).
func compressor(c compression, w io.Writer) (io.WriteCloser, string, error) {
	switch c {
	case gzipped:
		zw, err := gzip.NewWriterLevel(w, gzip.DefaultCompression)
		return zw, v1.MediaTypeImageLayerGzip, err
	default:
		return nopCloser{w}, v1.MediaTypeImageLayer, nil
	}
}

// finish writes the config, the manifest, index.json and oci-layout.
func (l *layout) finish(cfg imageConfig, tag string) error {
	created := epoch
	config := v1.Image{
		Created:  &created,
		Platform: v1.Platform{OS: "linux", Architecture: "amd64"},
		Config:   cfg.Config,
		RootFS:   v1.RootFS{Type: "layers", DiffIDs: l.diffIDs},
		History:  cfg.History,
	}
	configDesc, err := l.addJSON(v1.MediaTypeImageConfig, config)
	if err != nil {
		return err
	}
	manifest := v1.Manifest{
		Versioned: imgspec.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageManifest,
		Config:    configDesc,
		Layers:    l.layers,
	}
	manifestDesc, err := l.addJSON(v1.MediaTypeImageManifest, manifest)
	if err != nil {
		return err
	}
	manifestDesc.Annotations = map[string]string{v1.AnnotationRefName: tag}
	index := v1.Index{
		Versioned: imgspec.Versioned{SchemaVersion: 2},
		MediaType: v1.MediaTypeImageIndex,
		Manifests: []v1.Descriptor{manifestDesc},
	}
	if err := writeJSON(filepath.Join(l.dir, "index.json"), index); err != nil {
		return err
	}
	return writeJSON(filepath.Join(l.dir, v1.ImageLayoutFile), v1.ImageLayout{Version: v1.ImageLayoutVersion})
}

func (l *layout) addJSON(mediaType string, v any) (v1.Descriptor, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return v1.Descriptor{}, err
	}
	d := digest.FromBytes(data)
	if err := os.WriteFile(l.blobPath(d), data, 0o644); err != nil {
		return v1.Descriptor{}, err
	}
	return v1.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}, nil
}

func (l *layout) blobPath(d digest.Digest) string {
	return filepath.Join(l.dir, "blobs", d.Algorithm().String(), d.Encoded())
}

func writeJSON(path string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// archiveDir writes dir as an oci-archive: a tar of the layout, entries sorted, times fixed.
func archiveDir(dir, path string) error {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	for _, p := range names {
		if err := archiveEntry(tw, dir, p); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

func archiveEntry(tw *tar.Writer, dir, p string) error {
	st, err := os.Lstat(p)
	if err != nil {
		return err
	}
	rel, err := filepath.Rel(dir, p)
	if err != nil {
		return err
	}
	hdr := &tar.Header{Name: filepath.ToSlash(rel), Mode: 0o644, ModTime: epoch, Typeflag: tar.TypeReg, Size: st.Size()}
	if st.IsDir() {
		hdr = &tar.Header{Name: hdr.Name + "/", Mode: 0o755, ModTime: epoch, Typeflag: tar.TypeDir}
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return err
	}
	if st.IsDir() {
		return nil
	}
	return copyFile(tw, p)
}

func copyFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = io.Copy(w, f)
	return err
}

func digestOf(h hash.Hash) digest.Digest {
	return digest.NewDigestFromEncoded(digest.SHA256, fmt.Sprintf("%x", h.Sum(nil)))
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
