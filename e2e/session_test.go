package e2e

// Shared image sessions (issue 14): a user's launches of one image on a node share one FUSE
// mount, held by a session holder that ends when idle and served by the holder itself
// (fuse_server = "hpcctl", the default) or by its squashfuse_ll.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// seServers are the values of [session] fuse_server, and how many squashfuse_ll a holder runs.
var seServers = []struct {
	name        string
	squashfuses int
}{{"hpcctl", 0}, {"squashfuse_ll", 1}}

// seImage copies the busybox image into a directory of its own, so that this test's sessions are
// its own, and writes a configuration with the given idle timeout (and hpcctl's own server).
func seImage(t *testing.T, e *ltEnv, idle string) (dir, img, conf string) {
	t.Helper()
	return seImageServer(t, e, idle, "hpcctl")
}

// seImageServer is seImage with the given [session] fuse_server.
func seImageServer(t *testing.T, e *ltEnv, idle, server string) (dir, img, conf string) {
	t.Helper()
	dir = e.workdir(t)
	img = filepath.Join(dir, "img.sif")
	if out, err := exec.Command("cp", e.bb, img).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	if err := os.Chmod(img, 0o644); err != nil {
		t.Fatal(err)
	}
	conf = filepath.Join(dir, "hpcctl.conf")
	if err := os.WriteFile(conf, []byte("[session]\nidle_timeout = \""+idle+"\"\nfuse_server = \""+server+"\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { seKillHolders(img) })
	return dir, img, conf
}

// seHolders lists the live session holders of img and their squashfuse_ll, by PID.
func seHolders(img string) (holders, servers []int) {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	all := map[int]int{}
	for _, d := range dirs {
		var pid int
		fmt.Sscanf(filepath.Base(d), "%d", &pid) //nolint:errcheck // the glob gives numbers
		st, err := os.ReadFile(filepath.Join(d, "stat"))
		if err != nil || strings.Contains(string(st), ") Z ") {
			continue
		}
		cmdline, _ := os.ReadFile(filepath.Join(d, "cmdline"))
		if strings.Contains(string(cmdline), sessionHolderArg+"\x00"+img+"\x00") {
			holders = append(holders, pid)
		}
		if strings.Contains(string(cmdline), "squashfuse_ll\x00") {
			if ppid, err := ltParent(pid); err == nil {
				all[pid] = ppid
			}
		}
	}
	for pid, ppid := range all {
		for _, h := range holders {
			if ppid == h {
				servers = append(servers, pid)
			}
		}
	}
	return holders, servers
}

// seKillHolders ends the holders a failed test left (the test has reported it already).
func seKillHolders(img string) {
	h, _ := seHolders(img)
	for _, pid := range h {
		syscall.Kill(pid, syscall.SIGKILL) //nolint:errcheck // cleanup
	}
}

// seWaitNoHolder waits until img has no holder and no server, and its session files are gone.
func seWaitNoHolder(t *testing.T, img string, d time.Duration) {
	t.Helper()
	for deadline := time.Now().Add(d); ; time.Sleep(100 * time.Millisecond) {
		h, s := seHolders(img)
		files, _ := filepath.Glob("/tmp/hpcctl-2000/*")
		if len(h) == 0 && len(s) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: holders %v, servers %v, session files %v", d, h, s, files)
		}
	}
}

// seStart starts a launch that waits for the file go in dir, and waits until it runs.
func seStart(t *testing.T, e *ltEnv, dir, name string, args ...string) *exec.Cmd {
	t.Helper()
	ready := filepath.Join(dir, name+".ready")
	c := e.cmd(t, asUser, dir, nil, append(args, "sh", "-c", "echo > "+ready+"; while [ ! -e go ]; do sleep 0.05; done; cat /etc/group >/dev/null")...)
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Process.Kill(); c.Wait() }) //nolint:errcheck // cleanup
	if !ltWaitFile(ready, 30*time.Second) {
		t.Fatal("the program did not start")
	}
	return c
}

