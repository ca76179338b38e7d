package sign

import (
	"bytes"
	"crypto"
	"errors"
	"fmt"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
)

// PGPIdentity is the user ID of a new OpenPGP key.
type PGPIdentity struct {
	Name, Email, Comment string
}

// pgpConfig makes v4 EdDSA keys: v6 keys and post-quantum algorithms are not understood by the
// OpenPGP code in released Apptainer and SingularityCE, and RSA is slow to generate.
func pgpConfig() *packet.Config {
	return &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA, DefaultHash: crypto.SHA256}
}

// generatePGP makes a new OpenPGP key, its private part encrypted when pass yields a passphrase.
func generatePGP(id PGPIdentity, pass PassphraseFunc) (secArmored, pubArmored []byte, e *openpgp.Entity, err error) {
	if id.Name == "" {
		return nil, nil, nil, errors.New("an OpenPGP key needs a name for its user ID: pass --name or --uid-name")
	}
	e, err = openpgp.NewEntity(id.Name, id.Comment, id.Email, pgpConfig())
	if err != nil {
		return nil, nil, nil, fmt.Errorf("generate OpenPGP key: %w", err)
	}
	pubArmored, err = armorPublic(e)
	if err != nil {
		return nil, nil, nil, err
	}
	pw, err := askPassphrase(pass, true)
	if err != nil {
		return nil, nil, nil, err
	}
	if len(pw) > 0 {
		if err = e.EncryptPrivateKeys(pw, pgpConfig()); err != nil {
			return nil, nil, nil, fmt.Errorf("encrypt OpenPGP key: %w", err)
		}
	}
	secArmored, err = armorSecret(e)
	return secArmored, pubArmored, e, err
}

func armorPublic(e *openpgp.Entity) ([]byte, error) {
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		return nil, err
	}
	if err := e.Serialize(w); err != nil {
		return nil, fmt.Errorf("encode OpenPGP public key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

func armorSecret(e *openpgp.Entity) ([]byte, error) {
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PrivateKeyType, nil)
	if err != nil {
		return nil, err
	}
	// The self-signatures were made at generation; re-signing would need the decrypted key.
	if err := e.SerializePrivateWithoutSigning(w, nil); err != nil {
		return nil, fmt.Errorf("encode OpenPGP private key: %w", err)
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// isPGP reports whether data looks like an OpenPGP key or keyring, armored or binary.
func isPGP(data []byte) bool {
	if bytes.Contains(data, []byte("-----BEGIN PGP ")) {
		return true
	}
	// Binary OpenPGP packets have the high bit of the first byte set; PEM and text never do.
	return len(data) > 0 && data[0]&0x80 != 0
}

// readPGPKeyring parses an armored or binary keyring.
func readPGPKeyring(data []byte) (openpgp.EntityList, error) {
	var el openpgp.EntityList
	var err error
	if bytes.Contains(data, []byte("-----BEGIN PGP ")) {
		el, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	} else {
		el, err = openpgp.ReadKeyRing(bytes.NewReader(data))
	}
	if err != nil {
		return nil, fmt.Errorf("parse OpenPGP keyring: %w", err)
	}
	if len(el) == 0 {
		return nil, errors.New("OpenPGP keyring holds no keys")
	}
	return el, nil
}

// pgpFingerprint is the upper-case hex fingerprint gpg prints.
func pgpFingerprint(e *openpgp.Entity) string {
	return strings.ToUpper(fmt.Sprintf("%x", e.PrimaryKey.Fingerprint))
}

// pgpIdentity is the primary user ID of e, or "" if it has none.
func pgpIdentity(e *openpgp.Entity) string {
	if id := e.PrimaryIdentity(); id != nil {
		return id.Name
	}
	return ""
}

// decryptPGP unlocks e's private keys, asking for the passphrase only when they are encrypted.
func decryptPGP(e *openpgp.Entity, pass PassphraseFunc) error {
	if e.PrivateKey == nil {
		return errors.New("OpenPGP key has no private part")
	}
	if !e.PrivateKey.Encrypted {
		return nil
	}
	pw, err := askPassphrase(pass, false)
	if err != nil {
		return err
	}
	if len(pw) == 0 {
		return ErrNeedPassphrase
	}
	if err := e.DecryptPrivateKeys(pw); err != nil {
		return ErrWrongPassphrase
	}
	return nil
}

// selectPGP picks the entity matching sel (fingerprint or key ID suffix, or user ID substring)
// among el, requiring a private key when secret is set.
func selectPGP(el openpgp.EntityList, sel string, secret bool) (*openpgp.Entity, error) {
	var found []*openpgp.Entity
	for _, e := range el {
		if secret && e.PrivateKey == nil {
			continue
		}
		if sel == "" || matchesPGP(e, sel) {
			found = append(found, e)
		}
	}
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(found) == 0 && sel == "":
		return nil, errors.New("keyring holds no OpenPGP secret key: make one with 'hpcctl key newpair --type pgp'")
	case len(found) == 0:
		return nil, fmt.Errorf("no OpenPGP key matches %q", sel)
	}
	return nil, fmt.Errorf("%d OpenPGP keys match %q: pick one by fingerprint", len(found), sel)
}

func matchesPGP(e *openpgp.Entity, sel string) bool {
	s := strings.ToUpper(strings.TrimPrefix(strings.ReplaceAll(sel, " ", ""), "0x"))
	fp := pgpFingerprint(e)
	if len(s) >= 8 && strings.HasSuffix(fp, s) || s == fp {
		return true
	}
	for name := range e.Identities {
		if strings.Contains(strings.ToLower(name), strings.ToLower(sel)) {
			return true
		}
	}
	return false
}
