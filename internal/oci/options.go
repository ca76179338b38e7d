package oci

import (
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"go.podman.io/image/v5/signature"
	"go.podman.io/image/v5/types"
)

// SourceOptions say where an image comes from and how to reach it.
type SourceOptions struct {
	// Arch, OS and Variant choose an image from a multi-platform index; empty means the host's.
	Arch, OS, Variant string
	// Insecure allows plain HTTP and unverified TLS to the registry (for a registry on 127.0.0.1).
	Insecure bool
	// AuthFile is a containers auth.json to use instead of $REGISTRY_AUTH_FILE,
	// ${XDG_RUNTIME_DIR}/containers/auth.json and ~/.docker/config.json.
	AuthFile string
	// CacheDir holds the blob cache; empty means $HPCCTL_CACHEDIR or os.UserCacheDir()/hpcctl.
	CacheDir string
	// Logger gets debug and progress messages; nil discards them.
	Logger *slog.Logger
	// Progress shows per-blob bytes and rate when it is a terminal; nil or a non-terminal is quiet.
	Progress io.Writer
}

// CacheDirEnv names the variable that overrides the default cache directory.
const CacheDirEnv = "HPCCTL_CACHEDIR"

// DefaultCacheDir returns $HPCCTL_CACHEDIR, or os.UserCacheDir()/hpcctl.
func DefaultCacheDir() (string, error) {
	if d := os.Getenv(CacheDirEnv); d != "" {
		return d, nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find the cache directory: %w: set $%s", err, CacheDirEnv)
	}
	return filepath.Join(d, "hpcctl"), nil
}

func (o SourceOptions) logger() *slog.Logger {
	if o.Logger != nil {
		return o.Logger
	}
	return slog.New(slog.DiscardHandler)
}

func (o SourceOptions) cacheDir() (string, error) {
	if o.CacheDir != "" {
		return o.CacheDir, nil
	}
	return DefaultCacheDir()
}

// authFile is the auth file to use, or "" to let containers/image search its default places
// (${XDG_RUNTIME_DIR}/containers/auth.json, ~/.config/containers/auth.json, ~/.docker/config.json).
// The option comes first, then $REGISTRY_AUTH_FILE, which containers/image leaves to its callers.
func (o SourceOptions) authFile() string {
	if o.AuthFile != "" {
		return o.AuthFile
	}
	if f := os.Getenv("REGISTRY_AUTH_FILE"); f != "" {
		return f
	}
	return authFileWithoutRuntimeDir()
}

// authFileWithoutRuntimeDir handles a batch job that inherited $XDG_RUNTIME_DIR from the login
// node, where the directory does not exist on the compute node: containers/image then skips every
// default auth file with a warning. Pick the first of the remaining defaults that exists instead.
func authFileWithoutRuntimeDir() string {
	rt := os.Getenv("XDG_RUNTIME_DIR")
	if rt == "" {
		return ""
	}
	if _, err := os.Stat(rt); err == nil {
		return ""
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	candidates := []string{
		filepath.Join(home, ".config", "containers", "auth.json"),
		filepath.Join(home, ".docker", "config.json"),
	}
	for _, p := range candidates {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return candidates[0] // missing, so no credentials, but no warning either
}

// sourceContext is the SystemContext for reading the source image.
func (o SourceOptions) sourceContext(cacheDir string) *types.SystemContext {
	sys := &types.SystemContext{
		ArchitectureChoice:      o.Arch,
		OSChoice:                o.OS,
		VariantChoice:           o.Variant,
		AuthFilePath:            o.authFile(),
		BlobInfoCacheDir:        cacheDir,
		BigFilesTemporaryDir:    tempDir(cacheDir),
		DockerRegistryUserAgent: "hpcctl",
	}
	if o.Insecure {
		// containers/image then tries https without verification, and falls back to plain http.
		sys.DockerInsecureSkipTLSVerify = types.OptionalBoolTrue
	}
	return sys
}

// destContext is the SystemContext for writing into the cache layout, staging blobs in tmp.
func destContext(cacheDir, tmp string) *types.SystemContext {
	return &types.SystemContext{
		// Keep layers byte-identical to the source (docker-archive layers are plain tar): the cache
		// must not recompress, which would cost time and change layer digests.
		OCIAcceptUncompressedLayers: true,
		BlobInfoCacheDir:            cacheDir,
		BigFilesTemporaryDir:        tmp,
	}
}

// policyContext accepts any image: the host's /etc/containers/policy.json may be missing or
// restrictive on a cluster node, digests are verified on copy and on read, and SIF signatures are
// checked separately.
func policyContext() (*signature.PolicyContext, error) {
	p := &signature.Policy{Default: []signature.PolicyRequirement{signature.NewPRInsecureAcceptAnything()}}
	pc, err := signature.NewPolicyContext(p)
	if err != nil {
		return nil, fmt.Errorf("signature policy: %w", err)
	}
	return pc, nil
}

// tempDir is where containers/image unpacks archives and stages blobs: inside the cache, which has
// room for images, rather than /var/tmp, which on cluster nodes is often small or shared.
func tempDir(cacheDir string) string {
	return filepath.Join(cacheDir, "tmp")
}
