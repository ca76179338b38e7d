package oci

import (
	"archive/tar"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strings"

	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/manifest"
	"go.podman.io/image/v5/types"
)

// maxArchiveJSON bounds index.json and manifests read from an archive: real ones are a few KB.
const maxArchiveJSON = 4 << 20

// resolveArchive does resolve's work for an oci-archive by reading the tar in place: its index,
// then the one manifest it names. containers/image's oci-archive transport unpacks the whole
// archive into a temporary directory to read them, which on a warm cache was all the I/O a build
// did, and which a build killed meanwhile (SIGKILL) left in the cache. It returns ok false when
// the archive is anything but a plain, complete tar naming exactly one image (compressed,
// truncated, several images and no tag, ...): resolve then gives containers/image's own answer.
func resolveArchive(name string, ref types.ImageReference, sys *types.SystemContext) (r resolved, ok bool, err error) {
	file, tag, _ := strings.Cut(name, ":")
	a, err := openArchive(file)
	if err != nil {
		return resolved{}, false, nil
	}
	defer a.f.Close()
	desc, found := a.pick(tag)
	if !found {
		return resolved{}, false, nil
	}
	raw, err := a.blob(desc.Digest)
	if err != nil {
		return resolved{}, false, nil
	}
	r = resolved{ref: ref, digest: desc.Digest}
	mime := manifest.NormalizedMIMEType(desc.MediaType)
	if manifest.MIMETypeIsMultiImage(mime) {
		r.index = desc.Digest
		if r.digest, err = chooseInstance(raw, mime, sys); err != nil {
			return resolved{}, true, err
		}
		if raw, err = a.blob(r.digest); err != nil {
			return resolved{}, false, nil
		}
		mime = manifest.GuessMIMEType(raw)
	}
	r.nativeOCI = mime == imgspecv1.MediaTypeImageManifest
	r.manifest, r.mime = raw, mime
	return r, true, nil
}

// archive is an uncompressed tar whose member files are read where they lie.
type archive struct {
	f       *os.File
	members map[string]*io.SectionReader
}

func openArchive(file string) (*archive, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	a := &archive{f: f, members: map[string]*io.SectionReader{}}
	tr := tar.NewReader(f)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return a, nil
		}
		if err != nil {
			f.Close()
			return nil, err
		}
		// tar.Reader reads the headers straight from f and seeks over the data, so f now stands
		// at this member's first byte.
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			f.Close()
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			a.members[path.Clean(h.Name)] = io.NewSectionReader(f, off, h.Size)
		}
	}
}

// pick returns the manifest descriptor that containers/image's oci transports would: the one
// whose ref.name annotation is tag, or the only one when tag is empty.
func (a *archive) pick(tag string) (imgspecv1.Descriptor, bool) {
	var idx imgspecv1.Index
	if raw, err := a.read("index.json"); err != nil || json.Unmarshal(raw, &idx) != nil {
		return imgspecv1.Descriptor{}, false
	}
	if tag == "" {
		if len(idx.Manifests) != 1 {
			return imgspecv1.Descriptor{}, false
		}
		return idx.Manifests[0], true
	}
	for _, d := range idx.Manifests {
		if d.Annotations[imgspecv1.AnnotationRefName] == tag {
			return d, true
		}
	}
	return imgspecv1.Descriptor{}, false
}

// blob reads a small blob and checks it against its digest.
func (a *archive) blob(d digest.Digest) ([]byte, error) {
	if d.Validate() != nil {
		return nil, fmt.Errorf("invalid digest %q", d)
	}
	raw, err := a.read(path.Join("blobs", d.Algorithm().String(), d.Encoded()))
	if err != nil {
		return nil, err
	}
	if d.Algorithm().FromBytes(raw) != d {
		return nil, fmt.Errorf("blob %s does not match its digest", d)
	}
	return raw, nil
}

func (a *archive) read(name string) ([]byte, error) {
	m, ok := a.members[name]
	if !ok || m.Size() > maxArchiveJSON {
		return nil, fmt.Errorf("%s: missing or too large", name)
	}
	return io.ReadAll(m)
}
