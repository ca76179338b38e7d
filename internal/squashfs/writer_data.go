package squashfs

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"
	"sync"
)

// fileData is where a regular file's content went. The pipeline's output goroutine fills start
// and sizes as it writes; nothing else reads them before Close has drained the pipeline.
type fileData struct {
	size    int64
	start   uint64   // first data block, relative to the image start
	sizes   []uint32 // block size words: 0 for a hole, dataUncompressed flag for stored blocks
	frag    uint32   // fragment block index, or noFragment
	fragOff uint32
	dup     *fileData // set when the content is an earlier file's: use its blocks and fragment
}

// data returns the fileData that holds the blocks: the original for a duplicate.
func (f *fileData) data() *fileData {
	if f.dup != nil {
		return f.dup
	}
	return f
}

// fragmentRecord is one fragment table entry.
type fragmentRecord struct {
	start uint64
	size  uint32
}

type jobKind uint8

const (
	jobData jobKind = iota
	jobFragment
	jobRewind // rewind the output over the blocks of file, a duplicate
)

// job is one block through the pipeline: compressed by any worker, written in submission order.
type job struct {
	kind  jobKind
	in    []byte // uncompressed block, from the pool
	out   []byte
	store bool // write in as is: compression did not shrink it
	hole  bool // all zeros: nothing written, size word 0
	file  *fileData
	index int
	done  chan struct{}
	err   error
}

// pipeline compresses blocks on several goroutines and writes them in order, so the image does
// not depend on the number of workers. Memory stays bounded by the channel capacities.
type pipeline struct {
	w       *Writer
	work    chan *job
	order   chan *job
	bufs    sync.Pool        // uncompressed blocks
	outs    sync.Pool        // compressed blocks
	frags   []fragmentRecord // owned by the output goroutine until wait returns
	wg      sync.WaitGroup
	outDone chan struct{}
	mu      sync.Mutex
	err     error
}

// queuedBytes bounds the uncompressed blocks waiting in the pipeline. A queue this deep lets the
// reader run ahead while the workers compress a large file, so they still have blocks to work on
// while it walks a stretch of small files that only feed fragments (issue #2: with 2*workers+2
// blocks the workers idled for 0.2 s each of a 1.5 s write).
const queuedBytes = 2 << 20

// heldBytes bounds the blocks of a possible duplicate that are held back until its hash is known.
const heldBytes = 16 << 20

func startPipeline(w *Writer, workers int) (*pipeline, error) {
	bs := int(w.opts.BlockSize)
	depth := max(2*workers+2, queuedBytes/bs)
	p := &pipeline{w: w, work: make(chan *job, depth), order: make(chan *job, depth), outDone: make(chan struct{})}
	p.bufs.New = func() any { b := make([]byte, bs); return &b }
	p.outs.New = func() any { b := make([]byte, 0, bs+bs/16+64); return &b }
	for range workers {
		c, err := w.blockCodec.newCompressor()
		var cf compressor
		if err == nil {
			cf, err = w.blockCodec.newFragmentCompressor(c)
		}
		if err != nil {
			close(p.work)
			close(p.order)
			return nil, err
		}
		p.wg.Add(1)
		go p.compress(c, cf)
	}
	go p.output()
	return p, nil
}

func (p *pipeline) getBuf() []byte  { return *(p.bufs.Get().(*[]byte)) }
func (p *pipeline) putBuf(b []byte) { b = b[:cap(b)]; p.bufs.Put(&b) }
func (p *pipeline) getOut() []byte  { return (*(p.outs.Get().(*[]byte)))[:0] }
func (p *pipeline) putOut(b []byte) { p.outs.Put(&b) }

func (p *pipeline) setErr(err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.err == nil {
		p.err = err
	}
}

func (p *pipeline) error() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// submit queues a job; the order channel takes it first so that the output goroutine knows
// which job comes next before any worker finishes it.
func (p *pipeline) submit(j *job) error {
	if err := p.error(); err != nil {
		return err
	}
	if j.kind == jobRewind {
		j.done = closedChan
		p.order <- j
		return nil
	}
	j.done = make(chan struct{})
	p.order <- j
	p.work <- j
	return nil
}

var closedChan = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// compress runs one worker: data blocks through c, fragment blocks through cf.
func (p *pipeline) compress(c, cf compressor) {
	defer p.wg.Done()
	for j := range p.work {
		if j.kind == jobData && isZeroBlock(j.in) {
			j.hole = true
			close(j.done)
			continue
		}
		comp := c
		if j.kind == jobFragment {
			comp = cf
		}
		out, err := comp.compress(p.getOut(), j.in)
		switch {
		case err != nil:
			j.err = err
		case len(out) >= len(j.in):
			j.store = true
			p.putOut(out)
		default:
			j.out = out // back to the pool once written
		}
		close(j.done)
	}
}

// output writes finished jobs in submission order and records where each block went.
func (p *pipeline) output() {
	defer close(p.outDone)
	for j := range p.order {
		<-j.done
		if j.err != nil {
			p.setErr(fmt.Errorf("squashfs: compress block: %w", j.err))
		}
		if p.error() == nil {
			if err := p.place(j); err != nil {
				p.setErr(err)
			}
		}
		if j.in != nil {
			p.putBuf(j.in)
		}
		if j.out != nil {
			p.putOut(j.out)
		}
	}
}

// place writes one job's bytes at the output position.
func (p *pipeline) place(j *job) error {
	w := p.w
	switch j.kind {
	case jobRewind:
		return w.seek(j.file.start)
	case jobData:
		if j.index == 0 {
			j.file.start = w.pos
		}
		if j.hole {
			j.file.sizes[j.index] = 0
			return nil
		}
		word, b := sizeWord(j)
		j.file.sizes[j.index] = word
		return w.write(b)
	case jobFragment:
		word, b := sizeWord(j)
		p.frags = append(p.frags, fragmentRecord{start: w.pos, size: word})
		return w.write(b)
	}
	return fmt.Errorf("squashfs: unknown job kind %d", j.kind)
}

