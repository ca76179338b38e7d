package sign

import (
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
)

// TrustOptions name the key material a verification trusts.
type TrustOptions struct {
	KeyFiles    []string // PEM public keys (private keys are accepted too), or OpenPGP public keys
	KeyDirs     []string // directories of such files (a key store, or a site's trusted keys)
	PGPKeyrings []string // OpenPGP keyrings, armored or binary (e.g. 'gpg --export')
	// Certificate is a PEM X.509 signing certificate; its chain is checked against Roots (system
	// roots when empty) through Intermediates, for the code-signing usage, at Now.
	Certificate   string
	Intermediates string
	Roots         string
	Now           time.Time // zero: the current time
}

// Trust is loaded key material to verify with.
type Trust struct {
	keys []trustedKey
	pgp  openpgp.EntityList
}

type trustedKey struct {
	name        string // where it came from: key file, or certificate subject
	fingerprint string
	typ         KeyType
	verifier    signature.Verifier
}

// Empty reports whether t holds no key at all.
func (t *Trust) Empty() bool { return len(t.keys) == 0 && len(t.pgp) == 0 }

// LoadTrust reads the key material o names. A certificate that is expired, not yet valid or not
// issued by the given roots is an error, not a silent skip.
func LoadTrust(o TrustOptions) (*Trust, error) {
	t := &Trust{}
	for _, dir := range o.KeyDirs {
		if err := t.addDir(dir); err != nil {
			return nil, err
		}
	}
	for _, p := range o.KeyFiles {
		if err := t.addFile(p, true); err != nil {
			return nil, err
		}
	}
	for _, p := range o.PGPKeyrings {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("OpenPGP keyring: %w", err)
		}
		el, err := readPGPKeyring(data)
		if err != nil {
			return nil, fmt.Errorf("OpenPGP keyring %s: %w", p, err)
		}
		t.pgp = append(t.pgp, el...)
	}
	if o.Certificate != "" {
		if err := t.addCertificate(o); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// addDir loads every key file in dir; files others may write are refused, since whoever can
// write a trusted key can make any image pass.
func (t *Trust) addDir(dir string) error {
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("trusted keys: %w", err)
	}
	if err = checkTrustedMode(dir, st); err != nil {
		return err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("trusted keys: %w", err)
	}
	names := make([]string, 0, len(ents))
	for _, de := range ents {
		if isKeyFileName(de.Name()) && !strings.HasSuffix(de.Name(), pgpSecExt) && !strings.HasSuffix(de.Name(), pemPrivExt) {
			names = append(names, de.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		p := filepath.Join(dir, n)
		st, err := os.Stat(p)
		if err != nil {
			return fmt.Errorf("trusted key: %w", err)
		}
		if !st.Mode().IsRegular() {
			continue
		}
		if err := checkTrustedMode(p, st); err != nil {
			return err
		}
		if err := t.addFile(p, false); err != nil {
			return err
		}
	}
	return nil
}

func isKeyFileName(n string) bool {
	for _, ext := range []string{".pub", ".pem", ".asc", ".gpg", ".pgp"} {
		if strings.HasSuffix(n, ext) {
			return true
		}
	}
	return false
}

// addFile loads one PEM or OpenPGP key file; allowPrivate lets a user point --key at a private
// key, whose public half is then used.
func (t *Trust) addFile(path string, allowPrivate bool) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("key: %w", err)
	}
	if isPGP(data) {
		el, kerr := readPGPKeyring(data)
		if kerr != nil {
			return fmt.Errorf("key %s: %w", path, kerr)
		}
		t.pgp = append(t.pgp, el...)
		return nil
	}
	pub, err := parsePublicPEM(data)
	if err != nil && allowPrivate {
		var priv crypto.Signer
		if priv, err = parsePrivatePEM(data, nil); err == nil {
			pub = priv.Public()
		}
	}
	if err != nil {
		return fmt.Errorf("key %s: %w", path, err)
	}
	return t.addPublic(keyLabel(path), pub)
}

