package sign

import (
	"context"
	"crypto"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sylabs/sif/v2/pkg/integrity"
	"github.com/sylabs/sif/v2/pkg/sif"
)

// ErrDataDamaged marks an image whose data no longer matches the digests its signature holds.
var ErrDataDamaged = errors.New("its data does not match its signature")

// acceptVerifier takes every DSSE signature as valid, so that integrity.Verifier checks only that
// each signed object (the squashfs partition included) still has the digest the signature lists.
// It has no public key: the DSSE verifier then cannot compute a key ID, and so matches it
// against every signature of the envelope instead of only the one its key made.
type acceptVerifier struct{}

func (acceptVerifier) PublicKey(...signature.PublicKeyOption) (crypto.PublicKey, error) {
	return nil, nil
}

func (acceptVerifier) VerifySignature(io.Reader, io.Reader, ...signature.VerifyOption) error {
	return nil
}

// VerifyData checks the data of the open SIF image f against the digests its signatures hold,
// without asking who signed it. Squashfs has no checksums: a flipped bit in a data block reaches
// the program as wrong bytes. This finds data damaged since signing (a bad disk, a cut copy),
// not an image changed on purpose, whose changer would sign it again: only a trusted key
// (require_signed) tells that. An OpenPGP clear-signed message is read only with its key, so
// images signed that way need trusted_keys_dir.
func VerifyData(ctx context.Context, f *os.File) error {
	img, err := sif.LoadContainer(f, sif.OptLoadWithFlag(os.O_RDONLY), sif.OptLoadWithCloseOnUnload(false))
	if err != nil {
		return fmt.Errorf("image %s: --verify-data needs a signed SIF image: %w", f.Name(), err)
	}
	defer func() { _ = img.UnloadContainer() }()
	sigs, _ := img.GetDescriptors(sif.WithDataType(sif.DataSignature))
	if len(sigs) == 0 {
		return fmt.Errorf("image %s is not signed: --verify-data checks the data against the signature's digests; sign it (hpcctl sign) or run without --verify-data", f.Name())
	}
	for _, s := range sigs {
		if signatureFormat(s) != "dsse" {
			return fmt.Errorf("image %s: signature object %d is not a DSSE signature: --verify-data reads OpenPGP signatures only with the signer's key (set trusted_keys_dir in hpcctl.conf)", f.Name(), s.ID())
		}
	}
	v, err := integrity.NewVerifier(img, integrity.OptVerifyWithContext(ctx), integrity.OptVerifyWithVerifier(acceptVerifier{}))
	if err == nil {
		err = v.Verify()
	}
	if err != nil {
		return fmt.Errorf("image %s: %w (%w): it was damaged after signing; copy it again", f.Name(), ErrDataDamaged, explain(img, &Report{}, err))
	}
	return nil
}
