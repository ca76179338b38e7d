package sign

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sylabs/sif/v2/pkg/integrity"
	"github.com/sylabs/sif/v2/pkg/sif"

	hsif "github.com/hpcctl/hpcctl/internal/sif"
)

// SigningKey is unlocked key material: a PEM key (DSSE signatures) or an OpenPGP entity
// (clear-signed signatures).
type SigningKey struct {
	Name        string
	Type        KeyType
	Fingerprint string
	signer      signature.Signer
	entity      *openpgp.Entity
}

// LoadSigningKey reads a private key file: PEM (ed25519, ecdsa, rsa; plain or encrypted) or an
// OpenPGP secret key or keyring, in which sel picks the key (fingerprint, key ID or user ID).
func LoadSigningKey(path, sel string, pass PassphraseFunc) (*SigningKey, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	if err = checkPrivateMode(path, st); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	var k *SigningKey
	if isPGP(data) {
		k, err = pgpSigningKey(data, sel, pass)
	} else {
		k, err = pemSigningKey(data, pass)
	}
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	k.Name = path
	return k, nil
}

// SigningKey loads the private key named (or fingerprinted) sel from the store.
func (s *Store) SigningKey(sel string, pass PassphraseFunc) (*SigningKey, error) {
	ki, err := s.Find(sel)
	if err != nil {
		return nil, err
	}
	if !ki.Private {
		return nil, fmt.Errorf("key %q has only a public part: import its private key to sign with it", ki.Name)
	}
	k, err := LoadSigningKey(ki.PrivatePath, "", pass)
	if err != nil {
		return nil, err
	}
	k.Name = ki.Name
	return k, nil
}

// DefaultPGPKey loads the store's only OpenPGP secret key (or the one matching sel).
func (s *Store) DefaultPGPKey(sel string, pass PassphraseFunc) (*SigningKey, error) {
	keys, err := s.List()
	if err != nil {
		return nil, err
	}
	var found []KeyInfo
	for _, k := range keys {
		if k.Type == PGP && k.Private && (sel == "" || k.Name == sel || matchesFingerprint(k.Fingerprint, sel)) {
			found = append(found, k)
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("no OpenPGP secret key in %s: make one with 'hpcctl key newpair --type pgp' or import one", s.Dir)
	case 1:
		return s.SigningKey(found[0].Name, pass)
	}
	return nil, fmt.Errorf("%d OpenPGP secret keys in %s: pick one with --key NAME", len(found), s.Dir)
}

func pemSigningKey(data []byte, pass PassphraseFunc) (*SigningKey, error) {
	priv, err := parsePrivatePEM(data, pass)
	if err != nil {
		return nil, err
	}
	// SHA-256 is what Apptainer and SingularityCE use with PEM keys; ed25519 ignores it.
	sv, err := signature.LoadSignerVerifier(priv, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("load signer: %w", err)
	}
	fp, err := Fingerprint(priv.Public())
	if err != nil {
		return nil, err
	}
	return &SigningKey{Type: pubKeyType(priv.Public()), Fingerprint: fp, signer: sv}, nil
}

func pgpSigningKey(data []byte, sel string, pass PassphraseFunc) (*SigningKey, error) {
	el, err := readPGPKeyring(data)
	if err != nil {
		return nil, err
	}
	e, err := selectPGP(el, sel, true)
	if err != nil {
		return nil, err
	}
	if err := decryptPGP(e, pass); err != nil {
		return nil, err
	}
	return &SigningKey{Type: PGP, Fingerprint: pgpFingerprint(e), entity: e}, nil
}

// SignOptions tune signing.
type SignOptions struct {
	// Time stamps the signature objects (and, for OpenPGP, the signature itself). When zero, a
	// deterministic image (no creation time) stays deterministic, and otherwise the image's own
	// last-modified time is used for DSSE so that signing the same image with the same ed25519
	// key twice gives identical bytes; OpenPGP signatures use the current time.
	Time time.Time
	// GroupIDs restricts signing to these object groups; by default every group is signed (the
	// system partition's group among them), as Apptainer does.
	GroupIDs []uint32
}

// SignFile adds signatures by keys to the SIF image at path, in place. All PEM keys share one
// DSSE envelope (so verifying with any one of them succeeds, in Apptainer too); each OpenPGP key
// adds its own signature object. On failure the file is cut back to its former size.
func SignFile(ctx context.Context, path string, keys []*SigningKey, opts SignOptions) error {
	st, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	f, err := hsif.LoadPath(path, os.O_RDWR)
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	err = SignImage(ctx, f, keys, opts)
	if uerr := f.UnloadContainer(); err == nil && uerr != nil {
		err = fmt.Errorf("sign %s: %w", path, uerr)
	}
	if err != nil {
		// Signature objects are appended and the header is written last, so cutting the file
		// back restores the image as it was.
		_ = os.Truncate(path, st.Size())
		return fmt.Errorf("sign %s: %w", path, err)
	}
	return nil
}

// SignImage adds signatures to an open image (as the builder does, before its atomic rename).
func SignImage(ctx context.Context, f *sif.FileImage, keys []*SigningKey, opts SignOptions) error {
	if len(keys) == 0 {
		return errors.New("no signing key given: pass --key FILE or --pgp")
	}
	var dsse []signature.Signer
	for _, k := range keys {
		if k.signer != nil {
			dsse = append(dsse, k.signer)
		}
	}
	if len(dsse) > 0 {
		if err := signWith(ctx, f, opts, false, integrity.OptSignWithSigner(dsse...)); err != nil {
			return err
		}
	}
	for _, k := range keys {
		if k.entity == nil {
			continue
		}
		if err := signWith(ctx, f, opts, true, integrity.OptSignWithEntity(k.entity)); err != nil {
			return fmt.Errorf("OpenPGP key %s: %w", k.Fingerprint, err)
		}
	}
	return nil
}

func signWith(ctx context.Context, f *sif.FileImage, opts SignOptions, pgp bool, keyOpt integrity.SignerOpt) error {
	so := []integrity.SignerOpt{keyOpt, integrity.OptSignWithContext(ctx)}
	so = append(so, timeOpts(f, opts.Time, pgp)...)
	for _, g := range opts.GroupIDs {
		so = append(so, integrity.OptSignGroup(g))
	}
	s, err := integrity.NewSigner(f, so...)
	if err != nil {
		return fmt.Errorf("prepare signature: %w", err)
	}
	if err := s.Sign(); err != nil {
		return fmt.Errorf("add signature: %w", err)
	}
	return nil
}

// timeOpts chooses timestamps so that signing stays reproducible where the scheme allows.
func timeOpts(f *sif.FileImage, t time.Time, pgp bool) []integrity.SignerOpt {
	var so []integrity.SignerOpt
	deterministic := f.CreatedAt().Unix() == 0 && f.ModifiedAt().Unix() == 0
	if deterministic {
		so = append(so, integrity.OptSignDeterministic())
	}
	switch {
	case !t.IsZero():
		so = append(so, integrity.OptSignWithTime(func() time.Time { return t }))
	case !pgp && !deterministic:
		mt := f.ModifiedAt()
		so = append(so, integrity.OptSignWithTime(func() time.Time { return mt }))
	}
	return so
}
