package sign

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/sylabs/sif/v2/pkg/integrity"
	"github.com/sylabs/sif/v2/pkg/sif"
)

// dsseMediaType is the payload type of SIF metadata in DSSE envelopes (integrity's own constant
// is unexported).
const dsseMediaType = "application/vnd.sylabs.sif-metadata+json"

// signatureFormat tells DSSE from clear-signed OpenPGP; "" means neither (damaged).
func signatureFormat(od sif.Descriptor) string {
	data, err := od.GetData()
	if err != nil {
		return ""
	}
	var env struct {
		PayloadType string `json:"payloadType"`
	}
	if json.Unmarshal(data, &env) == nil && env.PayloadType == dsseMediaType {
		return "dsse"
	}
	if b, _ := clearsign.Decode(data); b != nil {
		return "pgp"
	}
	return ""
}

// dsseKeyIDs returns the key IDs a DSSE envelope names (OpenSSH-style fingerprints when made by
// sigstore, as hpcctl and Apptainer do); they are hints, not verified.
func dsseKeyIDs(od sif.Descriptor) []string {
	data, err := od.GetData()
	if err != nil {
		return nil
	}
	var env struct {
		Signatures []struct {
			KeyID string `json:"keyid"`
		} `json:"signatures"`
	}
	if json.Unmarshal(data, &env) != nil {
		return nil
	}
	var ids []string
	for _, s := range env.Signatures {
		if s.KeyID != "" {
			ids = append(ids, s.KeyID)
		}
	}
	return ids
}

// checkSignatureFormats names the first signature object that is neither DSSE nor OpenPGP;
// integrity would stop on it with an error that does not say which object it was.
func checkSignatureFormats(sigs []sif.Descriptor) error {
	for _, s := range sigs {
		if signatureFormat(s) == "" {
			return fmt.Errorf("signature object %d: %w", s.ID(), ErrBadSignature)
		}
	}
	return nil
}

// describeResult turns one integrity result into a report entry.
func describeResult(f *sif.FileImage, t *Trust, vr integrity.VerifyResult) SignatureReport {
	sig := vr.Signature()
	g, _ := sig.LinkedID()
	sr := SignatureReport{ID: sig.ID(), Group: g, Format: signatureFormat(sig), Verified: vr.Error() == nil}
	if _, fp, err := sig.SignatureMetadata(); err == nil && len(fp) > 0 {
		sr.Fingerprint = strings.ToUpper(fmt.Sprintf("%x", fp))
	} else if ids := dsseKeyIDs(sig); len(ids) > 0 {
		sr.Fingerprint = strings.Join(ids, ",")
	}
	if e := vr.Entity(); e != nil {
		sr.Signer, sr.KeyType, sr.Fingerprint = pgpIdentity(e), PGP, pgpFingerprint(e)
	}
	var names []string
	for _, pub := range vr.Keys() {
		if k, ok := t.keyFor(pub); ok {
			names = append(names, k.name)
			sr.KeyType, sr.Fingerprint = k.typ, k.fingerprint
		}
	}
	if len(names) > 0 {
		sr.Signer = strings.Join(names, ", ")
	}
	if sr.Signer == "" && vr.Error() != nil && sr.Format == "dsse" {
		claimTrustedKey(&sr, t, sig)
	}
	ods := vr.Verified()
	if err := vr.Error(); err != nil {
		sr.Error = err.Error()
		ods, _ = f.GetDescriptors(sif.WithGroupID(g))
	}
	for _, od := range ods {
		sr.Objects = append(sr.Objects, objectRef(od))
	}
	return sr
}

func objectRef(od sif.Descriptor) ObjectRef {
	typ := od.DataType().String()
	if fs, pt, arch, err := od.PartitionMetadata(); err == nil {
		typ = fmt.Sprintf("%s (%s/%s/%s)", typ, fs, pt, arch)
	}
	return ObjectRef{ID: od.ID(), Type: typ, Name: od.Name()}
}

// explain turns an integrity error into one line that says what failed and what to do.
func explain(f *sif.FileImage, r *Report, err error) error {
	var (
		nf  *integrity.SignatureNotFoundError
		oie *integrity.ObjectIntegrityError
		die *integrity.DescriptorIntegrityError
	)
	by := ""
	if n := len(r.Signatures); n > 0 {
		s := r.Signatures[n-1]
		by = fmt.Sprintf(" (signature object %d by %s)", s.ID, s.signerOrUnknown())
	}
	switch {
	case errors.As(err, &nf) && hasLegacySignature(f):
		return fmt.Errorf("%w: %s; it has only legacy signatures (Singularity before 3.6), which do not protect metadata and are not accepted", ErrUnsigned, nf)
	case errors.As(err, &nf):
		return fmt.Errorf("%w: %s", ErrUnsigned, nf)
	case errors.As(err, &oie):
		return fmt.Errorf("%w: content of %s changed%s", ErrTampered, describeID(f, oie.ID), by)
	case errors.As(err, &die):
		return fmt.Errorf("%w: metadata of %s changed%s", ErrTampered, describeID(f, die.ID), by)
	case errors.Is(err, integrity.ErrHeaderIntegrity):
		return fmt.Errorf("%w: the SIF header changed%s", ErrTampered, by)
	}
	return fmt.Errorf("%w%s", err, by)
}

func describeID(f *sif.FileImage, id uint32) string {
	if id == 0 {
		return "a data object"
	}
	od, err := f.GetDescriptor(sif.WithID(id))
	if err != nil {
		return fmt.Sprintf("object %d", id)
	}
	ref := objectRef(od)
	var b bytes.Buffer
	fmt.Fprintf(&b, "object %d (%s", ref.ID, ref.Type)
	if ref.Name != "" {
		fmt.Fprintf(&b, " %q", ref.Name)
	}
	b.WriteString(")")
	return b.String()
}

// claimTrustedKey notes a DSSE signature whose key ID names a trusted key but which that key
// does not verify: the signature was damaged or forged, which is worth saying instead of
// "unknown key".
func claimTrustedKey(sr *SignatureReport, t *Trust, sig sif.Descriptor) {
	for _, id := range dsseKeyIDs(sig) {
		for _, k := range t.keys {
			if k.fingerprint == id {
				sr.Signer, sr.KeyType, sr.Fingerprint = k.name, k.typ, k.fingerprint
				sr.claimed = true
				return
			}
		}
	}
}

// hasLegacySignature reports whether f carries an old-style signature: a clear-signed "SIFHASH"
// digest of object data only.
func hasLegacySignature(f *sif.FileImage) bool {
	sigs, _ := f.GetDescriptors(sif.WithDataType(sif.DataSignature))
	for _, s := range sigs {
		data, err := s.GetData()
		if err != nil {
			continue
		}
		if b, _ := clearsign.Decode(data); b != nil && bytes.HasPrefix(b.Plaintext, []byte("SIFHASH:\n")) {
			return true
		}
	}
	return false
}