// TestSessionJoin: a second launch joins the first's session (one holder and server for both),
// its output is that of a launch without sessions under every profile, and the session ends after
// its idle time leaving nothing; with each FUSE server.
func TestSessionJoin(t *testing.T) {
	e := ltSetup(t)
	ltNeedUser(t)
	for _, srv := range seServers {
		t.Run(srv.name, func(t *testing.T) { seJoin(t, e, srv.name, srv.squashfuses) })
	}
}

func seJoin(t *testing.T, e *ltEnv, server string, squashfuses int) {
	before := ltTake(t)
	dir, img, conf := seImageServer(t, e, "2s", server)
	files, _ := filepath.Glob("/tmp/hpcctl-2000/*")
	first := seStart(t, e, dir, "first", "exec", "--config", conf, img)
	r := e.run(t, asUser, dir, nil, "", "-d", "exec", "--config", conf, img, "cat", "/etc/group")
	if r.code != 0 || !strings.Contains(r.stderr, "joined=true") {
		t.Errorf("second launch: exit %d, stderr %q (want a joined session)", r.code, r.stderr)
	}
	if h, s := seHolders(img); len(h) != 1 || len(s) != squashfuses {
		t.Errorf("holders %v, squashfuse_ll %v: want one holder and %d squashfuse_ll", h, s, squashfuses)
	}
	for _, p := range []string{"", "--contain", "--containall", "--isolate"} {
		args := []string{"exec", "--config", conf}
		if p != "" {
			args = append(args, p)
		}
		args = append(args, img, "sh", "-c", "id; pwd; ls /; cat /proc/self/mountinfo | wc -l; env | sort; exit 7")
		on := e.run(t, asUser, dir, nil, "", args...)
		off := e.run(t, asUser, dir, []string{"HPCCTL_NO_SESSION=1"}, "", args...)
		// The variable itself shows in env under the default profile.
		on.stdout = strings.ReplaceAll(on.stdout, "HPCCTL_NO_SESSION=1\n", "")
		off.stdout = strings.ReplaceAll(off.stdout, "HPCCTL_NO_SESSION=1\n", "")
		if on.stdout != off.stdout || on.stderr != off.stderr || on.code != off.code || on.code != 7 {
			t.Errorf("profile %q: with a session exit %d %q %q, without %d %q %q", p, on.code, on.stdout, on.stderr, off.code, off.stdout, off.stderr)
		}
	}
	os.WriteFile(filepath.Join(dir, "go"), nil, 0o644) //nolint:errcheck // checked by the wait
	if err := first.Wait(); err != nil {
		t.Errorf("first launch: %v", err)
	}
	seWaitNoHolder(t, img, 10*time.Second)
	// The holder that ended by its idle time removed its socket and lock file.
	after, _ := filepath.Glob("/tmp/hpcctl-2000/*")
	for _, f := range after {
		if !slices.Contains(files, f) {
			t.Errorf("session file left: %s", f)
		}
	}
	e.nothingLeft(t, before, img)
}

// TestSessionConcurrent: 16 concurrent launches make one holder (one FUSE server).
func TestSessionConcurrent(t *testing.T) {
	e := ltSetup(t)
	ltNeedUser(t)
	dir, img, conf := seImage(t, e, "30s")
	var wg sync.WaitGroup
	codes := make([]int, 16)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = e.run(t, asUser, dir, nil, "", "exec", "--config", conf, img, "cat", "/etc/group").code
		}()
	}
	wg.Wait()
	for i, c := range codes {
		if c != 0 {
			t.Errorf("launch %d: exit %d", i, c)
		}
	}
	if h, s := seHolders(img); len(h) != 1 || len(s) != 0 {
		t.Errorf("after 16 concurrent launches: holders %v, squashfuse_ll %v; want one holder serving the image itself", h, s)
	}
}

