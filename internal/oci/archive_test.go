package oci

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
	"go.podman.io/image/v5/types"

	"github.com/hpcctl/hpcctl/internal/testutil/ocitest"
)

// resolveArchive must give what containers/image's oci-archive transport gives, without unpacking
// anything, and leave to it whatever it cannot read in place.
func TestResolveArchive(t *testing.T) {
	dir := t.TempDir()
	plain := testImage("plain")
	one := filepath.Join(dir, "one.tar")
	oneW := ocitest.WriteOCIArchive(t, one, "v2", plain)
	arm := testImage("arm")
	arm.Arch = "arm64"
	multi := filepath.Join(dir, "multi.tar")
	multiW := ocitest.WriteOCIArchive(t, multi, "", plain, arm)
	gz := filepath.Join(dir, "one.tar.gz")
	writeGzip(t, gz, one)
	two := filepath.Join(dir, "two.tar")
	writeTwoImages(t, two, plain)
	tests := []struct {
		name, ref, arch string
		inPlace         bool
		wantDigest      string
		wantIndex       string
	}{
		{"tagged", one + ":v2", "", true, oneW.Manifests[0].String(), ""},
		{"the only image", one, "", true, oneW.Manifests[0].String(), ""},
		{"multi-platform, amd64", multi, "amd64", true, multiW.Manifests[0].String(), multiW.Index.String()},
		{"multi-platform, arm64", multi, "arm64", true, multiW.Manifests[1].String(), multiW.Index.String()},
		{"unknown tag", one + ":nope", "", false, "", ""},
		{"compressed", gz, "", false, "", ""},
		{"several images, no tag", two, "", false, "", ""},
		{"missing", filepath.Join(dir, "missing.tar"), "", false, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tmp := t.TempDir()
			sys := &types.SystemContext{BigFilesTemporaryDir: tmp, ArchitectureChoice: tc.arch, OSChoice: "linux"}
			ref, err := imageReference("oci-archive:" + tc.ref)
			if err != nil {
				t.Fatal(err)
			}
			r, ok, err := resolveArchive(tc.ref, ref, sys)
			if ok != tc.inPlace || err != nil {
				t.Fatalf("resolveArchive: ok %v err %v, want ok %v", ok, err, tc.inPlace)
			}
			if ents, _ := os.ReadDir(tmp); len(ents) != 0 {
				t.Errorf("resolveArchive left %d entries in the temporary directory", len(ents))
			}
			if !ok {
				return
			}
			if r.digest.String() != tc.wantDigest || r.index.String() != tc.wantIndex || !r.nativeOCI {
				t.Errorf("digest %s index %q nativeOCI %v, want %s %q true", r.digest, r.index, r.nativeOCI, tc.wantDigest, tc.wantIndex)
			}
			want, err := resolve(context.Background(), ref, sys)
			if err != nil {
				t.Fatal(err)
			}
			if r.digest != want.digest || r.index != want.index || r.nativeOCI != want.nativeOCI {
				t.Errorf("in place %+v, containers/image %+v", r, want)
			}
		})
	}
}

func writeGzip(t *testing.T, dst, src string) {
	t.Helper()
	raw, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write(raw) //nolint:errcheck // bytes.Buffer
	zw.Close()
	if err := os.WriteFile(dst, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// writeTwoImages writes an archive whose index.json names the same image twice, untagged.
func writeTwoImages(t *testing.T, dst string, img ocitest.Image) {
	t.Helper()
	dir := t.TempDir()
	ocitest.WriteLayout(t, dir, "", img)
	var idx imgspecv1.Index
	raw, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err == nil {
		err = json.Unmarshal(raw, &idx)
	}
	if err != nil {
		t.Fatal(err)
	}
	idx.Manifests = append(idx.Manifests, idx.Manifests[0])
	if raw, err = json.Marshal(idx); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), raw, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, ocitest.TarDir(t, dir), 0o644); err != nil {
		t.Fatal(err)
	}
}
