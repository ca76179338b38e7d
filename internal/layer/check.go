package layer

import (
	"archive/tar"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"strings"
)

// Linux's limits on one extended attribute (linux/limits.h XATTR_SIZE_MAX, XATTR_NAME_MAX): an
// image holding more could never have been made on Linux, and the kernel refuses to serve it.
const (
	maxXattrValue = 64 << 10
	maxXattrName  = 255
)

// checkXattrs refuses an entry with an extended attribute Linux cannot hold, whether or not the
// image keeps it: the layer was not made by extracting a real file system.
func checkXattrs(hdr *tar.Header) error {
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, paxXattr)
		if !ok {
			continue
		}
		switch {
		case len(v) > maxXattrValue:
			return fmt.Errorf("xattr %q is %d bytes, more than Linux allows (%d): fix the layer that sets it", name, len(v), maxXattrValue)
		case len(name) > maxXattrName:
			return fmt.Errorf("xattr name %.40q... is %d bytes, more than Linux allows (%d): fix the layer that sets it", name, len(name), maxXattrName)
		}
	}
	return nil
}

// diffIDCheck hashes a layer's uncompressed stream and compares it with the config's diff_id.
type diffIDCheck struct {
	want string // "sha256:..."; empty: nothing to check
	h    hash.Hash
}

func newDiffIDCheck(diffID string) (*diffIDCheck, error) {
	if diffID == "" {
		return &diffIDCheck{}, nil
	}
	alg, hexPart, _ := strings.Cut(diffID, ":")
	var h hash.Hash
	switch alg {
	case "sha256":
		h = sha256.New()
	case "sha512":
		h = sha512.New()
	default:
		return nil, fmt.Errorf("the image config's diff_id %q uses an unknown digest algorithm: the image is corrupt", diffID)
	}
	if _, err := hex.DecodeString(hexPart); err != nil || len(hexPart) != 2*h.Size() {
		return nil, fmt.Errorf("the image config's diff_id %q is not a valid digest: the image is corrupt", diffID)
	}
	return &diffIDCheck{want: diffID, h: h}, nil
}

func (d *diffIDCheck) tee(r io.Reader) io.Reader {
	if d.h == nil {
		return r
	}
	return io.TeeReader(r, d.h)
}

// check runs once the stream has been read to its end.
func (d *diffIDCheck) check() error {
	if d.h == nil {
		return nil
	}
	alg, _, _ := strings.Cut(d.want, ":")
	got := alg + ":" + hex.EncodeToString(d.h.Sum(nil))
	if got != d.want {
		return fmt.Errorf("uncompressed content is %s but the image config's rootfs.diff_ids says %s: the image is corrupt or was altered; rebuild it or push it again", got, d.want)
	}
	return nil
}
