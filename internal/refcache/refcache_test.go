package refcache

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

func TestIsReference(t *testing.T) {
	for image, want := range map[string]bool{
		"docker://127.0.0.1:5000/a/b:1": true, "oras://h/r:t": true, "https://h/x.sif": true, "http://h/x.sif": true,
		"oci:dir:tag": true, "oci-archive:x.tar": true, "docker-archive:x.tar": true,
		"image.sif": false, "./dir": false, "/abs/x.sif": false, "docker://": false, "oras:x": false,
	} {
		if got := IsReference(image); got != want {
			t.Errorf("IsReference(%q) = %v, want %v", image, got, want)
		}
	}
}

func TestDir(t *testing.T) {
	t.Setenv(DirEnv, "/env/cache")
	if d, err := Dir("/site"); err != nil || d != "/env/cache" {
		t.Errorf("Dir with $%s = %q, %v; the variable wins", DirEnv, d, err)
	}
	t.Setenv(DirEnv, "")
	site := t.TempDir()
	if d, err := Dir(site); err != nil || d != filepath.Join(site, strconv.Itoa(os.Getuid())) {
		t.Errorf("Dir(%s) = %q, %v; want a directory per user below cache_dir", site, d, err)
	}
	other := t.TempDir()
	if err := os.Symlink(t.TempDir(), filepath.Join(other, strconv.Itoa(os.Getuid()))); err != nil {
		t.Fatal(err)
	}
	if d, err := Dir(other); err == nil {
		t.Errorf("Dir took %s, a symbolic link planted in the shared cache_dir", d)
	}
	t.Setenv("XDG_CACHE_HOME", "/xdg")
	if d, err := Dir(""); err != nil || d != "/xdg/hpcctl" {
		t.Errorf("Dir() = %q, %v; want /xdg/hpcctl", d, err)
	}
}

