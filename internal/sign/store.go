package sign

import (
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// Files in a key store: PEM pairs as NAME.key (0600) and NAME.pub, OpenPGP keys as NAME.sec.asc
// (0600) and NAME.pub.asc. One key per name keeps list, export and removal simple.
const (
	pemPrivExt = ".key"
	pemPubExt  = ".pub"
	pgpSecExt  = ".sec.asc"
	pgpPubExt  = ".pub.asc"
)

// KeyInfo describes one key in a store.
type KeyInfo struct {
	Name        string  `json:"name"`
	Type        KeyType `json:"type"`
	Fingerprint string  `json:"fingerprint"`
	Identity    string  `json:"identity,omitempty"` // OpenPGP user ID
	Private     bool    `json:"private"`
	Encrypted   bool    `json:"encrypted,omitempty"` // private part needs a passphrase
	PublicPath  string  `json:"public_path"`
	PrivatePath string  `json:"private_path,omitempty"`
}

// Store is a directory of the user's keys.
type Store struct {
	Dir string
}

// DefaultKeyDir is $XDG_CONFIG_HOME/hpcctl/keys, or the platform's user config dir.
func DefaultKeyDir() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the key directory: %w (set XDG_CONFIG_HOME or HOME)", err)
	}
	return filepath.Join(dir, "hpcctl", "keys"), nil
}

// OpenStore opens the key directory, creating it 0700, and tightens it if others can enter it.
func OpenStore(dir string) (*Store, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create key directory: %w", err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("key directory: %w", err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("key directory %s is not a directory", dir)
	}
	if st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return nil, fmt.Errorf("key directory %s is open to other users and cannot be fixed: %w", dir, err)
		}
	}
	return &Store{Dir: dir}, nil
}

var keyNameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$`)

func checkKeyName(name string) error {
	if !keyNameRE.MatchString(name) || strings.HasSuffix(name, ".asc") {
		return fmt.Errorf("bad key name %q: use up to 64 letters, digits, '.', '_', '-', '@', '+'", name)
	}
	return nil
}

// Generate makes a new key pair named name in the store.
func (s *Store) Generate(t KeyType, name string, id PGPIdentity, pass PassphraseFunc) (KeyInfo, error) {
	if err := s.checkFree(name); err != nil {
		return KeyInfo{}, err
	}
	if t == PGP {
		sec, pub, _, err := generatePGP(id, pass)
		if err != nil {
			return KeyInfo{}, err
		}
		return s.writePair(name, pgpSecExt, sec, pgpPubExt, pub)
	}
	priv, pub, err := generatePEM(t, pass)
	if err != nil {
		return KeyInfo{}, err
	}
	return s.writePair(name, pemPrivExt, priv, pemPubExt, pub)
}

// checkFree fails if any key of that name exists.
func (s *Store) checkFree(name string) error {
	if err := checkKeyName(name); err != nil {
		return err
	}
	for _, ext := range []string{pemPrivExt, pemPubExt, pgpSecExt, pgpPubExt} {
		if _, err := os.Lstat(filepath.Join(s.Dir, name+ext)); err == nil {
			return fmt.Errorf("a key named %q already exists in %s: pick another --name", name, s.Dir)
		}
	}
	return nil
}

// writePair writes the public half, then the private half (if any), removing both on failure.
func (s *Store) writePair(name, privExt string, priv []byte, pubExt string, pub []byte) (KeyInfo, error) {
	pubPath := filepath.Join(s.Dir, name+pubExt)
	if err := writeNew(pubPath, pub, 0o644); err != nil {
		return KeyInfo{}, err
	}
	if priv != nil {
		if err := writeNew(filepath.Join(s.Dir, name+privExt), priv, 0o600); err != nil {
			_ = os.Remove(pubPath)
			return KeyInfo{}, err
		}
	}
	return s.Find(name)
}

// writeNew creates path with perm, never replacing a file, and removes it again on failure.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return fmt.Errorf("write key: %w", err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return fmt.Errorf("write key %s: %w", path, err)
	}
	return nil
}

// List returns every key in the store, sorted by name.
func (s *Store) List() ([]KeyInfo, error) {
	ents, err := os.ReadDir(s.Dir)
	if err != nil {
		return nil, fmt.Errorf("list keys: %w", err)
	}
	var out []KeyInfo
	for _, de := range ents {
		n := de.Name()
		if !de.Type().IsRegular() || (!strings.HasSuffix(n, pgpPubExt) && !strings.HasSuffix(n, pemPubExt)) {
			continue
		}
		ki, err := s.describe(n)
		if err != nil {
			return nil, err
		}
		out = append(out, ki)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// describe reads the public key file n (and checks for its private half).
func (s *Store) describe(n string) (KeyInfo, error) {
	path := filepath.Join(s.Dir, n)
	data, err := os.ReadFile(path)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("read key: %w", err)
	}
	if name, ok := strings.CutSuffix(n, pgpPubExt); ok {
		el, kerr := readPGPKeyring(data)
		if kerr != nil {
			return KeyInfo{}, fmt.Errorf("key %s: %w", path, kerr)
		}
		ki := KeyInfo{Name: name, Type: PGP, Fingerprint: pgpFingerprint(el[0]), Identity: pgpIdentity(el[0]), PublicPath: path}
		return s.withPrivate(ki, name+pgpSecExt), nil
	}
	name := strings.TrimSuffix(n, pemPubExt)
	pub, err := parsePublicPEM(data)
	if err != nil {
		return KeyInfo{}, fmt.Errorf("key %s: %w", path, err)
	}
	fp, err := Fingerprint(pub)
	if err != nil {
		return KeyInfo{}, err
	}
	ki := KeyInfo{Name: name, Type: pubKeyType(pub), Fingerprint: fp, PublicPath: path}
	return s.withPrivate(ki, name+pemPrivExt), nil
}

func (s *Store) withPrivate(ki KeyInfo, privName string) KeyInfo {
	path := filepath.Join(s.Dir, privName)
	data, err := os.ReadFile(path)
	if err != nil {
		return ki
	}
	ki.Private, ki.PrivatePath = true, path
	if ki.Type == PGP {
		if el, err := readPGPKeyring(data); err == nil && el[0].PrivateKey != nil {
			ki.Encrypted = el[0].PrivateKey.Encrypted
		}
	} else if b, _ := pem.Decode(data); b != nil {
		ki.Encrypted = pemIsEncrypted(b)
	}
	return ki
}

// Find returns the key named sel, or the one whose fingerprint starts with sel (8+ hex digits).
func (s *Store) Find(sel string) (KeyInfo, error) {
	keys, err := s.List()
	if err != nil {
		return KeyInfo{}, err
	}
	var found []KeyInfo
	for _, k := range keys {
		if k.Name == sel {
			return k, nil
		}
		if matchesFingerprint(k.Fingerprint, sel) {
			found = append(found, k)
		}
	}
	switch len(found) {
	case 0:
		return KeyInfo{}, fmt.Errorf("no key %q in %s: see 'hpcctl key list'", sel, s.Dir)
	case 1:
		return found[0], nil
	}
	return KeyInfo{}, fmt.Errorf("%d keys match %q: give more of the fingerprint or the name", len(found), sel)
}

// Export returns the public key (or, with secret, the private key file as stored) named sel.
func (s *Store) Export(sel string, secret bool) ([]byte, error) {
	k, err := s.Find(sel)
	if err != nil {
		return nil, err
	}
	path := k.PublicPath
	if secret {
		if !k.Private {
			return nil, fmt.Errorf("key %q has no private part in %s", k.Name, s.Dir)
		}
		path = k.PrivatePath
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("export key: %w", err)
	}
	return data, nil
}

// Import adds the keys in data (a PEM public or private key, or an OpenPGP key or keyring) under
// name. A private PEM key is stored as given (still encrypted, if it was); pass is asked only to
// derive its public half.
func (s *Store) Import(data []byte, name string, pass PassphraseFunc) ([]KeyInfo, error) {
	if isPGP(data) {
		return s.importPGP(data, name)
	}
	block, _ := pem.Decode(data)
	if block == nil {
		return nil, errors.New("not a key: expected a PEM public or private key, or an OpenPGP key")
	}
	if err := s.checkFree(name); err != nil {
		return nil, err
	}
	if !isPrivatePEM(block) {
		if _, err := parsePublicPEM(data); err != nil {
			return nil, err
		}
		ki, err := s.writePair(name, "", nil, pemPubExt, data)
		return []KeyInfo{ki}, err
	}
	priv, err := parsePrivatePEM(data, pass)
	if err != nil {
		return nil, err
	}
	pub, err := pemPublic(priv.Public())
	if err != nil {
		return nil, err
	}
	ki, err := s.writePair(name, pemPrivExt, data, pemPubExt, pub)
	return []KeyInfo{ki}, err
}

// importPGP stores each entity under name (or name-KEYID when there are several).
func (s *Store) importPGP(data []byte, name string) ([]KeyInfo, error) {
	el, err := readPGPKeyring(data)
	if err != nil {
		return nil, err
	}
	var out []KeyInfo
	for _, e := range el {
		n := name
		if len(el) > 1 || n == "" {
			n = strings.TrimPrefix(name+"-", "-") + strings.ToLower(pgpFingerprint(e)[24:])
		}
		if err := s.checkFree(n); err != nil {
			return out, err
		}
		ki, err := s.writePGPEntity(n, e)
		if err != nil {
			return out, err
		}
		out = append(out, ki)
	}
	return out, nil
}

func (s *Store) writePGPEntity(name string, e *openpgp.Entity) (KeyInfo, error) {
	pub, err := armorPublic(e)
	if err != nil {
		return KeyInfo{}, err
	}
	var sec []byte
	if e.PrivateKey != nil {
		if sec, err = armorSecret(e); err != nil {
			return KeyInfo{}, err
		}
	}
	return s.writePair(name, pgpSecExt, sec, pgpPubExt, pub)
}

// checkPrivateMode refuses a private key others can read, as ssh does.
func checkPrivateMode(path string, st fs.FileInfo) error {
	if st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("private key %s is accessible by other users (mode %04o): run 'chmod 600 %s'", path, st.Mode().Perm(), path)
	}
	return nil
}

// matchesFingerprint reports whether sel is the start (8+ characters) of fp. OpenPGP hex
// fingerprints match in any case; OpenSSH-style ones are base64, so case matters, and their
// "SHA256:" prefix is optional.
func matchesFingerprint(fp, sel string) bool {
	if rest, ok := strings.CutPrefix(fp, "SHA256:"); ok {
		sel = strings.TrimPrefix(sel, "SHA256:")
		return len(sel) >= 8 && strings.HasPrefix(rest, sel)
	}
	return len(sel) >= 8 && strings.HasPrefix(strings.ToLower(fp), strings.ToLower(sel))
}
