package sign

import (
	"crypto"
	"errors"
	"io"

	"github.com/sigstore/sigstore/pkg/signature"
)

// rejectVerifier accepts no signature. integrity.Verifier stops at the first DSSE signature when
// it has no DSSE verifier at all; with this one it reports "not valid" through the callback and
// carries on, so an image signed by both PGP and PEM keys verifies with either kind alone.
type rejectVerifier struct{}

var errNoTrustedKey = errors.New("no trusted key")

func (rejectVerifier) PublicKey(...signature.PublicKeyOption) (crypto.PublicKey, error) {
	return nil, errNoTrustedKey
}

func (rejectVerifier) VerifySignature(io.Reader, io.Reader, ...signature.VerifyOption) error {
	return errNoTrustedKey
}
