package fetch

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"oras.land/oras-go/v2/content"
	"oras.land/oras-go/v2/errdef"
	"oras.land/oras-go/v2/registry/remote"
	"oras.land/oras-go/v2/registry/remote/auth"
	"oras.land/oras-go/v2/registry/remote/credentials"
	"oras.land/oras-go/v2/registry/remote/errcode"
)

// The media types Apptainer and SingularityCE give a SIF pushed as an ORAS artifact: an OCI image
// manifest whose config is the empty JSON object under the SIF config type and whose one layer
// is the SIF file itself.
const (
	SIFConfigMediaType = "application/vnd.sylabs.sif.config.v1+json"
	SIFLayerMediaType  = "application/vnd.sylabs.sif.layer.v1.sif"
	// sifLayerMediaTypeProto is what Singularity before 3.7 pushed (the typo is theirs).
	sifLayerMediaTypeProto = "appliciation/vnd.sylabs.sif.layer.tar"
	defaultTag             = "latest"
	maxManifest            = 4 << 20
)

// orasRepo is one repository of an oras:// reference, with the tag or digest it names.
type orasRepo struct {
	ref  string // as the user wrote it
	repo *remote.Repository
	tag  string
	opts Options
}

// openORAS parses oras://HOST/REPO[:TAG|@DIGEST] and sets up the client: credentials as for
// build (--authfile, $REGISTRY_AUTH_FILE, docker's config), and with --insecure or --no-https,
// unverified TLS falling back to plain HTTP when the registry speaks no TLS.
func openORAS(ref string, opts Options) (*orasRepo, error) {
	rest := strings.TrimPrefix(strings.TrimPrefix(ref, "oras://"), "//")
	repo, err := remote.NewRepository(rest)
	if err != nil || !strings.Contains(rest, "/") {
		return nil, fmt.Errorf("%s is not a registry reference: write oras://HOST/REPO[:TAG]", ref)
	}
	tag := repo.Reference.Reference
	if tag == "" {
		tag = defaultTag
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if opts.Insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the user asked for it with --insecure
	}
	client := &auth.Client{Client: &http.Client{Transport: tr}, Cache: auth.NewCache(), Header: http.Header{"User-Agent": {"hpcctl"}}}
	if store, err := credentialStore(opts.AuthFile); err == nil {
		client.Credential = credentials.Credential(store)
	} else if opts.AuthFile != "" {
		return nil, fmt.Errorf("credentials file %s: %w", opts.AuthFile, err)
	}
	repo.Client = client
	return &orasRepo{ref: ref, repo: repo, tag: tag, opts: opts}, nil
}

func credentialStore(authFile string) (credentials.Store, error) {
	if authFile == "" {
		authFile = os.Getenv("REGISTRY_AUTH_FILE")
	}
	if authFile != "" {
		return credentials.NewStore(authFile, credentials.StoreOptions{})
	}
	return credentials.NewStoreFromDocker(credentials.StoreOptions{})
}

// resolve asks for the manifest descriptor, switching to plain HTTP where --insecure allows and
// the registry needs it.
func (r *orasRepo) resolve(ctx context.Context) (imgspecv1.Descriptor, error) {
	desc, err := r.repo.Resolve(ctx, r.tag)
	if err != nil && r.opts.Insecure && isPlainHTTP(err) {
		r.repo.PlainHTTP = true
		desc, err = r.repo.Resolve(ctx, r.tag)
	}
	return desc, err
}

func isPlainHTTP(err error) bool {
	return err != nil && strings.Contains(err.Error(), "server gave HTTP response to HTTPS client")
}

// explain turns a registry error into one line that says what to do.
func (r *orasRepo) explain(verb string, err error) error {
	host := r.repo.Reference.Registry
	var ec *errcode.ErrorResponse
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("%s %s: %w", verb, r.ref, err)
	case errors.Is(err, errdef.ErrNotFound):
		return fmt.Errorf("%s %s: not found in registry %s: check the repository and tag", verb, r.ref, host)
	case errors.Is(err, auth.ErrBasicCredentialNotFound):
		return fmt.Errorf("%s %s: registry %s asks for credentials and none were found for it: pass --authfile FILE, or add them to $REGISTRY_AUTH_FILE or ~/.docker/config.json", verb, r.ref, host)
	case errors.As(err, &ec) && (ec.StatusCode == http.StatusUnauthorized || ec.StatusCode == http.StatusForbidden):
		return fmt.Errorf("%s %s: registry %s refused the credentials (%d): log in, or pass --authfile", verb, r.ref, host, ec.StatusCode)
	case isPlainHTTP(err):
		return fmt.Errorf("%s %s: registry %s speaks plain HTTP, not HTTPS: pass --no-https if you trust it", verb, r.ref, host)
	case errors.As(err, &oe) || errors.As(err, &ne):
		return fmt.Errorf("%s %s: cannot reach registry %s: %v: check the host name and port and that it is running", verb, r.ref, host, rootCause(err))
	}
	return fmt.Errorf("%s %s: %s", verb, r.ref, strings.ReplaceAll(err.Error(), "\n", " "))
}

func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}

