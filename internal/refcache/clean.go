package refcache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// CleanOptions choose what `cache clean` removes.
type CleanOptions struct {
	// OlderThan keeps entries modified more recently; 0 removes them all.
	OlderThan time.Duration
	// Types are TypeSIF and/or TypeBlob; empty means both.
	Types []string
	// Now is the time ages are measured from.
	Now time.Time
}

func (o CleanOptions) wants(t string) bool {
	if len(o.Types) == 0 {
		return true
	}
	for _, x := range o.Types {
		if x == t {
			return true
		}
	}
	return false
}

// Clean removes the entries opts choose and returns them. The caller holds the use lock
// exclusively (Exclusive): no pull or build is writing, no launch is opening a file.
func Clean(root string, opts CleanOptions) ([]Entry, error) {
	all, err := List(root)
	if err != nil {
		return nil, err
	}
	var removed []Entry
	for _, e := range all {
		if !opts.wants(e.Type) || (opts.OlderThan > 0 && opts.Now.Sub(e.Modified) < opts.OlderThan) {
			continue
		}
		if err := os.Remove(e.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return removed, fmt.Errorf("remove %s from the cache: %w", e.path, err)
		}
		removed = append(removed, e)
	}
	if opts.wants(TypeSIF) {
		if err := sweepTemps(root); err != nil {
			return removed, err
		}
	}
	if err := dropStaleRecords(root); err != nil {
		return removed, err
	}
	if opts.wants(TypeBlob) {
		if err := dropStaleImages(ociLayout(root)); err != nil {
			return removed, err
		}
	}
	return removed, nil
}

// sweepTemps removes what killed fetches and builds left in the SIF directories: files and
// directories they create under dot-names and rename into place when complete. The caller holds
// the use lock exclusively, so none is being written.
func sweepTemps(root string) error {
	kinds, err := os.ReadDir(SIFDir(root))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", SIFDir(root), err)
	}
	for _, k := range kinds {
		dir := filepath.Join(SIFDir(root), k.Name())
		ents, err := os.ReadDir(dir)
		if err != nil {
			continue // not a directory
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") {
				if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
					return fmt.Errorf("remove %s from the cache: %w", filepath.Join(dir, e.Name()), err)
				}
			}
		}
	}
	return nil
}

// dropStaleRecords removes the records of references whose SIF is gone, so that `cache list`
// shows no reference to nothing (a stale record would only cost a fetch: Lookup checks the SIF).
func dropStaleRecords(root string) error {
	recs, err := Records(root)
	if err != nil {
		return err
	}
	for _, r := range recs {
		if _, err := os.Stat(filepath.Join(root, r.SIF)); errors.Is(err, fs.ErrNotExist) {
			if err := os.Remove(recordPath(root, r.Ref)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("remove the cache record of %s: %w", r.Ref, err)
			}
		}
	}
	return nil
}

// dropStaleImages rewrites the blob layout's index.json without the images that lost a blob, so
// that the layout stays valid (the builder would copy such an image in again anyway).
func dropStaleImages(layout string) error {
	path := filepath.Join(layout, "index.json")
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	var index map[string]json.RawMessage
	var list manifest
	if json.Unmarshal(b, &index) != nil || json.Unmarshal(b, &list) != nil {
		return fmt.Errorf("image cache index %s is damaged: remove the directory %s", path, layout)
	}
	var keep []json.RawMessage
	var raw struct {
		Manifests []json.RawMessage `json:"manifests"`
	}
	if json.Unmarshal(b, &raw) != nil {
		return fmt.Errorf("image cache index %s is damaged: remove the directory %s", path, layout)
	}
	for i, d := range list.Manifests {
		if complete(layout, d.Digest) {
			keep = append(keep, raw.Manifests[i])
		}
	}
	if len(keep) == len(list.Manifests) {
		return nil
	}
	if keep == nil {
		keep = []json.RawMessage{}
	}
	if index["manifests"], err = json.Marshal(keep); err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	out, err := json.Marshal(index)
	if err != nil {
		return fmt.Errorf("encode %s: %w", path, err)
	}
	return writeAtomic(path, out)
}

// complete says whether the image with manifest digest has all its blobs in the layout.
func complete(layout, digest string) bool {
	m, ok := readManifest(layout, digest)
	if !ok {
		return false
	}
	for _, d := range append([]descriptor{m.Config}, m.Layers...) {
		alg, hexd, _ := strings.Cut(d.Digest, ":")
		if _, err := os.Stat(filepath.Join(layout, "blobs", alg, hexd)); err != nil {
			return false
		}
	}
	return true
}
