package session

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Requests a client sends first, one byte.
const (
	reqJoin = 'J' // a lease: the holder answers with its mount and counts the client until it closes
	reqInfo = 'I' // what the holder serves
	reqStop = 'S' // take no more launches; end once the containers using the mount have ended
)

// dial connects to a holder's socket and checks that the holder is the user's own.
func dial(sock string) (*net.UnixConn, error) {
	c, err := net.DialUnix("unix", nil, &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		return nil, err
	}
	if uid, perr := peerUID(c); perr != nil || uid != os.Getuid() {
		c.Close()
		return nil, fmt.Errorf("session socket %s: its holder is not yours (uid %d): %v", sock, uid, perr)
	}
	return c, nil
}

// Info is one live session of the user.
type Info struct {
	Socket     string
	Image      string
	Containers int
	PID        int
	Idle       time.Duration
	// Requests counts the FUSE requests the holder's own server has served, by kind
	// ("LOOKUP=12 READ=40"); "" for squashfuse_ll.
	Requests string
}

// List returns the user's live sessions on this node (dir "" is RendezvousDir). A socket whose
// holder is gone is skipped: the next launch of its image replaces it.
func List(dir string) ([]Info, error) {
	if dir == "" {
		var err error
		if dir, err = RendezvousDir(); err != nil {
			return nil, err
		}
	}
	socks, err := filepath.Glob(filepath.Join(dir, "*.sock"))
	if err != nil {
		return nil, fmt.Errorf("session directory %s: %w", dir, err)
	}
	var out []Info
	for _, s := range socks {
		if i, err := ask(s); err == nil {
			out = append(out, i)
		}
	}
	return out, nil
}

// infoAnswer is a holder's answer to reqInfo, after the request byte: JSON, since an image's path
// may hold any byte but NUL (a tab, a newline), and the holder closes the connection after it.
type infoAnswer struct {
	Image      string        `json:"image"`
	Containers int           `json:"containers"`
	PID        int           `json:"pid"`
	Idle       time.Duration `json:"idle_ns"`
	Requests   string        `json:"requests"`
}

// maxInfoAnswer bounds what ask reads: a path (PATH_MAX), the counts of every request kind and
// the numbers take under 8 KiB; a holder that says more is not answering what was asked.
const maxInfoAnswer = 64 << 10

func ask(sock string) (Info, error) {
	c, err := dial(sock)
	if err != nil {
		return Info{}, err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second)) //nolint:errcheck // a deadline on a fresh conn
	if _, err = c.Write([]byte{reqInfo}); err != nil {
		return Info{}, err
	}
	// The answer may come in several reads: read to the holder's close.
	buf, err := io.ReadAll(io.LimitReader(c, maxInfoAnswer+1))
	if err != nil {
		return Info{}, fmt.Errorf("session %s: %w", sock, err)
	}
	var a infoAnswer
	if len(buf) < 2 || len(buf) > maxInfoAnswer || buf[0] != reqInfo || json.Unmarshal(buf[1:], &a) != nil {
		return Info{}, fmt.Errorf("session %s: unreadable answer %.80q", sock, buf)
	}
	return Info{Socket: sock, Image: a.Image, Containers: a.Containers, PID: a.PID, Idle: a.Idle, Requests: a.Requests}, nil
}

// Stop tells the holder behind sock to take no more launches; it ends once the containers that
// use its mount have ended (they keep working until then).
func Stop(sock string) error {
	c, err := dial(sock)
	if err != nil {
		return fmt.Errorf("stop session %s: %w", sock, err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second)) //nolint:errcheck // a deadline on a fresh conn
	var b [1]byte
	if _, err = c.Write([]byte{reqStop}); err == nil {
		_, err = c.Read(b[:])
	}
	if err != nil || b[0] != reqStop {
		return fmt.Errorf("stop session %s: no answer (%v)", sock, err)
	}
	return nil
}
