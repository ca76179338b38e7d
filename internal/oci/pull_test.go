package oci

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hpcctl/hpcctl/internal/testutil"
	"github.com/hpcctl/hpcctl/internal/testutil/ocitest"
	"github.com/opencontainers/go-digest"
	imgspecv1 "github.com/opencontainers/image-spec/specs-go/v1"
)

func TestPullSources(t *testing.T) {
	dir := t.TempDir()
	plain, gz := testImage("plain"), testImage("gz")
	gz.Gzip = true
	layout := ocitest.WriteLayout(t, filepath.Join(dir, "layout"), "v1", plain)
	gzLayout := ocitest.WriteLayout(t, filepath.Join(dir, "gzlayout"), "", gz)
	archive := ocitest.WriteOCIArchive(t, filepath.Join(dir, "img.oci.tar"), "v2", plain)
	ocitest.WriteDockerArchive(t, filepath.Join(dir, "img.docker.tar"), "test/img:1", plain)
	tests := []struct {
		ref        string
		img        ocitest.Image
		wantDigest digest.Digest // empty: not fixed by the fixture
	}{
		{"oci:" + filepath.Join(dir, "layout") + ":v1", plain, layout.Manifests[0]},
		{"oci:" + filepath.Join(dir, "gzlayout"), gz, gzLayout.Manifests[0]},
		{"oci-archive:" + filepath.Join(dir, "img.oci.tar") + ":v2", plain, archive.Manifests[0]},
		{"oci-archive:" + filepath.Join(dir, "img.oci.tar"), plain, archive.Manifests[0]},
		{"docker-archive:" + filepath.Join(dir, "img.docker.tar"), plain, ""},
	}
	cache := t.TempDir()
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			img := pull(t, tt.ref, SourceOptions{CacheDir: cache})
			if img.Ref != tt.ref || img.Digest == "" || img.IndexDigest != "" {
				t.Errorf("Ref %q Digest %q IndexDigest %q", img.Ref, img.Digest, img.IndexDigest)
			}
			if tt.wantDigest != "" && img.Digest != tt.wantDigest {
				t.Errorf("Digest = %s, want the source manifest %s", img.Digest, tt.wantDigest)
			}
			checkImage(t, img, tt.img)
			if digest.FromBytes(img.ConfigJSON) != img.ConfigDigest {
				t.Errorf("ConfigJSON does not match ConfigDigest %s", img.ConfigDigest)
			}
		})
	}
}

// The docker-archive manifest is synthesised by containers/image; it must still be stable, since
// builds record it.
func TestPullDockerArchiveDigestStable(t *testing.T) {
	dir := t.TempDir()
	w := ocitest.WriteDockerArchive(t, filepath.Join(dir, "a.tar"), "", testImage("x"))
	a := pull(t, "docker-archive:"+filepath.Join(dir, "a.tar"), SourceOptions{CacheDir: t.TempDir()})
	b := pull(t, "docker-archive:"+filepath.Join(dir, "a.tar"), SourceOptions{CacheDir: t.TempDir()})
	if a.Digest != b.Digest || a.CachedManifest != b.CachedManifest {
		t.Errorf("digests differ between two caches: %s/%s vs %s/%s", a.Digest, a.CachedManifest, b.Digest, b.CachedManifest)
	}
	for i, l := range a.Layers {
		if l.Digest != w.DiffIDs[0][i] {
			t.Errorf("layer %d digest %s, want the tar's own digest %s (no recompression)", i, l.Digest, w.DiffIDs[0][i])
		}
	}
}

func TestPullIndexPlatform(t *testing.T) {
	dir := t.TempDir()
	amd, arm := testImage("amd64"), testImage("arm64")
	arm.Arch, arm.Variant = "arm64", "v8"
	w := ocitest.WriteLayout(t, dir, "multi", amd, arm)
	ref := "oci:" + dir + ":multi"
	cache := t.TempDir()
	tests := []struct {
		name string
		opts SourceOptions
		want int // index into w.Manifests
	}{
		{"arm64", SourceOptions{Arch: "arm64"}, 1},
		{"arm64/v8", SourceOptions{Arch: "arm64", Variant: "v8"}, 1},
		{"amd64", SourceOptions{Arch: "amd64", OS: "linux"}, 0},
	}
	if runtime.GOARCH == "amd64" || runtime.GOARCH == "arm64" {
		tests = append(tests, struct {
			name string
			opts SourceOptions
			want int
		}{"host", SourceOptions{}, map[string]int{"amd64": 0, "arm64": 1}[runtime.GOARCH]})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.opts.CacheDir = cache
			img := pull(t, ref, tt.opts)
			if img.Digest != w.Manifests[tt.want] || img.IndexDigest != w.Index {
				t.Errorf("Digest %s IndexDigest %s, want %s from %s", img.Digest, img.IndexDigest, w.Manifests[tt.want], w.Index)
			}
			want := []ocitest.Image{amd, arm}[tt.want]
			checkImage(t, img, want)
			if img.Config.Architecture != want.Arch && !(want.Arch == "" && img.Config.Architecture == "amd64") {
				t.Errorf("architecture %q", img.Config.Architecture)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		_, err := Pull(context.Background(), ref, SourceOptions{CacheDir: cache, Arch: "s390x"})
		if !errors.Is(err, ErrPlatform) || !strings.Contains(err.Error(), "linux/amd64, linux/arm64/v8") ||
			!strings.Contains(err.Error(), "linux/s390x") {
			t.Fatalf("error = %v, want ErrPlatform naming linux/s390x and listing linux/amd64, linux/arm64/v8", err)
		}
	})
}

