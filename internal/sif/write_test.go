package sif

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func testMetadata() Metadata {
	return Metadata{
		Arch:    "amd64",
		Created: time.Unix(1700000000, 0),
		Config: mustJSON(imgspecv1.Image{Config: imgspecv1.ImageConfig{
			Env: []string{"PATH=/usr/bin:/bin"}, Cmd: []string{"/bin/sh"}, WorkingDir: "/work",
		}}),
		Labels:     map[string]string{"org.example.name": "demo"},
		Provenance: Provenance{Source: "oci:demo", SourceDigest: "sha256:abc", HpcctlVersion: "test", Compression: "zstd", BlockSize: 131072},
	}
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func writeFile(t *testing.T, md Metadata, rootfs []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "img.sif")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := Write(f, bytes.NewReader(rootfs), md); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestWriteDescribeRoundTrip(t *testing.T) {
	rootfs := bytes.Repeat([]byte("hsqs"), 1000)
	p := writeFile(t, testMetadata(), rootfs)
	d, err := Describe(p)
	if err != nil {
		t.Fatal(err)
	}
	if d.Arch != "amd64" || !d.Created.Equal(time.Unix(1700000000, 0)) {
		t.Errorf("header: arch %q created %v", d.Arch, d.Created)
	}
	if c, cerr := d.ImageConfig(); cerr != nil || c == nil || c.WorkingDir != "/work" || c.Cmd[0] != "/bin/sh" {
		t.Errorf("config not read back: %+v (%v) from %s", c, cerr, d.Config)
	}
	if d.Labels["org.example.name"] != "demo" {
		t.Errorf("labels: %v", d.Labels)
	}
	if d.Provenance == nil || d.Provenance.SourceDigest != "sha256:abc" {
		t.Errorf("provenance: %+v", d.Provenance)
	}
	var part *Object
	for i, o := range d.Objects {
		if o.PartType != "" {
			part = &d.Objects[i]
		}
	}
	if part == nil || part.Size != int64(len(rootfs)) || part.FSType != "Squashfs" || part.GroupID != SystemGroup {
		t.Fatalf("system partition: %+v", d.Objects)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b[part.Offset:part.Offset+part.Size], rootfs) {
		t.Error("partition bytes differ from the rootfs written")
	}
}

func TestWriteIsDeterministic(t *testing.T) {
	rootfs := []byte("some squashfs bytes")
	a, err := os.ReadFile(writeFile(t, testMetadata(), rootfs))
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(writeFile(t, testMetadata(), rootfs))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a, b) {
		t.Fatal("two writes of the same inputs differ")
	}
	md := testMetadata()
	md.Provenance.SourceDigest = "sha256:def"
	c, err := os.ReadFile(writeFile(t, md, rootfs))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(a, c) {
		t.Fatal("a different source digest gave the same SIF (ID not derived from metadata)")
	}
}

func TestDescribeRejectsNonSIF(t *testing.T) {
	p := filepath.Join(t.TempDir(), "junk.sif")
	if err := os.WriteFile(p, []byte("not a sif"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Describe(p); err == nil {
		t.Fatal("junk accepted")
	}
}

// TestWriteAround: a partition written in place at PartitionOffset and finished with
// WriteAround gives the same bytes as Write copying it, so builds stay reproducible.
func TestWriteAround(t *testing.T) {
	rootfs := bytes.Repeat([]byte("squashfs bytes "), 70000) // over 1 MiB, several copy buffers
	want, err := os.ReadFile(writeFile(t, testMetadata(), rootfs))
	if err != nil {
		t.Fatal(err)
	}
	off, err := PartitionOffset()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "inplace.sif")
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err = f.WriteAt(rootfs, off); err != nil {
		t.Fatal(err)
	}
	if err = WriteAround(f, int64(len(rootfs)), testMetadata()); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("in-place SIF (%d bytes) differs from the copied one (%d bytes)", len(got), len(want))
	}
}