// TestSessionImageReplaced: a launch after the image was replaced sees the new image, and the old
// session ends at once (well before its idle time).
func TestSessionImageReplaced(t *testing.T) {
	e := ltSetup(t)
	ltNeedUser(t)
	dir, img, conf := seImage(t, e, "60s")
	if r := e.run(t, asUser, dir, nil, "", "exec", "--config", conf, img, "test", "-e", "/.singularity.d/runscript"); r.code == 0 {
		t.Fatalf("the busybox image has a runscript already")
	}
	old, _ := seHolders(img)
	next := img + ".new"
	if out, err := exec.Command("cp", e.app, next).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	os.Chmod(next, 0o644) //nolint:errcheck // cp keeps the mode anyway
	if err := os.Rename(next, img); err != nil {
		t.Fatal(err)
	}
	if r := e.run(t, asUser, dir, nil, "", "exec", "--config", conf, img, "test", "-e", "/.singularity.d/runscript"); r.code != 0 {
		t.Errorf("after the image was replaced: exit %d, stderr %q (want the new image's runscript)", r.code, r.stderr)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", old[0])); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the old image's holder %d still runs 5 s after the image was replaced", old[0])
		}
	}
}

// TestSessionKills: kill -9 of the holder, of its squashfuse_ll, or of a joined launch leaves no
// hung container (errors instead), and the next launch starts a fresh session; with each FUSE
// server (hpcctl's runs in the holder: killing the holder kills it).
func TestSessionKills(t *testing.T) {
	e := ltSetup(t)
	ltNeedUser(t)
	before := ltTake(t)
	for _, srv := range seServers {
		victims := []string{"holder", "launch"}
		if srv.squashfuses > 0 {
			victims = []string{"holder", "server", "launch"}
		}
		for _, victim := range victims {
			t.Run(srv.name+"/"+victim, func(t *testing.T) { seKill(t, e, srv.name, srv.squashfuses, victim) })
		}
	}
	e.nothingLeft(t, before)
}