// writeSIF puts a file at rel in root and records ref as cached there.
func writeSIF(t *testing.T, root, rel, ref string, at time.Time) string {
	t.Helper()
	p := filepath.Join(root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte("sif"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := Write(root, ref, "sha256:0", p, at); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLookupFreshness(t *testing.T) {
	root := t.TempDir()
	now := time.Now()
	tag := "docker://h/r:1"
	p := writeSIF(t, root, "sif/docker/a.sif", tag, now)
	if got, ok := Lookup(root, tag, now.Add(TagTTL/2)); !ok || got != p {
		t.Errorf("Lookup of a tag resolved %v ago = %q, %v; want %s", TagTTL/2, got, ok, p)
	}
	if _, ok := Lookup(root, tag, now.Add(TagTTL+time.Second)); ok {
		t.Errorf("Lookup trusted a tag resolved longer than %v ago", TagTTL)
	}
	if _, ok := Lookup(root, tag, now.Add(-time.Hour)); ok {
		t.Errorf("Lookup trusted a record from the future (a clock step back)")
	}
	pinned := "docker://h/r@sha256:" + "ab"
	writeSIF(t, root, "sif/docker/b.sif", pinned, now)
	if _, ok := Lookup(root, pinned, now.Add(1000*time.Hour)); !ok {
		t.Errorf("Lookup did not trust a reference by digest")
	}
	if _, ok := Lookup(root, "docker://h/other:1", now); ok {
		t.Errorf("Lookup found a reference never recorded")
	}
	os.Remove(p)
	if _, ok := Lookup(root, tag, now); ok {
		t.Errorf("Lookup returned a SIF that is gone")
	}
}

func TestLookupLocalSource(t *testing.T) {
	root, src := t.TempDir(), filepath.Join(t.TempDir(), "img.tar")
	if err := os.WriteFile(src, []byte("one"), 0o600); err != nil {
		t.Fatal(err)
	}
	ref := "oci-archive:" + src
	writeSIF(t, root, "sif/local/a.sif", ref, time.Now())
	if _, ok := Lookup(root, ref, time.Now().Add(100*time.Hour)); !ok {
		t.Errorf("Lookup did not trust an unchanged archive")
	}
	if err := os.WriteFile(src, []byte("other"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, ok := Lookup(root, ref, time.Now()); ok {
		t.Errorf("Lookup trusted an archive that changed since")
	}
}

// writeBlob adds a blob to the layout and returns its digest.
func writeBlob(t *testing.T, root, hexd, body string, mtime time.Time) string {
	t.Helper()
	p := filepath.Join(ociLayout(root), "blobs", "sha256", hexd)
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
	return "sha256:" + hexd
}

func TestCleanByTypeAndAge(t *testing.T) {
	root := t.TempDir()
	now := time.Now()
	old := now.Add(-72 * time.Hour)
	oldSIF := writeSIF(t, root, "sif/docker/old.sif", "docker://h/old:1", now)
	if err := os.Chtimes(oldSIF, old, old); err != nil {
		t.Fatal(err)
	}
	newSIF := writeSIF(t, root, "sif/docker/new.sif", "docker://h/new:1", now)
	layer := writeBlob(t, root, "11", "layer", old)
	config := writeBlob(t, root, "22", "{}", now)
	manifest := writeBlob(t, root, "33", `{"config":{"digest":"`+config+`"},"layers":[{"digest":"`+layer+`"}]}`, now)
	index := `{"schemaVersion":2,"manifests":[{"digest":"` + manifest + `","annotations":{"org.opencontainers.image.ref.name":"x"}}]}`
	if err := os.WriteFile(filepath.Join(ociLayout(root), "index.json"), []byte(index), 0o600); err != nil {
		t.Fatal(err)
	}
	entries, err := List(root)
	if err != nil || len(entries) != 5 {
		t.Fatalf("List = %d entries, %v; want 2 SIFs and 3 blobs", len(entries), err)
	}
	if u := entries[2].UsedBy; entries[2].Name != layer || len(u) != 1 || u[0] != "image "+manifest {
		t.Errorf("entry %+v, want the layer used by image %s", entries[2], manifest)
	}

	removed, err := Clean(root, CleanOptions{OlderThan: 48 * time.Hour, Types: []string{TypeSIF}, Now: now})
	if err != nil || len(removed) != 1 || removed[0].Name != "sif/docker/old.sif" {
		t.Fatalf("Clean --days 2 --type sif removed %+v, %v; want old.sif only", removed, err)
	}
	if _, serr := os.Stat(newSIF); serr != nil {
		t.Errorf("Clean removed the new SIF: %v", serr)
	}
	if recs, _ := Records(root); len(recs) != 1 || recs[0].Ref != "docker://h/new:1" {
		t.Errorf("records after clean: %+v, want only the new SIF's", recs)
	}

	removed, err = Clean(root, CleanOptions{OlderThan: 48 * time.Hour, Types: []string{TypeBlob}, Now: now})
	if err != nil || len(removed) != 1 || removed[0].Name != layer {
		t.Fatalf("Clean --days 2 --type blob removed %+v, %v; want the old layer", removed, err)
	}
	if b, _ := os.ReadFile(filepath.Join(ociLayout(root), "index.json")); string(b) != `{"manifests":[],"schemaVersion":2}` {
		t.Errorf("index.json after losing a layer: %s; want the image dropped", b)
	}
	leftovers := []string{filepath.Join(root, "sif/docker/.new.sif.tmp-1"), filepath.Join(root, "sif/local/.build-1/image.sif")}
	for _, p := range leftovers {
		if err = os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err = os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if removed, err = Clean(root, CleanOptions{Now: now}); err != nil || len(removed) != 3 {
		t.Errorf("Clean removed %d entries, %v; want the remaining SIF and 2 blobs", len(removed), err)
	}
	for _, p := range leftovers {
		if _, err = os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Clean left %s, a killed build's file: %v", p, err)
		}
	}
}

func TestExclusiveWaitsForUse(t *testing.T) {
	root := t.TempDir()
	release, err := Use(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	waited := make(chan struct{})
	done := make(chan error)
	go func() {
		rel, xerr := Exclusive(context.Background(), root, func() { close(waited) })
		if xerr == nil {
			rel()
		}
		done <- xerr
	}()
	<-waited
	select {
	case err = <-done:
		t.Fatalf("Exclusive returned (%v) while the use lock was held", err)
	case <-time.After(100 * time.Millisecond):
	}
	release()
	if err = <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if release, err = Use(context.Background(), root); err != nil {
		t.Fatal(err)
	}
	defer release()
	cancel()
	if _, err := Exclusive(ctx, root, nil); err == nil {
		t.Error("Exclusive with a cancelled context returned no error")
	}
}
