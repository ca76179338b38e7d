package oci

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hpcctl/hpcctl/internal/testutil/ocitest"
)

// rewriteManifest changes the manifest of the single image in an OCI layout and points
// index.json at the new one.
func rewriteManifest(t *testing.T, dir string, edit func(m *imgspecv1.Manifest)) {
	t.Helper()
	read := func(p string, v any) {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if err := json.Unmarshal(data, v); err != nil {
			t.Fatal(err)
		}
	}
	var index imgspecv1.Index
	read(filepath.Join(dir, "index.json"), &index)
	blobs := filepath.Join(dir, "blobs", "sha256")
	var m imgspecv1.Manifest
	read(filepath.Join(blobs, index.Manifests[0].Digest.Encoded()), &m)
	edit(&m)
	data, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	d := digest.FromBytes(data)
	if err = os.WriteFile(filepath.Join(blobs, d.Encoded()), data, 0o644); err != nil {
		t.Fatal(err)
	}
	index.Manifests[0].Digest, index.Manifests[0].Size = d, int64(len(data))
	if data, err = json.Marshal(index); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "index.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestDamagedSourceMessages: a source whose manifest is found but whose parts are missing or
// wrong says so, naming the blob, not "image not found" or "not in the cache".
func TestDamagedSourceMessages(t *testing.T) {
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string, w ocitest.Written)
		kind   ErrorKind
		want   []string
	}{
		{"missing layer blob", func(t *testing.T, dir string, w ocitest.Written) {
			if err := os.Remove(filepath.Join(dir, "blobs", "sha256", w.Layers[0][1].Encoded())); err != nil {
				t.Fatal(err)
			}
		}, ErrCorrupt, []string{"missing", "incomplete"}},
		{"layer size mismatch", func(t *testing.T, dir string, w ocitest.Written) {
			rewriteManifest(t, dir, func(m *imgspecv1.Manifest) { m.Layers[1].Size++ })
		}, ErrCorrupt, []string{"bytes", "manifest says"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			w := ocitest.WriteLayout(t, dir, "v1", testImage("d"))
			tt.damage(t, dir, w)
			ref := "oci:" + dir + ":v1"
			_, err := Pull(context.Background(), ref, SourceOptions{CacheDir: t.TempDir()})
			if err == nil {
				t.Fatal("pull of a damaged source succeeded")
			}
			msg := err.Error()
			if !errors.Is(err, tt.kind) || strings.Contains(msg, "not found") || strings.Contains(msg, "not in the cache") || strings.Contains(msg, "\n") {
				t.Errorf("error %q (kind %v), want one line of kind %v", msg, errors.Is(err, tt.kind), tt.kind)
			}
			for _, s := range append(tt.want, ref, w.Layers[0][1].String()) {
				if !strings.Contains(msg, s) {
					t.Errorf("error %q does not name %q", msg, s)
				}
			}
		})
	}
}
