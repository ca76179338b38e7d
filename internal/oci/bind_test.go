package oci

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hpcctl/hpcctl/internal/testutil/ocitest"
)

// retag points the cache's entry for tag at the manifest descriptor of another entry, as an
// edited or damaged index.json would.
func retag(t *testing.T, cache, tag, to string) {
	t.Helper()
	path := filepath.Join(cache, "oci", "index.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var index imgspecv1.Index
	if err = json.Unmarshal(data, &index); err != nil {
		t.Fatal(err)
	}
	var target *imgspecv1.Descriptor
	for i, d := range index.Manifests {
		if d.Annotations[imgspecv1.AnnotationRefName] == to {
			target = &index.Manifests[i]
		}
	}
	if target == nil {
		t.Fatalf("no cache entry %s", to)
	}
	for i, d := range index.Manifests {
		if d.Annotations[imgspecv1.AnnotationRefName] == tag {
			index.Manifests[i].Digest, index.Manifests[i].Size = target.Digest, target.Size
		}
	}
	if data, err = json.Marshal(index); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestCacheEntryBoundToDigest: a cache entry pointed at another image's manifest is not
// believed: the pull copies the requested image again and returns it, for an OCI source (whose
// manifest the cache stores unchanged) and a Docker one (stored converted).
func TestCacheEntryBoundToDigest(t *testing.T) {
	dir, cache := t.TempDir(), t.TempDir()
	a, b := testImage("a"), testImage("b")
	b.Layers = append(b.Layers, randomLayer(7, 3000))
	ocitest.WriteLayout(t, filepath.Join(dir, "a"), "v1", a)
	ocitest.WriteDockerArchive(t, filepath.Join(dir, "b.tar"), "test/b:1", b)
	refA, refB := "oci:"+filepath.Join(dir, "a")+":v1", "docker-archive:"+filepath.Join(dir, "b.tar")
	imgA, imgB := pull(t, refA, SourceOptions{CacheDir: cache}), pull(t, refB, SourceOptions{CacheDir: cache})
	tagA, tagB := tagFor(imgA.Digest), tagFor(imgB.Digest)

	retag(t, cache, tagA, tagB)
	got := pull(t, refA, SourceOptions{CacheDir: cache})
	if got.Digest != imgA.Digest || got.CachedManifest != imgA.CachedManifest || got.Stats.CacheHit {
		t.Errorf("pull of a retagged OCI entry: digest %s cached %s hit %v; want %s copied again", got.Digest, got.CachedManifest, got.Stats.CacheHit, imgA.CachedManifest)
	}
	checkImage(t, got, a)

	retag(t, cache, tagB, tagA)
	got = pull(t, refB, SourceOptions{CacheDir: cache})
	if got.Digest != imgB.Digest || got.CachedManifest != imgB.CachedManifest || got.Stats.CacheHit {
		t.Errorf("pull of a retagged Docker entry: digest %s cached %s hit %v; want %s copied again", got.Digest, got.CachedManifest, got.Stats.CacheHit, imgB.CachedManifest)
	}
	checkImage(t, got, b)
	if again := pull(t, refB, SourceOptions{CacheDir: cache}); !again.Stats.CacheHit {
		t.Errorf("the repaired entry is not a cache hit")
	}
}
