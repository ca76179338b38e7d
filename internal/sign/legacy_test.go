package sign

import (
	"bytes"
	"crypto"
	"errors"
	"strings"
	"testing"

	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/sylabs/sif/v2/pkg/sif"
)

// An image with only a legacy (pre-3.6 Singularity) signature is refused, and the error says why.
func TestLegacySignatureRefused(t *testing.T) {
	ki, k := newKey(t, newStore(t), PGP, "old")
	img := newImage(t, imageOpts{})
	var sig bytes.Buffer
	w, err := clearsign.Encode(&sig, k.entity.PrivateKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err = w.Write([]byte("SIFHASH:\n0123456789abcdef\n")); err != nil {
		t.Fatal(err)
	}
	if err = w.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := sif.LoadContainerFromPath(img)
	if err != nil {
		t.Fatal(err)
	}
	di, err := sif.NewDescriptorInput(sif.DataSignature, &sig, sif.OptNoGroup(), sif.OptLinkedGroupID(1),
		sif.OptSignatureMetadata(crypto.SHA256, k.entity.PrimaryKey.Fingerprint))
	if err != nil {
		t.Fatal(err)
	}
	if err = f.AddObject(di); err != nil {
		t.Fatal(err)
	}
	if err = f.UnloadContainer(); err != nil {
		t.Fatal(err)
	}
	_, err = VerifyFile(t.Context(), img, trustFiles(t, ki.PublicPath), nil)
	if !errors.Is(err, ErrUnsigned) || !strings.Contains(err.Error(), "legacy signatures") {
		t.Errorf("err = %v, want ErrUnsigned explaining legacy signatures", err)
	}
}
