package e2e

// Instances (docs/launch.md, "Instances"): an HTTP server started with `instance start`, reached
// from a second container that joins it, listed, stopped by name, with --all, by kill -9 of its
// monitor and by the end of its Slurm job; after each, nothing is left.

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hpcctl/hpcctl/internal/sif/siftest"
)

// instStartscript serves /srv on 127.0.0.1:$1 in the foreground, as a real service would; it says
// first that it ran and with which arguments, which goes to the instance's log.
const instStartscript = `#!/bin/sh
echo "startscript ran: $*"
exec httpd -f -p "127.0.0.1:$1" -h /srv
`

// instPage is what the server serves.
const instPage = "hello from the instance\n"

var (
	instOnce sync.Once
	instSIF  string
	instErr  error
)

// instImage is a busybox image with a %startscript that runs httpd, made once per test binary.
func instImage(t *testing.T, e *ltEnv) string {
	t.Helper()
	instOnce.Do(func() {
		busybox, err := exec.LookPath("busybox")
		if err != nil {
			instErr = err
			return
		}
		tree := filepath.Join(e.dir, "insttree")
		if err = os.RemoveAll(tree); err != nil {
			instErr = err
			return
		}
		if err = siftest.BusyboxTree(tree, busybox); err != nil {
			instErr = err
			return
		}
		for _, a := range []string{"httpd", "wget", "ps"} {
			if err = os.Symlink("busybox", filepath.Join(tree, "bin", a)); err != nil {
				instErr = err
				return
			}
		}
		files := map[string]string{".singularity.d/startscript": instStartscript, "srv/index.html": instPage}
		for name, content := range files {
			p := filepath.Join(tree, name)
			if err = os.MkdirAll(filepath.Dir(p), 0o755); err == nil {
				err = os.WriteFile(p, []byte(content), 0o755)
			}
			if err != nil {
				instErr = err
				return
			}
		}
		instSIF = filepath.Join(e.dir, "instance.sif")
		instErr = siftest.Make(instSIF, tree, nil)
	})
	if instErr != nil {
		t.Fatal(instErr)
	}
	return instSIF
}

// freePort is a TCP port on 127.0.0.1 that nothing listens on now.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// instEntry is one instance of `instance list --json` (Apptainer's shape).
type instEntry struct {
	Instance   string `json:"instance"`
	PID        int    `json:"pid"`
	Img        string `json:"img"`
	IP         string `json:"ip"`
	LogOutPath string `json:"logOutPath"`
	LogErrPath string `json:"logErrPath"`
}

func parseInstances(t testing.TB, out string) []instEntry {
	t.Helper()
	var l struct {
		Instances []instEntry `json:"instances"`
	}
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("instance list --json: %v:\n%s", err, out)
	}
	return l.Instances
}

// instList runs `instance list --json` as as.
func instList(t *testing.T, e *ltEnv, as ltAs, dir string) []instEntry {
	t.Helper()
	r := e.run(t, as, dir, nil, "", "instance", "list", "--json")
	if r.code != 0 {
		t.Fatalf("instance list --json: exit %d: %s", r.code, r.stderr)
	}
	return parseInstances(t, r.stdout)
}

// instStateDir is where as keeps its instance records on this host.
func instStateDir(t *testing.T, as ltAs) string {
	t.Helper()
	home := "/root"
	if as == asUser {
		home = ltNeedUser(t).HomeDir
	}
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(home, ".hpcctl", "instances", host)
}

// noState checks that no file of the named instances is left in the state directory.
func noState(t testing.TB, stateDir string, names ...string) {
	t.Helper()
	for _, n := range names {
		left, _ := filepath.Glob(filepath.Join(stateDir, n+".*"))
		if len(left) > 0 {
			t.Errorf("instance %s left state files: %q", n, left)
		}
	}
}

// instStart starts an instance of img as as and waits until its server answers a join.
func instStart(t *testing.T, e *ltEnv, as ltAs, dir, img, name string, port int) {
	t.Helper()
	r := e.run(t, as, dir, nil, "", "instance", "start", img, name, strconv.Itoa(port))
	if r.code != 0 {
		t.Fatalf("instance start %s: exit %d: %s", name, r.code, r.stderr)
	}
	if !strings.Contains(r.stderr, "instance "+name+" started") {
		t.Errorf("instance start said %q", r.stderr)
	}
	t.Cleanup(func() {
		e.run(t, as, dir, nil, "", "instance", "stop", "--force", name) // best effort: it may be gone
	})
	if got := instFetch(t, e, as, dir, name, port); got != instPage {
		t.Fatalf("joined wget of the instance's server printed %q, want %q", got, instPage)
	}
}

