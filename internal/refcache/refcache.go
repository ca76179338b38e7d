// Package refcache is the image cache's shared, library-free part: where the cache is, which image
// references it already holds as SIF files, and the locks that let a clean run beside a pull. The
// lean hpcctl reads it to start a cached reference without running hpcctl-image.
package refcache

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DirEnv names the variable that chooses the cache directory, as APPTAINER_CACHEDIR does.
const DirEnv = "HPCCTL_CACHEDIR"

// TagTTL is how long a resolved tag is trusted without asking the registry again. A job array
// of a thousand tasks starting `hpcctl exec docker://...:tag` would otherwise send a thousand
// manifest requests within seconds; ten minutes bounds how stale a moved tag can be. A reference
// by digest, and `hpcctl pull`, never use this: the first is immutable, the second always asks.
const TagTTL = 10 * time.Minute

// Dir is the cache directory: $HPCCTL_CACHEDIR, else the site's cache_dir (one directory per user
// below it: users never share cache entries, which each could poison), else ~/.cache/hpcctl.
func Dir(siteDir string) (string, error) {
	if d := os.Getenv(DirEnv); d != "" {
		return filepath.Abs(d)
	}
	if siteDir != "" {
		return userDir(siteDir)
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("find the image cache: %w: set $%s", err, DirEnv)
	}
	return filepath.Join(d, "hpcctl"), nil
}

// userDir makes (or checks) the user's own directory below the site's shared cache_dir. In a
// shared directory another user could have made it first, or put a symbolic link there, to
// feed this user images of their choosing: it must be a directory the user owns.
func userDir(siteDir string) (string, error) {
	d := filepath.Join(siteDir, strconv.Itoa(os.Getuid()))
	if err := os.Mkdir(d, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return "", fmt.Errorf("create the image cache %s: %w: ask the site to make cache_dir in hpcctl.conf writable (mode 1777), or set $%s", d, err, DirEnv)
	}
	st, err := os.Lstat(d)
	if err != nil {
		return "", fmt.Errorf("image cache %s: %w", d, err)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); !ok || !st.IsDir() || int(sys.Uid) != os.Getuid() {
		return "", fmt.Errorf("image cache %s is not a directory of yours: remove it, or set $%s", d, DirEnv)
	}
	return d, nil
}

// schemes are the reference forms taken wherever an image is: registry images and local
// archives are built into a SIF, oras:// and http(s):// name SIF files.
var schemes = []string{"docker://", "oras://", "https://", "http://", "oci:", "oci-archive:", "docker-archive:"}

// IsReference says whether image names an image by reference rather than a local file.
func IsReference(image string) bool {
	for _, s := range schemes {
		if strings.HasPrefix(image, s) && len(image) > len(s) {
			return true
		}
	}
	return false
}

// isLocal says whether ref names a local file or directory (oci:, oci-archive:, docker-archive:):
// its record stays good while that file is unchanged.
func isLocal(ref string) (path string, ok bool) {
	for _, s := range []string{"oci:", "oci-archive:", "docker-archive:"} {
		if rest, found := strings.CutPrefix(ref, s); found {
			// oci:DIR:TAG and oci-archive:FILE:TAG: the file is before the last colon, if that
			// names something that exists.
			if i := strings.LastIndexByte(rest, ':'); i > 0 {
				if _, err := os.Stat(rest[:i]); err == nil {
					return rest[:i], true
				}
			}
			return rest, true
		}
	}
	return "", false
}

// pinned says whether ref names one immutable image (by digest).
func pinned(ref string) bool { return strings.Contains(ref, "@sha256:") }

// Record is what the cache knows about one reference: the digest it resolved to and the SIF
// made from it.
type Record struct {
	Ref      string    `json:"ref"`
	Digest   string    `json:"digest"`
	SIF      string    `json:"sif"` // relative to the cache directory
	Resolved time.Time `json:"resolved"`
	// FileSize and FileMtime identify a local source file as it was when the SIF was made.
	FileSize  int64 `json:"file_size,omitempty"`
	FileMtime int64 `json:"file_mtime,omitempty"`
}

// refsDir holds one record per reference.
func refsDir(root string) string { return filepath.Join(root, "refs") }

// SIFDir holds the cached SIF files, one directory per kind of source.
func SIFDir(root string) string { return filepath.Join(root, "sif") }

// recordPath names the record of ref; a hash, because references hold slashes and colons.
func recordPath(root, ref string) string {
	sum := sha256.Sum256([]byte(ref))
	return filepath.Join(refsDir(root), hex.EncodeToString(sum[:])+".json")
}

// Lookup returns the cached SIF for ref when its record is still good: a digest reference
// always, a local source while its file is unchanged, a tag for TagTTL after it was resolved.
func Lookup(root, ref string, now time.Time) (string, bool) {
	rec, err := read(recordPath(root, ref))
	if err != nil || rec.Ref != ref {
		return "", false
	}
	if !fresh(rec, now) {
		return "", false
	}
	p := filepath.Join(root, rec.SIF)
	if st, err := os.Stat(p); err != nil || !st.Mode().IsRegular() {
		return "", false
	}
	return p, true
}

func fresh(rec Record, now time.Time) bool {
	if path, ok := isLocal(rec.Ref); ok {
		st, err := os.Stat(path)
		return err == nil && st.Size() == rec.FileSize && st.ModTime().UnixNano() == rec.FileMtime
	}
	if pinned(rec.Ref) {
		return true
	}
	age := now.Sub(rec.Resolved)
	return age >= 0 && age < TagTTL
}

func read(path string) (Record, error) {
	var rec Record
	b, err := os.ReadFile(path)
	if err != nil {
		return rec, err
	}
	if err := json.Unmarshal(b, &rec); err != nil {
		return rec, fmt.Errorf("cache record %s: %w", path, err)
	}
	return rec, nil
}

// Write records that ref resolved to digest and is cached as the SIF sif (a path inside root).
// A local source's file is identified by its size and modification time.
func Write(root, ref, digest, sif string, now time.Time) error {
	rel, err := filepath.Rel(root, sif)
	if err != nil || strings.HasPrefix(rel, "..") {
		return fmt.Errorf("cache record for %s: %s is not inside the cache %s", ref, sif, root)
	}
	rec := Record{Ref: ref, Digest: digest, SIF: rel, Resolved: now.UTC()}
	if path, ok := isLocal(ref); ok {
		st, serr := os.Stat(path)
		if serr != nil {
			return fmt.Errorf("cache record for %s: %w", ref, serr)
		}
		rec.FileSize, rec.FileMtime = st.Size(), st.ModTime().UnixNano()
	}
	b, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode cache record: %w", err)
	}
	return writeAtomic(recordPath(root, ref), b)
}

// writeAtomic writes b to path under a temporary name and renames it: a reader sees the old
// record or the new one, never half of one.
func writeAtomic(path string, b []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create %s: %w", filepath.Dir(path), err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// Records lists every reference record, for `cache list`; unreadable ones are skipped.
func Records(root string) ([]Record, error) {
	ents, err := os.ReadDir(refsDir(root))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the cache: %w", err)
	}
	var recs []Record
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		if rec, err := read(filepath.Join(refsDir(root), e.Name())); err == nil {
			recs = append(recs, rec)
		}
	}
	return recs, nil
}
