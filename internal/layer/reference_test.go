package layer

import (
	"archive/tar"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/squashfs"
	lt "github.com/hpcctl/hpcctl/internal/testutil/layertest"
)

// randomSpecs makes a random stack of layers over a small name space, so that names collide across
// and within layers: duplicates, whiteouts of directories, files replacing directories, hardlinks
// to targets that upper layers change.
func randomSpecs(seed uint64, maxLayers int) [][]F {
	rng := rand.New(rand.NewPCG(seed, 0x1a7e7))
	randPath := func() string {
		parts := make([]string, 1+rng.IntN(3))
		for i := range parts {
			parts[i] = string(rune('a' + rng.IntN(3)))
		}
		return strings.Join(parts, "/")
	}
	var files []string // non-directory paths made so far: likely hardlink targets
	specs := make([][]F, 1+rng.IntN(maxLayers))
	for li := range specs {
		if len(files) > 4 {
			files = files[len(files)-4:] // recent ones are less likely to have been removed
		}
		n := 1 + rng.IntN(8)
		for range n {
			p := randPath()
			var f F
			switch k := rng.IntN(100); {
			case k < 30:
				f = F{Name: p, Body: fmt.Sprintf("L%d-%d", li, rng.IntN(1000)), Mode: []int64{0o644, 0o755, 0o4755}[rng.IntN(3)]}
			case k < 50:
				f = F{Name: p, Type: tar.TypeDir, Mode: []int64{0o755, 0o700, 0o1777}[rng.IntN(3)]}
			case k < 64:
				f = lt.Symlink(p, randPath())
			case k < 72:
				target := randPath()
				if len(files) > 0 && rng.IntN(10) > 0 {
					target = files[rng.IntN(len(files))]
				}
				f = lt.Hardlink(p, target)
			case k < 84:
				f = lt.Whiteout(p)
			case k < 90:
				f = lt.Opaque(p)
			case k < 95:
				f = lt.CharDev(p, 1, int64(rng.IntN(9)))
			default:
				f = F{Name: p, Type: tar.TypeFifo}
			}
			if f.Type != tar.TypeDir && !strings.Contains(f.Name, ".wh.") {
				files = append(files, p)
			}
			specs[li] = append(specs[li], f)
		}
	}
	return specs
}

func randomStack(seed uint64, maxLayers int) []Layer {
	return stack(randomSpecs(seed, maxLayers)...)
}

// model is the naive reference: layers applied bottom-up to an in-memory tree, the way extraction
// onto a real file system behaves.
type model struct {
	nodes  map[string]*mnode
	inodes []string
}

type mnode struct {
	dir      bool
	implicit bool
	attrs    string // a directory's
	ino      int    // a non-directory's
}

func applyAll(specs [][]F) (*model, error) {
	m := &model{nodes: map[string]*mnode{}}
	for li, spec := range specs {
		if err := m.apply(spec); err != nil {
			return nil, fmt.Errorf("layer %d: %w", li, err)
		}
	}
	return m, nil
}

func (m *model) apply(spec []F) error {
	// Whiteouts and opaque markers apply to the lower layers only, whatever their place in the tar;
	// the directories they imply belong to this layer, so no marker of the layer removes them.
	for _, f := range spec {
		dir, base := pathSplit(f.Name)
		switch {
		case base == ".wh..wh..opq":
			m.removeBelow(dir)
		case strings.HasPrefix(base, ".wh."):
			m.remove(joinPath(dir, base[4:]))
		}
	}
	for _, f := range spec {
		if dir, base := pathSplit(f.Name); strings.HasPrefix(base, ".wh.") {
			m.parents(dir)
		}
	}
	for _, f := range spec {
		if strings.Contains(f.Name, ".wh.") {
			continue
		}
		if err := m.entry(f); err != nil {
			return err
		}
	}
	return nil
}

func (m *model) entry(f F) error {
	ino := -1
	if f.Type == tar.TypeLink {
		t, ok := m.nodes[f.Linkname]
		switch {
		case !ok:
			return fmt.Errorf("hardlink %s: no target %s", f.Name, f.Linkname)
		case t.dir:
			return fmt.Errorf("hardlink %s: target %s is a directory", f.Name, f.Linkname)
		}
		ino = t.ino
	}
	dir, _ := pathSplit(f.Name)
	m.parents(dir)
	if f.Type == tar.TypeDir {
		if n, ok := m.nodes[f.Name]; !ok || !n.dir {
			m.remove(f.Name)
		}
		m.nodes[f.Name] = &mnode{dir: true, attrs: fmt.Sprintf("%o", f.Mode)}
		return nil
	}
	m.remove(f.Name)
	if ino < 0 {
		ino = len(m.inodes)
		m.inodes = append(m.inodes, fileSummary(f))
	}
	m.nodes[f.Name] = &mnode{ino: ino}
	return nil
}

// parents makes every ancestor of dir, and dir itself, a directory, replacing non-directories.
func (m *model) parents(dir string) {
	if dir == "." {
		return
	}
	for _, a := range append(parents(dir)[1:], dir) {
		m.ensureDir(a)
	}
}

func (m *model) ensureDir(p string) {
	if p == "." {
		return
	}
	if n, ok := m.nodes[p]; ok && n.dir {
		return
	}
	m.remove(p)
	m.nodes[p] = &mnode{dir: true, implicit: true}
}

func (m *model) remove(p string) {
	delete(m.nodes, p)
	m.removeBelow(p)
}

func (m *model) removeBelow(p string) {
	prefix := p + "/"
	for k := range m.nodes {
		if p == "." || strings.HasPrefix(k, prefix) {
			if k != "." {
				delete(m.nodes, k)
			}
		}
	}
}

func pathSplit(p string) (dir, base string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return ".", p
	}
	return p[:i], p[i+1:]
}

