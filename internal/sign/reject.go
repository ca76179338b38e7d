package sign

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"io"

	"github.com/sigstore/sigstore/pkg/signature"
)

// rejectVerifier accepts no signature. integrity.Verifier stops at the first DSSE signature when
// it has no DSSE verifier at all; with this one it reports "not valid" through the callback and
// carries on, so an image signed by both PGP and PEM keys verifies with either kind alone. It
// carries a throwaway public key because the DSSE wrapper asks every verifier for one.
type rejectVerifier struct{ pub ed25519.PublicKey }

var errNoTrustedKey = errors.New("no trusted key")

func newRejectVerifier() rejectVerifier {
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return rejectVerifier{pub: pub}
}

func (v rejectVerifier) PublicKey(...signature.PublicKeyOption) (crypto.PublicKey, error) {
	return v.pub, nil
}

func (rejectVerifier) VerifySignature(io.Reader, io.Reader, ...signature.VerifyOption) error {
	return errNoTrustedKey
}