func seKill(t *testing.T, e *ltEnv, server string, squashfuses int, victim string) {
	dir, img, conf := seImageServer(t, e, "1s", server)
	c := seStart(t, e, dir, "c", "exec", "--config", conf, img)
	h, s := seHolders(img)
	if len(h) != 1 || len(s) != squashfuses {
		t.Fatalf("holders %v, squashfuse_ll %v", h, s)
	}
	pid := map[string]int{"holder": h[0], "launch": c.Process.Pid}[victim]
	if victim == "server" {
		pid = s[0]
	}
	syscall.Kill(pid, syscall.SIGKILL)                 //nolint:errcheck // checked by what follows
	os.WriteFile(filepath.Join(dir, "go"), nil, 0o644) //nolint:errcheck // checked by the wait
	done := make(chan error, 1)
	go func() { done <- c.Wait() }()
	select {
	case err := <-done:
		if err == nil {
			t.Errorf("the container exited 0 after its image's %s was killed", victim)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the container hung")
	}
	if r := e.run(t, asUser, dir, nil, "", "exec", "--config", conf, img, "cat", "/etc/group"); r.code != 0 || !strings.Contains(r.stdout, "root:") {
		t.Errorf("the next launch: exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	seWaitNoHolder(t, img, 15*time.Second)
}

// TestSessionOtherUser: root's launch and another user's never join hpcuser's session.
func TestSessionOtherUser(t *testing.T) {
	e := ltSetup(t)
	ltNeedUser(t)
	dir, img, conf := seImage(t, e, "30s")
	if r := e.run(t, asUser, dir, nil, "", "exec", "--config", conf, img, "true"); r.code != 0 {
		t.Fatalf("exit %d: %s", r.code, r.stderr)
	}
	r := e.run(t, asRoot, dir, nil, "", "-d", "exec", "--config", conf, "--backend", "squashfuse", img, "cat", "/etc/group")
	if r.code != 0 || strings.Contains(r.stderr, "joined=true") {
		t.Errorf("root: exit %d, stderr %q (must not join hpcuser's session)", r.code, r.stderr)
	}
	// nobody, as a second plain user.
	c := exec.Command("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--", e.bin, "-d", "exec", "--config", conf, "--no-home", img, "cat", "/etc/group")
	c.Env = []string{"PATH=/usr/bin:/bin", "HOME=/tmp", "HPCCTL_E2E_TOKEN=" + e.token}
	c.Dir = "/"
	out, err := c.CombinedOutput()
	if err != nil || strings.Contains(string(out), "joined=true") || !strings.Contains(string(out), "root:") {
		t.Errorf("nobody: %v, output %q (must run, and not join hpcuser's session)", err, out)
	}
	if h, _ := seHolders(img); len(h) != 2 {
		t.Errorf("holders %v: want hpcuser's and nobody's", h)
	}
}

// TestSessionListStop: `hpcctl session list` shows the session with its container; `session stop`
// takes no more launches at once (the next one starts a new session), and the stopped holder ends
// once its container has.
func TestSessionListStop(t *testing.T) {
	e := ltSetup(t)
	ltNeedUser(t)
	dir, img, conf := seImage(t, e, "60s")
	c := seStart(t, e, dir, "c", "exec", "--config", conf, img)
	r := e.run(t, asUser, dir, nil, "", "session", "list")
	if r.code != 0 || !strings.Contains(r.stdout, "  1  ") || !strings.Contains(r.stdout, img) {
		t.Errorf("session list: exit %d, stdout %q, stderr %q (want %s with 1 container)", r.code, r.stdout, r.stderr, img)
	}
	old, _ := seHolders(img)
	if r = e.run(t, asUser, dir, nil, "", "session", "stop", img); r.code != 0 {
		t.Errorf("session stop: exit %d, stderr %q", r.code, r.stderr)
	}
	if r = e.run(t, asUser, dir, nil, "", "-d", "exec", "--config", conf, img, "true"); r.code != 0 || !strings.Contains(r.stderr, "joined=false") {
		t.Errorf("launch after stop: exit %d, stderr %q (want a new session)", r.code, r.stderr)
	}
	os.WriteFile(filepath.Join(dir, "go"), nil, 0o644) //nolint:errcheck // checked by the wait
	if err := c.Wait(); err != nil {
		t.Errorf("the container of the stopped session: %v (it must keep working)", err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", old[0])); err != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stopped holder %d still runs 5 s after its container ended", old[0])
		}
	}
}

// TestSessionAuditRecord: an audit's record says, for each profile's run, whether it joined a
// session; with sessions off it says nothing, and the runs' outputs are the same either way.
func TestSessionAuditRecord(t *testing.T) {
	e := ltSetup(t)
	ltNeedUser(t)
	dir, img, conf := seImage(t, e, "30s")
	type run struct {
		Profile, Session string
		Status           int
		Stdout           struct{ Digest string }
	}
	read := func(env []string, name string) []run {
		rec := filepath.Join(dir, name)
		e.run(t, asUser, dir, env, "", "audit", "--config", conf, "--record", rec, img, "cat", "/etc/group")
		b, err := os.ReadFile(rec)
		if err != nil {
			t.Fatal(err)
		}
		var r struct{ Runs []run }
		if err := json.Unmarshal(b, &r); err != nil || len(r.Runs) == 0 {
			t.Fatalf("record %s: %v, %d runs", rec, err, len(r.Runs))
		}
		return r.Runs
	}
	on, off := read(nil, "on.json"), read([]string{"HPCCTL_NO_SESSION=1"}, "off.json")
	for i, r := range on {
		if r.Session != "joined" && r.Session != "started" {
			t.Errorf("profile %s: session %q, want joined or started", r.Profile, r.Session)
		}
		if off[i].Session != "" || off[i].Status != r.Status || off[i].Stdout.Digest != r.Stdout.Digest {
			t.Errorf("profile %s: with sessions %+v, without %+v", r.Profile, r, off[i])
		}
	}
}
