package session

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
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

// TestListOddImageNames: an image's path may hold a tab, a newline or quotes and be as long as
// PATH_MAX; List reports it whole (the answer was tab-separated and read with one 8 KiB read).
func TestListOddImageNames(t *testing.T) {
	dir := t.TempDir()
	long := "/images/" + strings.Repeat("d/", 2000) + "x.sif"
	counts := strings.Repeat("LOOKUP=123456789 ", 200)
	want := map[string]string{"/images/a\tb.sif": "READ=1", "/images/line\nbreak \"q\".sif": "", long: counts}
	n := 0
	for img, c := range want {
		n++
		fakeHolder(t, filepath.Join(dir, fmt.Sprintf("s%d.sock", n)), img, countingServer{c})
	}
	infos, err := List(dir)
	if err != nil || len(infos) != len(want) {
		t.Fatalf("List: %d sessions, %v; want %d", len(infos), err, len(want))
	}
	for _, i := range infos {
		if c, ok := want[i.Image]; !ok || i.Requests != c {
			t.Errorf("session of %.60q: requests %.40q; want one of the images, whole, with its counts", i.Image, i.Requests)
		}
	}
}

// TestAskRefusesBadAnswers: a peer that answers garbage, too much, or nothing is reported, not
// trusted and not waited on past its close.
func TestAskRefusesBadAnswers(t *testing.T) {
	for name, answer := range map[string][]byte{
		"old tab-separated": []byte("I/images/a.sif\t0\t1\t30s\t"),
		"empty":             nil,
		"not json":          []byte("I{"),
		"too long":          append([]byte(`I{"image":"`), bytes.Repeat([]byte("a"), maxInfoAnswer)...),
	} {
		t.Run(name, func(t *testing.T) {
			sock := filepath.Join(t.TempDir(), "s.sock")
			ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				c.Read(make([]byte, 1)) //nolint:errcheck // the request byte
				c.Write(answer)         //nolint:errcheck // the asker judges what came
			}()
			if i, err := ask(sock); err == nil {
				t.Errorf("ask accepted %+v", i)
			}
		})
	}
}