func TestPullCacheReuse(t *testing.T) {
	dir := t.TempDir()
	first, second := testImage("one"), testImage("two")
	second.Layers[0] = first.Layers[0] // shared base layer
	ocitest.WriteLayout(t, filepath.Join(dir, "one"), "", first)
	ocitest.WriteLayout(t, filepath.Join(dir, "two"), "", second)
	cache := t.TempDir()
	opts := SourceOptions{CacheDir: cache}

	cold := pull(t, "oci:"+filepath.Join(dir, "one"), opts)
	if cold.Stats.CacheHit || cold.Stats.BlobsFetched != 3 { // two layers and the config
		t.Errorf("cold pull stats %+v, want 3 blobs fetched", cold.Stats)
	}
	mtimes := blobMtimes(t, cache)
	time.Sleep(10 * time.Millisecond) // so that a rewrite would show in the modification times
	warm := pull(t, "oci:"+filepath.Join(dir, "one"), opts)
	if !warm.Stats.CacheHit || warm.Stats.BlobsFetched != 0 || warm.Digest != cold.Digest {
		t.Errorf("warm pull stats %+v digest %s, want a cache hit with nothing fetched", warm.Stats, warm.Digest)
	}
	if after := blobMtimes(t, cache); !equalMaps(mtimes, after) {
		t.Errorf("warm pull rewrote cache blobs: before %v after %v", mtimes, after)
	}
	other := pull(t, "oci:"+filepath.Join(dir, "two"), opts)
	if other.Stats.CacheHit || other.Stats.BlobsReused != 1 || other.Stats.BlobsFetched != 2 {
		t.Errorf("pull sharing a base layer: stats %+v, want 1 reused and 2 fetched", other.Stats)
	}
	checkImage(t, other, second)
}

func blobMtimes(t *testing.T, cache string) map[string]time.Time {
	t.Helper()
	out := map[string]time.Time{}
	paths, err := filepath.Glob(filepath.Join(cache, "oci", "blobs", "sha256", "*"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no cache blobs: %v", err)
	}
	for _, p := range paths {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(p)] = st.ModTime()
	}
	return out
}

func equalMaps(a, b map[string]time.Time) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !b[k].Equal(v) {
			return false
		}
	}
	return true
}

func TestCorruptCacheBlob(t *testing.T) {
	src := t.TempDir()
	want := testImage("c")
	ocitest.WriteLayout(t, src, "", want)
	ref, cache := "oci:"+src, t.TempDir()
	img := pull(t, ref, SourceOptions{CacheDir: cache})
	blob := filepath.Join(cache, "oci", "blobs", "sha256", img.Layers[1].Digest.Encoded())

	// Same size, one byte flipped: only the digest check while reading can notice.
	data, err := os.ReadFile(blob)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err = os.WriteFile(blob, data, 0o644); err != nil {
		t.Fatal(err)
	}
	rc, err := img.Layers[1].Open()
	if err != nil {
		t.Fatal(err)
	}
	_, err = readAll(rc)
	if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), img.Layers[1].Digest.String()) ||
		!strings.Contains(err.Error(), "pull the image again") {
		t.Fatalf("reading a corrupted blob: %v, want ErrCorrupt naming the digest and the remedy", err)
	}
	again := pull(t, ref, SourceOptions{CacheDir: cache})
	// copy always rewrites the config, so the damaged layer plus the config are fetched.
	if again.Stats.CacheHit || again.Stats.BlobsFetched != 2 || again.Stats.BlobsReused != 1 {
		t.Errorf("pull after corruption: stats %+v, want the damaged layer re-fetched and the other reused", again.Stats)
	}
	checkImage(t, again, want)

	// Truncated: the pull itself notices the wrong size and re-fetches.
	if err := os.Truncate(blob, 10); err != nil {
		t.Fatal(err)
	}
	again = pull(t, ref, SourceOptions{CacheDir: cache})
	if again.Stats.CacheHit || again.Stats.BlobsFetched != 2 || again.Stats.BlobsReused != 1 {
		t.Errorf("pull after truncation: stats %+v, want the truncated layer re-fetched", again.Stats)
	}
	checkImage(t, again, want)
}

