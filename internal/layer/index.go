package layer

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
)

// layerIndex is the first pass over one layer: names and meanings of all its entries, in tar order.
type layerIndex struct {
	records []record
	// live maps a path to the record that defines it once the whole layer is applied (last wins).
	live map[string]int
	// goneAt maps a path to the first tar position of a non-directory entry there: extracting it
	// replaced whatever the lower layers had at that path and below.
	goneAt map[string]int
	// whiteouts holds the paths whose whiteouts hide them and everything below in lower layers.
	whiteouts map[string]bool
	// opaque holds directories whose lower contents this layer hides.
	opaque map[string]bool
	// implicit holds the directories this layer implies as parents of its entries.
	implicit map[string]bool
	// hasDesc holds paths with at least one entry below them, so a file replacing a directory within
	// the layer only scans the live map when there is something to remove.
	hasDesc map[string]bool
	// markerDirs holds the directories that whiteout and opaque markers imply.
	markerDirs map[string]bool
}

// indexAll indexes every layer, opts.Parallel at a time, and stops at the first error.
func indexAll(ctx context.Context, layers []Layer, opts Options) ([]*layerIndex, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idx := make([]*layerIndex, len(layers))
	errs := make([]error, len(layers))
	budget := byteBudget{maxBytes: opts.MaxBytes, maxEntries: opts.MaxEntries}
	sem := make(chan struct{}, opts.Parallel)
	var wg sync.WaitGroup
	for li := range layers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			idx[li], errs[li] = indexLayer(ctx, layers[li], &budget, opts)
			if errs[li] != nil {
				errs[li] = fmt.Errorf("%s: %w", layerName(layers[li], li, len(layers)), errs[li])
				cancel()
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil && !errors.Is(err, context.Canceled) {
		return nil, err
	}
	// Report the cause, not the cancellations it triggered in the other layers.
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			return nil, err
		}
	}
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}
	return idx, nil
}

// byteBudget is the MaxBytes and MaxEntries guard shared by the layers being indexed.
type byteBudget struct {
	mu                       sync.Mutex
	maxBytes, maxEntries     int64
	totalBytes, totalEntries int64
}

// take counts one entry of n bytes.
func (b *byteBudget) take(n int64) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.totalBytes += n
	b.totalEntries++
	if b.maxBytes > 0 && b.totalBytes > b.maxBytes {
		return fmt.Errorf("image content exceeds the limit of %d bytes; raise the limit if the image is trusted", b.maxBytes)
	}
	if b.maxEntries > 0 && b.totalEntries > b.maxEntries {
		return fmt.Errorf("image has more than %d entries; raise the limit if the image is trusted", b.maxEntries)
	}
	return nil
}

func indexLayer(ctx context.Context, l Layer, budget *byteBudget, opts Options) (*layerIndex, error) {
	b, err := openBlob(ctx, l)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	diff, err := newDiffIDCheck(l.DiffID)
	if err != nil {
		return nil, err
	}
	b.Reader = diff.tee(b.Reader)
	ix := &layerIndex{
		live: map[string]int{}, goneAt: map[string]int{}, whiteouts: map[string]bool{}, opaque: map[string]bool{},
		implicit: map[string]bool{}, hasDesc: map[string]bool{}, markerDirs: map[string]bool{},
	}
	tr := tar.NewReader(b)
	for ctx.Err() == nil {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read tar: %w", tarErr(err))
		}
		if err = budget.take(hdr.Size); err != nil {
			return nil, err
		}
		r, err := classify(hdr)
		if err == nil {
			err = checkXattrs(hdr)
		}
		if err == nil && r.device && opts.Devices == DevicesReject {
			err = errors.New("device node in image; the device policy rejects devices")
		}
		if err == nil {
			err = ix.add(r)
		}
		if err != nil {
			return nil, fmt.Errorf("entry %q: %w", hdr.Name, err)
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := ix.checkLowerLinks(); err != nil {
		return nil, err
	}
	if err := b.drain(); err != nil {
		return nil, fmt.Errorf("read past the tar end: %w", tarErr(err))
	}
	if err := diff.check(); err != nil {
		return nil, err
	}
	return ix, nil
}

// tarErr makes a truncated stream say so.
func tarErr(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("blob is truncated: %w", err)
	}
	return err
}

