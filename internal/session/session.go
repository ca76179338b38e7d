// Package session shares one image mount between the containers of one user, one image and one
// cgroup on a node: a holder process keeps the image's FUSE mount (served in-process by
// internal/sqfuse, or by squashfuse_ll), and each launch takes a detached copy of it (open_tree)
// over a unix socket and moves it into its own mount namespace.
package session

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/config"
)

// Options are one launch's session settings.
type Options struct {
	// Server is the FUSE server the site asked for ([session] fuse_server); "" is hpcctl's.
	Server config.FUSEServer
	// Companion is hpcctl-image, which the holder runs as when it serves the image itself (hpcctl
	// links no squashfs reader); without it the holder runs squashfuse_ll.
	Companion string
	// Squashfuse is the squashfuse_ll program the holder runs when it does not serve the image
	// itself.
	Squashfuse string
	// IdleTimeout is how long a holder lives after its last container ended.
	IdleTimeout time.Duration
	// Dir overrides the rendezvous directory (tests); "" uses RendezvousDir.
	Dir    string
	Logger *slog.Logger
}

// serverChoice is the FUSE server a holder serves its image with, as Options.server decided it
// for a launch; the holder gets it on its command line.
type serverChoice struct {
	Kind config.FUSEServer
	// Squashfuse is the squashfuse_ll program for config.FUSEServerSquashfuse, "" otherwise.
	Squashfuse string
}

// server decides the FUSE server: squashfuse_ll when the site asked for it, or when there is no
// hpcctl-image to serve the image in the holder.
func (o Options) server() serverChoice {
	if o.Server == config.FUSEServerSquashfuse || o.Companion == "" {
		return serverChoice{Kind: config.FUSEServerSquashfuse, Squashfuse: o.Squashfuse}
	}
	return serverChoice{Kind: config.FUSEServerHpcctl}
}

// key is the server's part of the session key: launches that would use different servers (hpcctl's,
// or two squashfuse_ll programs) never share a session. The kind comes first and has no space, so
// no path can make one choice's key another's.
func (s serverChoice) key() string { return string(s.Kind) + " " + s.Squashfuse }

// check refuses a choice a holder cannot serve with; a holder checks its command line with it.
func (s serverChoice) check() error {
	if _, err := config.ParseFUSEServer(string(s.Kind)); err != nil {
		return fmt.Errorf("FUSE server: %w", err)
	}
	if s.Kind == config.FUSEServerSquashfuse && s.Squashfuse == "" {
		return errors.New("FUSE server squashfuse_ll: no squashfuse_ll program")
	}
	if s.Kind == config.FUSEServerHpcctl && s.Squashfuse != "" {
		return fmt.Errorf("FUSE server hpcctl runs no squashfuse_ll program, got %q", s.Squashfuse)
	}
	return nil
}

// holderProgram is the binary a holder with server s runs as: hpcctl-image to serve the image
// itself, else this one.
func (o Options) holderProgram(s serverChoice) string {
	if s.Kind == config.FUSEServerHpcctl {
		return o.Companion
	}
	return "/proc/self/exe"
}

// Lease is one container's use of a session: Mount is a detached mount of the image (from
// open_tree), and the session stays while the lease is open.
type Lease struct {
	Mount *os.File
	// Joined is true when the session existed before this launch.
	Joined bool
	conn   *net.UnixConn
}

// Close ends the lease: the holder counts the container as gone.
func (l *Lease) Close() {
	if l == nil {
		return
	}
	if l.Mount != nil {
		l.Mount.Close()
	}
	l.conn.Close()
}

// DirError is a rendezvous directory hpcctl refuses to use; the launch goes on without a session
// and says why.
type DirError struct{ Dir string }

func (e *DirError) Error() string {
	return fmt.Sprintf("session directory %s is not a directory of yours with mode 0700: remove it, or run with --no-session", e.Dir)
}