func TestConcurrentPulls(t *testing.T) {
	dir := t.TempDir()
	imgs := []ocitest.Image{testImage("a"), testImage("b")}
	imgs[1].Layers = append(imgs[1].Layers, randomLayer(1, 1<<20))
	for i, img := range imgs {
		ocitest.WriteLayout(t, filepath.Join(dir, string(rune('a'+i))), "", img)
	}
	cache := t.TempDir()
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			img, err := Pull(context.Background(), "oci:"+filepath.Join(dir, string(rune('a'+i%2))), SourceOptions{CacheDir: cache})
			if err == nil {
				for _, l := range img.Layers {
					if _, err = readLayerErr(l); err != nil {
						break
					}
				}
			}
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	for i, img := range imgs {
		checkImage(t, pull(t, "oci:"+filepath.Join(dir, string(rune('a'+i))), SourceOptions{CacheDir: cache}), img)
	}
}

func TestPullErrors(t *testing.T) {
	dir := t.TempDir()
	ocitest.WriteLayout(t, filepath.Join(dir, "layout"), "v1", testImage("e"))
	garbage := filepath.Join(dir, "garbage.tar")
	if err := os.WriteFile(garbage, []byte("this is not a tar file at all, not even close"), 0o644); err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.tar")
	ocitest.WriteDockerArchive(t, truncated, "", testImage("t"))
	if err := os.Truncate(truncated, 1536); err != nil {
		t.Fatal(err)
	}
	twoTags := filepath.Join(dir, "twotags")
	ocitest.WriteLayout(t, twoTags, "a", testImage("a"))
	addTag(t, twoTags, "b")
	tests := []struct {
		ref  string
		kind ErrorKind
		want string
	}{
		{"oci:" + twoTags, ErrNotFound, "holds several images: name one with :TAG"},
		{"oci:" + filepath.Join(dir, "layout") + ":nope", ErrNotFound, "image not found"},
		{"oci:" + filepath.Join(dir, "missing"), ErrNotFound, "image not found"},
		{"oci-archive:" + filepath.Join(dir, "missing.tar"), ErrNotFound, "image not found"},
		{"docker-archive:" + filepath.Join(dir, "missing.tar"), ErrNotFound, "image not found"},
		{"oci-archive:" + garbage, ErrCorrupt, "cannot read the archive"},
		{"docker-archive:" + garbage, ErrCorrupt, "cannot read the archive"},
		{"docker-archive:" + truncated, ErrCorrupt, "cannot read the archive"},
		{filepath.Join(dir, "layout"), ErrUnknownSource, "unknown image source"},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			_, err := Pull(context.Background(), tt.ref, SourceOptions{CacheDir: t.TempDir()})
			t.Log(err)
			if !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("Pull(%s) = %v, want a one-line %v error containing %q", tt.ref, err, tt.kind, tt.want)
			}
		})
	}
}

// addTag gives the single image in an OCI layout a second tag, so that the layout holds two.
func addTag(t *testing.T, layout, tag string) {
	t.Helper()
	path := filepath.Join(layout, "index.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var index imgspecv1.Index
	if err = json.Unmarshal(data, &index); err != nil {
		t.Fatal(err)
	}
	d := index.Manifests[0]
	d.Annotations = map[string]string{imgspecv1.AnnotationRefName: tag}
	index.Manifests = append(index.Manifests, d)
	if data, err = json.Marshal(index); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

// The cache is a plain OCI image layout: other tools (here skopeo) can read what it holds.
func TestCacheIsOCILayout(t *testing.T) {
	skopeo := testutil.NeedCommands(t, "skopeo")[0]
	src, cache := t.TempDir(), t.TempDir()
	ocitest.WriteLayout(t, src, "", testImage("layout"))
	img := pull(t, "oci:"+src, SourceOptions{CacheDir: cache})
	out, err := exec.Command(skopeo, "inspect", "--raw", "oci:"+filepath.Join(cache, "oci")+":"+tagFor(img.Digest)).Output()
	if err != nil {
		t.Fatalf("skopeo inspect of the cache: %v", err)
	}
	if got := digest.FromBytes(out); got != img.CachedManifest {
		t.Errorf("skopeo reads manifest %s from the cache, Pull reported %s", got, img.CachedManifest)
	}
}

func TestUnusableCacheDir(t *testing.T) {
	src := t.TempDir()
	ocitest.WriteLayout(t, src, "", testImage("u"))
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Pull(context.Background(), "oci:"+src, SourceOptions{CacheDir: filepath.Join(file, "cache")})
	if !errors.Is(err, ErrCache) || !strings.Contains(err.Error(), CacheDirEnv) {
		t.Fatalf("cache under a regular file: %v, want ErrCache suggesting $%s", err, CacheDirEnv)
	}
}