// sizeWord is a block's on-disk size word and the bytes to write.
func sizeWord(j *job) (uint32, []byte) {
	if j.store {
		return uint32(len(j.in)) | dataUncompressed, j.in
	}
	return uint32(len(j.out)), j.out
}

// wait closes the pipeline and returns once every block is written.
func (p *pipeline) wait() error {
	close(p.work)
	close(p.order)
	p.wg.Wait()
	<-p.outDone
	return p.error()
}

func isZeroBlock(b []byte) bool {
	for len(b) >= 8 {
		if b[0]|b[1]|b[2]|b[3]|b[4]|b[5]|b[6]|b[7] != 0 {
			return false
		}
		b = b[8:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// addFile streams a regular file's body into data blocks and its tail into a fragment, and
// replaces the copy by a reference when an earlier file had the same content.
func (w *Writer) addFile(e Entry, body io.Reader) (*fileData, error) {
	bs := int64(w.opts.BlockSize)
	f := &fileData{size: e.Size, frag: noFragment}
	nblocks, tail := e.Size/bs, e.Size%bs
	if w.opts.NoFragments && tail > 0 {
		nblocks, tail = nblocks+1, 0
	}
	f.sizes = make([]uint32, nblocks)
	var h hash.Hash
	if !w.opts.NoDuplicates && !e.UniqueSize {
		h = sha256.New()
	}
	// A file that may be a duplicate and is small enough keeps its blocks until its hash is
	// known, so that a duplicate is never compressed; larger ones are compressed as they are read
	// and their blocks taken back afterwards (the memory held stays bounded).
	var held []*job
	hold := h != nil && nblocks*bs <= heldBytes
	for i := range nblocks {
		n := min(bs, e.Size-i*bs)
		buf := w.pipe.getBuf()[:n]
		if err := readBody(body, buf, i*bs, e.Size); err != nil {
			w.pipe.putBuf(buf)
			w.release(held)
			return nil, err
		}
		if h != nil {
			h.Write(buf)
		}
		j := &job{kind: jobData, in: buf, file: f, index: int(i)}
		if hold {
			held = append(held, j)
			continue
		}
		if err := w.pipe.submit(j); err != nil {
			return nil, err
		}
	}
	w.tail = slices.Grow(w.tail[:0], int(tail))[:tail]
	if tail > 0 {
		if err := readBody(body, w.tail, nblocks*bs, e.Size); err != nil {
			w.release(held)
			return nil, err
		}
		if h != nil {
			h.Write(w.tail)
		}
	}
	if err := checkEOF(body, e.Size); err != nil {
		w.release(held)
		return nil, err
	}
	w.stats.BytesIn += uint64(e.Size)
	if h != nil && e.Size > 0 {
		key := dupKey{size: e.Size}
		h.Sum(key.sum[:0])
		if orig, ok := w.dups[key]; ok {
			if hold {
				w.release(held)
				return f, w.useDuplicate(f, orig, false)
			}
			return f, w.useDuplicate(f, orig, true)
		}
		w.dups[key] = f
	}
	for _, j := range held {
		if err := w.pipe.submit(j); err != nil {
			return nil, err
		}
	}
	if tail > 0 {
		return f, w.addFragment(f, w.tail)
	}
	return f, nil
}

// useDuplicate points f at orig's blocks and, when f's own were written, takes their space back.
func (w *Writer) useDuplicate(f, orig *fileData, written bool) error {
	f.dup = orig
	w.stats.Duplicates++
	w.stats.DuplicateBytes += uint64(f.size)
	if len(f.sizes) == 0 || !written {
		return nil
	}
	return w.pipe.submit(&job{kind: jobRewind, file: f})
}

// release returns the buffers of blocks that were held and will not be written.
func (w *Writer) release(held []*job) {
	for _, j := range held {
		w.pipe.putBuf(j.in)
	}
}

// readBody fills buf from the body at offset off of a size-byte file.
func readBody(body io.Reader, buf []byte, off, size int64) error {
	n, err := io.ReadFull(body, buf)
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
		return fmt.Errorf("body ended after %d of %d bytes", off+int64(n), size)
	}
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	return nil
}

// checkEOF makes sure the body holds no more than size bytes.
func checkEOF(body io.Reader, size int64) error {
	if body == nil {
		return nil
	}
	var one [1]byte
	n, err := io.ReadFull(body, one[:])
	if n > 0 {
		return fmt.Errorf("body is longer than its size %d", size)
	}
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read body: %w", err)
	}
	return nil
}

// addFragment packs a tail into the current fragment block, starting a new one when it is full.
func (w *Writer) addFragment(f *fileData, tail []byte) error {
	if w.frag != nil && len(w.frag)+len(tail) > int(w.opts.BlockSize) {
		if err := w.flushFragment(); err != nil {
			return err
		}
	}
	if w.frag == nil {
		w.frag = w.pipe.getBuf()[:0]
	}
	f.frag = w.stats.Fragments
	f.fragOff = uint32(len(w.frag))
	w.frag = append(w.frag, tail...)
	return nil
}

// flushFragment sends the fragment block being filled to the pipeline.
func (w *Writer) flushFragment() error {
	if len(w.frag) == 0 {
		return nil
	}
	j := &job{kind: jobFragment, in: w.frag}
	w.frag = nil
	w.stats.Fragments++
	return w.pipe.submit(j)
}
