// Package child is hpcctl's process inside the container's namespaces: it mounts the image and
// the Spec's mounts in order, pivots into the new root, drops privileges and execs the program,
// or stays as PID 1 to reap and forward signals when the container has its own PID namespace.
package child

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// SetupArg is the hidden first argument that routes a re-executed hpcctl to the setup stage, this
// package (cmd/hpcctl).
const SetupArg = "__hpcctl_child__"

// Descriptors the parent passes (exec.Cmd.ExtraFiles start at 3).
const (
	// SpecFD carries the Spec as JSON, closed by the parent after writing.
	SpecFD = 3
	// SocketFD is a SOCK_SEQPACKET socket to the parent: the parent sends the image, the child
	// sends messages, and the parent sees it close (close-on-exec) when the program has been exec'd.
	SocketFD = 4
	// ExitFD is a pipe to the parent on which the container's init writes the program's wait
	// status (4 bytes, native order) before it exits: PID 1 of a namespace cannot die of the
	// program's signal, so its own exit status could only say 128+N, which a program may also
	// exit with. Without an init the pipe closes unwritten, as the program is exec'd.
	ExitFD = 5
)

// Message kinds, the first byte of each packet on SocketFD.
const (
	// MsgFUSE carries the /dev/fuse descriptor (SCM_RIGHTS) for the parent to hand to squashfuse_ll;
	// its text, when not empty, numbers the extra image (spec.Spec.Images, from 1) to serve.
	MsgFUSE byte = 'F'
	// MsgImage, from the parent, carries the image file (SCM_RIGHTS), opened with the user's own
	// rights; the parent may start the child before it has opened the image. One more follows for
	// each of the Spec's Images, in order.
	MsgImage byte = 'I'
	// MsgMount, from the parent before MsgImage, carries a detached mount of the image from a
	// shared image session (open_tree): the child moves it into place instead of mounting.
	MsgMount byte = 'M'
	// MsgError carries the exit status (one byte) and the one-line reason the container could not
	// start.
	MsgError byte = 'E'
	// MsgLog carries one Step as JSON; the child sends it only when the Spec asks for debug
	// logging (hpcctl -d), and the parent relays it to its logger.
	MsgLog byte = 'L'
)

// MaxPacket is the largest packet either side sends or reads on SocketFD. The kernel bounds a
// SOCK_SEQPACKET message by the socket's send buffer (about 200 KiB by default), so 64 KiB always
// fits; a longer message is cut by the sender, which says so at its end.
const MaxPacket = 64 << 10

// cutNote ends a packet that was cut to MaxPacket.
const cutNote = " [cut: longer than 64 KiB]"

// sendPacket sends one message of the given kind, cut to MaxPacket with a note saying so.
func sendPacket(sock int, kind byte, payload []byte) error {
	msg := append([]byte{kind}, payload...)
	if len(msg) > MaxPacket {
		msg = append(msg[:MaxPacket-len(cutNote)], cutNote...)
	}
	_, err := unix.Write(sock, msg)
	return err
}

// SendFD sends a message with one descriptor attached.
func SendFD(sock int, kind byte, fd int) error {
	return unix.Sendmsg(sock, []byte{kind}, unix.UnixRights(fd), nil, 0)
}

// SendFDText sends a message with text and one descriptor attached.
func SendFDText(sock int, kind byte, text string, fd int) error {
	return unix.Sendmsg(sock, append([]byte{kind}, text...), unix.UnixRights(fd), nil, 0)
}

// Message is one packet received from the child.
type Message struct {
	Kind   byte
	Text   string
	Status int      // MsgError only
	File   *os.File // MsgFUSE, MsgMount and MsgImage only
}

// Receive reads one message; io.EOF-like end (nil, nil) means the child exec'd or exited.
func Receive(sock int) (*Message, error) {
	buf := make([]byte, MaxPacket)
	oob := make([]byte, unix.CmsgSpace(4))
	for {
		n, oobn, flags, _, err := unix.Recvmsg(sock, buf, oob, unix.MSG_CMSG_CLOEXEC)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read from the container's setup process: %w", err)
		}
		if n == 0 {
			return nil, nil
		}
		m := &Message{Kind: buf[0], Text: string(buf[1:n])}
		if m.Kind == MsgError && n > 1 {
			m.Status, m.Text = int(buf[1]), string(buf[2:n])
		}
		if flags&unix.MSG_TRUNC != 0 {
			// Only a sender that does not cut its own packets (sendPacket) gets here.
			m.Text += cutNote
		}
		if oobn > 0 {
			fd, err := parseRights(oob[:oobn])
			if err != nil {
				return nil, err
			}
			m.File = os.NewFile(uintptr(fd), fileName(m.Kind))
		}
		return m, nil
	}
}

// fileName names a received descriptor for error messages.
func fileName(kind byte) string {
	switch kind {
	case MsgFUSE:
		return "/dev/fuse"
	case MsgMount:
		return "session mount"
	}
	return "image"
}

func parseRights(oob []byte) (int, error) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil || len(msgs) != 1 {
		return -1, fmt.Errorf("bad descriptor message from the container's setup process: %v", err)
	}
	fds, err := unix.ParseUnixRights(&msgs[0])
	if err != nil || len(fds) != 1 {
		return -1, fmt.Errorf("bad descriptor message from the container's setup process: %v", err)
	}
	return fds[0], nil
}

// writeExit reports the program's wait status on ExitFD.
func writeExit(ws unix.WaitStatus) {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], uint32(ws))
	unix.Write(ExitFD, b[:]) //nolint:errcheck // the parent falls back to init's own status
}

// ReadExit reads what the container's init wrote on its exit pipe; ok is false when it wrote
// nothing (there was no init, or it failed).
func ReadExit(r *os.File) (ws unix.WaitStatus, ok bool) {
	var b [4]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return 0, false
	}
	return unix.WaitStatus(binary.NativeEndian.Uint32(b[:])), true
}
