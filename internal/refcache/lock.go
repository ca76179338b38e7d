package refcache

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// Every pull, build and start from the cache holds the use lock shared while it writes or opens
// cache files; `cache clean` holds it exclusively, so that it never removes a blob a build is about
// to read or a SIF a launch is about to open. A running container holds no lock: its image is
// open already, and removing the file does not disturb it.

// Use takes the use lock shared. release drops it.
func Use(ctx context.Context, root string) (release func(), err error) {
	return lock(ctx, root, unix.LOCK_SH, nil)
}

// Exclusive takes the use lock exclusively, calling waiting once if it must wait for a pull or
// build to finish.
func Exclusive(ctx context.Context, root string, waiting func()) (release func(), err error) {
	return lock(ctx, root, unix.LOCK_EX, waiting)
}

// lock polls rather than blocks so that ctx (SIGINT, SIGTERM) can end the wait.
func lock(ctx context.Context, root string, how int, waiting func()) (func(), error) {
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("create the image cache %s: %w: set $%s to a writable directory", root, err, DirEnv)
	}
	path := filepath.Join(root, "use.lock")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open cache lock %s: %w", path, err)
	}
	for waited := false; ; waited = true {
		err = unix.Flock(int(f.Fd()), how|unix.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing the descriptor drops the flock
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock cache %s: %w", path, err)
		}
		if !waited && waiting != nil {
			waiting()
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("wait for cache lock %s: %w", path, context.Cause(ctx))
		case <-time.After(50 * time.Millisecond):
		}
	}
}
