package sign

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	hsif "github.com/hpcctl/hpcctl/internal/sif"
)

// Policy is a site's run-time rule for which images may run. It is plain data, filled from
// hpcctl.conf by the config package. In setuid mode the privileged side checks it, with the
// configuration read from the root-owned file, so a user cannot turn it off.
type Policy struct {
	// RequireSigned refuses images without a signature that verifies with a key in
	// TrustedKeysDir, on every object group.
	RequireSigned bool
	// TrustedKeysDir holds the public keys (PEM *.pub/*.pem, OpenPGP *.asc/*.gpg/*.pgp) the site
	// trusts; it is read only when RequireSigned is set. The directory and its keys must be owned
	// by root (or the effective user) and writable by no one else, or every image is refused.
	TrustedKeysDir string
	// AllowedPaths, when set, refuses images outside these directories (after symlinks).
	AllowedPaths []string
	// VerifyData checks the image's data against its signature's digests (VerifyData) when
	// RequireSigned, which verifies them with the signer's key, is not set.
	VerifyData bool
}

// ErrPolicy marks an image refused by the site's policy.
var ErrPolicy = errors.New("refused by site policy")

// Check opens the image at sifPath and checks it against p.
func (p Policy) Check(ctx context.Context, sifPath string) error {
	f, err := os.Open(sifPath)
	if err != nil {
		return fmt.Errorf("image: %w", err)
	}
	defer func() { _ = f.Close() }()
	return p.CheckFile(ctx, f)
}

// CheckFile checks an open image. The launcher should check and then mount the same open file,
// so that the file checked is the file run (no path race between the two).
func (p Policy) CheckFile(ctx context.Context, f *os.File) error {
	if len(p.AllowedPaths) > 0 {
		if err := p.checkPath(f); err != nil {
			return err
		}
	}
	if !p.RequireSigned && p.VerifyData {
		return VerifyData(ctx, f)
	}
	if !p.RequireSigned {
		return nil
	}
	if p.TrustedKeysDir == "" {
		return fmt.Errorf("image %s %w: 'require signed images' is set but no trusted keys directory is configured: ask the site administrators to fix hpcctl.conf", f.Name(), ErrPolicy)
	}
	t, err := LoadTrust(TrustOptions{KeyDirs: []string{p.TrustedKeysDir}})
	if err != nil {
		return fmt.Errorf("image %s %w: %w", f.Name(), ErrPolicy, err)
	}
	img, err := hsif.Load(f)
	if err != nil {
		return fmt.Errorf("%w (%w)", err, ErrPolicy)
	}
	defer func() { _ = img.UnloadContainer() }()
	if err := verify(ctx, img, t, nil, &Report{}); err != nil {
		return fmt.Errorf("image %s %w: %w%s", f.Name(), ErrPolicy, err, p.hint(err))
	}
	return nil
}

// hint says what a user refused by the policy can do.
func (p Policy) hint(err error) string {
	switch {
	case errors.Is(err, ErrUnsigned):
		return ": this site runs only signed images; ask the image's publisher for a signed copy"
	case errors.Is(err, ErrUntrusted), errors.Is(err, ErrNoTrust):
		return fmt.Sprintf(": this site runs only images signed by a key in %s; ask the site administrators", p.TrustedKeysDir)
	}
	return verifyHint(err)
}

// checkPath refuses an image whose real path is outside every allowed directory.
func (p Policy) checkPath(f *os.File) error {
	real, err := openedPath(f)
	if err != nil {
		return fmt.Errorf("image %s %w: cannot tell where it is: %w", f.Name(), ErrPolicy, err)
	}
	for _, dir := range p.AllowedPaths {
		if !filepath.IsAbs(dir) {
			continue // a relative allowed path would depend on the user's working directory
		}
		d, err := filepath.EvalSymlinks(dir)
		if err != nil {
			continue // a missing allowed directory allows nothing
		}
		if rel, err := filepath.Rel(d, real); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") && !filepath.IsAbs(rel) {
			return nil
		}
	}
	return fmt.Errorf("image %s %w: it is outside the allowed image paths (%s): copy it under one of them",
		real, ErrPolicy, strings.Join(p.AllowedPaths, ", "))
}

// openedPath is the real path of an open file, from /proc, so that it names the file actually
// opened and not whatever a symlink points at now.
func openedPath(f *os.File) (string, error) {
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		return filepath.EvalSymlinks(f.Name())
	}
	if strings.HasSuffix(p, " (deleted)") || !filepath.IsAbs(p) {
		return "", fmt.Errorf("file was removed or is not on a path (%s)", p)
	}
	return p, nil
}
