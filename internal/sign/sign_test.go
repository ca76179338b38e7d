package sign

import (
	"bytes"
	"crypto"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sylabs/sif/v2/pkg/integrity"
	"github.com/sylabs/sif/v2/pkg/sif"
)

func TestSignVerifyRoundTrip(t *testing.T) {
	for _, typ := range []KeyType{Ed25519, ECDSA, PGP} {
		t.Run(string(typ), func(t *testing.T) {
			s := newStore(t)
			ki, k := newKey(t, s, typ, "alice")
			img := newImage(t, imageOpts{})
			signFile(t, img, k)
			r, err := VerifyFile(t.Context(), img, trustFiles(t, ki.PublicPath), nil)
			if err != nil {
				t.Fatal(err)
			}
			if !r.Verified || len(r.Signatures) != 1 {
				t.Fatalf("report %+v: want one verified signature", r)
			}
			sr := r.Signatures[0]
			if !sr.Verified || sr.Fingerprint != ki.Fingerprint || sr.Group != 1 || sr.KeyType != ki.Type {
				t.Errorf("signature %+v: want verified by %s (%s) on group 1", sr, ki.Fingerprint, ki.Type)
			}
			if len(sr.Objects) != 2 || !strings.HasPrefix(sr.Objects[0].Type, "FS (Squashfs/*System/") || sr.Objects[1].Name != "labels.json" {
				t.Errorf("covered objects %+v: want the system partition and labels.json", sr.Objects)
			}
			wantFormat := map[bool]string{true: "pgp", false: "dsse"}[typ == PGP]
			if sr.Format != wantFormat {
				t.Errorf("format %q, want %q", sr.Format, wantFormat)
			}
			if typ == PGP && sr.Signer != "Test alice <alice@example.org>" {
				t.Errorf("signer %q, want the OpenPGP user ID", sr.Signer)
			}
		})
	}
}

func TestMultipleSignatures(t *testing.T) {
	s := newStore(t)
	a, ka := newKey(t, s, Ed25519, "alice")
	b, kb := newKey(t, s, ECDSA, "bob")
	c, kc := newKey(t, s, PGP, "carol")
	img := newImage(t, imageOpts{})
	signFile(t, img, ka, kb) // one DSSE envelope, two signatures
	signFile(t, img, kc)     // a second signature object
	for _, tc := range []struct {
		name string
		keys []string
	}{
		{"alice only", []string{a.PublicPath}},
		{"bob only", []string{b.PublicPath}},
		{"carol only", []string{c.PublicPath}},
		{"all", []string{a.PublicPath, b.PublicPath, c.PublicPath}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := VerifyFile(t.Context(), img, trustFiles(t, tc.keys...), nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(r.Signatures) != 2 {
				t.Errorf("report lists %d signature objects, want 2", len(r.Signatures))
			}
		})
	}
	r, _ := VerifyFile(t.Context(), img, trustFiles(t, a.PublicPath, b.PublicPath, c.PublicPath), nil)
	if r.Signatures[0].Signer != "alice, bob" {
		t.Errorf("DSSE signer %q, want both alice and bob", r.Signatures[0].Signer)
	}
}

