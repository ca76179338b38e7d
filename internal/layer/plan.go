package layer

import (
	"fmt"
	"maps"
	"slices"
	"strings"
)

// op is what the emitting pass does with one tar entry.
type op uint8

const (
	opSkip   op = iota // hidden, a marker, or stored under another entry's name
	opEmit             // the entry as it is
	opEmitAs           // the entry's inode under another path: the copy of a hidden hardlink target
	opLink             // a TypeHardlink entry at the entry's own path pointing to name
)

type action struct {
	op   op
	name string
}

// plan says, for every tar entry of every layer, what reaches the sink.
type plan struct {
	acts [][]action
	// dirs are directories that exist only because a layer implied them (a whiteout inside, or
	// entries below that upper layers hid) and that nothing emitted implies any more.
	dirs  []string
	stats Stats
}

// Flags of the merged state of the layers above the one being planned.
const (
	fEmitted  uint8 = 1 << iota // an upper layer defines this path
	fImplicit                   // an upper layer has entries below this path: it is a directory
	fGone                       // an upper layer removed this path and everything below it
	fOpaque                     // an upper layer hid the lower contents of this directory
)

// linkRef is a visible hardlink entry waiting for the entry whose inode it shares.
type linkRef struct {
	layer, pos int
	name       string
	// show is false for a link the final image does not contain: its target is still checked,
	// because extracting the layers in order would fail on it.
	show bool
}

type planner struct {
	layers  []Layer
	idx     []*layerIndex
	opts    Options
	state   map[string]uint8
	pending map[string][]linkRef // lower path → links that share whatever the lower layers have there
	implied map[string]bool      // directories implied by a layer at a point where they were visible
	plan
}

// makePlan walks the indexes from the top layer down and decides every entry's fate. It reads no
// blob, so every layering rule is decided here, from names alone.
func makePlan(layers []Layer, idx []*layerIndex, opts Options) (*plan, error) {
	p := &planner{
		layers: layers, idx: idx, opts: opts,
		state:   map[string]uint8{".": fImplicit},
		pending: map[string][]linkRef{},
		implied: map[string]bool{},
	}
	p.acts = make([][]action, len(idx))
	for li := len(idx) - 1; li >= 0; li-- {
		p.acts[li] = make([]action, len(idx[li].records))
		if err := p.layer(li); err != nil {
			return nil, err
		}
	}
	for _, t := range slices.Sorted(maps.Keys(p.pending)) {
		ref := p.pending[t][0]
		return nil, fmt.Errorf("%s: hardlink %q: target %q exists in no lower layer",
			layerName(layers[ref.layer], ref.layer, len(layers)), ref.name, t)
	}
	p.dirs = p.orphanDirs()
	return &p.plan, nil
}

// orphanDirs lists, sorted, the implied directories that no emitted entry has and none lies below:
// extracting the layers would create them, so the image must have them too.
func (p *planner) orphanDirs() []string {
	covered := map[string]bool{".": true}
	for li, acts := range p.acts {
		for pos, a := range acts {
			name := p.idx[li].records[pos].name
			switch a.op {
			case opSkip:
				continue
			case opEmitAs:
				name = a.name
			}
			covered[name] = true
			for _, d := range parents(name) {
				covered[d] = true
			}
		}
	}
	var cand []string
	for d := range p.implied {
		if !covered[d] && p.state[d]&fEmitted == 0 {
			cand = append(cand, d)
		}
	}
	// The deepest directories suffice: the sink implies their parents.
	for _, d := range cand {
		for _, a := range parents(d) {
			covered[a] = true
		}
	}
	out := slices.DeleteFunc(cand, func(d string) bool { return covered[d] })
	slices.Sort(out)
	return out
}

func (p *planner) layer(li int) error {
	ix := p.idx[li]
	visible := make([]bool, len(ix.records))
	for i, r := range ix.records {
		j, ok := ix.live[r.name]
		visible[i] = ok && j == i && !p.hidden(r)
	}
	groups := map[int][]linkRef{}
	next := map[string][]linkRef{}
	if err := p.resolvePending(li, groups, next); err != nil {
		return err
	}
	for i, r := range ix.records {
		switch {
		case r.kind == kSkip:
			p.stats.Skipped++
		case r.kind == kWhiteout || r.kind == kOpaque:
			p.stats.Whiteouts++
		case !visible[i]:
			if r.kind == kLink && r.res.local < 0 {
				next[r.res.lower] = append(next[r.res.lower], linkRef{li, i, r.name, false})
			}
			p.stats.Hidden++
			p.opts.Logger.Debug("hidden", "layer", p.layers[li].Digest, "path", r.name)
		case r.kind == kLink && r.res.local >= 0:
			groups[r.res.local] = append(groups[r.res.local], linkRef{li, i, r.name, true})
		case r.kind == kLink:
			next[r.res.lower] = append(next[r.res.lower], linkRef{li, i, r.name, true})
		case r.device && p.opts.Devices == DevicesSkip:
			p.stats.Skipped++
		default:
			p.acts[li][i] = action{op: opEmit}
		}
	}
	p.resolveGroups(li, groups, visible)
	for t, refs := range next {
		p.pending[t] = append(p.pending[t], refs...)
	}
	p.update(ix, visible)
	return nil
}

