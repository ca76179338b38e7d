package refcache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Entry types, as `cache list` shows them and `cache clean --type` takes them.
const (
	TypeSIF  = "sif"
	TypeBlob = "blob"
)

// Entry is one file of the cache: a SIF made from a reference, or a blob of the OCI layout that
// builds share.
type Entry struct {
	Type     string    `json:"type"`
	Name     string    `json:"name"` // the SIF's path in the cache, or the blob's digest
	Size     int64     `json:"size"`
	Modified time.Time `json:"modified"`
	// UsedBy lists what refers to the entry: the references cached as this SIF, or the cached
	// images (by manifest digest) whose manifest, config or layer this blob is.
	UsedBy []string `json:"used_by,omitempty"`
	path   string
}

// ociLayout is the blob cache's OCI image layout inside the cache directory.
func ociLayout(root string) string { return filepath.Join(root, "oci") }

// List returns every SIF and blob in the cache, SIFs first, each by name.
func List(root string) ([]Entry, error) {
	sifs, err := sifEntries(root)
	if err != nil {
		return nil, err
	}
	blobs, err := blobEntries(root)
	if err != nil {
		return nil, err
	}
	return append(sifs, blobs...), nil
}

func sifEntries(root string) ([]Entry, error) {
	recs, err := Records(root)
	if err != nil {
		return nil, err
	}
	users := map[string][]string{}
	for _, r := range recs {
		users[r.SIF] = append(users[r.SIF], r.Ref)
	}
	var out []Entry
	err = filepath.WalkDir(SIFDir(root), func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), ".") && d.IsDir() {
			return fs.SkipDir // a build in progress, or one killed (Clean sweeps those)
		}
		if !d.Type().IsRegular() || !strings.HasSuffix(p, ".sif") || strings.HasPrefix(d.Name(), ".") {
			return nil
		}
		st, err := d.Info()
		if err != nil {
			return nil // removed meanwhile
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, Entry{Type: TypeSIF, Name: rel, Size: st.Size(), Modified: st.ModTime(), UsedBy: users[rel], path: p})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the cache's SIF files: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func blobEntries(root string) ([]Entry, error) {
	users := blobUsers(ociLayout(root))
	dir := filepath.Join(ociLayout(root), "blobs")
	var out []Entry
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if !d.Type().IsRegular() {
			return nil
		}
		st, err := d.Info()
		if err != nil {
			return nil
		}
		name := filepath.Base(filepath.Dir(p)) + ":" + d.Name()
		out = append(out, Entry{Type: TypeBlob, Name: name, Size: st.Size(), Modified: st.ModTime(), UsedBy: users[name], path: p})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("read the cache's blobs: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// descriptor and manifest are the few fields of the OCI structures the listing needs (the lean
// hpcctl links no image-spec).
type descriptor struct {
	MediaType string `json:"mediaType"`
	Digest    string `json:"digest"`
}

type manifest struct {
	Config    descriptor   `json:"config"`
	Layers    []descriptor `json:"layers"`
	Manifests []descriptor `json:"manifests"` // an index
}

// blobUsers maps each blob digest to the cached images (the manifests index.json lists) that
// hold it. A damaged layout gives an empty map: the listing then shows blobs as unused.
func blobUsers(layout string) map[string][]string {
	users := map[string][]string{}
	var index manifest
	if b, err := os.ReadFile(filepath.Join(layout, "index.json")); err != nil || json.Unmarshal(b, &index) != nil {
		return users
	}
	for _, d := range index.Manifests {
		image := "image " + d.Digest
		users[d.Digest] = append(users[d.Digest], image)
		m, ok := readManifest(layout, d.Digest)
		if !ok {
			continue
		}
		for _, b := range append([]descriptor{m.Config}, m.Layers...) {
			if b.Digest != "" {
				users[b.Digest] = append(users[b.Digest], image)
			}
		}
	}
	return users
}

func readManifest(layout, digest string) (manifest, bool) {
	var m manifest
	alg, hexd, ok := strings.Cut(digest, ":")
	if !ok || strings.ContainsAny(alg+hexd, "/.") {
		return m, false
	}
	b, err := os.ReadFile(filepath.Join(layout, "blobs", alg, hexd))
	if err != nil || len(b) > 4<<20 {
		return m, false
	}
	return m, json.Unmarshal(b, &m) == nil
}