func TestVerifyFailures(t *testing.T) {
	s := newStore(t)
	ki, k := newKey(t, s, Ed25519, "alice")
	other, _ := newKey(t, s, Ed25519, "mallory")
	pgpKey, _ := newKey(t, s, PGP, "pgp")
	signed := newImage(t, imageOpts{})
	signFile(t, signed, k)

	tamperPartition := func(p string) {
		off, size := objectOffset(t, p, sif.DataPartition)
		flipByte(t, p, off+size/2)
	}
	tamperName := func(p string) {
		data, _ := os.ReadFile(p)
		i := bytes.Index(data, []byte("labels.json"))
		if i < 0 {
			t.Fatal("descriptor name not found")
		}
		flipByte(t, p, int64(i))
	}
	corruptSignature := func(p string) {
		off, _ := objectOffset(t, p, sif.DataSignature)
		flipByte(t, p, off) // '{' of the DSSE envelope
	}
	corruptSigValue := func(p string) {
		off, size := objectOffset(t, p, sif.DataSignature)
		data, _ := os.ReadFile(p)
		i := bytes.Index(data[off:off+size], []byte(`"sig":"`))
		if i < 0 {
			t.Fatal("no sig field in the DSSE envelope")
		}
		// Flip the case of a letter of the base64 value: still valid base64, another signature.
		// (A digit, + or / would become a control character, and the envelope would not decode:
		// that is the corrupt-object case below, not this one.)
		v := off + int64(i) + int64(len(`"sig":"`))
		end := bytes.IndexByte(data[v:off+size], '"')
		j := bytes.IndexFunc(data[v:v+int64(max(end, 0))], func(r rune) bool { return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' })
		if j < 0 {
			t.Fatal("no letter in the signature value")
		}
		flipByte(t, p, v+int64(j))
	}
	tests := []struct {
		name   string
		mutate func(string)
		trust  []string
		want   error
		says   string
	}{
		{"tampered partition", tamperPartition, []string{ki.PublicPath}, ErrTampered, "content of object 1 (FS (Squashfs/*System/amd64))"},
		{"tampered descriptor", tamperName, []string{ki.PublicPath}, ErrTampered, "metadata of object 2"},
		{"wrong key", nil, []string{other.PublicPath}, ErrUntrusted, "signature object 3 by unknown key " + ki.Fingerprint},
		{"only PGP keys", nil, []string{pgpKey.PublicPath}, ErrUntrusted, "object group 1"},
		{"corrupt signature value", corruptSigValue, []string{ki.PublicPath}, ErrUntrusted, "signature object 3 names key alice but does not verify with it: damaged or forged"},
		{"corrupt signature object", corruptSignature, []string{ki.PublicPath}, ErrBadSignature, "signature object 3"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img := copyFile(t, signed)
			if tc.mutate != nil {
				tc.mutate(img)
			}
			r, err := VerifyFile(t.Context(), img, trustFiles(t, tc.trust...), nil)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.says) || strings.Contains(err.Error(), "\n") {
				t.Errorf("error %q: want one line containing %q", err, tc.says)
			}
			t.Log(err)
			if r.Verified || r.Error == "" {
				t.Errorf("report %+v claims success", r)
			}
		})
	}
}

func TestVerifyUnsignedAndNoKeys(t *testing.T) {
	s := newStore(t)
	ki, _ := newKey(t, s, Ed25519, "alice")
	img := newImage(t, imageOpts{})
	if _, err := VerifyFile(t.Context(), img, trustFiles(t, ki.PublicPath), nil); !errors.Is(err, ErrUnsigned) {
		t.Errorf("unsigned: err = %v, want ErrUnsigned", err)
	}
	if _, err := VerifyFile(t.Context(), img, &Trust{}, nil); !errors.Is(err, ErrNoTrust) {
		t.Errorf("no keys: err = %v, want ErrNoTrust", err)
	}
	notSIF := copyFile(t, ki.PublicPath)
	if _, err := VerifyFile(t.Context(), notSIF, trustFiles(t, ki.PublicPath), nil); err == nil || !strings.Contains(err.Error(), "not a SIF image") {
		t.Errorf("not a SIF: err = %v", err)
	}
}

func TestSignFailureLeavesImageAlone(t *testing.T) {
	_, k := newKey(t, newStore(t), Ed25519, "alice")
	img := newImage(t, imageOpts{})
	before, _ := os.ReadFile(img)
	err := SignFile(t.Context(), img, []*SigningKey{k}, SignOptions{GroupIDs: []uint32{7}})
	if err == nil || !strings.Contains(err.Error(), "group") {
		t.Fatalf("signing a missing group: err = %v, want an error about the group", err)
	}
	after, _ := os.ReadFile(img)
	if !bytes.Equal(before, after) {
		t.Error("failed signing changed the image")
	}
}

func TestDeterministicEd25519(t *testing.T) {
	s := newStore(t)
	_, k := newKey(t, s, Ed25519, "alice")
	for _, tc := range []struct {
		name string
		o    imageOpts
		sign SignOptions
	}{
		{"deterministic image", imageOpts{deterministic: true}, SignOptions{}},
		{"dated image", imageOpts{created: time.Unix(1700000000, 0)}, SignOptions{}},
		{"SOURCE_DATE_EPOCH", imageOpts{created: time.Unix(1700000000, 0)}, SignOptions{Time: time.Unix(1710000000, 0)}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			orig := newImage(t, tc.o)
			a, b := copyFile(t, orig), copyFile(t, orig)
			for i, p := range []string{a, b} {
				if i > 0 {
					time.Sleep(1100 * time.Millisecond) // a stray time.Now() would differ between the two
				}
				if err := SignFile(t.Context(), p, []*SigningKey{k}, tc.sign); err != nil {
					t.Fatal(err)
				}
			}
			da, _ := os.ReadFile(a)
			db, _ := os.ReadFile(b)
			if !bytes.Equal(da, db) {
				t.Error("two signings of the same image with the same ed25519 key differ")
			}
		})
	}
}

