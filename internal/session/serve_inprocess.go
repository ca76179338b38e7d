package session

import (
	"errors"
	"fmt"
	"os"

	"github.com/hpcctl/hpcctl/internal/mount"
)

// InProcessServer starts serving the squashfs at offset in img on the FUSE connection dev from
// goroutines of the calling process, on a duplicate of dev (internal/sqfuse.ServeImage). started
// delivers nil once the server has answered FUSE_INIT, or why it could not. hpcctl-image's holder
// has one; hpcctl links no squashfs reader (its decompressors' set-up would slow every start), so
// its holder serves with squashfuse_ll only.
type InProcessServer func(img *os.File, offset int64, dev *os.File) (srv Served, started <-chan error, err error)

// Served is a running in-process server.
type Served interface {
	// Done is closed when the connection has ended.
	Done() <-chan struct{}
	// Counts says how many requests of each kind it served.
	Counts() string
}

// inProcess needs no stopping: the connection ends with the holder's process.
type inProcess struct{ Served }

func (inProcess) Stop() {}

// serveInProcess mounts the image through a FUSE connection that the holder serves itself,
// reading the image through img for the holder's life. Mounting and serving in one process keeps
// every descriptor of the connection in the holder: when it dies, even by SIGKILL, the
// connection ends and containers get errors, not a hang.
func serveInProcess(a holderArgs, img *os.File, serve InProcessServer) (fuseServer, error) {
	if serve == nil {
		return nil, errors.New("this program cannot serve the image itself: set [session] fuse_server = \"squashfuse_ll\"")
	}
	if dev, ok := mount.OpenSyncFUSE(); ok {
		defer dev.Close()
		// The kernel holds the server's first read until mount(2) sends FUSE_INIT, and mount(2)
		// waits for the answer: serve first, mount next.
		srv, started, err := serve(img, a.Offset, dev)
		if err != nil {
			return nil, err
		}
		failed := make(chan struct{})
		go func() {
			if serr := <-started; serr != nil {
				close(failed)
			}
		}()
		if err := mountServed(dev, failed); err != nil {
			return nil, err
		}
		return inProcess{srv}, nil
	}
	dev, err := mountFUSE()
	if err != nil {
		return nil, err
	}
	defer dev.Close()
	srv, started, err := serve(img, a.Offset, dev)
	if err == nil {
		err = <-started
	}
	if err != nil {
		return nil, fmt.Errorf("serve the image with FUSE: %w", err)
	}
	return inProcess{srv}, nil
}
