package sign

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	path string
}

func newCA(t *testing.T, name string) testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return testCA{cert: cert, key: key, path: writePEM(t, name+".crt", "CERTIFICATE", der)}
}

// leaf issues a code-signing certificate valid from notBefore to notAfter and writes it with its
// private key.
func (ca testCA) leaf(t *testing.T, notBefore, notAfter time.Time) (certPath, keyPath string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "builder@example.org"},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageCodeSigning},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	privPEM, err := cryptoutils.MarshalPrivateKeyToPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	keyPath = filepath.Join(t.TempDir(), "leaf.key")
	if err := os.WriteFile(keyPath, privPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return writePEM(t, "leaf.crt", "CERTIFICATE", der), keyPath
}

func writePEM(t *testing.T, name, typ string, der []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCertificates(t *testing.T) {
	ca, other := newCA(t, "Site CA"), newCA(t, "Other CA")
	now := time.Now()
	goodCert, goodKey := ca.leaf(t, now.Add(-time.Hour), now.Add(time.Hour))
	oldCert, oldKey := ca.leaf(t, now.Add(-48*time.Hour), now.Add(-24*time.Hour))

	signWithKeyFile := func(keyPath string) string {
		img := newImage(t, imageOpts{})
		k, err := LoadSigningKey(keyPath, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		signFile(t, img, k)
		return img
	}
	goodImg, oldImg := signWithKeyFile(goodKey), signWithKeyFile(oldKey)

	tests := []struct {
		name       string
		img        string
		cert, root string
		want       string // "" for success
	}{
		{"trusted", goodImg, goodCert, ca.path, ""},
		{"expired", oldImg, oldCert, ca.path, "expired"},
		{"untrusted CA", goodImg, goodCert, other.path, "--certificate-roots"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr, err := LoadTrust(TrustOptions{Certificate: tc.cert, Roots: tc.root})
			if err == nil {
				var r *Report
				r, err = VerifyFile(t.Context(), tc.img, tr, nil)
				if err == nil && !strings.Contains(r.Signatures[0].Signer, "CN=builder@example.org") {
					t.Errorf("signer %q, want the certificate subject", r.Signatures[0].Signer)
				}
			}
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("err = %v, want success", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("err = %v, want an error mentioning %q", err, tc.want)
			}
			t.Log(err)
		})
	}
}
