package sign

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/sylabs/sif/v2/pkg/integrity"
	"github.com/sylabs/sif/v2/pkg/sif"

	hsif "github.com/hpcctl/hpcctl/internal/sif"
)

// Verification failures callers may branch on (errors.Is).
var (
	ErrUnsigned     = errors.New("image is not signed")
	ErrUntrusted    = errors.New("no signature verifies with a trusted key")
	ErrTampered     = errors.New("image was modified after it was signed")
	ErrBadSignature = errors.New("signature object is damaged or of an unknown format")
	ErrNoTrust      = errors.New("no keys to verify with")
)

// Report says who signed what.
type Report struct {
	Image      string            `json:"image"`
	Verified   bool              `json:"verified"`
	Error      string            `json:"error,omitempty"`
	Signatures []SignatureReport `json:"signatures"`
}

// SignatureReport describes one signature object.
type SignatureReport struct {
	ID          uint32      `json:"id"`    // signature object ID
	Group       uint32      `json:"group"` // object group it signs
	Format      string      `json:"format"`
	Signer      string      `json:"signer,omitempty"` // trusted key name, certificate subject or OpenPGP user ID
	KeyType     KeyType     `json:"key_type,omitempty"`
	Fingerprint string      `json:"fingerprint,omitempty"`
	Verified    bool        `json:"verified"`
	Error       string      `json:"error,omitempty"`
	Objects     []ObjectRef `json:"objects"` // covered (when verified) or claimed objects
	claimed     bool        // names a trusted key that does not verify it
}

// ObjectRef names a data object.
type ObjectRef struct {
	ID   uint32 `json:"id"`
	Type string `json:"type"`
	Name string `json:"name,omitempty"`
}

// VerifyFile verifies the signatures of the image at path against t, for groups (all when empty).
// The report is returned even when verification fails, to show what was found.
func VerifyFile(ctx context.Context, path string, t *Trust, groups []uint32) (*Report, error) {
	f, err := hsif.LoadPath(path, os.O_RDONLY)
	if err != nil {
		err = fmt.Errorf("verify: %w", err)
		return &Report{Image: path, Signatures: []SignatureReport{}, Error: err.Error()}, err
	}
	defer func() { _ = f.UnloadContainer() }()
	return VerifyImage(ctx, f, path, t, groups)
}

// VerifyImage verifies an open image; name is used in messages.
func VerifyImage(ctx context.Context, f *sif.FileImage, name string, t *Trust, groups []uint32) (*Report, error) {
	r := &Report{Image: name, Signatures: []SignatureReport{}}
	err := verify(ctx, f, t, groups, r)
	if err != nil {
		err = fmt.Errorf("verify %s: %w%s", name, err, verifyHint(err))
		r.Error = err.Error()
		return r, err
	}
	r.Verified = true
	return r, nil
}

func verify(ctx context.Context, f *sif.FileImage, t *Trust, groups []uint32, r *Report) error {
	if t == nil || t.Empty() {
		return ErrNoTrust
	}
	sigs, _ := f.GetDescriptors(sif.WithDataType(sif.DataSignature))
	if len(sigs) == 0 {
		return ErrUnsigned
	}
	if err := checkSignatureFormats(sigs); err != nil {
		return err
	}
	kr := openpgp.KeyRing(t.pgp)
	if t.pgp == nil {
		kr = openpgp.EntityList{}
	}
	opts := []integrity.VerifierOpt{
		integrity.OptVerifyWithContext(ctx),
		integrity.OptVerifyWithVerifier(t.verifiers()...),
		integrity.OptVerifyWithKeyRing(kr),
		integrity.OptVerifyCallback(func(vr integrity.VerifyResult) bool {
			sr := describeResult(f, t, vr)
			r.Signatures = append(r.Signatures, sr)
			// A signature no trusted key verifies is reported, not fatal: another signature on
			// the same group may be trusted. Integrity failures stay fatal.
			var nv *integrity.SignatureNotValidError
			return errors.As(vr.Error(), &nv)
		}),
	}
	for _, g := range groups {
		opts = append(opts, integrity.OptVerifyGroup(g))
	}
	v, err := integrity.NewVerifier(f, opts...)
	if err != nil {
		return fmt.Errorf("prepare verification: %w", err)
	}
	if err := v.Verify(); err != nil {
		return explain(f, r, err)
	}
	return checkEveryGroupTrusted(f, r, groups)
}

// checkEveryGroupTrusted requires at least one verified signature on every group checked.
func checkEveryGroupTrusted(f *sif.FileImage, r *Report, groups []uint32) error {
	if len(groups) == 0 {
		f.WithDescriptors(func(od sif.Descriptor) bool {
			if g := od.GroupID(); g != 0 && !containsID(groups, g) {
				groups = append(groups, g)
			}
			return false
		})
	}
	for _, g := range groups {
		var failed []string
		ok := false
		for _, s := range r.Signatures {
			if s.Group != g {
				continue
			}
			ok = ok || s.Verified
			if s.claimed {
				failed = append(failed, fmt.Sprintf("signature object %d names key %s but does not verify with it: damaged or forged", s.ID, s.Signer))
				continue
			}
			failed = append(failed, fmt.Sprintf("signature object %d by %s", s.ID, s.signerOrUnknown()))
		}
		if !ok {
			return fmt.Errorf("object group %d: %w (%s)", g, ErrUntrusted, strings.Join(failed, "; "))
		}
	}
	return nil
}

func containsID(ids []uint32, id uint32) bool {
	for _, x := range ids {
		if x == id {
			return true
		}
	}
	return false
}

func (s SignatureReport) signerOrUnknown() string {
	switch {
	case s.Signer != "":
		return s.Signer
	case s.Fingerprint != "" && s.Format == "pgp":
		return "unknown OpenPGP key " + s.Fingerprint
	case s.Fingerprint != "":
		return "unknown key " + s.Fingerprint
	}
	return "an unknown key, or damaged"
}

// verifyHint says what to do about a failed verification.
func verifyHint(err error) string {
	switch {
	case errors.Is(err, ErrNoTrust):
		return ": pass --key, --certificate or --pgp-keyring, or import the signer's key with 'hpcctl key import'"
	case errors.Is(err, ErrUnsigned):
		return ": sign it with 'hpcctl sign --key KEY', or get a signed copy from its publisher"
	case errors.Is(err, ErrUntrusted):
		return ": get the signer's public key and pass it with --key or --pgp-keyring"
	case errors.Is(err, ErrTampered), errors.Is(err, ErrBadSignature):
		return ": do not run it; get a fresh copy from its publisher"
	}
	return ""
}