// OpenPGP signatures dated by SOURCE_DATE_EPOCH (before the key existed) still verify.
func TestPGPSignWithFixedTime(t *testing.T) {
	ki, k := newKey(t, newStore(t), PGP, "carol")
	img := newImage(t, imageOpts{created: time.Unix(1600000000, 0)})
	if err := SignFile(t.Context(), img, []*SigningKey{k}, SignOptions{Time: time.Unix(1600000000, 0)}); err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyFile(t.Context(), img, trustFiles(t, ki.PublicPath), nil); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyMissingGroup(t *testing.T) {
	ki, k := newKey(t, newStore(t), Ed25519, "alice")
	img := newImage(t, imageOpts{})
	signFile(t, img, k)
	_, err := VerifyFile(t.Context(), img, trustFiles(t, ki.PublicPath), []uint32{9})
	if err == nil || !strings.Contains(err.Error(), "group") {
		t.Errorf("err = %v, want an error about group 9", err)
	}
	t.Log(err)
}

// An image signed by the sif library itself, as Apptainer and SingularityCE sign, verifies here.
func TestInteropSignedByIntegrity(t *testing.T) {
	s := newStore(t)
	ki, k := newKey(t, s, ECDSA, "site")
	pk, pgpK := newKey(t, s, PGP, "pgp")
	img := newImage(t, imageOpts{})
	f, err := sif.LoadContainerFromPath(img)
	if err != nil {
		t.Fatal(err)
	}
	// What Apptainer does for 'sign --key': LoadSignerFromPEMFile(path, SHA256, ...).
	signer, err := signature.LoadSignerFromPEMFile(ki.PrivatePath, crypto.SHA256, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, opt := range []integrity.SignerOpt{integrity.OptSignWithSigner(signer), integrity.OptSignWithEntity(pgpK.entity)} {
		is, err := integrity.NewSigner(f, opt)
		if err != nil {
			t.Fatal(err)
		}
		if err := is.Sign(); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.UnloadContainer(); err != nil {
		t.Fatal(err)
	}
	for _, pub := range []string{ki.PublicPath, pk.PublicPath} {
		if _, err := VerifyFile(t.Context(), img, trustFiles(t, pub), nil); err != nil {
			t.Errorf("verify with %s: %v", pub, err)
		}
	}
	_ = k
}

// hpcctl's signatures verify with a plain integrity.Verifier configured as Apptainer configures it.
func TestInteropVerifiedByIntegrity(t *testing.T) {
	s := newStore(t)
	ki, k := newKey(t, s, Ed25519, "alice")
	pk, pgpK := newKey(t, s, PGP, "pgp")
	img := newImage(t, imageOpts{})
	signFile(t, img, k)
	signFile(t, img, pgpK)
	f, err := sif.LoadContainerFromPath(img, sif.OptLoadWithFlag(os.O_RDONLY))
	if err != nil {
		t.Fatal(err)
	}
	defer f.UnloadContainer() //nolint:errcheck // opened to read: nothing to flush
	v, err := signature.LoadVerifierFromPEMFile(ki.PublicPath, crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	pubData, _ := os.ReadFile(pk.PublicPath)
	kr, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(pubData))
	if err != nil {
		t.Fatal(err)
	}
	iv, err := integrity.NewVerifier(f, integrity.OptVerifyWithVerifier(v), integrity.OptVerifyWithKeyRing(kr))
	if err != nil {
		t.Fatal(err)
	}
	if err = iv.Verify(); err != nil {
		t.Fatalf("integrity.Verify: %v", err)
	}
	fps, err := iv.AllSignedBy()
	if err != nil || len(fps) != 1 || strings.ToUpper(string(hexBytes(fps[0]))) != pk.Fingerprint {
		t.Errorf("AllSignedBy = %x, %v; want the OpenPGP fingerprint %s", fps, err, pk.Fingerprint)
	}
}

func hexBytes(b []byte) []byte {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return out
}