func joinPath(dir, base string) string {
	if dir == "." {
		return base
	}
	return dir + "/" + base
}

func fileSummary(f F) string {
	switch f.Type {
	case tar.TypeSymlink:
		return "symlink " + f.Linkname
	case tar.TypeChar:
		return fmt.Sprintf("char %d:%d", f.Devmajor, f.Devminor)
	case tar.TypeFifo:
		return "fifo"
	}
	return fmt.Sprintf("file %o %s", f.Mode, f.Body)
}

// view renders a final tree: directories with their attributes (or "implicit"), non-directories with
// their inode and the set of paths sharing it.
func (m *model) view() map[string]string {
	groups := map[int][]string{}
	for p, n := range m.nodes {
		if !n.dir {
			groups[n.ino] = append(groups[n.ino], p)
		}
	}
	hasChild := map[string]bool{}
	for p := range m.nodes {
		for _, a := range parents(p) {
			hasChild[a] = true
		}
	}
	v := map[string]string{}
	for p, n := range m.nodes {
		switch {
		case n.dir && n.implicit && !hasChild[p]:
			v[p] = "dir 755" // made by the flattener: nothing below implies it
		case n.dir && n.implicit:
			v[p] = "dir implicit"
		case n.dir:
			v[p] = "dir " + n.attrs
		default:
			g := groups[n.ino]
			slices.Sort(g)
			v[p] = m.inodes[n.ino] + " links=" + strings.Join(g, ",")
		}
	}
	return v
}

// viewEntries renders the flattener's output the same way, checking the sink contract on the way:
// no duplicate paths, hardlinks point to non-hardlink entries, nothing below a non-directory.
func viewEntries(entries []got) (map[string]string, error) {
	byPath := map[string]got{}
	for _, e := range entries {
		if _, dup := byPath[e.Path]; dup {
			return nil, fmt.Errorf("path %s emitted twice", e.Path)
		}
		byPath[e.Path] = e
	}
	root := func(e got) (got, error) {
		if e.Type != squashfs.TypeHardlink {
			return e, nil
		}
		t, ok := byPath[e.Linkname]
		if !ok || t.Type == squashfs.TypeHardlink || t.Type == squashfs.TypeDir {
			return got{}, fmt.Errorf("hardlink %s → %s: target missing, a hardlink or a directory", e.Path, e.Linkname)
		}
		return t, nil
	}
	groups := map[string][]string{}
	v := map[string]string{}
	for p, e := range byPath {
		for _, a := range parents(p)[1:] {
			if pe, ok := byPath[a]; ok && pe.Type != squashfs.TypeDir {
				return nil, fmt.Errorf("%s is below non-directory %s", p, a)
			}
			if _, ok := byPath[a]; !ok {
				v[a] = "dir implicit"
			}
		}
		r, err := root(e)
		if err != nil {
			return nil, err
		}
		if e.Type != squashfs.TypeDir {
			groups[r.Path] = append(groups[r.Path], p)
		}
	}
	for p, e := range byPath {
		if e.Type == squashfs.TypeDir {
			v[p] = fmt.Sprintf("dir %o", e.Mode)
			continue
		}
		r, _ := root(e)
		g := groups[r.Path]
		slices.Sort(g)
		v[p] = entrySummary(r) + " links=" + strings.Join(g, ",")
	}
	return v, nil
}

func entrySummary(e got) string {
	switch e.Type {
	case squashfs.TypeSymlink:
		return "symlink " + e.Linkname
	case squashfs.TypeCharDevice:
		return fmt.Sprintf("char %d:%d", e.DevMajor, e.DevMinor)
	case squashfs.TypeFIFO:
		return "fifo"
	}
	return fmt.Sprintf("file %o %s", e.Mode, e.body)
}

// TestAgainstReference compares the top-down streaming result with naive bottom-up application
// for many random stacks (fixed seeds, so failures reproduce).
func TestAgainstReference(t *testing.T) {
	const runs = 2000
	ok, failedBoth, copied, linked := 0, 0, 0, 0
	for seed := range uint64(runs) {
		specs := randomSpecs(seed, 5)
		want, modelErr := applyAll(specs)
		entries, st, err := flatten(t, stack(specs...), Options{})
		if (modelErr == nil) != (err == nil) {
			t.Fatalf("seed %d: reference error %v, flatten error %v\n%s", seed, modelErr, err, dumpSpecs(specs))
		}
		if err != nil {
			failedBoth++
			continue
		}
		have, err := viewEntries(entries)
		if err != nil {
			t.Fatalf("seed %d: %v\n%s", seed, err, dumpSpecs(specs))
		}
		if d := diffTrees(want.view(), have); d != "" {
			t.Fatalf("seed %d: trees differ:%s\n%s", seed, d, dumpSpecs(specs))
		}
		ok++
		copied += min(st.Copied, 1)
		linked += min(st.Hardlinks, 1)
	}
	// The generator must mostly make valid stacks, or this test would prove little.
	if ok < runs/2 || copied < runs/50 || linked < runs/50 {
		t.Fatalf("only %d of %d random stacks were valid, %d had copied hardlinks, %d hardlinks", ok, runs, copied, linked)
	}
	t.Logf("%d stacks equal to the reference (%d with copied hardlinks, %d with hardlinks), %d rejected by both",
		ok, copied, linked, failedBoth)
}

func dumpSpecs(specs [][]F) string {
	var b strings.Builder
	for li, s := range specs {
		fmt.Fprintf(&b, "layer %d:\n", li)
		for _, f := range s {
			fmt.Fprintf(&b, "  %c %s %q %q %o\n", max(f.Type, '0'), f.Name, f.Linkname, f.Body, f.Mode)
		}
	}
	return b.String()
}
