package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// maxSmallFile bounds what hpcctl reads of a configuration or environment file: a real one is a
// few kilobytes, and `--config /dev/zero` read without a bound ran a plain user's hpcctl out of
// memory.
const maxSmallFile = 1 << 20

// openUserFile opens a file the user named (the image, a configuration or environment file)
// without blocking and checks what it is. O_NONBLOCK makes open(2) return at once on a FIFO that
// has no writer, where a plain open waits for ever (and ignores SIGTERM, the wait being in the
// kernel); the file must then be a regular file, or a directory when dirOK. want says what was
// expected, for the error.
func openUserFile(name, what, want string, dirOK bool) (*os.File, error) {
	f, err := os.OpenFile(name, os.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return nil, fmt.Errorf("%s %s: %w", what, name, pe.Err)
		}
		return nil, fmt.Errorf("%s %s: %w", what, name, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("%s %s: %w", what, name, err)
	}
	if !st.Mode().IsRegular() && !(dirOK && st.IsDir()) {
		f.Close()
		return nil, fmt.Errorf("%s %s is %s, not %s: give the path of one", what, name, fileKind(st.Mode()), want)
	}
	// Reads of a regular file never block on O_NONBLOCK's account, but the descriptor goes on to
	// the loop device, squashfuse_ll and hpcctl-image: give it back its ordinary mode.
	if err := unix.SetNonblock(int(f.Fd()), false); err != nil {
		f.Close()
		return nil, fmt.Errorf("%s %s: %w", what, name, err)
	}
	return f, nil
}

// readUserFile reads a small regular file the user named, at most limit bytes.
func readUserFile(name, what string, limit int64) ([]byte, error) {
	f, err := openUserFile(name, what, "a regular file", false)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s %s: %w", what, name, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s %s is larger than %d KiB: it cannot be a %s hpcctl reads; check the path", what, name, limit>>10, what)
	}
	return b, nil
}

// fileKind names the type of a file that is not a regular file.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeSocket != 0:
		return "a socket"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSymlink != 0:
		return "a symbolic link"
	}
	return "not a regular file"
}
