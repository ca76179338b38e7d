package squashfs

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"strings"
)

// writeInode appends the inode of n to the inode table; a directory's listing goes to the
// directory table first, since its inode points at it.
func (w *Writer) writeInode(l *layout, n *treeNode) error {
	var b []byte
	var err error
	switch n.attr.Type {
	case TypeDir:
		b, err = w.dirInode(l, n)
	case TypeRegular:
		b, err = w.fileInode(l, n)
	case TypeSymlink:
		b, err = l.symlinkInode(n)
	case TypeCharDevice, TypeBlockDevice, TypeFIFO, TypeSocket:
		b, err = l.specialInode(n)
	default:
		err = fmt.Errorf("squashfs: %s: cannot write a %s inode", n.attr.Path, n.attr.Type)
	}
	if err != nil {
		return err
	}
	block, off := l.inodes.ref()
	n.ref = inodeRef(block, off)
	l.export[n.ino-1] = n.ref
	return l.inodes.write(b)
}

// header encodes the 16-byte common inode header.
func (l *layout) header(n *treeNode, typ uint16) ([]byte, error) {
	uid, err := l.id(n.attr.UID)
	if err != nil {
		return nil, err
	}
	gid, err := l.id(n.attr.GID)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 0, 64)
	b = binary.LittleEndian.AppendUint16(b, typ)
	b = binary.LittleEndian.AppendUint16(b, uint16(n.attr.Mode&0o7777))
	b = binary.LittleEndian.AppendUint16(b, uid)
	b = binary.LittleEndian.AppendUint16(b, gid)
	b = binary.LittleEndian.AppendUint32(b, clampTime(n.attr.ModTime))
	return binary.LittleEndian.AppendUint32(b, n.ino), nil
}

// id returns the id table index of a uid or gid, adding it at first use.
func (l *layout) id(v uint32) (uint16, error) {
	if i, ok := l.ids[v]; ok {
		return i, nil
	}
	if len(l.idList) >= 1<<16 {
		return 0, fmt.Errorf("squashfs: more than 65536 distinct uids and gids")
	}
	i := uint16(len(l.idList))
	l.ids[v] = i
	l.idList = append(l.idList, v)
	return i, nil
}

func (w *Writer) fileInode(l *layout, n *treeNode) ([]byte, error) {
	f := n.file
	d := f.data()
	bs := int64(w.opts.BlockSize)
	var sparse uint64
	for i, s := range d.sizes {
		if s == 0 {
			sparse += uint64(min(bs, f.size-int64(i)*bs))
		}
	}
	w.stats.SparseBytes += sparse
	xattr, err := l.xattr(n.attr.Xattrs)
	if err != nil {
		return nil, err
	}
	basic := f.size <= math.MaxUint32 && d.start <= math.MaxUint32 && n.nlink <= 1 && xattr == noXattr && sparse == 0
	var b []byte
	if basic {
		if b, err = l.header(n, inodeBasicFile); err != nil {
			return nil, err
		}
		b = binary.LittleEndian.AppendUint32(b, uint32(d.start))
		b = binary.LittleEndian.AppendUint32(b, d.frag)
		b = binary.LittleEndian.AppendUint32(b, d.fragOff)
		b = binary.LittleEndian.AppendUint32(b, uint32(f.size))
	} else {
		if b, err = l.header(n, inodeExtFile); err != nil {
			return nil, err
		}
		b = binary.LittleEndian.AppendUint64(b, d.start)
		b = binary.LittleEndian.AppendUint64(b, uint64(f.size))
		b = binary.LittleEndian.AppendUint64(b, sparse)
		b = binary.LittleEndian.AppendUint32(b, max(n.nlink, 1))
		b = binary.LittleEndian.AppendUint32(b, d.frag)
		b = binary.LittleEndian.AppendUint32(b, d.fragOff)
		b = binary.LittleEndian.AppendUint32(b, xattr)
	}
	for _, s := range d.sizes {
		b = binary.LittleEndian.AppendUint32(b, s)
	}
	return b, nil
}