// fetchORAS pulls the SIF an oras:// reference names, keyed by the SIF layer's digest: the
// manifest is read every time (one small request), the SIF only when the cache lacks it.
func fetchORAS(ctx context.Context, ref string, opts Options) (Result, error) {
	r, err := openORAS(ref, opts)
	if err != nil {
		return Result{}, err
	}
	mdesc, err := r.resolve(ctx)
	if err != nil {
		return Result{}, r.explain("pull", err)
	}
	layer, err := r.sifLayer(ctx, mdesc)
	if err != nil {
		return Result{}, err
	}
	out := sifPath(opts.CacheDir, "oras", layer.Digest.String(), "")
	if st, serr := os.Stat(out); serr == nil && st.Size() == layer.Size {
		opts.Logger.Debug("image in cache", "ref", ref, "digest", layer.Digest, "sif", out)
		return Result{SIF: out, Digest: layer.Digest.String(), Cached: true}, nil
	}
	rc, err := r.repo.Blobs().Fetch(ctx, layer)
	if err != nil {
		return Result{}, r.explain("pull", err)
	}
	defer rc.Close()
	if err := saveSIF(ctx, content.NewVerifyReader(rc, layer), out, ref); err != nil {
		return Result{}, err
	}
	return Result{SIF: out, Digest: layer.Digest.String()}, nil
}

// sifLayer reads the manifest and returns its SIF layer, refusing artifacts that hold no SIF.
func (r *orasRepo) sifLayer(ctx context.Context, mdesc imgspecv1.Descriptor) (imgspecv1.Descriptor, error) {
	if mdesc.MediaType != imgspecv1.MediaTypeImageManifest && mdesc.MediaType != "application/vnd.docker.distribution.manifest.v2+json" {
		return imgspecv1.Descriptor{}, fmt.Errorf("pull %s: it is a %s, not a SIF pushed with 'hpcctl push' or 'apptainer push'", r.ref, mdesc.MediaType)
	}
	if mdesc.Size > maxManifest {
		return imgspecv1.Descriptor{}, fmt.Errorf("pull %s: its manifest is %d bytes, too large to be a SIF artifact's", r.ref, mdesc.Size)
	}
	rc, err := r.repo.Fetch(ctx, mdesc)
	if err != nil {
		return imgspecv1.Descriptor{}, r.explain("pull", err)
	}
	defer rc.Close()
	raw, err := content.ReadAll(rc, mdesc)
	if err != nil {
		return imgspecv1.Descriptor{}, r.explain("pull", err)
	}
	var m imgspecv1.Manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return imgspecv1.Descriptor{}, fmt.Errorf("pull %s: its manifest is not valid JSON: %v", r.ref, err)
	}
	var types []string
	for _, l := range m.Layers {
		if l.MediaType == SIFLayerMediaType || l.MediaType == sifLayerMediaTypeProto {
			if err := l.Digest.Validate(); err != nil || l.Digest.Algorithm() != digest.SHA256 {
				return imgspecv1.Descriptor{}, fmt.Errorf("pull %s: its SIF layer has the digest %q, not a sha256 one", r.ref, l.Digest)
			}
			return l, nil
		}
		types = append(types, l.MediaType)
	}
	return imgspecv1.Descriptor{}, fmt.Errorf("pull %s: not a SIF image (config %s, layers %s): use docker:// for container images, oras:// for SIFs pushed with 'hpcctl push'",
		r.ref, m.Config.MediaType, strings.Join(types, ", "))
}

// Push uploads the SIF at path as oras://REF with Apptainer's media types, so that `apptainer
// pull oras://REF` reads it, and returns the manifest's digest.
func Push(ctx context.Context, path, ref string, opts Options) (string, error) {
	f, err := openSIF(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	r, err := openORAS(ref, opts)
	if err != nil {
		return "", err
	}
	if _, err = r.resolve(ctx); err != nil && !errors.Is(err, errdef.ErrNotFound) {
		return "", r.explain("push", err)
	}
	layer, err := describeFile(f)
	if err != nil {
		return "", err
	}
	layer.MediaType, layer.Annotations = SIFLayerMediaType, map[string]string{imgspecv1.AnnotationTitle: filepath.Base(path)}
	if err = r.pushBlob(ctx, layer, f); err != nil {
		return "", err
	}
	empty := []byte("{}")
	config := content.NewDescriptorFromBytes(SIFConfigMediaType, empty)
	if err = r.pushBlob(ctx, config, bytes.NewReader(empty)); err != nil {
		return "", err
	}
	m := imgspecv1.Manifest{MediaType: imgspecv1.MediaTypeImageManifest, Config: config, Layers: []imgspecv1.Descriptor{layer}}
	m.SchemaVersion = 2
	raw, err := json.Marshal(m)
	if err != nil {
		return "", fmt.Errorf("encode the manifest: %w", err)
	}
	mdesc := content.NewDescriptorFromBytes(imgspecv1.MediaTypeImageManifest, raw)
	if err := r.repo.PushReference(ctx, mdesc, bytes.NewReader(raw), r.tag); err != nil {
		return "", r.explain("push", err)
	}
	return mdesc.Digest.String(), nil
}

// pushBlob uploads a blob unless the registry has it already.
func (r *orasRepo) pushBlob(ctx context.Context, desc imgspecv1.Descriptor, body io.Reader) error {
	ok, err := r.repo.Exists(ctx, desc)
	if err != nil {
		return r.explain("push", err)
	}
	if ok {
		return nil
	}
	if s, isSeeker := body.(io.Seeker); isSeeker {
		if _, err := s.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("push %s: %w", r.ref, err)
		}
	}
	if err := r.repo.Push(ctx, desc, body); err != nil {
		return r.explain("push", err)
	}
	return nil
}

// describeFile hashes f for its descriptor.
func describeFile(f *os.File) (imgspecv1.Descriptor, error) {
	d := digest.SHA256.Digester()
	n, err := io.Copy(d.Hash(), f)
	if err != nil {
		return imgspecv1.Descriptor{}, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	return imgspecv1.Descriptor{Digest: d.Digest(), Size: n}, nil
}
