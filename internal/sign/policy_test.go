package sign

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPolicy(t *testing.T) {
	s := newStore(t)
	alice, ka := newKey(t, s, Ed25519, "alice")
	bob, _ := newKey(t, s, PGP, "bob")

	trusted := t.TempDir() // the site's trusted keys: alice's public key only
	data, _ := os.ReadFile(alice.PublicPath)
	if err := os.WriteFile(filepath.Join(trusted, "alice.pub"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	otherTrusted := t.TempDir() // bob only
	data, _ = os.ReadFile(bob.PublicPath)
	if err := os.WriteFile(filepath.Join(otherTrusted, "bob.asc"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	looseTrusted := t.TempDir()
	if err := os.WriteFile(filepath.Join(looseTrusted, "alice.pub"), data, 0o666); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(filepath.Join(looseTrusted, "alice.pub"), 0o666)
	looseDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(looseDir, "alice.pub"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	_ = os.Chmod(looseDir, 0o777)

	unsigned := newImage(t, imageOpts{})
	signed := newImage(t, imageOpts{})
	signFile(t, signed, ka)
	link := filepath.Join(t.TempDir(), "link.sif")
	if err := os.Symlink(signed, link); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		p    Policy
		img  string
		want string // "" for allowed
	}{
		{"no policy, unsigned", Policy{}, unsigned, ""},
		{"require signed, unsigned", Policy{RequireSigned: true, TrustedKeysDir: trusted}, unsigned, "not signed"},
		{"require signed, trusted key", Policy{RequireSigned: true, TrustedKeysDir: trusted}, signed, ""},
		{"require signed, untrusted key", Policy{RequireSigned: true, TrustedKeysDir: otherTrusted}, signed, "no signature verifies with a trusted key"},
		{"require signed, no key dir", Policy{RequireSigned: true}, signed, "no trusted keys directory"},
		{"require signed, writable key", Policy{RequireSigned: true, TrustedKeysDir: looseTrusted}, signed, "writable by other users"},
		{"require signed, writable key dir", Policy{RequireSigned: true, TrustedKeysDir: looseDir}, signed, "writable by other users"},
		{"relative allowed path", Policy{AllowedPaths: []string{"."}}, signed, "outside the allowed image paths"},
		{"allowed path", Policy{AllowedPaths: []string{filepath.Dir(signed)}}, signed, ""},
		{"path not allowed", Policy{AllowedPaths: []string{trusted}}, signed, "outside the allowed image paths"},
		{"symlink into allowed dir", Policy{AllowedPaths: []string{filepath.Dir(signed)}}, link, ""},
		{"symlink from allowed dir", Policy{AllowedPaths: []string{filepath.Dir(link)}}, link, "outside the allowed image paths"},
	}
	if os.Geteuid() == 0 { // only root can give a file away
		foreign := t.TempDir()
		key := filepath.Join(foreign, "alice.pub")
		if err := os.WriteFile(key, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(key, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		tests = append(tests, struct {
			name string
			p    Policy
			img  string
			want string
		}{"require signed, key owned by another user", Policy{RequireSigned: true, TrustedKeysDir: foreign}, signed, "owned by user 65534"})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.p.Check(t.Context(), tc.img)
			if tc.want == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want a refusal saying %q", err, tc.want)
			}
			if !errors.Is(err, ErrPolicy) || strings.Contains(err.Error(), "\n") {
				t.Errorf("err = %q: want one line wrapping ErrPolicy", err)
			}
			t.Log(err)
		})
	}
}
