// Package ocitest writes small, deterministic OCI image layouts, oci-archives and docker-archives
// for tests, so that image sources can be exercised without a network.
package ocitest

import (
	"archive/tar"
	"bytes"
	_ "crypto/sha256" // go-digest panics unless the program links sha256 in: a tool may not
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
	imgspec "github.com/opencontainers/image-spec/specs-go"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hpcctl/hpcctl/internal/testutil/layertest"
)

// Epoch is the creation time given to images and archive entries that set none, so output is
// byte-for-byte the same on every run.
var Epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Image describes one image: its layers (uncompressed tar bytes, bottom first) and config fields.
type Image struct {
	Layers     [][]byte
	Gzip       bool // store layers gzip-compressed (tar+gzip media type) instead of plain tar
	Env        []string
	Cmd        []string
	Entrypoint []string
	WorkingDir string
	User       string
	Labels     map[string]string
	Created    time.Time // zero means Epoch
	OS         string    // zero means "linux"
	Arch       string    // zero means "amd64"
	Variant    string
}

// Written reports the digests of what a Write* function stored.
type Written struct {
	Index     digest.Digest   // digest of the image index blob; empty for a single image
	Manifests []digest.Digest // one per image, in the order given
	Configs   []digest.Digest
	Layers    [][]digest.Digest // blob digests per image (compressed when Gzip)
	DiffIDs   [][]digest.Digest // uncompressed layer digests per image
}

// store collects blobs by digest and writes them out in one go.
type store struct{ blobs map[digest.Digest][]byte }

func (s *store) add(mediaType string, data []byte) imgspecv1.Descriptor {
	d := digest.FromBytes(data)
	if s.blobs == nil {
		s.blobs = map[digest.Digest][]byte{}
	}
	s.blobs[d] = data
	return imgspecv1.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(data))}
}

func (s *store) addJSON(mediaType string, v any) imgspecv1.Descriptor {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err) // only plain structs reach here
	}
	return s.add(mediaType, data)
}

func (img Image) defaults() Image {
	if img.Created.IsZero() {
		img.Created = Epoch
	}
	if img.OS == "" {
		img.OS = "linux"
	}
	if img.Arch == "" {
		img.Arch = "amd64"
	}
	return img
}

func (img Image) platform() *imgspecv1.Platform {
	return &imgspecv1.Platform{OS: img.OS, Architecture: img.Arch, Variant: img.Variant}
}

// config builds the OCI image config for img given its layers' diff IDs.
func (img Image) config(diffIDs []digest.Digest) imgspecv1.Image {
	created := img.Created
	return imgspecv1.Image{
		Created:  &created,
		Platform: *img.platform(),
		Config: imgspecv1.ImageConfig{
			User: img.User, Env: img.Env, Entrypoint: img.Entrypoint, Cmd: img.Cmd,
			WorkingDir: img.WorkingDir, Labels: img.Labels,
		},
		RootFS: imgspecv1.RootFS{Type: "layers", DiffIDs: diffIDs},
	}
}

// addImage stores img's layers, config and manifest and returns the manifest descriptor.
func (s *store) addImage(img Image, w *Written) imgspecv1.Descriptor {
	img = img.defaults()
	var layers []imgspecv1.Descriptor
	var diffIDs, blobDigests []digest.Digest
	for _, l := range img.Layers {
		diffIDs = append(diffIDs, digest.FromBytes(l))
		mt, data := imgspecv1.MediaTypeImageLayer, l
		if img.Gzip {
			mt, data = imgspecv1.MediaTypeImageLayerGzip, layertest.Gzip(l)
		}
		d := s.add(mt, data)
		layers = append(layers, d)
		blobDigests = append(blobDigests, d.Digest)
	}
	cfg := s.addJSON(imgspecv1.MediaTypeImageConfig, img.config(diffIDs))
	m := s.addJSON(imgspecv1.MediaTypeImageManifest, imgspecv1.Manifest{
		Versioned: imgspec.Versioned{SchemaVersion: 2},
		MediaType: imgspecv1.MediaTypeImageManifest,
		Config:    cfg,
		Layers:    layers,
	})
	m.Platform = img.platform()
	w.Manifests = append(w.Manifests, m.Digest)
	w.Configs = append(w.Configs, cfg.Digest)
	w.Layers = append(w.Layers, blobDigests)
	w.DiffIDs = append(w.DiffIDs, diffIDs)
	return m
}

