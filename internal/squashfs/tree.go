package squashfs

import (
	"fmt"
	"path"
	"slices"
	"strings"
)

// treeNode is one path of the image while entries arrive. Entries come in any order, so a directory
// may first exist only as the parent of something (implicit) and get its attributes later.
type treeNode struct {
	name     string
	attr     Entry // the entry without its Body; for implicit directories, the defaults
	explicit bool
	parent   *treeNode
	children map[string]*treeNode // directories only
	sorted   []*treeNode          // children in name-byte order, filled at Close
	file     *fileData            // regular files
	target   *treeNode            // hardlinks: the treeNode whose inode they share, resolved at Close

	// Filled at Close.
	nlink   uint32
	ino     uint32
	ref     uint64 // inode reference once written
	subdirs uint32
}

// tree holds every treeNode by path.
type entryTree struct {
	root      *treeNode
	byPath    map[string]*treeNode
	hardlinks []*treeNode
	modTime   int64
}

func newTree(modTime int64) *entryTree {
	root := &treeNode{name: "", attr: implicitDir(".", modTime), children: map[string]*treeNode{}}
	return &entryTree{root: root, byPath: map[string]*treeNode{".": root}, modTime: modTime}
}

// implicitDir is the directory made for a parent that never arrives as an entry.
func implicitDir(p string, modTime int64) Entry {
	return Entry{Path: p, Type: TypeDir, Mode: 0o755, ModTime: modTime}
}

// insert adds the entry at its path, creating implicit parents. e.Path is already clean.
func (t *entryTree) insert(e Entry) (*treeNode, error) {
	if n, ok := t.byPath[e.Path]; ok {
		return n, t.merge(n, e)
	}
	parent, err := t.dir(path.Dir(e.Path), e.Path)
	if err != nil {
		return nil, err
	}
	n := &treeNode{name: path.Base(e.Path), attr: e, explicit: true, parent: parent}
	if e.Type == TypeDir {
		n.children = map[string]*treeNode{}
	}
	if e.Type == TypeHardlink {
		t.hardlinks = append(t.hardlinks, n)
	}
	parent.children[n.name] = n
	t.byPath[e.Path] = n
	return n, nil
}

// merge handles a second entry at an existing path: a directory entry gives an existing
// directory (implicit or not) its attributes; anything else is a conflict.
func (t *entryTree) merge(n *treeNode, e Entry) error {
	if e.Type == TypeDir && n.attr.Type == TypeDir {
		n.attr = e
		n.explicit = true
		return nil
	}
	if n.attr.Type == TypeDir && !n.explicit {
		return fmt.Errorf("%s: %s entry at a path that earlier entries use as a directory", e.Path, e.Type)
	}
	return fmt.Errorf("%s: duplicate entry (%s after %s)", e.Path, e.Type, n.attr.Type)
}

// dir returns the directory treeNode at p, creating implicit directories up to the root.
func (t *entryTree) dir(p, child string) (*treeNode, error) {
	if n, ok := t.byPath[p]; ok {
		if n.attr.Type != TypeDir {
			return nil, fmt.Errorf("%s: parent %s is a %s, not a directory", child, p, n.attr.Type)
		}
		return n, nil
	}
	parent, err := t.dir(path.Dir(p), child)
	if err != nil {
		return nil, err
	}
	n := &treeNode{name: path.Base(p), attr: implicitDir(p, t.modTime), parent: parent, children: map[string]*treeNode{}}
	parent.children[n.name] = n
	t.byPath[p] = n
	return n, nil
}

// resolveHardlinks points every hardlink at the treeNode that owns the inode and counts links.
func (t *entryTree) resolveHardlinks() error {
	for _, h := range t.hardlinks {
		target, err := t.follow(h)
		if err != nil {
			return err
		}
		h.target = target
	}
	return nil
}

// follow walks a hardlink, possibly through other hardlinks, to a treeNode with an inode of its own.
func (t *entryTree) follow(h *treeNode) (*treeNode, error) {
	n := h
	for hops := 0; n.attr.Type == TypeHardlink; hops++ {
		next, ok := t.byPath[n.attr.Linkname]
		switch {
		case !ok:
			return nil, fmt.Errorf("%s: hardlink target %s is not in the image", h.attr.Path, n.attr.Linkname)
		case next.attr.Type == TypeDir:
			return nil, fmt.Errorf("%s: hardlink target %s is a directory", h.attr.Path, n.attr.Linkname)
		case hops > len(t.hardlinks):
			return nil, fmt.Errorf("%s: hardlink loop through %s", h.attr.Path, n.attr.Linkname)
		}
		n = next
	}
	return n, nil
}

// inodeOwner is the treeNode whose inode a directory entry names.
func (n *treeNode) inodeOwner() *treeNode {
	if n.target != nil {
		return n.target
	}
	return n
}

// prepare sorts children by name bytes (the kernel binary-searches the directory index and stops
// early on sorted order) and counts links, depth-first without recursion limits on depth.
func (t *entryTree) prepare() {
	stack := []*treeNode{t.root}
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		d.sorted = make([]*treeNode, 0, len(d.children))
		for _, c := range d.children {
			d.sorted = append(d.sorted, c)
		}
		slices.SortFunc(d.sorted, func(a, b *treeNode) int { return strings.Compare(a.name, b.name) })
		d.subdirs = 0
		for _, c := range d.sorted {
			if c.attr.Type == TypeDir {
				d.subdirs++
				stack = append(stack, c)
			} else {
				c.inodeOwner().nlink++
			}
		}
		d.nlink = 2 + d.subdirs
		d.children = nil // no longer needed; keeps Close's memory to one copy
	}
}

// postOrder calls fn for every inode-owning treeNode after all nodes below it, children in sorted
// order, each inode once; hardlinks yield their target at first encounter. The root comes last.
func (t *entryTree) postOrder(fn func(n *treeNode) error) error {
	type frame struct {
		d *treeNode
		i int
	}
	stack := []frame{{d: t.root}}
	seen := map[*treeNode]bool{}
	for len(stack) > 0 {
		top := &stack[len(stack)-1]
		if top.i == len(top.d.sorted) {
			stack = stack[:len(stack)-1]
			if err := fn(top.d); err != nil {
				return err
			}
			continue
		}
		c := top.d.sorted[top.i]
		top.i++
		if c.attr.Type == TypeDir {
			stack = append(stack, frame{d: c})
			continue
		}
		o := c.inodeOwner()
		if seen[o] {
			continue
		}
		seen[o] = true
		if err := fn(o); err != nil {
			return err
		}
	}
	return nil
}
