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
	// goneAt maps a path to the first tar position that removes what lower layers have there and
	// below: a whiteout (position -1, since whiteouts apply to lower layers regardless of order) or
	// any non-directory entry (extracting it replaces whatever was there).
	goneAt map[string]int
	// opaque holds directories whose lower contents this layer hides.
	opaque map[string]bool
	// implicit holds the directories this layer implies as parents of its entries.
	implicit map[string]bool
	// hasDesc holds paths with at least one entry below them, so a file replacing a directory within
	// the layer only scans the live map when there is something to remove.
	hasDesc map[string]bool
	bytes   int64
}

// indexAll indexes every layer, opts.Parallel at a time, and stops at the first error.
func indexAll(ctx context.Context, layers []Layer, opts Options) ([]*layerIndex, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	idx := make([]*layerIndex, len(layers))
	errs := make([]error, len(layers))
	var budget byteBudget
	budget.max = opts.MaxBytes
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

// byteBudget is the MaxBytes guard shared by the layers being indexed.
type byteBudget struct {
	mu    sync.Mutex
	max   int64
	total int64
}

func (b *byteBudget) take(n int64) error {
	if b.max <= 0 {
		return nil
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.total += n
	if b.total > b.max {
		return fmt.Errorf("image content exceeds the limit of %d bytes; raise the limit if the image is trusted", b.max)
	}
	return nil
}

func indexLayer(ctx context.Context, l Layer, budget *byteBudget, opts Options) (*layerIndex, error) {
	b, err := openBlob(ctx, l)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	ix := &layerIndex{
		live: map[string]int{}, goneAt: map[string]int{}, opaque: map[string]bool{},
		implicit: map[string]bool{}, hasDesc: map[string]bool{},
	}
	tr := tar.NewReader(b)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read tar: %w", tarErr(err))
		}
		if err := budget.take(hdr.Size); err != nil {
			return nil, err
		}
		ix.bytes += hdr.Size
		r, err := classify(hdr)
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
	if err := b.drain(); err != nil {
		return nil, fmt.Errorf("read past the tar end: %w", tarErr(err))
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
		ix.goneAt[r.name] = -1
	case kOpaque:
		ix.opaque[r.name] = true
		ix.implicit[r.name] = true
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
	for _, a := range parents(target) {
		if ix.opaque[a] {
			return linkRes{}, fmt.Errorf("hardlink target %q is hidden by an opaque directory in this layer", target)
		}
	}
	return linkRes{local: -1, lower: target}, nil
}

// hides reports whether this layer removes, for the layers below, whatever they have at p.
func (ix *layerIndex) hides(p string) bool {
	if _, ok := ix.goneAt[p]; ok {
		return true
	}
	for _, a := range parents(p) {
		if _, ok := ix.goneAt[a]; ok || ix.opaque[a] {
			return true
		}
	}
	return false
}