func (l *layout) symlinkInode(n *treeNode) ([]byte, error) {
	xattr, err := l.xattr(n.attr.Xattrs)
	if err != nil {
		return nil, err
	}
	typ := uint16(inodeBasicSymlink)
	if xattr != noXattr {
		typ = inodeExtSymlink
	}
	b, err := l.header(n, typ)
	if err != nil {
		return nil, err
	}
	b = binary.LittleEndian.AppendUint32(b, max(n.nlink, 1))
	b = binary.LittleEndian.AppendUint32(b, uint32(len(n.attr.Linkname)))
	b = append(b, n.attr.Linkname...)
	if xattr != noXattr {
		b = binary.LittleEndian.AppendUint32(b, xattr)
	}
	return b, nil
}

// specialInode writes devices, FIFOs and sockets.
func (l *layout) specialInode(n *treeNode) ([]byte, error) {
	xattr, err := l.xattr(n.attr.Xattrs)
	if err != nil {
		return nil, err
	}
	typ := dirEntryType(n.attr.Type)
	if xattr != noXattr {
		typ += inodeExtDir - inodeBasicDir
	}
	b, err := l.header(n, typ)
	if err != nil {
		return nil, err
	}
	b = binary.LittleEndian.AppendUint32(b, max(n.nlink, 1))
	if n.attr.Type == TypeCharDevice || n.attr.Type == TypeBlockDevice {
		// The kernel decodes this with new_decode_dev: minor's low byte, 12-bit major, rest of minor.
		ma, mi := n.attr.DevMajor, n.attr.DevMinor
		b = binary.LittleEndian.AppendUint32(b, mi&0xff|ma<<8|(mi&^0xff)<<12)
	}
	if xattr != noXattr {
		b = binary.LittleEndian.AppendUint32(b, xattr)
	}
	return b, nil
}

// basicType is the inode type a directory entry records for an entry type.
func dirEntryType(t Type) uint16 {
	switch t {
	case TypeDir:
		return inodeBasicDir
	case TypeRegular:
		return inodeBasicFile
	case TypeSymlink:
		return inodeBasicSymlink
	case TypeBlockDevice:
		return inodeBasicBlock
	case TypeCharDevice:
		return inodeBasicChar
	case TypeFIFO:
		return inodeBasicFifo
	case TypeSocket:
		return inodeBasicSocket
	}
	return 0
}

// xattr returns the xattr id of a set, storing each distinct set once.
func (l *layout) xattr(set map[string]string) (uint32, error) {
	if len(set) == 0 {
		return noXattr, nil
	}
	names := make([]string, 0, len(set))
	for k := range set {
		names = append(names, k)
	}
	slices.Sort(names)
	var kv []byte
	for _, name := range names {
		typ, suffix, err := splitXattrName(name)
		if err != nil {
			return 0, err
		}
		v := set[name]
		kv = binary.LittleEndian.AppendUint16(kv, typ)
		kv = binary.LittleEndian.AppendUint16(kv, uint16(len(suffix)))
		kv = append(kv, suffix...)
		kv = binary.LittleEndian.AppendUint32(kv, uint32(len(v)))
		kv = append(kv, v...)
	}
	if id, ok := l.xsets[string(kv)]; ok {
		return id, nil
	}
	block, off := l.xattrs.ref()
	if err := l.xattrs.write(kv); err != nil {
		return 0, err
	}
	id := uint32(len(l.xids) / 16)
	l.xids = binary.LittleEndian.AppendUint64(l.xids, inodeRef(block, off))
	l.xids = binary.LittleEndian.AppendUint32(l.xids, uint32(len(names)))
	l.xids = binary.LittleEndian.AppendUint32(l.xids, uint32(len(kv)))
	l.xsets[string(kv)] = id
	return id, nil
}

// splitXattrName maps a full xattr name to the squashfs prefix type and the rest of the name.
// Squashfs can store only these three namespaces.
func splitXattrName(name string) (uint16, string, error) {
	for _, p := range []struct {
		prefix string
		typ    uint16
	}{{"user.", xattrUser}, {"trusted.", xattrTrusted}, {"security.", xattrSecurity}} {
		if rest, ok := strings.CutPrefix(name, p.prefix); ok {
			if rest == "" || len(name) > 255 {
				break
			}
			return p.typ, rest, nil
		}
	}
	return 0, "", fmt.Errorf("xattr %q: squashfs stores only user., trusted. and security. names up to 255 bytes", name)
}
