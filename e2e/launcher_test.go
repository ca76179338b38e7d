package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	hsif "github.com/hpcctl/hpcctl/internal/sif"
	"github.com/hpcctl/hpcctl/internal/testutil"
)

var ltWho = []ltAs{asRoot, asUser}

// pyScript prints things that depend on the image only, so that its output must equal a chroot's.
const pyScript = `
import sys, os, hashlib, json, platform, sysconfig
print(sys.version)
print(sys.prefix, sys.executable)
print(sys.path)
print(hashlib.sha256(b"hpcctl").hexdigest())
print(json.dumps({"sum": sum(range(10**6)), "float": 1/3}))
print(sorted(os.listdir("/usr/lib/python3"))[:20])
print(sysconfig.get_paths()["stdlib"])
print(os.path.realpath("/bin"), os.path.exists("/etc/debian_version"))
`

func TestLauncherPythonMatchesChroot(t *testing.T) {
	e := ltSetup(t)
	deb, tree := ltDebian(t, e)
	want, err := exec.Command("chroot", tree, "/usr/bin/python3", "-c", pyScript).CombinedOutput()
	if err != nil {
		t.Fatalf("chroot: %v: %s", err, want)
	}
	before := ltTake(t)
	for _, as := range ltWho {
		t.Run(string(as), func(t *testing.T) {
			r := e.run(t, as, e.workdir(t), nil, "", "exec", deb, "python3", "-c", pyScript)
			if r.code != 0 || r.stdout != string(want) {
				t.Errorf("exit %d, stderr %q\ngot:\n%s\nchroot gave:\n%s", r.code, r.stderr, r.stdout, want)
			}
		})
	}
	e.nothingLeft(t, before, deb)
}

func TestLauncherExitStatus(t *testing.T) {
	e := ltSetup(t)
	tests := []struct {
		args []string
		code int
	}{
		{[]string{"true"}, 0},
		{[]string{"sh", "-c", "exit 3"}, 3},
		{[]string{"sh", "-c", "kill -9 $$"}, 128 + 9},
		{[]string{"sh", "-c", "kill -TERM $$"}, 128 + 15},
		{[]string{"/no/such/program"}, 127},
		{[]string{"no-such-command"}, 127},
		{[]string{"/etc/passwd"}, 126},
	}
	before := ltTake(t)
	for _, as := range ltWho {
		for _, tt := range tests {
			t.Run(string(as)+"/"+strings.Join(tt.args, "_"), func(t *testing.T) {
				r := e.run(t, as, e.workdir(t), nil, "", append([]string{"exec", e.bb}, tt.args...)...)
				if r.code != tt.code {
					t.Errorf("exit %d, want %d (stderr %q)", r.code, tt.code, r.stderr)
				}
				// A program killed by a signal kills hpcctl with the same signal, as a shell
				// and Slurm expect; every other status is an exit code.
				if killed := tt.code > 128; (r.signal != 0) != killed {
					t.Errorf("killed by signal %d; want a death by signal: %v", r.signal, killed)
				}
				if tt.code >= 126 && tt.code <= 127 && strings.Count(r.stderr, "\n") != 1 {
					t.Errorf("want one line of error, got %q", r.stderr)
				}
			})
		}
	}
	e.nothingLeft(t, before, e.bb)
}

