package layer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"

	"github.com/hpcctl/hpcctl/internal/squashfs"
)

// xattrPrefixes are the namespaces kept. system.* (POSIX ACLs in their binary form) and others mean
// nothing inside a read-only image or are refused by the kernel for unprivileged users.
var xattrPrefixes = []string{"user.", "trusted.", "security."}

const paxXattr = "SCHILY.xattr."

// emitter is the second pass: it streams the entries the plan keeps into the sink.
type emitter struct {
	sink Sink
	opts Options
	st   *Stats
}

// layer streams one layer, whose index is ix and whose planned actions are acts.
func (em emitter) layer(ctx context.Context, l Layer, name string, ix *layerIndex, acts []action) error {
	b, err := openBlob(ctx, l)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	defer b.Close()
	tr := tar.NewReader(b)
	for pos := 0; ; pos++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			if pos != len(ix.records) {
				return fmt.Errorf("%s: blob changed between reads (%d entries, then %d)", name, len(ix.records), pos)
			}
			break
		}
		if err != nil {
			return fmt.Errorf("%s: read tar: %w", name, tarErr(err))
		}
		if err := em.entry(hdr, tr, pos, ix, acts); err != nil {
			return fmt.Errorf("%s: entry %q: %w", name, hdr.Name, err)
		}
	}
	if err := b.drain(); err != nil {
		return fmt.Errorf("%s: read past the tar end: %w", name, tarErr(err))
	}
	return nil
}

func (em emitter) entry(hdr *tar.Header, body io.Reader, pos int, ix *layerIndex, acts []action) error {
	if pos >= len(ix.records) {
		return errors.New("blob changed between reads (more entries than indexed)")
	}
	r, err := classify(hdr)
	if err != nil || r.name != ix.records[pos].name || r.kind != ix.records[pos].kind {
		return errors.New("blob changed between reads (entry differs from the index)")
	}
	a := acts[pos]
	if a.op == opSkip {
		return nil
	}
	e, err := entryFrom(hdr, r.name, em.opts)
	if err != nil {
		return err
	}
	switch a.op {
	case opEmitAs:
		e.Path = a.name
	case opLink:
		e = squashfs.Entry{Path: r.name, Type: squashfs.TypeHardlink, Linkname: a.name,
			Mode: e.Mode, UID: e.UID, GID: e.GID, ModTime: e.ModTime}
		em.st.Hardlinks++
	}
	if e.Type == squashfs.TypeRegular {
		e.Body = body
		em.st.Bytes += e.Size
	}
	em.st.Entries++
	return em.sink(e)
}

// entryFrom converts a tar header into an entry at path p, with ownership, mode bits (setuid,
// setgid and sticky included), mtime and the kept xattrs.
func entryFrom(hdr *tar.Header, p string, opts Options) (squashfs.Entry, error) {
	if hdr.Uid < 0 || hdr.Gid < 0 || int64(hdr.Uid) > math.MaxUint32 || int64(hdr.Gid) > math.MaxUint32 {
		return squashfs.Entry{}, fmt.Errorf("owner %d:%d out of range", hdr.Uid, hdr.Gid)
	}
	e := squashfs.Entry{
		Path: p, Mode: uint32(hdr.Mode) & 0o7777, UID: uint32(hdr.Uid), GID: uint32(hdr.Gid),
		ModTime: hdr.ModTime.Unix(), Xattrs: xattrs(hdr, p, opts),
	}
	switch hdr.Typeflag {
	case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse, tar.TypeCont: //nolint:staticcheck // SA1019: old archives still carry TypeRegA
		e.Type, e.Size = squashfs.TypeRegular, hdr.Size
	case tar.TypeDir:
		e.Type = squashfs.TypeDir
	case tar.TypeSymlink:
		if hdr.Linkname == "" || strings.ContainsRune(hdr.Linkname, 0) {
			return squashfs.Entry{}, fmt.Errorf("symlink target %q is empty or contains NUL", hdr.Linkname)
		}
		e.Type, e.Linkname = squashfs.TypeSymlink, hdr.Linkname
	case tar.TypeChar, tar.TypeBlock:
		e.Type = squashfs.TypeCharDevice
		if hdr.Typeflag == tar.TypeBlock {
			e.Type = squashfs.TypeBlockDevice
		}
		if hdr.Devmajor < 0 || hdr.Devminor < 0 || hdr.Devmajor > math.MaxUint32 || hdr.Devminor > math.MaxUint32 {
			return squashfs.Entry{}, fmt.Errorf("device number %d:%d out of range", hdr.Devmajor, hdr.Devminor)
		}
		e.DevMajor, e.DevMinor = uint32(hdr.Devmajor), uint32(hdr.Devminor)
	case tar.TypeFifo:
		e.Type = squashfs.TypeFIFO
	case tar.TypeLink:
		e.Type = squashfs.TypeHardlink // replaced by the plan's target
	}
	return e, nil
}

// xattrs returns the header's PAX "SCHILY.xattr." records in the kept namespaces, or nil.
func xattrs(hdr *tar.Header, p string, opts Options) map[string]string {
	var out map[string]string
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, paxXattr)
		if !ok {
			continue
		}
		if !keptXattr(name) {
			opts.Logger.Debug("dropping xattr", "path", p, "xattr", name)
			continue
		}
		if out == nil {
			out = map[string]string{}
		}
		out[name] = v
	}
	return out
}

func keptXattr(name string) bool {
	for _, pre := range xattrPrefixes {
		if strings.HasPrefix(name, pre) && len(name) > len(pre) {
			return true
		}
	}
	return false
}
