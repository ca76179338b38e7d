package oci

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

// verifiedReader passes a cache blob through while hashing it, and turns io.EOF into an error when
// the size or digest do not match, so a consumer never mistakes a damaged blob for a good one.
type verifiedReader struct {
	f        *os.File
	c        *cache
	desc     imgspecv1.Descriptor
	verifier digest.Verifier
	n        int64
	done     error
}

func (c *cache) openVerified(desc imgspecv1.Descriptor) (io.ReadCloser, error) {
	f, err := os.Open(c.blobPath(desc.Digest))
	if err != nil {
		return nil, fmt.Errorf("open cache blob %s: %w: pull the image again", desc.Digest, err)
	}
	return &verifiedReader{f: f, c: c, desc: desc, verifier: desc.Digest.Verifier()}, nil
}

func (r *verifiedReader) Read(p []byte) (int, error) {
	if r.done != nil {
		return 0, r.done
	}
	n, err := r.f.Read(p)
	r.n += int64(n)
	r.verifier.Write(p[:n]) //nolint:errcheck // a digest verifier's Write never fails
	if r.n > r.desc.Size {
		r.done = r.corrupt(fmt.Sprintf("longer than its %d bytes", r.desc.Size))
		return n, r.done
	}
	if errors.Is(err, io.EOF) {
		switch {
		case r.n != r.desc.Size:
			err = r.corrupt(fmt.Sprintf("%d bytes instead of %d", r.n, r.desc.Size))
		case !r.verifier.Verified():
			err = r.corrupt("digest mismatch")
		}
		r.done = err
	}
	return n, err
}

// corrupt removes the damaged blob (if it is still the file we opened) so the next pull fetches
// it again, and returns the error that says so.
func (r *verifiedReader) corrupt(why string) error {
	path := r.c.blobPath(r.desc.Digest)
	removed := ""
	if cur, err := os.Stat(path); err == nil {
		if mine, err := r.f.Stat(); err == nil && os.SameFile(cur, mine) && os.Remove(path) == nil {
			removed = "; removed it"
		}
	}
	return &Error{Kind: ErrCorrupt, Msg: fmt.Sprintf(
		"image cache blob %s is corrupt (%s)%s: pull the image again to re-fetch it", r.desc.Digest, why, removed)}
}

func (r *verifiedReader) Close() error { return r.f.Close() }