func TestLauncherForwardsSignals(t *testing.T) {
	e := ltSetup(t)
	before := ltTake(t)
	for _, as := range ltWho {
		for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGUSR1, syscall.SIGUSR2} {
			t.Run(string(as)+"/"+sig.String(), func(t *testing.T) {
				dir := e.workdir(t)
				name := strconv.Itoa(int(sig))
				script := `trap 'echo got > ` + dir + `/got; kill $!; exit 7' ` + name + `; echo > ` + dir + `/ready; sleep 60 & wait`
				c := e.cmd(t, as, dir, nil, "exec", e.bb, "sh", "-c", script)
				if err := c.Start(); err != nil {
					t.Fatal(err)
				}
				if !ltWaitFile(filepath.Join(dir, "ready"), 30*time.Second) {
					c.Process.Kill() //nolint:errcheck // killed on a timeout; the test fails anyway
					c.Wait()         //nolint:errcheck // killed on purpose
					t.Fatal("the program did not start")
				}
				// setpriv execs hpcctl: the pid is hpcctl's.
				if err := c.Process.Signal(sig); err != nil {
					t.Fatal(err)
				}
				c.Wait() //nolint:errcheck // the status is checked below
				if code := c.ProcessState.ExitCode(); code != 7 {
					t.Errorf("exit %d, want 7 from the program's trap", code)
				}
				if b, err := os.ReadFile(filepath.Join(dir, "got")); err != nil || string(b) != "got\n" {
					t.Errorf("the program did not see %v: %q, %v", sig, b, err)
				}
			})
		}
	}
	e.nothingLeft(t, before, e.bb)
}

func ltWaitFile(p string, d time.Duration) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
}

func TestLauncherBinds(t *testing.T) {
	e := ltSetup(t)
	before := ltTake(t)
	for _, as := range ltWho {
		t.Run(string(as), func(t *testing.T) {
			dir := e.workdir(t)
			rw, ro := filepath.Join(dir, "rw"), filepath.Join(dir, "ro")
			for _, d := range []string{rw, ro} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(d, 0o777); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(ro, "in"), []byte("host-data\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			r := e.run(t, as, "/", []string{"HPCCTL_BIND=" + ro + ":/data/in:ro"}, "",
				"exec", "-B", rw+":/data/out", "--bind", ro+":/mnt/ro2:ro,"+rw+":/mnt/rw2:rw", e.bb, "sh", "-c",
				`cat /data/in/in && echo written > /data/out/file && cat /mnt/rw2/file && ! touch /data/in/x 2>/dev/null && ! touch /mnt/ro2/x 2>/dev/null && echo ok`)
			if r.code != 0 || r.stdout != "host-data\nwritten\nok\n" {
				t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
			if b, _ := os.ReadFile(filepath.Join(rw, "file")); string(b) != "written\n" {
				t.Errorf("write through the rw bind not on the host: %q", b)
			}
			r = e.run(t, as, "/", nil, "", "exec", "-B", "/does/not/exist:/x", e.bb, "true")
			if r.code != 255 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "/does/not/exist") {
				t.Errorf("missing bind source: exit %d, stderr %q; want 1 and one line naming it", r.code, r.stderr)
			}
			if as == asUser {
				r = e.run(t, as, "/", nil, "", "exec", "-B", "/root:/x", e.bb, "true")
				if r.code != 255 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "cannot read") {
					t.Errorf("unreadable bind source: exit %d, stderr %q; want 1 and one line", r.code, r.stderr)
				}
			}
			r = e.run(t, as, "/", nil, "", "exec", "-B", "/a:/b:bogus", e.bb, "true")
			if r.code != 255 || !strings.Contains(r.stderr, "bogus") {
				t.Errorf("bad bind option: exit %d, stderr %q; want 2", r.code, r.stderr)
			}
		})
	}
	e.nothingLeft(t, before, e.bb)
}