// hidden reports whether the layers above hide a record: a path they define or removed, an ancestor
// they removed or made opaque, or a non-directory where they imply a directory.
func (p *planner) hidden(r record) bool {
	for _, a := range parents(r.name) {
		if p.state[a]&(fGone|fOpaque) != 0 {
			return true
		}
	}
	s := p.state[r.name]
	return s&(fGone|fEmitted) != 0 || (s&fImplicit != 0 && r.kind != kDir)
}

// resolvePending finds, in layer li, the inodes that links from upper layers share. A link refers
// to the state below its own layer: the first lower layer that defines or removes the path decides.
func (p *planner) resolvePending(li int, groups map[int][]linkRef, next map[string][]linkRef) error {
	ix := p.idx[li]
	for _, t := range slices.Sorted(maps.Keys(p.pending)) {
		refs := p.pending[t]
		j, ok := ix.live[t]
		switch {
		case ok && ix.records[j].kind == kDir:
			return p.linkErr(refs[0], li, t, "is a directory")
		case ok && ix.records[j].kind == kLink && ix.records[j].res.local < 0:
			next[ix.records[j].res.lower] = append(next[ix.records[j].res.lower], refs...)
		case ok && ix.records[j].kind == kLink:
			groups[ix.records[j].res.local] = append(groups[ix.records[j].res.local], refs...)
		case ok:
			groups[j] = append(groups[j], refs...)
		case ix.hides(t):
			return p.linkErr(refs[0], li, t, "was removed")
		case ix.implicit[t]:
			return p.linkErr(refs[0], li, t, "is a directory")
		default:
			continue
		}
		delete(p.pending, t)
	}
	return nil
}

func (p *planner) linkErr(ref linkRef, li int, target, what string) error {
	n := len(p.layers)
	return fmt.Errorf("%s: hardlink %q: target %q %s in %s; the image is malformed",
		layerName(p.layers[ref.layer], ref.layer, n), ref.name, target, what, layerName(p.layers[li], li, n))
}

// resolveGroups decides how the links sharing each inode of layer li are stored. If the inode's own
// entry is visible, they point to it. Otherwise the content streams past only here, under a path
// the final image no longer shows: the link with the smallest path carries it, the others point
// to that one.
func (p *planner) resolveGroups(li int, groups map[int][]linkRef, visible []bool) {
	ix := p.idx[li]
	for _, k := range slices.Sorted(maps.Keys(groups)) {
		refs, root := shown(groups[k]), ix.records[k]
		if len(refs) == 0 {
			continue
		}
		if root.device && p.opts.Devices == DevicesSkip {
			p.stats.Skipped += len(refs)
			continue
		}
		target := root.name
		if !visible[k] {
			slices.SortFunc(refs, func(a, b linkRef) int { return strings.Compare(a.name, b.name) })
			target = refs[0].name
			p.acts[li][k] = action{op: opEmitAs, name: target}
			p.stats.Copied++
			refs = refs[1:]
		}
		for _, r := range refs {
			p.acts[r.layer][r.pos] = action{op: opLink, name: target}
		}
	}
}

// update folds layer li into the state the layers below it are planned against.
func (p *planner) update(ix *layerIndex, visible []bool) {
	for n := range ix.finalDirs() {
		if !p.hidden(record{name: n, kind: kDir}) {
			p.implied[n] = true
		}
	}
	for n := range ix.implicit {
		p.state[n] |= fImplicit
	}
	for i, r := range ix.records {
		if visible[i] {
			p.state[r.name] |= fEmitted
		}
	}
	for n := range ix.goneAt {
		p.state[n] |= fGone
	}
	for n := range ix.whiteouts {
		p.state[n] |= fGone
	}
	for n := range ix.opaque {
		p.state[n] |= fOpaque
	}
}

func shown(refs []linkRef) []linkRef {
	return slices.DeleteFunc(refs, func(r linkRef) bool { return !r.show })
}