// add applies one entry to the layer's own state, the way extracting it would.
func (ix *layerIndex) add(r record) error {
	pos := len(ix.records)
	if r.kind == kSkip {
		ix.records = append(ix.records, r)
		return nil
	}
	for _, a := range parents(r.name) {
		ix.implicit[a] = true
	}
	switch r.kind {
	case kWhiteout:
		ix.whiteouts[r.name] = true
		ix.markDirs(parents(r.name))
	case kOpaque:
		ix.opaque[r.name] = true
		ix.implicit[r.name] = true
		ix.markDirs(append(parents(r.name), r.name))
	case kLink:
		res, err := ix.resolveLink(r.target, pos)
		if err != nil {
			return err
		}
		r.res = res
		ix.place(r, pos)
	default:
		ix.place(r, pos)
	}
	ix.records = append(ix.records, r)
	return nil
}

func (ix *layerIndex) markDirs(dirs []string) {
	for _, d := range dirs {
		ix.markerDirs[d] = true
	}
}

// place makes r the live entry at its path: an implied parent directory replaces a non-directory,
// and a non-directory replaces a whole subtree (tar extraction semantics; the last entry wins).
func (ix *layerIndex) place(r record, pos int) {
	for _, a := range parents(r.name) {
		if j, ok := ix.live[a]; ok && ix.records[j].kind != kDir {
			delete(ix.live, a)
		}
		ix.hasDesc[a] = true
	}
	if r.kind != kDir {
		if _, ok := ix.goneAt[r.name]; !ok {
			ix.goneAt[r.name] = pos
		}
		if ix.hasDesc[r.name] {
			prefix := r.name + "/"
			for p := range ix.live {
				if strings.HasPrefix(p, prefix) {
					delete(ix.live, p)
				}
			}
		}
	}
	ix.live[r.name] = pos
}

// resolveLink finds the inode a hardlink at tar position pos shares: the target's live entry in this
// layer at that moment, or else whatever the lower layers have at the target path.
func (ix *layerIndex) resolveLink(target string, pos int) (linkRes, error) {
	if j, ok := ix.live[target]; ok {
		switch t := ix.records[j]; t.kind {
		case kDir:
			return linkRes{}, fmt.Errorf("hardlink to directory %q", target)
		case kLink:
			return t.res, nil
		}
		return linkRes{local: j}, nil
	}
	for _, a := range append(parents(target), target) {
		if at, ok := ix.goneAt[a]; ok && at < pos {
			return linkRes{}, fmt.Errorf("hardlink target %q was removed earlier in this layer", target)
		}
	}
	if ix.hasDesc[target] {
		return linkRes{}, fmt.Errorf("hardlink to %q, a directory this layer implies", target)
	}
	return linkRes{local: -1, lower: target}, nil
}

// checkLowerLinks runs once the whole layer is indexed, because whiteout and opaque markers act on
// the lower layers wherever they stand in the tar: a hardlink to a lower path they remove, or to a
// directory they imply, cannot be made.
func (ix *layerIndex) checkLowerLinks() error {
	for _, r := range ix.records {
		if r.kind != kLink || r.res.local >= 0 {
			continue
		}
		t := r.res.lower
		if ix.markerDirs[t] {
			return fmt.Errorf("entry %q: hardlink to %q, a directory this layer implies", r.name, t)
		}
		if ix.whiteouts[t] || ix.markedAbove(t) {
			return fmt.Errorf("entry %q: hardlink target %q is removed by a whiteout or opaque marker in this layer", r.name, t)
		}
	}
	return nil
}

// markedAbove reports a whiteout of an ancestor of p or an opaque ancestor.
func (ix *layerIndex) markedAbove(p string) bool {
	for _, a := range parents(p) {
		if ix.whiteouts[a] || ix.opaque[a] {
			return true
		}
	}
	return false
}

// hides reports whether this layer removes, for the layers below, whatever they have at p.
func (ix *layerIndex) hides(p string) bool {
	if _, ok := ix.goneAt[p]; ok || ix.whiteouts[p] {
		return true
	}
	for _, a := range parents(p) {
		if _, ok := ix.goneAt[a]; ok || ix.whiteouts[a] || ix.opaque[a] {
			return true
		}
	}
	return false
}

// finalDirs returns the directories this layer leaves implied once applied: the parents of its
// live entries, and the directories its markers imply unless one of its own non-directories
// replaced them (markers act first, so any non-directory at or above them does).
func (ix *layerIndex) finalDirs() map[string]bool {
	dirs := map[string]bool{}
	for p := range ix.live {
		for _, a := range parents(p) {
			dirs[a] = true
		}
	}
	for d := range ix.markerDirs {
		if !ix.replaced(d) {
			dirs[d] = true
		}
	}
	return dirs
}

func (ix *layerIndex) replaced(p string) bool {
	if _, ok := ix.goneAt[p]; ok {
		return true
	}
	for _, a := range parents(p) {
		if _, ok := ix.goneAt[a]; ok {
			return true
		}
	}
	return false
}