func TestLauncherEnvironment(t *testing.T) {
	e := ltSetup(t)
	for _, as := range ltWho {
		t.Run(string(as), func(t *testing.T) {
			dir := e.workdir(t)
			envFile := filepath.Join(dir, "env")
			if err := os.WriteFile(envFile, []byte("# comment\nFROM_FILE=file\nOVERRIDDEN=file\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			host := []string{"HOST_VAR=host", "LD_LIBRARY_PATH=/host/lib", "HPCCTLENV_PREFIXED=prefixed", "FROM_IMAGE=host"}
			r := e.run(t, as, dir, host, "", "exec", "--env-file", envFile, "--env", "OVERRIDDEN=flag", e.bb, "env")
			env := r.stdout
			for _, want := range []string{"HOST_VAR=host\n", "PATH=/bin\n", "FROM_IMAGE=yes\n", "PREFIXED=prefixed\n", "FROM_FILE=file\n", "OVERRIDDEN=flag\n", "HPCCTL_CONTAINER=" + e.bb + "\n"} {
				if !strings.Contains(env, want) {
					t.Errorf("env lacks %q:\n%s", want, env)
				}
			}
			for _, bad := range []string{"LD_LIBRARY_PATH", "HPCCTLENV_", "/usr/local/bin"} {
				if strings.Contains(env, bad) {
					t.Errorf("env has %q:\n%s", bad, env)
				}
			}
			r = e.run(t, as, dir, host, "", "exec", "--cleanenv", e.bb, "env")
			if strings.Contains(r.stdout, "HOST_VAR") || !strings.Contains(r.stdout, "PREFIXED=prefixed") {
				t.Errorf("--cleanenv:\n%s", r.stdout)
			}
		})
	}
}

func TestLauncherIdentityAndCwd(t *testing.T) {
	e := ltSetup(t)
	for _, as := range ltWho {
		t.Run(string(as), func(t *testing.T) {
			dir := e.workdir(t)
			u := "root"
			if as == asUser {
				u = ltNeedUser(t).Username
			}
			r := e.run(t, as, dir, nil, "", "exec", e.bb, "sh", "-c", `id -un; id -gn; pwd; echo $HOME; grep "^`+u+`:" /etc/passwd | cut -d: -f1,6`)
			home := "/root"
			if as == asUser {
				home = "/home/" + u
			}
			want := strings.Join([]string{u, u, dir, home, u + ":" + home}, "\n") + "\n"
			if r.code != 0 || r.stdout != want {
				t.Errorf("exit %d, stderr %q\ngot:\n%s\nwant:\n%s", r.code, r.stderr, r.stdout, want)
			}
			// The current directory is kept: a file made there is on the host.
			r = e.run(t, as, dir, nil, "", "exec", e.bb, "touch", "made-inside")
			if _, err := os.Stat(filepath.Join(dir, "made-inside")); r.code != 0 || err != nil {
				t.Errorf("file in the current directory: exit %d, %v, stderr %q", r.code, err, r.stderr)
			}
			r = e.run(t, as, dir, nil, "", "exec", "--pwd", "/etc", "--no-home", e.bb, "pwd")
			if r.stdout != "/etc\n" {
				t.Errorf("--pwd: %q %q", r.stdout, r.stderr)
			}
			// The root is read-only, as Apptainer's is without an overlay.
			r = e.run(t, as, dir, nil, "", "exec", e.bb, "touch", "/bin/new")
			if r.code == 0 || !strings.Contains(r.stderr, "Read-only") {
				t.Errorf("wrote to the image: exit %d, %q", r.code, r.stderr)
			}
		})
	}
}

func TestLauncherVerbsAndImages(t *testing.T) {
	e := ltSetup(t)
	before := ltTake(t)
	for _, as := range ltWho {
		tests := []struct {
			name  string
			args  []string
			stdin string
			out   string
			code  int
		}{
			{"run cmd", []string{"run", e.bb}, "", "run-cmd /bin/sh\n", 0},
			{"run args replace cmd", []string{"run", e.bb, "echo", "replaced"}, "", "replaced\n", 0},
			{"shell", []string{"shell", e.bb}, "echo shell-ok; exit 5\n", "shell-ok\n", 5},
			{"test without script", []string{"test", e.bb}, "", "", 0},
			{"apptainer run", []string{"run", e.app, "x"}, "", "runscript x yes\n", 0},
			{"apptainer exec env", []string{"exec", e.app, "sh", "-c", "echo $FROM_APPTAINER_ENV"}, "", "yes\n", 0},
			{"apptainer test", []string{"test", e.app}, "", "test-script-ran\n", 4},
			{"sandbox", []string{"exec", e.bbTree, "cat", "/etc/group"}, "", "", 0},
			{"bare squashfs", []string{"exec", e.bbSqfs, "sh", "-c", "echo $HPCCTL_NAME"}, "", "bb.sqfs\n", 0},
			{"unsquash", []string{"exec", "--unsquash", e.bb, "sh", "-c", "echo $FROM_IMAGE"}, "", "yes\n", 0},
		}
		for _, tt := range tests {
			t.Run(string(as)+"/"+tt.name, func(t *testing.T) {
				r := e.run(t, as, e.workdir(t), nil, tt.stdin, tt.args...)
				if r.code != tt.code || (tt.out != "" && r.stdout != tt.out) {
					t.Errorf("exit %d (want %d), stdout %q (want %q), stderr %q", r.code, tt.code, r.stdout, tt.out, r.stderr)
				}
			})
		}
	}
	e.nothingLeft(t, before, e.bb, e.app, e.bbSqfs)
}

// TestLauncherFUSEServerDies checks that the container sees errors, not a hang, when squashfuse_ll
// dies, and that nothing is left afterwards.
func TestLauncherFUSEServerDies(t *testing.T) {
	e := ltSetup(t)
	before := ltTake(t)
	dir := e.workdir(t)
	// The squashfuse backend by name: through the setuid installation, a plain user's image of
	// root's would be on a loop device, with no server to kill.
	c := e.cmd(t, asUser, dir, nil, "exec", "--backend", "squashfuse", e.bb, "sh", "-c", `echo > ready; while [ ! -e go ]; do sleep 0.05; done; /bin/cat /etc/group; s=$?; echo status=$s; exit $s`)
	out := &strings.Builder{}
	c.Stdout, c.Stderr = out, out
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	if !ltWaitFile(filepath.Join(dir, "ready"), 30*time.Second) {
		c.Process.Kill() //nolint:errcheck // cleanup: it may have exited
		c.Wait()         //nolint:errcheck // killed on purpose
		t.Fatal("the program did not start")
	}
	for _, p := range e.processesWithSessions(t) {
		// The image's FUSE server: squashfuse_ll, or a session holder serving it itself.
		if strings.Contains(p, "squashfuse_ll") || ltSelfServingHolder(p, e.bb) {
			pid, _ := strconv.Atoi(strings.TrimSuffix(strings.Fields(p)[1], ":"))
			syscall.Kill(pid, syscall.SIGKILL) //nolint:errcheck // cleanup: it may have exited
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "go"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { c.Wait(); close(done) }() //nolint:errcheck // the test looks at what the program did, not its status
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		c.Process.Kill() //nolint:errcheck // cleanup: it may have exited
		t.Fatal("the container hung after squashfuse_ll died")
	}
	// The shell itself runs from the image: it may get an error status or die of SIGBUS.
	if code := c.ProcessState.ExitCode(); code == 0 {
		t.Errorf("exit 0 after the image went away, output %q", out.String())
	}
	t.Logf("exit %d, output %q", c.ProcessState.ExitCode(), out.String())
	e.nothingLeft(t, before, e.bb)
}

// TestLauncherFUSEServerFailsToStart checks that a squashfuse_ll that exits without ever answering
// (at once, or while the setup process waits in mount(2) for its answer to FUSE_INIT) is a one-line
// error and exit status 255, not a hang, and that nothing is left afterwards.
func TestLauncherFUSEServerFailsToStart(t *testing.T) {
	e := ltSetup(t)
	before := ltTake(t)
	dir := e.workdir(t)
	servers := map[string]string{"exits at once": "exit 3", "exits later": "sleep 0.3; exit 3"}
	for name, body := range servers {
		server := filepath.Join(dir, strings.ReplaceAll(name, " ", "-")+".sh")
		conf := server + ".conf"
		if err := os.WriteFile(server, []byte("#!/bin/sh\n"+body+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
		// A session's holder runs the squashfuse program only with fuse_server = "squashfuse_ll".
		if err := os.WriteFile(conf, []byte("squashfuse = \""+server+"\"\n[session]\nfuse_server = \"squashfuse_ll\"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		for _, as := range ltWho {
			t.Run(name+"/"+string(as), func(t *testing.T) {
				r := e.run(t, as, dir, nil, "", "exec", "--config", conf, "--backend", "squashfuse", e.bb, "true")
				if r.code != 255 || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 || !strings.Contains(r.stderr, "hpcctl: ") {
					t.Errorf("exit %d (want 1), stderr %q (want one line)", r.code, r.stderr)
				}
			})
		}
	}
	e.nothingLeft(t, before, e.bb)
}

// TestLauncherSupplementaryGroups checks the Apptainer-compatible behaviour in a user namespace that
// maps one GID: setgroups is denied, so the user keeps their supplementary groups for access to
// host files, and they show as the overflow group (65534) inside; /etc/group names them.
func TestLauncherSupplementaryGroups(t *testing.T) {
	e := ltSetup(t)
	ltNeedUser(t)
	const group = "hpcextra"
	if _, err := exec.Command("getent", "group", group).Output(); err != nil {
		if out, err := exec.Command("groupadd", group).CombinedOutput(); err != nil {
			t.Fatalf("groupadd: %v: %s", err, out)
		}
	}
	if out, err := exec.Command("usermod", "-aG", group, ltUser).CombinedOutput(); err != nil {
		t.Fatalf("usermod: %v: %s", err, out)
	}
	out, err := exec.Command("getent", "group", group).Output()
	if err != nil {
		t.Fatal(err)
	}
	gid := strings.Split(strings.TrimSpace(string(out)), ":")[2]
	dir := e.workdir(t)
	secret := filepath.Join(dir, "group-only")
	if err := os.Mkdir(secret, 0o750); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(secret, "f"), []byte("group-data\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	g, _ := strconv.Atoi(gid)
	for _, p := range []string{secret, filepath.Join(secret, "f")} {
		if err := os.Chown(p, 0, g); err != nil {
			t.Fatal(err)
		}
	}
	r := e.run(t, asUser, dir, nil, "", "exec", e.bb, "sh", "-c", "id -G; cat "+secret+"/f; grep '^"+group+":' /etc/group")
	lines := strings.Split(r.stdout, "\n")
	if r.code != 0 || len(lines) < 3 {
		t.Fatalf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
	}
	switch {
	case ltStarter(asUser) && !strings.Contains(" "+lines[0]+" ", " "+gid+" "):
		// No user namespace: the kernel shows the group under its own ID.
		t.Errorf("id -G = %q through the setuid starter, want the supplementary group as %s", lines[0], gid)
	case !ltStarter(asUser) && !strings.Contains(" "+lines[0]+" ", " 65534 "):
		t.Errorf("id -G = %q, want the supplementary group as 65534", lines[0])
	}
	if lines[1] != "group-data" {
		t.Errorf("group-readable host file: %q, want it readable through the kept supplementary group", lines[1])
	}
	if lines[2] != group+":x:"+gid+":"+ltUser {
		t.Errorf("/etc/group line %q", lines[2])
	}
}

func TestLauncherUsageErrors(t *testing.T) {
	e := ltSetup(t)
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"exec"}, "missing IMAGE and COMMAND"},
		{[]string{"exec", e.bb}, "missing COMMAND"},
		{[]string{"run"}, "missing IMAGE"},
		{[]string{"exec", "-B", "/a:/b:xx", e.bb, "true"}, "neither ro nor rw"},
		{[]string{"exec", "--backend", "nbd", e.bb, "true"}, "unknown mount backend"},
		{[]string{"exec", "/no/such.sif", "true"}, "/no/such.sif"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, "_"), func(t *testing.T) {
			r := e.run(t, asRoot, "/", nil, "", tt.args...)
			if r.code == 0 || r.stdout != "" || strings.Count(r.stderr, "\n") != 1 || !strings.HasPrefix(r.stderr, "hpcctl: ") || !strings.Contains(r.stderr, tt.want) {
				t.Errorf("exit %d, stdout %q, stderr %q; want one line naming %q", r.code, r.stdout, r.stderr, tt.want)
			}
		})
	}
}

// TestLauncherBackends looks from the host at a running container: as root the partition is on a
// read-only, autoclear loop device at the partition's offset and size; as a plain user
// squashfuse_ll serves it at that offset.
func TestLauncherBackends(t *testing.T) {
	e := ltSetup(t)
	before := ltTake(t)
	img, err := sifPartition(e.bb)
	if err != nil {
		t.Fatal(err)
	}
	for _, as := range ltWho {
		t.Run(string(as), func(t *testing.T) {
			dir := e.workdir(t)
			c := e.cmd(t, as, dir, nil, "exec", e.bb, "sh", "-c", "echo > ready; while [ ! -e go ]; do sleep 0.05; done")
			if err := c.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() {
				os.WriteFile(filepath.Join(dir, "go"), nil, 0o644) //nolint:errcheck // cleanup: releases the program if the test failed first
				c.Wait()                                           //nolint:errcheck // its status is not the point: the file above is
			}()
			if !ltWaitFile(filepath.Join(dir, "ready"), 30*time.Second) {
				c.Process.Kill() //nolint:errcheck // killed on a timeout; the test fails anyway
				t.Fatal("the program did not start")
			}
			// Through the setuid starter, a plain user's image of root's is on a loop device too.
			if as == asRoot || ltStarter(as) {
				out, err := exec.Command("losetup", "--list", "--noheadings", "--raw", "-O", "OFFSET,SIZELIMIT,RO,AUTOCLEAR", "-j", e.bb).Output()
				want := fmt.Sprintf("%d %d 1 1", img.offset, img.size)
				if err != nil || strings.TrimSpace(string(out)) != want {
					t.Errorf("loop device: %q, %v; want %q (offset, size, read-only, autoclear)", out, err, want)
				}
				return
			}
			procs := e.processesWithSessions(t)
			served := slices.ContainsFunc(procs, func(p string) bool {
				return strings.Contains(p, fmt.Sprintf("squashfuse_ll -f -o ro,offset=%d ", img.offset)) ||
					ltSelfServingHolder(p, e.bb) && strings.Contains(p, fmt.Sprintf(" %s %d hpcctl ", e.bb, img.offset))
			})
			if !served {
				t.Errorf("no squashfuse_ll and no session holder serving the image at offset %d among:\n%s", img.offset, strings.Join(procs, "\n"))
			}
		})
	}
	e.nothingLeft(t, before, e.bb)
}

type partition struct{ offset, size int64 }

func sifPartition(path string) (partition, error) {
	img, err := hsif.Open(path)
	if err != nil {
		return partition{}, err
	}
	return partition{img.Offset, img.Size}, nil
}

// TestLauncherKeepsIgnoredSignals: under nohup the program must have SIGHUP ignored, as natively.
func TestLauncherKeepsIgnoredSignals(t *testing.T) {
	e := ltSetup(t)
	testutil.NeedCommands(t, "nohup")
	c := exec.Command("nohup", e.bin, "exec", e.bb, "grep", "SigIgn", "/proc/self/status")
	c.Dir = e.workdir(t)
	out, err := c.Output()
	if err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	mask, err := strconv.ParseUint(strings.TrimSpace(strings.TrimPrefix(string(out), "SigIgn:")), 16, 64)
	if err != nil {
		t.Fatalf("parse %q: %v", out, err)
	}
	if mask&(1<<(syscall.SIGHUP-1)) == 0 {
		t.Errorf("SIGHUP not ignored in the program under nohup (SigIgn %016x)", mask)
	}
}

// ltSelfServingHolder reports whether the process described by p (from processesWithSessions)
// is a session holder of img that serves the image itself (fuse_server = "hpcctl"): its
// arguments are the image, the offset and the server.
func ltSelfServingHolder(p, img string) bool {
	_, args, ok := strings.Cut(p, sessionHolderArg+" ")
	f := strings.Fields(args)
	return ok && len(f) > 2 && f[0] == img && f[2] == "hpcctl"
}
