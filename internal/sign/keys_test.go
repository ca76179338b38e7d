package sign

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateListModes(t *testing.T) {
	s := newStore(t)
	for _, typ := range []KeyType{Ed25519, ECDSA, PGP} {
		if _, err := s.Generate(typ, "k-"+string(typ), PGPIdentity{Name: "Alice", Email: "alice@example.org"}, nil); err != nil {
			t.Fatalf("generate %s: %v", typ, err)
		}
	}
	keys, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 {
		t.Fatalf("listed %d keys, want 3: %+v", len(keys), keys)
	}
	for _, k := range keys {
		if !k.Private || k.Encrypted || k.Fingerprint == "" || "k-"+string(k.Type) != k.Name {
			t.Errorf("key %+v: want a private, unencrypted key of its type with a fingerprint", k)
		}
		st, serr := os.Stat(k.PrivatePath)
		if serr != nil {
			t.Fatal(serr)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %04o, want 0600", k.PrivatePath, st.Mode().Perm())
		}
	}
	if keys[2].Type != PGP || keys[2].Identity != "Alice <alice@example.org>" || len(keys[2].Fingerprint) != 40 {
		t.Errorf("pgp key listed as %+v", keys[2])
	}
	st, err := os.Stat(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o700 {
		t.Errorf("key dir mode %04o, want 0700", st.Mode().Perm())
	}
}

func TestOpenStoreTightensDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "keys")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(dir); err != nil {
		t.Fatal(err)
	}
	st, _ := os.Stat(dir)
	if st.Mode().Perm() != 0o700 {
		t.Errorf("mode %04o after OpenStore, want 0700", st.Mode().Perm())
	}
}

func TestGenerateRefusesBadOrTakenName(t *testing.T) {
	s := newStore(t)
	newKey(t, s, Ed25519, "alice")
	for _, name := range []string{"alice", "../evil", "", ".hidden", "a/b"} {
		if _, err := s.Generate(Ed25519, name, PGPIdentity{}, nil); err == nil {
			t.Errorf("Generate(%q) succeeded, want an error", name)
		}
	}
}

func TestPassphraseProtectedKeys(t *testing.T) {
	for _, typ := range []KeyType{Ed25519, ECDSA, PGP} {
		t.Run(string(typ), func(t *testing.T) {
			s := newStore(t)
			ki, err := s.Generate(typ, "locked", PGPIdentity{Name: "Locked"}, staticPass("correct horse"))
			if err != nil {
				t.Fatal(err)
			}
			if !ki.Encrypted {
				t.Fatalf("key %+v not marked encrypted", ki)
			}
			data, _ := os.ReadFile(ki.PrivatePath)
			if typ != PGP && !strings.Contains(string(data), "ENCRYPTED SIGSTORE PRIVATE KEY") {
				t.Errorf("private key not in the encrypted sigstore format:\n%s", data)
			}
			if _, err = s.SigningKey("locked", staticPass("wrong")); !errors.Is(err, ErrWrongPassphrase) {
				t.Errorf("wrong passphrase: err = %v, want ErrWrongPassphrase", err)
			}
			if _, err = s.SigningKey("locked", nil); !errors.Is(err, ErrNeedPassphrase) {
				t.Errorf("no passphrase: err = %v, want ErrNeedPassphrase", err)
			}
			k, err := s.SigningKey("locked", staticPass("correct horse"))
			if err != nil {
				t.Fatalf("right passphrase: %v", err)
			}
			img := newImage(t, imageOpts{})
			signFile(t, img, k)
			if _, err := VerifyFile(t.Context(), img, trustFiles(t, ki.PublicPath), nil); err != nil {
				t.Errorf("verify after signing with unlocked key: %v", err)
			}
		})
	}
}

func TestExportImportRoundTrip(t *testing.T) {
	for _, typ := range []KeyType{Ed25519, ECDSA, PGP} {
		t.Run(string(typ), func(t *testing.T) {
			src := newStore(t)
			ki, _ := newKey(t, src, typ, "alice")
			pub, err := src.Export(ki.Fingerprint[:16], false)
			if err != nil {
				t.Fatal(err)
			}
			sec, err := src.Export("alice", true)
			if err != nil {
				t.Fatal(err)
			}
			dst := newStore(t)
			got, err := dst.Import(pub, "alice-pub", nil)
			if err != nil || len(got) != 1 {
				t.Fatalf("import public: %v %+v", err, got)
			}
			if got[0].Fingerprint != ki.Fingerprint || got[0].Private {
				t.Errorf("imported public key %+v, want fingerprint %s and no private part", got[0], ki.Fingerprint)
			}
			got, err = dst.Import(sec, "alice", nil)
			if err != nil || len(got) != 1 {
				t.Fatalf("import private: %v %+v", err, got)
			}
			if got[0].Fingerprint != ki.Fingerprint || !got[0].Private {
				t.Errorf("imported private key %+v, want fingerprint %s with private part", got[0], ki.Fingerprint)
			}
			if _, err := dst.Import(pub, "alice", nil); err == nil {
				t.Error("importing over an existing name succeeded")
			}
		})
	}
}

func TestImportGarbage(t *testing.T) {
	s := newStore(t)
	if _, err := s.Import([]byte("hello world\n"), "x", nil); err == nil || !strings.Contains(err.Error(), "not a key") {
		t.Errorf("err = %v, want 'not a key'", err)
	}
}

func TestSigningKeyRefusesLooseMode(t *testing.T) {
	s := newStore(t)
	ki, _ := newKey(t, s, Ed25519, "alice")
	if err := os.Chmod(ki.PrivatePath, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadSigningKey(ki.PrivatePath, "", nil); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("err = %v, want a refusal that says chmod 600", err)
	}
}