// WriteLayout writes an OCI image layout at dir holding imgs under tag: one image is tagged
// directly, several become a multi-platform image index.
func WriteLayout(t testing.TB, dir, tag string, imgs ...Image) Written {
	t.Helper()
	w, err := Layout(dir, tag, imgs...)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// Layout is WriteLayout for programs (fixture generators, examples): it returns errors.
func Layout(dir, tag string, imgs ...Image) (Written, error) {
	var s store
	var w Written
	top := layoutTop(&s, &w, imgs)
	if tag != "" {
		top.Annotations = map[string]string{imgspecv1.AnnotationRefName: tag}
	}
	top.Platform = nil
	index := imgspecv1.Index{
		Versioned: imgspec.Versioned{SchemaVersion: 2},
		MediaType: imgspecv1.MediaTypeImageIndex,
		Manifests: []imgspecv1.Descriptor{top},
	}
	files := map[string][]byte{imgspecv1.ImageLayoutFile: []byte(`{"imageLayoutVersion":"1.0.0"}`)}
	files["index.json"] = mustJSON(index)
	for d, data := range s.blobs {
		files[filepath.Join(imgspecv1.ImageBlobsDir, d.Algorithm().String(), d.Encoded())] = data
	}
	for name, data := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return w, err
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return w, err
		}
	}
	return w, nil
}

func layoutTop(s *store, w *Written, imgs []Image) imgspecv1.Descriptor {
	if len(imgs) == 1 {
		return s.addImage(imgs[0], w)
	}
	idx := imgspecv1.Index{
		Versioned: imgspec.Versioned{SchemaVersion: 2},
		MediaType: imgspecv1.MediaTypeImageIndex,
	}
	for _, img := range imgs {
		idx.Manifests = append(idx.Manifests, s.addImage(img, w))
	}
	d := s.addJSON(imgspecv1.MediaTypeImageIndex, idx)
	w.Index = d.Digest
	return d
}

// WriteOCIArchive writes the layout WriteLayout would make as a tar file at path.
func WriteOCIArchive(t testing.TB, path, tag string, imgs ...Image) Written {
	t.Helper()
	w, err := OCIArchive(path, tag, imgs...)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// OCIArchive is WriteOCIArchive for programs: it returns errors.
func OCIArchive(path, tag string, imgs ...Image) (Written, error) {
	dir, err := os.MkdirTemp("", "ocitest-")
	if err != nil {
		return Written{}, err
	}
	defer os.RemoveAll(dir)
	w, err := Layout(dir, tag, imgs...)
	if err != nil {
		return w, err
	}
	tarball, err := tarDir(dir)
	if err != nil {
		return w, err
	}
	return w, os.WriteFile(path, tarball, 0o644)
}

// dockerManifestEntry is one image in a docker save archive's manifest.json.
type dockerManifestEntry struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// WriteDockerArchive writes img in `docker save` format (manifest.json, config, layer tars) at path.
// Layers are stored uncompressed, as docker save does.
func WriteDockerArchive(t testing.TB, path, repoTag string, img Image) Written {
	t.Helper()
	img = img.defaults()
	var w Written
	var diffIDs []digest.Digest
	files := map[string][]byte{}
	entry := dockerManifestEntry{}
	for _, l := range img.Layers {
		d := digest.FromBytes(l)
		diffIDs = append(diffIDs, d)
		name := d.Encoded() + "/layer.tar"
		files[name] = l
		entry.Layers = append(entry.Layers, name)
	}
	cfg := mustJSON(img.config(diffIDs))
	cfgDigest := digest.FromBytes(cfg)
	entry.Config = cfgDigest.Encoded() + ".json"
	files[entry.Config] = cfg
	if repoTag != "" {
		entry.RepoTags = []string{repoTag}
	}
	files["manifest.json"] = mustJSON([]dockerManifestEntry{entry})
	w.Configs = []digest.Digest{cfgDigest}
	w.DiffIDs = [][]digest.Digest{diffIDs}
	w.Layers = [][]digest.Digest{diffIDs}
	if err := os.WriteFile(path, TarFiles(files), 0o644); err != nil {
		t.Fatal(err)
	}
	return w
}

// TarDir returns a deterministic tar of the regular files and directories under dir.
func TarDir(t testing.TB, dir string) []byte {
	t.Helper()
	b, err := tarDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func tarDir(dir string) ([]byte, error) {
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		data, err := os.ReadFile(p)
		files[filepath.ToSlash(rel)] = data
		return err
	})
	if err != nil {
		return nil, err
	}
	return TarFiles(files), nil
}

// TarFiles returns a deterministic tar holding the given regular files (name → content), sorted by
// name, with the parent directories each needs.
func TarFiles(files map[string][]byte) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	dirs := map[string]bool{}
	for _, name := range sortedKeys(files) {
		for _, d := range parents(name) {
			if !dirs[d] {
				dirs[d] = true
				must(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: d + "/", Mode: 0o755, ModTime: Epoch, Format: tar.FormatPAX}))
			}
		}
		must(tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(files[name])), ModTime: Epoch, Format: tar.FormatPAX}))
		_, err := tw.Write(files[name])
		must(err)
	}
	must(tw.Close())
	return buf.Bytes()
}

func mustJSON(v any) []byte {
	data, err := json.Marshal(v)
	must(err)
	return data
}

// must panics on errors that can only come from writing to memory.
func must(err error) {
	if err != nil {
		panic(err)
	}
}