// keyLabel names a trusted key by its file name without key extensions ("alice.pub" → "alice").
func keyLabel(path string) string {
	n := filepath.Base(path)
	for {
		ext := filepath.Ext(n)
		switch ext {
		case ".pub", ".pem", ".key", ".asc", ".gpg", ".pgp":
			n = strings.TrimSuffix(n, ext)
			continue
		}
		if n == "" {
			return path
		}
		return n
	}
}

func (t *Trust) addPublic(name string, pub crypto.PublicKey) error {
	v, err := signature.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return fmt.Errorf("key %s: %w", name, err)
	}
	fp, err := Fingerprint(pub)
	if err != nil {
		return err
	}
	t.keys = append(t.keys, trustedKey{name: name, fingerprint: fp, typ: pubKeyType(pub), verifier: v})
	return nil
}

// addCertificate checks the certificate chain now, then trusts the certificate's key.
func (t *Trust) addCertificate(o TrustOptions) error {
	leaf, err := readCerts(o.Certificate)
	if err != nil {
		return err
	}
	vo := x509.VerifyOptions{
		Intermediates: x509.NewCertPool(),
		CurrentTime:   o.Now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
	if o.Roots != "" {
		roots, err := readCerts(o.Roots)
		if err != nil {
			return err
		}
		vo.Roots = x509.NewCertPool()
		for _, c := range roots {
			vo.Roots.AddCert(c)
		}
	}
	if o.Intermediates != "" {
		inter, err := readCerts(o.Intermediates)
		if err != nil {
			return err
		}
		for _, c := range inter {
			vo.Intermediates.AddCert(c)
		}
	}
	cert := leaf[0]
	if _, err := cert.Verify(vo); err != nil {
		return fmt.Errorf("certificate %s (%s) is not trusted: %w: %s", o.Certificate, cert.Subject, err, certHint(err))
	}
	return t.addPublic("certificate "+cert.Subject.String(), cert.PublicKey)
}

func certHint(err error) string {
	var inv x509.CertificateInvalidError
	var ua x509.UnknownAuthorityError
	switch {
	case errors.As(err, &inv) && inv.Reason == x509.Expired:
		return "the signer needs a current certificate"
	case errors.As(err, &ua):
		return "pass the issuing CA with --certificate-roots (and any intermediates with --certificate-intermediates)"
	}
	return "check the certificate chain and its key usage (code signing)"
}

func readCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	certs, err := cryptoutils.UnmarshalCertificatesFromPEM(data)
	if err != nil || len(certs) == 0 {
		return nil, fmt.Errorf("certificate %s: no PEM certificate found (%v)", path, err)
	}
	return certs, nil
}

// verifiers returns the DSSE verifiers; when there are none, one that never accepts, so that a
// DSSE signature counts as "no trusted key" instead of aborting the whole verification.
func (t *Trust) verifiers() []signature.Verifier {
	vs := make([]signature.Verifier, 0, len(t.keys))
	for _, k := range t.keys {
		vs = append(vs, k.verifier)
	}
	if len(vs) == 0 {
		vs = append(vs, newRejectVerifier())
	}
	return vs
}

// keyFor names the trusted key whose public key is pub.
func (t *Trust) keyFor(pub crypto.PublicKey) (trustedKey, bool) {
	fp, err := Fingerprint(pub)
	if err != nil {
		return trustedKey{}, false
	}
	for _, k := range t.keys {
		if k.fingerprint == fp {
			return k, true
		}
	}
	return trustedKey{}, false
}

// checkTrustedMode refuses a trusted key, or directory of them, that someone other than root or
// the effective user owns or can write: whoever can change a trusted key can make any image pass.
// Under a setuid starter the effective user is root, so only root-owned keys count there.
func checkTrustedMode(path string, st os.FileInfo) error {
	if st.Mode().Perm()&0o022 != 0 {
		return fmt.Errorf("trusted key path %s is writable by other users (mode %04o): run 'chmod go-w %s'", path, st.Mode().Perm(), path)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && sys.Uid != 0 && int(sys.Uid) != os.Geteuid() {
		return fmt.Errorf("trusted key path %s is owned by user %d, not root: run 'chown root %s'", path, sys.Uid, path)
	}
	return nil
}
