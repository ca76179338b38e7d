package session

import (
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// countingServer stands in for a holder's FUSE server: only its counts are asked for.
type countingServer struct{ counts string }

func (countingServer) Done() <-chan struct{} { return nil }
func (countingServer) Stop()                 {}
func (s countingServer) Counts() string      { return s.counts }

// TestListShowsRequests: List asks each holder over its socket, as `hpcctl session list` and
// sessionbench do, and gets the request counts of hpcctl's own server, none of squashfuse_ll's.
// The holders are real holder values answering on real sockets; only their FUSE servers are fakes.
func TestListShowsRequests(t *testing.T) {
	dir := t.TempDir()
	want := map[string]string{"/images/own.sif": "LOOKUP=12 READ=40", "/images/squashfuse.sif": ""}
	for img, counts := range want {
		fakeHolder(t, filepath.Join(dir, filepath.Base(img)+".sock"), img, countingServer{counts})
	}
	infos, err := List(dir)
	if err != nil || len(infos) != len(want) {
		t.Fatalf("List: %+v, %v; want %d sessions", infos, err, len(want))
	}
	for _, i := range infos {
		if counts, ok := want[i.Image]; !ok || i.Requests != counts || i.PID != os.Getpid() || i.Idle != 30*time.Second {
			t.Errorf("session %+v: want image in %v, requests %q, this PID, idle 30s", i, want, counts)
		}
	}
}

// fakeHolder answers on sock as a holder of img whose server is fuse, until the test ends.
func fakeHolder(t *testing.T, sock, img string, fuse fuseServer) {
	t.Helper()
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	h := &holder{a: holderArgs{Image: img, Idle: 30 * time.Second, Sock: sock}, fuse: fuse, ln: ln}
	go h.accept()
}
