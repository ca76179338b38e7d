package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/pflag"

	"github.com/hpcctl/hpcctl/internal/config"
	"github.com/hpcctl/hpcctl/internal/refcache"
)

// refOptions are the flags of every verb that takes an IMAGE, for an IMAGE given by reference
// (docker://, oras://, https://, oci-archive:, ...).
type refOptions struct {
	insecure     bool
	authFile     string
	disableCache bool
}

// addReferenceFlags registers them; kept apart from the launch flags so that every verb taking
// an IMAGE registers the same set.
func addReferenceFlags(f *pflag.FlagSet, r *refOptions) {
	f.BoolVar(&r.insecure, "insecure", false, "for an IMAGE by reference: allow a registry or server over plain HTTP or with an unverified certificate")
	f.BoolVar(&r.insecure, "no-https", false, "same as --insecure (Apptainer's name)")
	f.StringVar(&r.authFile, "authfile", "", "for an IMAGE by reference: registry credentials `file` (default: the containers and docker auth files)")
	f.BoolVar(&r.disableCache, "disable-cache", false, "for an IMAGE by reference: fetch it into a temporary cache, removed once the image is open")
}

// fetchReference returns the cached SIF of an IMAGE given by reference. A reference the cache
// resolved recently (refcache.Lookup) starts with no companion and no network, as fast as a local
// SIF; otherwise hpcctl-image resolves it and fetches or builds what the cache lacks. release
// drops the cache's use lock (or removes the temporary cache) once the caller has opened the
// file: a `cache clean` may then remove it, which the open image survives.
func fetchReference(ctx context.Context, g *Globals, r refOptions, conf *config.Config, ref string) (string, func(), error) {
	if setuid() {
		return "", nil, fmt.Errorf("%s: a setuid hpcctl does not fetch images: run 'hpcctl pull IMAGE.sif %s' and run the file", ref, ref)
	}
	root, err := refcache.Dir(conf.CacheDir)
	if err != nil {
		return "", nil, err
	}
	if r.disableCache {
		if root, err = os.MkdirTemp("", "hpcctl-cache-"); err != nil {
			return "", nil, fmt.Errorf("create a temporary image cache: %w: set $TMPDIR to a writable directory", err)
		}
		tmp := root
		path, ferr := companionFetch(ctx, g, r, root, ref)
		if ferr != nil {
			os.RemoveAll(tmp)
			return "", nil, ferr
		}
		return path, func() { os.RemoveAll(tmp) }, nil
	}
	release, err := refcache.Use(ctx, root)
	if err != nil {
		return "", nil, err
	}
	if path, ok := refcache.Lookup(root, ref, time.Now()); ok {
		g.Logger.Debug("image reference in cache", "ref", ref, "sif", path)
		return path, release, nil
	}
	path, err := companionFetch(ctx, g, r, root, ref)
	if err != nil {
		release()
		return "", nil, err
	}
	return path, release, nil
}

// companionFetch runs 'hpcctl-image cache-ref' and returns the path it prints. It passes the
// user's environment on: credentials, proxies and the home directory are the user's to give.
func companionFetch(ctx context.Context, g *Globals, r refOptions, root, ref string) (string, error) {
	path, err := companionPath()
	if err != nil {
		return "", err
	}
	args := []string{"--cache-dir", root}
	if r.insecure {
		args = append(args, "--insecure")
	}
	if r.authFile != "" {
		args = append(args, "--authfile", r.authFile)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, path)
	cmd.Args = companionArgv(g, "cache-ref", append(append(args, "--"), ref))
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	// SIGTERM, not SIGKILL, on an interrupt: the companion then removes its half-written files.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	runErr := cmd.Run()
	if err := companionResult(g, path, "cache-ref", stderr.String(), runErr); err != nil {
		return "", err
	}
	out := strings.TrimSpace(stdout.String())
	if out == "" || strings.Contains(out, "\n") {
		return "", fmt.Errorf("%s cache-ref %s printed %q, not one path: install hpcctl and %s from the same build", path, ref, out, Companion)
	}
	return out, nil
}

// auditImagePath is the file an audit record describes: for a reference, the cached SIF the runs
// used (auditRuns fetched it), so that the record's digest is the image's, not the name's.
func auditImagePath(o *auditOptions, image string) string {
	if !refcache.IsReference(image) {
		return image
	}
	dir, err := CacheDir(o.launch.config)
	if err != nil {
		return image
	}
	if p, ok := refcache.Lookup(dir, image, time.Now()); ok {
		return p
	}
	return image
}
