package sqfuse

import (
	"fmt"
	"io"
	"log"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/session"
	"github.com/hpcctl/hpcctl/internal/squashfs"
)

// Server is a running in-process server of one FUSE connection.
type Server struct {
	fs   *FS
	done chan struct{}
}

// ServeImage serves the squashfs at offset in img on the FUSE connection dev: a /dev/fuse
// descriptor that the caller mounts, or has mounted, itself. It is a session.InProcessServer:
// the session holder of hpcctl-image serves its image with it.
//
// The server works on its own duplicate of dev, so the caller closes dev once the mount is made,
// leaving the server's the last copy: when the process dies, the connection ends and its users
// get errors, not a hang. started delivers nil once the server has answered FUSE_INIT, or why it
// could not. When dev was opened with FUSE_DEV_IOC_SYNC_INIT (mount.OpenSyncFUSE), the kernel
// holds the server's first read until mount(2) sends FUSE_INIT, and mount(2) waits for the
// answer: call ServeImage first, then mount. Otherwise mount first.
func ServeImage(img *os.File, offset int64, dev *os.File) (srv session.Served, started <-chan error, err error) {
	st, err := img.Stat()
	if err != nil {
		return nil, nil, fmt.Errorf("image: %w", err)
	}
	if offset < 0 || offset > st.Size() {
		return nil, nil, fmt.Errorf("image: squashfs offset %d outside its %d bytes", offset, st.Size())
	}
	size := st.Size() - offset
	r, err := squashfs.Open(io.NewSectionReader(img, offset, size), size)
	if err != nil {
		return nil, nil, fmt.Errorf("image: %w", err)
	}
	s, ch, err := Start(New(r, slog.New(slog.DiscardHandler)), dev)
	if err != nil {
		return nil, nil, err
	}
	return s, ch, nil
}

// Start serves f on the FUSE connection dev, as ServeImage does.
func Start(f *FS, dev *os.File) (*Server, <-chan error, error) {
	fd, err := unix.FcntlInt(dev.Fd(), unix.F_DUPFD_CLOEXEC, 3)
	if err != nil {
		return nil, nil, fmt.Errorf("duplicate the FUSE descriptor: %w", err)
	}
	s := &Server{fs: f, done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		srv, err := fuse.NewServer(f, "/dev/fd/"+strconv.Itoa(fd), f.options())
		if err != nil {
			unix.Close(fd)
			started <- fmt.Errorf("FUSE_INIT: %w", err)
			close(s.done)
			return
		}
		started <- nil
		srv.Serve()
		close(s.done)
	}()
	return s, started, nil
}

// options are the mount's knobs: cached symlinks, and a request that panics answers EIO (logged)
// instead of ending the server. GetXAttr answers ENOSYS itself without an xattr table, so that
// the request is counted.
func (f *FS) options() *fuse.MountOptions {
	return &fuse.MountOptions{
		EnableSymlinkCaching: true,
		// The image never changes: nothing for the kernel to invalidate on its own.
		ExplicitDataCacheControl: true,
		Logger:                   log.New(io.Discard, "", 0),
		PanicHandler: func(v any) fuse.Status {
			f.log.Debug("squashfs FUSE request panicked", "panic", v)
			return fuse.EIO
		},
	}
}

// Done is closed when the connection has ended (aborted, or its last mount gone).
func (s *Server) Done() <-chan struct{} { return s.done }

// Counts is how many requests of each kind the server has had, for a debug log line.
func (s *Server) Counts() string { return s.fs.counts.String() }

// op is a request kind the server counts.
type op int

const (
	opLookup op = iota
	opForget
	opGetattr
	opOpen
	opRelease
	opFlush
	opOpendir
	opReleasedir
	opRead
	opReaddir
	opReaddirplus
	opReadlink
	opGetxattr
	opListxattr
	opIoctl
	opStatfs
	opWrite
	opAccess
	opLseek
	opLock
	opFsync
	opStatx
	numOps
)

var opNames = [numOps]string{"LOOKUP", "FORGET", "GETATTR", "OPEN", "RELEASE", "FLUSH", "OPENDIR", "RELEASEDIR",
	"READ", "READDIR", "READDIRPLUS", "READLINK", "GETXATTR", "LISTXATTR", "IOCTL", "STATFS", "WRITES",
	"ACCESS", "LSEEK", "LOCKS", "FSYNC", "STATX"}

type counters [numOps]atomic.Uint64

func (c *counters) add(o op) { c[o].Add(1) }

// String lists the non-zero counts, "LOOKUP=12 READ=40".
func (c *counters) String() string {
	var b strings.Builder
	for i := range c {
		if n := c[i].Load(); n > 0 {
			fmt.Fprintf(&b, "%s%s=%d", map[bool]string{true: " "}[b.Len() > 0], opNames[i], n)
		}
	}
	return b.String()
}

var (
	_ fuse.RawFileSystem      = (*FS)(nil)
	_ session.InProcessServer = ServeImage
)
