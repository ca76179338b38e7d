// Package fetch brings an image reference into the cache as a SIF, once per digest: registry
// images and local archives are built, oras:// artifacts and http(s):// files downloaded. It runs
// in hpcctl-image; the lean hpcctl then starts the cached file.
package fetch

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/hpcctl/hpcctl/internal/build"
	"github.com/hpcctl/hpcctl/internal/oci"
	"github.com/hpcctl/hpcctl/internal/refcache"
)

// Options say how to reach a reference and where the cache is.
type Options struct {
	// CacheDir is the cache directory (refcache.Dir).
	CacheDir string
	// Insecure allows plain HTTP and unverified TLS (--insecure, --no-https).
	Insecure bool
	// AuthFile holds registry credentials, as for build.
	AuthFile string
	// Version is hpcctl's, recorded in SIFs it builds.
	Version  string
	Logger   *slog.Logger
	Progress io.Writer
}

// Result is a reference in the cache.
type Result struct {
	SIF    string // the cached SIF file
	Digest string // what the reference resolved to
	Cached bool   // nothing was fetched or built
}

// Fetch resolves ref (asking the registry, never the tag record) and returns its cached SIF,
// fetching or building it first when the cache lacks it. Nothing is left in the cache on error.
func Fetch(ctx context.Context, ref string, opts Options) (Result, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	release, err := refcache.Use(ctx, opts.CacheDir)
	if err != nil {
		return Result{}, err
	}
	defer release()
	var res Result
	switch {
	case strings.HasPrefix(ref, "oras://"):
		res, err = fetchORAS(ctx, ref, opts)
	case strings.HasPrefix(ref, "https://"), strings.HasPrefix(ref, "http://"):
		res, err = fetchHTTP(ctx, ref, opts)
	case strings.HasPrefix(ref, "docker://"):
		res, err = buildRegistry(ctx, ref, opts)
	default:
		res, err = buildLocal(ctx, ref, opts)
	}
	if err != nil {
		return res, err
	}
	if err := refcache.Write(opts.CacheDir, ref, res.Digest, res.SIF, time.Now()); err != nil {
		return res, err
	}
	return res, nil
}

// sifPath names the cached SIF of a digest for a kind of source.
func sifPath(root, kind, digest, suffix string) string {
	return filepath.Join(refcache.SIFDir(root), kind, strings.Replace(digest, ":", "-", 1)+suffix+".sif")
}

func (o Options) sourceOptions() oci.SourceOptions {
	return oci.SourceOptions{Insecure: o.Insecure, AuthFile: o.AuthFile, CacheDir: o.CacheDir, Logger: o.Logger}
}

// buildRegistry resolves a docker:// tag to its digest (one manifest request) and builds the SIF
// only when that digest has none yet. The host's architecture is part of the key: a
// multi-platform tag's digest is that of its index.
func buildRegistry(ctx context.Context, ref string, opts Options) (Result, error) {
	digest, err := oci.ResolveDigest(ctx, ref, opts.sourceOptions())
	if err != nil {
		return Result{}, err
	}
	out := sifPath(opts.CacheDir, "docker", digest, "-"+runtime.GOARCH)
	if st, err := os.Stat(out); err == nil && st.Mode().IsRegular() {
		opts.Logger.Debug("image in cache", "ref", ref, "digest", digest, "sif", out)
		return Result{SIF: out, Digest: digest, Cached: true}, nil
	}
	// Pinning the build to the digest just resolved keeps a tag moved meanwhile from filing
	// another image under this digest.
	src := ref
	if !strings.Contains(ref, "@") {
		src = pinTag(ref, digest)
	}
	if _, err := buildInto(ctx, src, out, opts); err != nil {
		return Result{}, err
	}
	return Result{SIF: out, Digest: digest}, nil
}

// pinTag turns docker://HOST/REPO[:TAG] into docker://HOST/REPO@DIGEST.
func pinTag(ref, digest string) string {
	rest := strings.TrimPrefix(ref, "docker://")
	if slash := strings.LastIndexByte(rest, '/'); strings.LastIndexByte(rest, ':') > slash {
		rest = rest[:strings.LastIndexByte(rest, ':')]
	}
	return "docker://" + rest + "@" + digest
}

// buildLocal builds an oci:, oci-archive: or docker-archive: source (its digest is known only once
// it is read) and files the SIF under that digest.
func buildLocal(ctx context.Context, ref string, opts Options) (Result, error) {
	dir := filepath.Join(refcache.SIFDir(opts.CacheDir), "local")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Result{}, fmt.Errorf("create %s: %w", dir, err)
	}
	tmp, err := os.MkdirTemp(dir, ".build-")
	if err != nil {
		return Result{}, fmt.Errorf("create a build directory in %s: %w", dir, err)
	}
	defer os.RemoveAll(tmp)
	res, err := buildInto(ctx, ref, filepath.Join(tmp, "image.sif"), opts)
	if err != nil {
		return Result{}, err
	}
	out := sifPath(opts.CacheDir, "local", res.SourceDigest, "-"+runtime.GOARCH)
	if err := os.Rename(res.Output, out); err != nil {
		return Result{}, fmt.Errorf("file %s in the cache: %w", ref, err)
	}
	return Result{SIF: out, Digest: res.SourceDigest}, nil
}

// buildInto builds src as out with the build's defaults; the same digest gives the same bytes,
// so two processes building it at once both write the same file and the last rename wins.
func buildInto(ctx context.Context, src, out string, opts Options) (*build.Result, error) {
	if err := os.MkdirAll(filepath.Dir(out), 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", filepath.Dir(out), err)
	}
	return build.Build(ctx, build.Options{
		Source: src, Output: out, Force: true, Insecure: opts.Insecure, AuthFile: opts.AuthFile,
		CacheDir: opts.CacheDir, Version: opts.Version, Logger: opts.Logger, Progress: opts.Progress,
	})
}