// RendezvousDir is the user's directory for session sockets: $XDG_RUNTIME_DIR/hpcctl when
// XDG_RUNTIME_DIR is the user's own, else /tmp/hpcctl-UID. It is made 0700 and refused when
// another user owns it or others may enter it: a socket there is trusted to be the user's holder.
func RendezvousDir() (string, error) {
	uid := os.Getuid()
	if x := os.Getenv("XDG_RUNTIME_DIR"); x != "" && ownedPrivate(x, uid) == nil {
		return ensureDir(filepath.Join(x, "hpcctl"), uid)
	}
	return ensureDir(filepath.Join(os.TempDir(), "hpcctl-"+strconv.Itoa(uid)), uid)
}

func ensureDir(dir string, uid int) (string, error) {
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, os.ErrExist) {
		return "", fmt.Errorf("session directory %s: %w", dir, err)
	}
	if err := ownedPrivate(dir, uid); err != nil {
		return "", err
	}
	return dir, nil
}

// ownedPrivate checks that dir is a directory (not a link) owned by uid with no rights for others.
func ownedPrivate(dir string, uid int) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("session directory %s: %w", dir, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFDIR || int(st.Uid) != uid || st.Mode&0o077 != 0 {
		return &DirError{Dir: dir}
	}
	return nil
}

// Identity is what makes two launches' images the same: the file (device, inode, size,
// modification time) and its squashfs superblock, never its name. A file replaced or rewritten
// in place gets another identity, so the next launch starts a new session.
type Identity struct {
	Dev, Ino   uint64
	Size       int64
	MtimeNsec  int64
	Superblock [96]byte
}

// IdentityOf reads the identity of the open image whose squashfs starts at offset.
func IdentityOf(img *os.File, offset int64) (Identity, error) {
	var id Identity
	var st unix.Stat_t
	if err := unix.Fstat(int(img.Fd()), &st); err != nil {
		return id, fmt.Errorf("image identity: %w", err)
	}
	id.Dev, id.Ino, id.Size, id.MtimeNsec = st.Dev, st.Ino, st.Size, st.Mtim.Nano()
	if _, err := img.ReadAt(id.Superblock[:], offset); err != nil && !errors.Is(err, io.EOF) {
		return id, fmt.Errorf("image identity: read the squashfs superblock: %w", err)
	}
	return id, nil
}

// sameFile reports whether name in the directory open as dir still names the file of id (the
// holder's check that the image was not replaced or changed).
func (id Identity) sameFile(dir int, name string) bool {
	var st unix.Stat_t
	if err := unix.Fstatat(dir, name, &st, 0); err != nil {
		return false
	}
	return st.Dev == id.Dev && st.Ino == id.Ino && st.Size == id.Size && st.Mtim.Nano() == id.MtimeNsec
}

// Key names a session: the user, the image identity, the squashfs offset, the FUSE server
// (serverChoice.key) and the launcher's cgroup. The cgroup is in it because a holder lives in the cgroup of the launch that started
// it: under Slurm's proctrack/cgroup it dies with that job, and another job's containers must
// not depend on it.
func Key(uid int, id Identity, offset int64, server, cgroup string) string {
	h := sha256.New()
	fmt.Fprintf(h, "%d\n%d %d %d %d\n%x\n%d\n%s\n%s", uid, id.Dev, id.Ino, id.Size, id.MtimeNsec, id.Superblock, offset, server, cgroup)
	return hex.EncodeToString(h.Sum(nil))[:32]
}

// ownCgroup is the calling process's cgroup line(s) from /proc/self/cgroup.
func ownCgroup() string {
	b, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	return string(b)
}

// peerUID is the uid of the process at the other end of a unix socket (SO_PEERCRED, which the
// kernel fills in at connect and translates into the reader's user namespace).
func peerUID(c *net.UnixConn) (int, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return -1, err
	}
	var cred *unix.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return -1, err
	}
	if cerr != nil {
		return -1, cerr
	}
	return int(cred.Uid), nil
}
