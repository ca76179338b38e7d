package sign

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sylabs/sif/v2/pkg/sif"
)

// squashfsBytes makes a small squashfs image with mksquashfs when it is installed; integrity signs
// the partition group whatever its bytes, so other bytes do when it is not.
func squashfsBytes(t *testing.T) []byte {
	t.Helper()
	mk, err := exec.LookPath("mksquashfs")
	if err != nil {
		return bytes.Repeat([]byte("hsqs not really squashfs "), 400)
	}
	tree := t.TempDir()
	if err = os.WriteFile(filepath.Join(tree, "hello.txt"), []byte("hello\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "fs.sqfs")
	cmd := exec.Command(mk, tree, out, "-noappend", "-quiet", "-all-root", "-mkfs-time", "0", "-all-time", "0")
	if b, merr := cmd.CombinedOutput(); merr != nil {
		t.Fatalf("mksquashfs: %v\n%s", merr, b)
	}
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

type imageOpts struct {
	deterministic bool
	created       time.Time
}

// newImage writes a SIF image with a squashfs system partition and a JSON object in group 1.
func newImage(t *testing.T, o imageOpts) string {
	t.Helper()
	part, err := sif.NewDescriptorInput(sif.DataPartition, bytes.NewReader(squashfsBytes(t)),
		sif.OptPartitionMetadata(sif.FsSquash, sif.PartPrimSys, "amd64"), sif.OptGroupID(1))
	if err != nil {
		t.Fatal(err)
	}
	js, err := sif.NewDescriptorInput(sif.DataGenericJSON, strings.NewReader(`{"org.example":"labels"}`),
		sif.OptObjectName("labels.json"), sif.OptGroupID(1))
	if err != nil {
		t.Fatal(err)
	}
	opts := []sif.CreateOpt{sif.OptCreateWithDescriptors(part, js)}
	switch {
	case o.deterministic:
		opts = append(opts, sif.OptCreateDeterministic())
	case !o.created.IsZero():
		opts = append(opts, sif.OptCreateWithTime(o.created), sif.OptCreateWithID("5bb0b0a2-64f5-4a34-bb9a-0b2a5ac1f4ac"))
	}
	path := filepath.Join(t.TempDir(), "image.sif")
	f, err := sif.CreateContainerAtPath(path, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.UnloadContainer(); err != nil {
		t.Fatal(err)
	}
	return path
}

// copyFile duplicates an image so one test can tamper with a copy.
func copyFile(t *testing.T, src string) string {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.WriteFile(dst, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return dst
}

// flipByte changes one byte of the file at off.
func flipByte(t *testing.T, path string, off int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x20
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// objectOffset returns the file offset of the first object of type dt.
func objectOffset(t *testing.T, path string, dt sif.DataType) (off, size int64) {
	t.Helper()
	f, err := sif.LoadContainerFromPath(path, sif.OptLoadWithFlag(os.O_RDONLY))
	if err != nil {
		t.Fatal(err)
	}
	defer f.UnloadContainer() //nolint:errcheck // opened to read: nothing to flush
	od, err := f.GetDescriptor(sif.WithDataType(dt))
	if err != nil {
		t.Fatal(err)
	}
	return od.Offset(), od.Size()
}

// newStore makes a key store in a temporary directory.
func newStore(t *testing.T) *Store {
	t.Helper()
	s, err := OpenStore(filepath.Join(t.TempDir(), "keys"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// newKey makes a key of type typ named name in s, without a passphrase, and loads it.
func newKey(t *testing.T, s *Store, typ KeyType, name string) (KeyInfo, *SigningKey) {
	t.Helper()
	ki, err := s.Generate(typ, name, PGPIdentity{Name: "Test " + name, Email: name + "@example.org"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	k, err := s.SigningKey(name, nil)
	if err != nil {
		t.Fatal(err)
	}
	return ki, k
}

func staticPass(pw string) PassphraseFunc {
	return func(bool) ([]byte, error) { return []byte(pw), nil }
}

func trustFiles(t *testing.T, files ...string) *Trust {
	t.Helper()
	tr, err := LoadTrust(TrustOptions{KeyFiles: files})
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func signFile(t *testing.T, path string, keys ...*SigningKey) {
	t.Helper()
	if err := SignFile(t.Context(), path, keys, SignOptions{}); err != nil {
		t.Fatal(err)
	}
}
