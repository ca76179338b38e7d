package fetch

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/hpcctl/hpcctl/internal/refcache"
	"github.com/hpcctl/hpcctl/internal/sif"
)

// fetchHTTP downloads a SIF from an http(s):// URL. A URL has no digest to ask for first, so the
// file is downloaded, hashed and filed under its own digest; the reference record spares the
// download for refcache.TagTTL, and `hpcctl pull` downloads it again.
func fetchHTTP(ctx context.Context, url string, opts Options) (Result, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if opts.Insecure {
		tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true} //nolint:gosec // the user asked for it with --insecure
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return Result{}, fmt.Errorf("%s is not a URL: %v", url, err)
	}
	req.Header.Set("User-Agent", "hpcctl")
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		var oe *net.OpError
		if errors.As(err, &oe) {
			return Result{}, fmt.Errorf("download %s: cannot reach %s: %v: check the host name and port", url, req.URL.Host, rootCause(err))
		}
		return Result{}, fmt.Errorf("download %s: %s", url, strings.ReplaceAll(err.Error(), "\n", " "))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return Result{}, fmt.Errorf("download %s: the server answered %s: check the URL", url, resp.Status)
	}
	dir := filepath.Join(refcache.SIFDir(opts.CacheDir), "https")
	h := sha256.New()
	tmp, err := saveTemp(ctx, io.TeeReader(resp.Body, h), dir, url)
	if err != nil {
		return Result{}, err
	}
	defer os.Remove(tmp)
	digest := "sha256:" + hex.EncodeToString(h.Sum(nil))
	out := sifPath(opts.CacheDir, "https", digest, "")
	if err := os.Rename(tmp, out); err != nil {
		return Result{}, fmt.Errorf("file %s in the cache: %w", url, err)
	}
	return Result{SIF: out, Digest: digest}, nil
}

// verifier is a reader that can say, at its end, whether what it read had the expected digest.
type verifier interface {
	io.Reader
	Verify() error
}

// saveSIF writes a verified download to out: under a temporary name, checked to be a SIF, then
// renamed, so that the cache never holds half a file or something else.
func saveSIF(ctx context.Context, r verifier, out, ref string) error {
	tmp, err := saveTemp(ctx, r, filepath.Dir(out), ref)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if err := r.Verify(); err != nil {
		return fmt.Errorf("pull %s: the download does not match its digest (%v): try again", ref, err)
	}
	if err := os.Rename(tmp, out); err != nil {
		return fmt.Errorf("file %s in the cache: %w", ref, err)
	}
	return nil
}

// saveTemp copies r into a new file in dir and checks that it is a SIF; it returns the file's
// name, or removes it and returns the error.
func saveTemp(ctx context.Context, r io.Reader, dir, ref string) (string, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, ".download-")
	if err != nil {
		return "", fmt.Errorf("download %s: %w", ref, err)
	}
	_, err = io.Copy(f, ctxReader{ctx, r})
	if err == nil {
		err = checkSIF(f, ref)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("download %s: %w", ref, err)
	}
	return f.Name(), nil
}

// checkSIF refuses a file that is not a SIF (an HTML error page served with 200, a tar).
func checkSIF(f *os.File, ref string) error {
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if err := sif.Check(f, st.Size(), ref); err != nil {
		return fmt.Errorf("not a SIF image (%v)", err)
	}
	return nil
}

// openSIF opens a SIF to push, refusing anything else.
func openSIF(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", path, err)
	}
	if err := checkSIF(f, path); err != nil {
		f.Close()
		return nil, fmt.Errorf("push %s: %w: only SIF files are pushed to oras://", path, err)
	}
	return f, nil
}

// ctxReader stops a copy when ctx is cancelled (SIGINT, SIGTERM).
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