// instFetch asks the instance's server for its page from a second container that joins the
// instance, until it answers (the startscript starts it after `instance start` returns).
func instFetch(t *testing.T, e *ltEnv, as ltAs, dir, name string, port int) string {
	t.Helper()
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	var r ltResult
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		r = e.run(t, as, dir, nil, "", "exec", "instance://"+name, "wget", "-qO-", url)
		if r.code == 0 || time.Now().After(deadline) {
			break
		}
	}
	if r.code != 0 {
		t.Fatalf("exec instance://%s wget %s: exit %d: %s", name, url, r.code, r.stderr)
	}
	return r.stdout
}

func instWho(t *testing.T, as ltAs) {
	t.Helper()
	if as == asUser {
		ltNeedUser(t)
		needUserNS(t, needUser(t))
		needFUSE(t, needUser(t))
	}
}

// TestInstanceLifecycle: start, join, list, the startscript's arguments, stop by name; then
// nothing is left: no process, mount, loop device or state file.
func TestInstanceLifecycle(t *testing.T) {
	e := ltSetup(t)
	img := instImage(t, e)
	for _, as := range []ltAs{asRoot, asUser} {
		t.Run(string(as), func(t *testing.T) {
			instWho(t, as)
			dir := e.workdir(t)
			state := instStateDir(t, as)
			before := ltTake(t)
			port := freePort(t)
			instStart(t, e, as, dir, img, "web", port)

			// The joined container sees the instance's processes: the same PID namespace.
			ps := e.run(t, as, dir, nil, "", "exec", "instance://web", "ps")
			if ps.code != 0 || !strings.Contains(ps.stdout, "httpd -f -p 127.0.0.1:"+strconv.Itoa(port)) {
				t.Errorf("ps in a joined container (exit %d) does not show the server:\n%s%s", ps.code, ps.stdout, ps.stderr)
			}
			l := instList(t, e, as, dir)
			if len(l) != 1 || l[0].Instance != "web" || l[0].Img != img || l[0].PID <= 0 {
				t.Fatalf("instance list --json: %+v, want the one instance web of %s", l, img)
			}
			if l[0].LogOutPath != filepath.Join(state, "web.log") {
				t.Errorf("logOutPath %s, want %s", l[0].LogOutPath, filepath.Join(state, "web.log"))
			}
			log, err := os.ReadFile(l[0].LogOutPath)
			if err != nil || !strings.Contains(string(log), "startscript ran: "+strconv.Itoa(port)) {
				t.Errorf("the instance's log does not show the startscript with its argument (%v):\n%s", err, log)
			}
			// Shell completion offers the running instance where an instance is taken.
			if c := e.run(t, as, dir, nil, "", "__complete", "instance", "stop", ""); !strings.Contains(c.stdout, "web\t"+img) {
				t.Errorf("completion of 'instance stop': %q", c.stdout)
			}
			if c := e.run(t, as, dir, nil, "", "__complete", "exec", "instance:"); !strings.Contains(c.stdout, "instance://web\t") {
				t.Errorf("completion of 'exec instance:': %q", c.stdout)
			}
			plain := e.run(t, as, dir, nil, "", "instance", "list")
			if !strings.Contains(plain.stdout, "web") || !strings.Contains(plain.stdout, img) {
				t.Errorf("instance list:\n%s", plain.stdout)
			}
			// A second instance of the same name is refused, and the first one is unharmed.
			again := e.run(t, as, dir, nil, "", "instance", "start", img, "web", "1")
			if again.code != 255 || !strings.Contains(again.stderr, "already running") {
				t.Errorf("a second instance web: exit %d: %s", again.code, again.stderr)
			}

			stop := e.run(t, as, dir, nil, "", "instance", "stop", "web")
			if stop.code != 0 || !strings.Contains(stop.stderr, "instance web stopped") {
				t.Fatalf("instance stop web: exit %d: %s", stop.code, stop.stderr)
			}
			e.nothingLeft(t, before, img)
			noState(t, state, "web")
			if l := instList(t, e, as, dir); len(l) != 0 {
				t.Errorf("instance list after stop: %+v", l)
			}
			j := e.run(t, as, dir, nil, "", "exec", "instance://web", "true")
			if j.code != 255 || !strings.Contains(j.stderr, "no such instance") {
				t.Errorf("join of a stopped instance: exit %d: %s", j.code, j.stderr)
			}
		})
	}
}

