package squashfs

import (
	"encoding/binary"
	"fmt"
)

// Limits that follow Linux (XATTR_SIZE_MAX, XATTR_LIST_MAX): a hostile table cannot make one
// inode's attributes cost more than this.
const (
	maxXattrValue = 64 << 10
	maxXattrTotal = 1 << 20
	maxXattrCount = 1 << 16
)

var xattrPrefixes = [...]string{xattrUser: "user.", xattrTrusted: "trusted.", xattrSecurity: "security."}

// readXattrHeader reads the start of the key/value table and the number of xattr ids.
func (r *Reader) readXattrHeader() error {
	start := r.sb.XattrIDTableStart
	if start == noTable {
		return nil
	}
	b, err := r.readAt("xattr id table", start, 16)
	if err != nil {
		return err
	}
	r.xattrKV = binary.LittleEndian.Uint64(b)
	r.xattrCount = binary.LittleEndian.Uint32(b[8:])
	if r.xattrKV < SuperblockSize || r.xattrKV >= start {
		return fmt.Errorf("xattr id table: key/value table at 0x%x: not before the id table at 0x%x", r.xattrKV, start)
	}
	return r.checkIndex("xattr id table", start+16, uint64(r.xattrCount)*16)
}

// xattrs returns the attributes of xattr id idx (nil for NoXattrs).
func (r *Reader) xattrs(idx uint32) (map[string]string, error) {
	if idx == noXattr {
		return nil, nil
	}
	if idx >= r.xattrCount {
		return nil, fmt.Errorf("xattr id table: id %d: outside the table of %d", idx, r.xattrCount)
	}
	e, err := r.indexedEntry(region{"xattr id table", SuperblockSize, r.sb.BytesUsed}, r.sb.XattrIDTableStart+16, uint64(idx), 16)
	if err != nil {
		return nil, err
	}
	ref := binary.LittleEndian.Uint64(e)
	count := binary.LittleEndian.Uint32(e[8:])
	if count > maxXattrCount {
		return nil, fmt.Errorf("xattr id table: id %d: %d attributes", idx, count)
	}
	kv := region{"xattr table", r.xattrKV, r.sb.XattrIDTableStart}
	block, off := splitInodeRef(ref)
	c, err := r.cursorRel(kv, block, off)
	if err != nil {
		return nil, err
	}
	out := make(map[string]string)
	total := 0
	for range count {
		name, value, err := r.readXattr(c, kv)
		if err != nil {
			return nil, err
		}
		if total += len(name) + len(value); total > maxXattrTotal {
			return nil, fmt.Errorf("xattr table: id %d: attributes exceed %d bytes", idx, maxXattrTotal)
		}
		out[name] = value
	}
	return out, nil
}

// readXattr decodes one key and its value, following an out-of-line value reference.
func (r *Reader) readXattr(c *metaCursor, kv region) (string, string, error) {
	at := c.where()
	var hdr [4]byte
	if err := c.read(hdr[:]); err != nil {
		return "", "", err
	}
	kind := binary.LittleEndian.Uint16(hdr[0:])
	nameLen := binary.LittleEndian.Uint16(hdr[2:])
	prefix := int(kind &^ xattrOOL)
	if prefix >= len(xattrPrefixes) || kind&^(xattrOOL|0xff) != 0 {
		return "", "", fmt.Errorf("xattr table: key at %s: unknown type 0x%x", at, kind)
	}
	name, err := c.bytes(uint64(nameLen))
	if err != nil {
		return "", "", err
	}
	value, err := readXattrValue(c)
	if err != nil {
		return "", "", err
	}
	if kind&xattrOOL != 0 {
		if len(value) != 8 {
			return "", "", fmt.Errorf("xattr table: key at %s: out-of-line reference of %d bytes", at, len(value))
		}
		block, off := splitInodeRef(binary.LittleEndian.Uint64(value))
		vc, err := r.cursorRel(kv, block, off)
		if err != nil {
			return "", "", err
		}
		if value, err = readXattrValue(vc); err != nil {
			return "", "", err
		}
	}
	return xattrPrefixes[prefix] + string(name), string(value), nil
}

func readXattrValue(c *metaCursor) ([]byte, error) {
	at := c.where()
	var b [4]byte
	if err := c.read(b[:]); err != nil {
		return nil, err
	}
	n := binary.LittleEndian.Uint32(b[:])
	if n > maxXattrValue {
		return nil, fmt.Errorf("xattr table: value at %s: %d bytes (at most %d)", at, n, maxXattrValue)
	}
	return c.bytes(uint64(n))
}
