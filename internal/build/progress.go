package build

import (
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/term"
)

// progress reports bytes written into the image and the rate, on a terminal only.
type progress struct {
	out   io.Writer
	label string
	bytes atomic.Int64
	start time.Time
	stop  chan struct{}
	done  chan struct{}
}

// startProgress returns nil (no reports) unless out is a terminal.
func startProgress(out io.Writer, label string) *progress {
	f, ok := out.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	p := &progress{out: out, label: label, start: time.Now(), stop: make(chan struct{}), done: make(chan struct{})}
	go p.loop()
	return p
}

func (p *progress) add(n int64) {
	if p != nil {
		p.bytes.Add(n)
	}
}

func (p *progress) loop() {
	defer close(p.done)
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-p.stop:
			p.print("\n")
			return
		case <-t.C:
			p.print("")
		}
	}
}

func (p *progress) print(end string) {
	n := p.bytes.Load()
	secs := time.Since(p.start).Seconds()
	rate := float64(n) / 1e6 / max(secs, 0.001)
	fmt.Fprintf(p.out, "\r%s: %.1f MB in %.1fs (%.0f MB/s)%s", p.label, float64(n)/1e6, secs, rate, end)
}

func (p *progress) finish() {
	if p != nil {
		close(p.stop)
		<-p.done
	}
}

// countingReader feeds the progress counter as a file's content is read.
type countingReader struct {
	r io.Reader
	p *progress
}

func (c countingReader) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	c.p.add(int64(n))
	return n, err
}