// TestInstanceStopAll stops every instance of the user, and only the user's.
func TestInstanceStopAll(t *testing.T) {
	e := ltSetup(t)
	img := instImage(t, e)
	instWho(t, asUser)
	dir := e.workdir(t)
	before := ltTake(t)
	rootPort := freePort(t)
	instStart(t, e, asRoot, dir, img, "keep", rootPort)
	names := []string{"a", "b"}
	for _, n := range names {
		instStart(t, e, asUser, dir, img, n, freePort(t))
	}
	if l := instList(t, e, asUser, dir); len(l) != 2 || l[0].Instance != "a" || l[1].Instance != "b" {
		t.Fatalf("instance list --json: %+v, want a and b", l)
	}
	stop := e.run(t, asUser, dir, nil, "", "instance", "stop", "--all")
	if stop.code != 0 {
		t.Fatalf("instance stop --all: exit %d: %s", stop.code, stop.stderr)
	}
	for _, n := range names {
		if !strings.Contains(stop.stderr, "instance "+n+" stopped") {
			t.Errorf("instance stop --all did not say %s stopped: %s", n, stop.stderr)
		}
	}
	noState(t, instStateDir(t, asUser), names...)
	if l := instList(t, e, asUser, dir); len(l) != 0 {
		t.Errorf("instance list after stop --all: %+v", l)
	}
	// Root's instance still serves.
	if got := instFetch(t, e, asRoot, dir, "keep", rootPort); got != instPage {
		t.Errorf("root's instance after the user's stop --all: %q", got)
	}
	if r := e.run(t, asRoot, dir, nil, "", "instance", "stop", "keep"); r.code != 0 {
		t.Fatalf("instance stop keep: exit %d: %s", r.code, r.stderr)
	}
	e.nothingLeft(t, before, img)

	for _, bad := range [][]string{{"instance", "stop"}, {"instance", "stop", "--all", "a"}, {"instance", "stop", "a", "b"}} {
		r := e.run(t, asUser, dir, nil, "", bad...)
		if r.code != 255 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, "NAME or --all") {
			t.Errorf("%q: exit %d, stderr %q; want 255 and one line", bad, r.code, r.stderr)
		}
	}
}

// TestInstanceKillMonitor: kill -9 of an instance's monitor takes the container down; the next
// list neither shows it nor keeps its record.
func TestInstanceKillMonitor(t *testing.T) {
	e := ltSetup(t)
	img := instImage(t, e)
	for _, as := range []ltAs{asRoot, asUser} {
		t.Run(string(as), func(t *testing.T) {
			instWho(t, as)
			dir := e.workdir(t)
			state := instStateDir(t, as)
			before := ltTake(t)
			instStart(t, e, as, dir, img, "victim", freePort(t))
			l := instList(t, e, as, dir)
			if len(l) != 1 {
				t.Fatalf("instance list --json: %+v", l)
			}
			if err := syscall.Kill(l[0].PID, syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			e.nothingLeft(t, before, img)
			if l := instList(t, e, as, dir); len(l) != 0 {
				t.Errorf("instance list after kill -9 of the monitor: %+v", l)
			}
			noState(t, state, "victim")
		})
	}
}

// TestInstanceSlurm: a plain user's instance in a batch job serves a second container of the job
// that joins it, and scancel leaves nothing: no process of the job, no state file.
func TestInstanceSlurm(t *testing.T) {
	needSlurm(t)
	u := needUser(t)
	needUserNS(t, u)
	needFUSE(t, u)
	e := ltSetup(t)
	img := instImage(t, e)
	port := freePort(t)
	script := fmt.Sprintf(`#!/bin/sh
set -e
%[1]s instance start %[2]s web %[3]d
for i in $(seq 100); do
  %[1]s exec instance://web wget -qO- http://127.0.0.1:%[3]d/ > page.txt 2>/dev/null && break
  sleep 0.1
done
%[1]s instance list --json > list.json
echo instance-ready
sleep 300
`, bins.hpcctl, img, port)
	job := submitJob(t, u, script)
	job.waitOutput(t, "instance-ready")
	page, _ := os.ReadFile(filepath.Join(job.Dir, "page.txt"))
	if string(page) != instPage {
		t.Errorf("the joined container fetched %q, want %q", page, instPage)
	}
	list, _ := os.ReadFile(filepath.Join(job.Dir, "list.json"))
	l := parseInstances(t, string(list))
	if len(l) != 1 || l[0].Instance != "web" || l[0].Img != img {
		t.Fatalf("instance list --json in the job: %+v", l)
	}
	rec, err := os.ReadFile(filepath.Join(instStateDirOf(t, u), "web.json"))
	if err != nil || !strings.Contains(string(rec), `"jobId": "`+job.ID+`"`) {
		t.Errorf("the instance's record does not name job %s (%v):\n%s", job.ID, err, rec)
	}
	if len(jobProcesses(t, u, job.ID)) == 0 {
		t.Fatal("no process of the job found while it runs")
	}
	job.cancel(t)
	if res := job.wait(t); res.State != "CANCELLED" {
		t.Errorf("state %s, want CANCELLED", res.State)
	}
	nothingLeftOf(t, u, job.ID)
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
		c.Close()
		t.Errorf("the instance's server still answers after scancel")
	}
	// The record of the dead instance goes at the next list.
	r := runCmd(t, userCmd(t, u, job.Dir, bins.hpcctl, "instance", "list", "--json")).mustSucceed(t, "instance list")
	if l := parseInstances(t, r.Stdout); len(l) != 0 {
		t.Errorf("instance list after scancel: %+v", l)
	}
	noState(t, instStateDirOf(t, u), "web")
}

// instStateDirOf is instStateDir for a testUser.
func instStateDirOf(t *testing.T, u testUser) string {
	t.Helper()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(u.Home, ".hpcctl", "instances", host)
}
