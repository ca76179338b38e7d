package session

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
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
	buf := make([]byte, 8192)
	n, err := c.Read(buf)
	if err != nil {
		return Info{}, err
	}
	f := strings.Split(string(buf[:n]), "\t")
	if n < 1 || buf[0] != reqInfo || len(f) < 4 || len(f) > 5 {
		return Info{}, fmt.Errorf("session %s: unreadable answer %q", sock, buf[:n])
	}
	i := Info{Socket: sock, Image: f[0][1:]}
	if len(f) == 5 {
		i.Requests = f[4]
	}
	var errs [3]error
	i.Containers, errs[0] = strconv.Atoi(f[1])
	i.PID, errs[1] = strconv.Atoi(f[2])
	i.Idle, errs[2] = time.ParseDuration(f[3])
	for _, e := range errs {
		if e != nil {
			return Info{}, fmt.Errorf("session %s: unreadable answer %q", sock, buf[:n])
		}
	}
	return i, nil
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
