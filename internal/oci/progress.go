package oci

import (
	"bytes"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	"go.podman.io/image/v5/types"
	"golang.org/x/term"
)

const progressInterval = 200 * time.Millisecond

// progress feeds containers/image's copy: a terminal gets its per-blob bars (bytes and rate);
// otherwise its one-line-per-blob report goes to the debug log. The event channel is always read,
// to count what was fetched and what was reused.
type progress struct {
	report io.Writer
	events chan types.ProgressProperties
	wg     sync.WaitGroup
	once   sync.Once
	stats  PullStats
}

func newProgress(opts SourceOptions) *progress {
	p := &progress{events: make(chan types.ProgressProperties)}
	if isTerminal(opts.Progress) {
		p.report = opts.Progress
	} else {
		p.report = &lineLogger{log: opts.logger()}
	}
	p.wg.Add(1)
	go p.count()
	return p
}

func (p *progress) count() {
	defer p.wg.Done()
	for ev := range p.events {
		switch ev.Event {
		case types.ProgressEventDone:
			p.stats.BlobsFetched++
			p.stats.BytesFetched += int64(ev.Offset)
		case types.ProgressEventSkipped:
			p.stats.BlobsReused++
		}
	}
}

// close stops counting and returns the totals; copy.Image sends events synchronously, so once it
// has returned no more can come.
func (p *progress) close() PullStats {
	p.once.Do(func() {
		close(p.events)
		p.wg.Wait()
	})
	return p.stats
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// lineLogger logs each complete line written to it at debug level.
// copy writes to it from its parallel layer copies, hence the mutex.
type lineLogger struct {
	log *slog.Logger
	mu  sync.Mutex
	buf []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		if line := bytes.TrimSpace(l.buf[:i]); len(line) > 0 {
			l.log.Debug(string(line))
		}
		l.buf = l.buf[i+1:]
	}
}
