package layer

import (
	"archive/tar"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/hpcctl/hpcctl/internal/squashfs"
)

const (
	whPrefix = ".wh."
	whOpaque = ".wh..wh..opq"
	// whMeta prefixes aufs bookkeeping (".wh..wh.plnk", ".wh..wh.aufs") that old docker layers carry.
	whMeta = ".wh..wh."
)

// kind is what a tar entry means for layering.
type kind uint8

const (
	kSkip     kind = iota // ignored (aufs metadata)
	kDir                  // a directory: merges with lower directories
	kFile                 // any other non-directory that carries its own inode
	kLink                 // a tar hardlink
	kWhiteout             // ".wh.NAME": name is the hidden path
	kOpaque               // ".wh..wh..opq": name is the directory whose lower contents are hidden
)

// record is what the index keeps of one tar entry: its meaning, never its content.
type record struct {
	name   string
	kind   kind
	device bool
	target string // a hardlink's cleaned target path
	res    linkRes
}

// linkRes is where a hardlink's inode comes from: an entry of the same layer (local >= 0) or the
// state of the layers below at path lower.
type linkRes struct {
	local int
	lower string
}

// errNameHostile marks names rejected for safety; tests branch on it.
var errNameHostile = errors.New("unsafe entry name")

// classify turns a tar header into a record. The same function runs in both passes, so that the
// emitting pass can check it reads the entries the index saw.
func classify(hdr *tar.Header) (record, error) {
	name, err := cleanName(hdr.Name)
	if err != nil {
		return record{}, err
	}
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if dir == "" {
		dir = "."
	}
	if meta, err := checkWhiteoutParents(dir); err != nil || meta {
		return record{name: name, kind: kSkip}, err
	}
	switch {
	case base == whOpaque:
		return record{name: dir, kind: kOpaque}, nil
	case strings.HasPrefix(base, whMeta):
		return record{name: name, kind: kSkip}, nil
	case strings.HasPrefix(base, whPrefix):
		hidden := strings.TrimPrefix(base, whPrefix)
		if hidden == "" || hidden == "." || hidden == ".." {
			return record{}, fmt.Errorf("%w: whiteout %q names no file", errNameHostile, hdr.Name)
		}
		return record{name: path.Join(dir, hidden), kind: kWhiteout}, nil
	}
	return classifyType(hdr, name)
}

// checkWhiteoutParents reports whether a parent directory is aufs metadata (skipped with its
// contents) and rejects other whiteout names used as directories, which have no meaning.
func checkWhiteoutParents(dir string) (meta bool, err error) {
	for _, c := range strings.Split(dir, "/") {
		if strings.HasPrefix(c, whMeta) {
			return true, nil
		}
		if strings.HasPrefix(c, whPrefix) {
			return false, fmt.Errorf("%w: whiteout %q used as a directory", errNameHostile, dir)
		}
	}
	return false, nil
}

func classifyType(hdr *tar.Header, name string) (record, error) {
	r := record{name: name}
	switch hdr.Typeflag {
	case tar.TypeDir:
		r.kind = kDir
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse, tar.TypeCont, tar.TypeSymlink, tar.TypeFifo: //nolint:staticcheck // SA1019: old archives still carry TypeRegA
		r.kind = kFile
	case tar.TypeChar, tar.TypeBlock:
		r.kind, r.device = kFile, true
	case tar.TypeLink:
		target, err := cleanName(hdr.Linkname)
		if err != nil {
			return record{}, fmt.Errorf("hardlink target: %w", err)
		}
		if target == "." {
			return record{}, fmt.Errorf("%w: hardlink to the root directory", errNameHostile)
		}
		r.kind, r.target = kLink, target
	default:
		return record{}, fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
	if name == "." && r.kind != kDir {
		return record{}, fmt.Errorf("%w: the root must be a directory, found tar type %q", errNameHostile, hdr.Typeflag)
	}
	return r, nil
}

// cleanName applies squashfs.CleanPath: a leading "./" or "/" is dropped (absolute names are relative
// to the image root, as in containerd), and ".." is rejected rather than repaired, so a hostile
// name can never land somewhere its author did not write.
func cleanName(name string) (string, error) {
	p, err := squashfs.CleanPath(name)
	if err != nil {
		return "", fmt.Errorf("%w: %w", errNameHostile, err)
	}
	return p, nil
}

// parents returns the strict ancestors of a clean path, root first: "a/b/c" → ".", "a", "a/b".
func parents(p string) []string {
	if p == "." {
		return nil
	}
	out := []string{"."}
	for i := 0; i < len(p); i++ {
		if p[i] == '/' {
			out = append(out, p[:i])
		}
	}
	return out
}
