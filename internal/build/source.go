package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"time"

	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hpcctl/hpcctl/internal/layer"
	"github.com/hpcctl/hpcctl/internal/oci"
	"github.com/hpcctl/hpcctl/internal/sif"
	"github.com/hpcctl/hpcctl/internal/squashfs"
)

// source is where an image's file system and config come from.
type source interface {
	// write adds every entry of the root file system to w.
	write(ctx context.Context, w adder) error
	// config is the OCI image config to record, with extra labels merged in.
	config(extraLabels map[string]string) imgspecv1.Image
	provenance(opts Options) sif.Provenance
	created() *time.Time
	digest() string
}

// transports are the source prefixes go.podman.io/image handles for us.
var transports = []string{"docker://", "oci:", "oci-archive:", "docker-archive:"}

// openSource recognises the source form and fetches OCI images into the cache.
func openSource(ctx context.Context, opts Options) (source, error) {
	for _, t := range transports {
		if rest, ok := strings.CutPrefix(opts.Source, t); ok {
			if err := checkLocalPath(t, rest); err != nil {
				return nil, err
			}
			img, err := oci.Pull(ctx, opts.Source, oci.SourceOptions{
				Arch: opts.Arch, OS: opts.OS, Variant: opts.Variant, Insecure: opts.Insecure,
				AuthFile: opts.AuthFile, CacheDir: opts.CacheDir, Logger: opts.Logger, Progress: opts.Progress,
			})
			if err != nil {
				return nil, err
			}
			return &ociSource{img: img, logger: opts.Logger}, nil
		}
	}
	st, err := os.Stat(opts.Source)
	switch {
	case err == nil && st.IsDir():
		return &dirSource{dir: opts.Source}, nil
	case err == nil:
		return nil, fmt.Errorf("source %s is a file: say what it holds, e.g. oci-archive:%s or docker-archive:%s", opts.Source, opts.Source, opts.Source)
	case strings.Contains(opts.Source, "://"):
		return nil, fmt.Errorf("unknown image source %q: use docker://REF, oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE or a directory", opts.Source)
	}
	return nil, fmt.Errorf("source %s: no such directory (give a root file system directory, or docker://REF, oci:DIR[:TAG], oci-archive:FILE, docker-archive:FILE)", opts.Source)
}

// checkLocalPath reports a missing layout or archive by its path, before go.podman.io/image
// turns it into a vaguer "image not found". A ":TAG" suffix is allowed after the path.
func checkLocalPath(transport, ref string) error {
	if transport == "docker://" {
		return nil
	}
	p := ref
	if _, err := os.Stat(p); err != nil {
		if i := strings.LastIndex(ref, ":"); i > 0 {
			p = ref[:i]
		}
	}
	if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("source %s%s: %s does not exist: check the path", transport, ref, p)
	}
	return nil
}

// recordedSource is the source as the image records it: registry references in full, local
// paths by their last element only, so that the same archive built from another directory (or
// machine, or user) gives the same bytes.
func recordedSource(src string) string {
	for _, t := range transports {
		if rest, ok := strings.CutPrefix(src, t); ok && t != "docker://" {
			return t + filepath.Base(rest)
		}
	}
	if strings.HasPrefix(src, "docker://") {
		return src
	}
	return filepath.Base(filepath.Clean(src))
}

// ociSource is an image fetched into the cache.
type ociSource struct {
	img    *oci.Image
	logger *slog.Logger
}

func (s *ociSource) write(ctx context.Context, w adder) error {
	layers, err := checkedLayers(s.img)
	if err != nil {
		return err
	}
	_, err = layer.Flatten(ctx, layers, w.Add, layer.Options{Logger: s.logger})
	return err
}

// layerMediaTypes are the layer types hpcctl can flatten: OCI and Docker tar streams, plain,
// gzip or zstd (the compression is read from the blob itself). Anything else (encrypted layers,
// artifacts that are not file systems) is refused by name rather than read as a tar.
var layerMediaTypes = map[string]bool{
	imgspecv1.MediaTypeImageLayer:                               true,
	imgspecv1.MediaTypeImageLayerGzip:                           true,
	imgspecv1.MediaTypeImageLayerZstd:                           true,
	imgspecv1.MediaTypeImageLayerNonDistributable:               true, //nolint:staticcheck // still found in images
	imgspecv1.MediaTypeImageLayerNonDistributableGzip:           true, //nolint:staticcheck // as above
	imgspecv1.MediaTypeImageLayerNonDistributableZstd:           true, //nolint:staticcheck // as above
	"application/vnd.docker.image.rootfs.diff.tar.gzip":         true,
	"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip": true,
}

// checkedLayers turns the image's layers into Flatten's, each with the diff_id its config gives
// it, refusing unknown media types and a config that does not list one diff_id per layer.
func checkedLayers(img *oci.Image) ([]layer.Layer, error) {
	diffIDs := img.Config.RootFS.DiffIDs
	if len(diffIDs) != len(img.Layers) {
		return nil, fmt.Errorf("image config %s lists %d rootfs.diff_ids for %d layers: the image is corrupt; rebuild it or push it again",
			img.ConfigDigest, len(diffIDs), len(img.Layers))
	}
	layers := make([]layer.Layer, len(img.Layers))
	for i, l := range img.Layers {
		if !layerMediaTypes[l.MediaType] {
			return nil, fmt.Errorf("layer %d/%d %s has media type %q, which is not a file system layer hpcctl can read (OCI or Docker tar, tar+gzip, tar+zstd)",
				i+1, len(img.Layers), l.Digest, l.MediaType)
		}
		layers[i] = layer.Layer{Digest: l.Digest.String(), MediaType: l.MediaType, Open: l.Open, DiffID: diffIDs[i].String()}
	}
	return layers, nil
}

func (s *ociSource) config(extra map[string]string) imgspecv1.Image {
	c := s.img.Config
	c.Config.Labels = mergeLabels(c.Config.Labels, extra)
	return c
}

func (s *ociSource) provenance(opts Options) sif.Provenance {
	return newProvenance(opts, s.img.Digest.String())
}

func (s *ociSource) created() *time.Time { return s.img.Config.Created }
func (s *ociSource) digest() string      { return s.img.Digest.String() }

// dirSource is a sandbox directory: a root file system on disk.
type dirSource struct{ dir string }

func (s *dirSource) write(ctx context.Context, w adder) error {
	return squashfs.WriteTree(ctx, w, s.dir)
}

func (s *dirSource) config(extra map[string]string) imgspecv1.Image {
	return imgspecv1.Image{
		Platform: imgspecv1.Platform{OS: "linux"},
		Config: imgspecv1.ImageConfig{
			Env:    []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
			Labels: mergeLabels(nil, extra),
		},
	}
}

func (s *dirSource) provenance(opts Options) sif.Provenance { return newProvenance(opts, "") }
func (s *dirSource) created() *time.Time                    { return nil }
func (s *dirSource) digest() string                         { return "" }

func newProvenance(opts Options, digest string) sif.Provenance {
	return sif.Provenance{
		Source: recordedSource(opts.Source), SourceDigest: digest, HpcctlVersion: opts.Version,
		Compression: opts.Compression.String(), Level: opts.Level, BlockSize: opts.BlockSize,
	}
}

func mergeLabels(base, extra map[string]string) map[string]string {
	if len(base) == 0 && len(extra) == 0 {
		return nil
	}
	out := make(map[string]string, len(base)+len(extra))
	maps.Copy(out, base)
	maps.Copy(out, extra)
	return out
}
