// Package sign signs SIF images and verifies their signatures (DSSE and OpenPGP, in the SIF
// integrity format Apptainer and SingularityCE use), keeps the user's keys, and checks images
// against a site's run-time signature policy.
package sign

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// KeyType names a kind of key pair.
type KeyType string

// Key types hpcctl generates. Ed25519 signatures are deterministic, so reproducible builds stay
// byte-for-byte reproducible when signed with one; ECDSA signatures are randomised by design.
const (
	Ed25519 KeyType = "ed25519"
	ECDSA   KeyType = "ecdsa-p256"
	PGP     KeyType = "pgp"
	RSA     KeyType = "rsa" // imported and verified, never generated
)

// ParseKeyType accepts the names users type for a key type.
func ParseKeyType(s string) (KeyType, error) {
	switch strings.ToLower(s) {
	case "ed25519", "":
		return Ed25519, nil
	case "ecdsa", "ecdsa-p256", "p256", "p-256":
		return ECDSA, nil
	case "pgp", "openpgp", "gpg":
		return PGP, nil
	}
	return "", fmt.Errorf("unknown key type %q: use ed25519, ecdsa or pgp", s)
}

// PassphraseFunc returns the passphrase protecting a private key; confirm asks for it twice (when
// a new key is made). An empty passphrase means "no protection". It has the shape of sigstore's
// cryptoutils.PassFunc so either can be passed where the other is expected.
type PassphraseFunc func(confirm bool) ([]byte, error)

// Errors about key material that callers may branch on.
var (
	ErrWrongPassphrase = errors.New("wrong passphrase (or damaged key file)")
	ErrNeedPassphrase  = errors.New("private key is passphrase-protected and no passphrase is available")
)

// Fingerprint identifies a PEM public key as OpenSSH does ("SHA256:" and base64). It is also the
// key ID that DSSE envelopes made with sigstore carry, so the signer of a signature can be named
// even when its key is not at hand.
func Fingerprint(pub crypto.PublicKey) (string, error) {
	fp, err := dsse.SHA256KeyID(pub)
	if err != nil {
		return "", fmt.Errorf("fingerprint public key: %w", err)
	}
	return fp, nil
}

// pubKeyType names the type of a public key.
func pubKeyType(pub crypto.PublicKey) KeyType {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		return Ed25519
	case *ecdsa.PublicKey:
		if k.Curve == elliptic.P256() {
			return ECDSA
		}
		return KeyType("ecdsa-" + strings.ToLower(strings.ReplaceAll(k.Curve.Params().Name, "-", "")))
	}
	return RSA
}

// generatePEM makes a new PEM key pair, the private half encrypted (scrypt + secretbox, the
// sigstore format Apptainer and cosign read) when pass yields a non-empty passphrase.
func generatePEM(t KeyType, pass PassphraseFunc) (privPEM, pubPEM []byte, err error) {
	var priv crypto.Signer
	switch t {
	case Ed25519:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	case ECDSA:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, nil, fmt.Errorf("cannot generate a PEM key of type %s", t)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("generate %s key: %w", t, err)
	}
	pubPEM, err = cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		return nil, nil, fmt.Errorf("encode public key: %w", err)
	}
	privPEM, err = encodePrivatePEM(priv, pass)
	return privPEM, pubPEM, err
}

func encodePrivatePEM(priv crypto.PrivateKey, pass PassphraseFunc) ([]byte, error) {
	pw, err := askPassphrase(pass, true)
	if err != nil {
		return nil, err
	}
	if len(pw) == 0 {
		return cryptoutils.MarshalPrivateKeyToPEM(priv)
	}
	der, err := cryptoutils.MarshalPrivateKeyToEncryptedDER(priv, cryptoutils.StaticPasswordFunc(pw))
	if err != nil {
		return nil, fmt.Errorf("encrypt private key: %w", err)
	}
	return cryptoutils.PEMEncode(cryptoutils.EncryptedSigstorePrivateKeyPEMType, der), nil
}

func askPassphrase(pass PassphraseFunc, confirm bool) ([]byte, error) {
	if pass == nil {
		return nil, nil
	}
	pw, err := pass(confirm)
	if err != nil {
		return nil, fmt.Errorf("read passphrase: %w", err)
	}
	return pw, nil
}

// pemIsEncrypted reports whether a PEM private key needs a passphrase.
func pemIsEncrypted(b *pem.Block) bool {
	switch b.Type {
	case string(cryptoutils.EncryptedSigstorePrivateKeyPEMType), "ENCRYPTED COSIGN PRIVATE KEY", "ENCRYPTED PRIVATE KEY":
		return true
	}
	return x509.IsEncryptedPEMBlock(b) //nolint:staticcheck // legacy PEM encryption still appears in the wild
}

// isPrivatePEM reports whether a PEM block holds a private key.
func isPrivatePEM(b *pem.Block) bool {
	return strings.HasSuffix(b.Type, "PRIVATE KEY")
}

// parsePrivatePEM decodes a PEM private key, asking for the passphrase only when it is encrypted.
func parsePrivatePEM(data []byte, pass PassphraseFunc) (crypto.Signer, error) {
	block, _ := pem.Decode(data)
	if block == nil || !isPrivatePEM(block) {
		return nil, errors.New("not a PEM private key")
	}
	var pf cryptoutils.PassFunc
	if pemIsEncrypted(block) {
		pw, err := askPassphrase(pass, false)
		if err != nil {
			return nil, err
		}
		if len(pw) == 0 {
			return nil, ErrNeedPassphrase
		}
		pf = cryptoutils.StaticPasswordFunc(pw)
	}
	key, err := cryptoutils.UnmarshalPEMToPrivateKey(data, pf)
	if err != nil {
		if pf != nil {
			return nil, ErrWrongPassphrase
		}
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("unsupported private key type %T", key)
	}
	return signer, nil
}

// parsePublicPEM decodes a PEM public key.
func parsePublicPEM(data []byte) (crypto.PublicKey, error) {
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("not a PEM public key (expected a \"PUBLIC KEY\" block)")
	}
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	return pub, nil
}

func pemPublic(pub crypto.PublicKey) ([]byte, error) {
	b, err := cryptoutils.MarshalPublicKeyToPEM(pub)
	if err != nil {
		return nil, fmt.Errorf("encode public key: %w", err)
	}
	return b, nil
}
