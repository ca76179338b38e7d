package e2e

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestStarterNoUserNSHelper checks the simulation itself: under nouserns a plain user cannot make
// a user namespace, and hpcctl's user-namespace path says so in one line.
func TestStarterNoUserNSHelper(t *testing.T) {
	e := starterSetup(t)
	if r := e.run(t, true, nil, "unshare", "-U", "true"); r.Code == 0 {
		t.Fatalf("unshare -U true succeeded under nouserns")
	}
	e.run(t, false, nil, "unshare", "-U", "true").mustSucceed(t, "unshare -U without the filter")
	r := e.run(t, true, nil, "hpcctl", "exec", "--userns", e.img, "true")
	if r.Code == 0 || !strings.Contains(r.Stderr, "user namespaces are disabled") {
		t.Fatalf("--userns under nouserns: status %d, stderr %q", r.Code, r.Stderr)
	}
}

// TestStarterDoctor: hpcctl doctor names the path a launch takes, and why.
func TestStarterDoctor(t *testing.T) {
	e := starterSetup(t)
	r := e.run(t, false, nil, "hpcctl", "doctor").mustSucceed(t, "doctor")
	if !strings.Contains(r.Stdout, "setuid starter") || !strings.Contains(r.Stdout, "allow_setuid") && !strings.Contains(r.Stdout, "allowed by") {
		t.Errorf("doctor with the starter installed: %q", r.Stdout)
	}
	r = userCmdRun(t, e, bins.hpcctl, "doctor")
	if !strings.Contains(r.Stdout, "user namespace") || !strings.Contains(r.Stdout, "not setuid root") {
		t.Errorf("doctor beside a starter that is not setuid: %q", r.Stdout)
	}
}

func userCmdRun(t *testing.T, e *stEnv, args ...string) result {
	t.Helper()
	return runCmd(t, userCmd(t, e.u, workDir(t, e.u), args...))
}

// statusProbe prints the UID, the capability sets and no_new_privs of the program.
const statusProbe = `id -u; id -G; grep -E '^(Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs):' /proc/self/status`

func checkDropped(t *testing.T, e *stEnv, out string) {
	t.Helper()
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 8 {
		t.Fatalf("probe output: %q", out)
	}
	if lines[0] != fmt.Sprint(e.u.UID) {
		t.Errorf("uid inside %s, want %d", lines[0], e.u.UID)
	}
	if !strings.HasPrefix(lines[1], fmt.Sprint(e.u.GID)) {
		t.Errorf("groups inside %s, want the user's (%d first)", lines[1], e.u.GID)
	}
	for _, l := range lines[2:7] {
		if !strings.HasSuffix(l, "0000000000000000") {
			t.Errorf("capabilities left: %s", l)
		}
	}
	if strings.Join(strings.Fields(lines[7]), " ") != "NoNewPrivs: 1" {
		t.Errorf("no_new_privs: %s", lines[7])
	}
}

// TestStarterProfiles runs every profile through the starter as the plain user, with user
// namespaces and without: the program is the user, with no capability in any set and
// no_new_privs, and no loop device is left.
func TestStarterProfiles(t *testing.T) {
	e := starterSetup(t)
	for _, m := range userNSModes {
		for _, p := range []string{"default", "contain", "containall", "isolate"} {
			t.Run(m.name+"/"+p, func(t *testing.T) {
				r := e.run(t, m.noUserns, nil, "hpcctl", "exec", "--profile", p, e.img, "sh", "-c", statusProbe)
				r.mustSucceed(t, "exec --profile "+p)
				checkDropped(t, e, r.Stdout)
				if l := loopsOf(t, e.img); len(l) != 0 {
					t.Errorf("loop devices left: %v", l)
				}
			})
		}
	}
}

// TestStarterFeatures: binds, --writable-tmpfs and a persistent --overlay behave as in the
// user-namespace path, through the starter without user namespaces.
func TestStarterFeatures(t *testing.T) {
	e := starterSetup(t)
	dir := workDir(t, e.u)
	writeFile(t, e.u, filepath.Join(dir, "data"), "mine\n", 0o644)
	r := e.run(t, true, nil, "hpcctl", "exec", "--bind", dir+":/data:ro", e.img, "sh", "-c", "cat /data/data; touch /data/x 2>&1 || echo ro-ok")
	r.mustSucceed(t, "bind")
	if !strings.Contains(r.Stdout, "mine") || !strings.Contains(r.Stdout, "ro-ok") {
		t.Errorf("bind: %q", r.Stdout)
	}
	r = e.run(t, true, nil, "hpcctl", "exec", "--writable-tmpfs", e.img, "sh", "-c", "echo hi > /tmp/../newfile && cat /newfile")
	r.mustSucceed(t, "--writable-tmpfs")
	r = e.run(t, true, nil, "hpcctl", "exec", e.img, "sh", "-c", "touch /newfile 2>&1 && echo writable")
	if strings.Contains(r.Stdout, "writable") {
		t.Errorf("the root is writable without --writable-tmpfs: %q", r.Stdout)
	}
	ov := filepath.Join(dir, "ov")
	if err := os.Mkdir(ov, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(ov, e.u.UID, e.u.GID) //nolint:errcheck // checked by the launch
	e.run(t, true, nil, "hpcctl", "exec", "--overlay", ov, e.img, "sh", "-c", "mkdir -p /opt/kept && echo persisted > /opt/kept/f").mustSucceed(t, "--overlay")
	r = e.run(t, true, nil, "hpcctl", "exec", "--overlay", ov, e.img, "cat", "/opt/kept/f").mustSucceed(t, "--overlay again")
	if r.Stdout != "persisted\n" {
		t.Errorf("overlay: %q", r.Stdout)
	}
}

// TestStarterSignalsAndStatus: through the starter (and its PID namespace relay), the exit status
// is the program's and SIGTERM sent to hpcctl reaches the program.
func TestStarterSignalsAndStatus(t *testing.T) {
	e := starterSetup(t)
	for _, p := range []string{"default", "containall"} {
		t.Run(p, func(t *testing.T) {
			if r := e.run(t, true, nil, "hpcctl", "exec", "--profile", p, e.img, "sh", "-c", "exit 7"); r.Code != 7 {
				t.Errorf("exit 7: status %d (%s)", r.Code, r.Stderr)
			}
			c := e.cmd(t, true, workDir(t, e.u), nil, "hpcctl", "exec", "--profile", p, e.img, "sh", "-c", `trap "echo got-term; exit 3" TERM; echo ready; while :; do sleep 0.1; done`)
			out, err := c.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			if err = c.Start(); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 64)
			n, _ := out.Read(buf)
			if !strings.Contains(string(buf[:n]), "ready") {
				t.Fatalf("program output %q", buf[:n])
			}
			c.Process.Signal(syscall.SIGTERM) //nolint:errcheck // checked by the status
			rest, _ := io.ReadAll(out)
			err = c.Wait()
			if !strings.Contains(string(rest), "got-term") || c.ProcessState.ExitCode() != 3 {
				t.Errorf("after SIGTERM: output %q, %v", rest, err)
			}
		})
	}
}

// TestStarterAudit: hpcctl audit runs its profiles through the starter too.
func TestStarterAudit(t *testing.T) {
	e := starterSetup(t)
	r := e.run(t, true, nil, "hpcctl", "audit", e.img, "id", "-u").mustSucceed(t, "audit without user namespaces")
	if strings.Count(r.Stdout, "exit 0") != 4 {
		t.Errorf("audit: %s", r.Stdout)
	}
}

// TestStarterDebianPython runs Python from the Debian fixture image through the starter, without
// user namespaces, under the default and the isolate profiles.
func TestStarterDebianPython(t *testing.T) {
	e := starterSetup(t)
	img, _ := ltDebian(t, ltSetup(t))
	for _, p := range []string{"default", "isolate"} {
		r := e.run(t, true, nil, "hpcctl", "exec", "--profile", p, img, "python3", "-c", "import json, os; print(json.dumps([os.getuid(), os.geteuid()]))")
		r.mustSucceed(t, p+": python3 through the starter")
		if want := fmt.Sprintf("[%d, %d]\n", e.u.UID, e.u.UID); r.Stdout != want {
			t.Errorf("%s: %q, want %q", p, r.Stdout, want)
		}
	}
}

// TestStarterMountFlags: every mount in a container started through the starter is nosuid, and
// nodev but for the host's devices under /dev.
func TestStarterMountFlags(t *testing.T) {
	e := starterSetup(t)
	dir := workDir(t, e.u)
	for _, p := range []string{"default", "containall"} {
		r := e.run(t, true, nil, "hpcctl", "exec", "--profile", p, "--bind", dir+":/data", "--writable-tmpfs", e.img, "cat", "/proc/self/mountinfo")
		r.mustSucceed(t, p+": mountinfo")
		top := map[string]string{}
		for _, l := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
			f := strings.Fields(l)
			if len(f) < 6 {
				continue
			}
			point, opts := f[4], ","+f[5]+","
			if !strings.Contains(opts, ",nosuid,") {
				t.Errorf("%s: %s is not nosuid: %s", p, point, l)
			}
			top[point] = l
			// The host's devices keep theirs; /dev/shm and /dev/mqueue, which users write, do
			// not (checked below on the mount the program sees there).
			if point != "/dev" && !strings.HasPrefix(point, "/dev/") && !strings.Contains(opts, ",nodev,") {
				t.Errorf("%s: %s is not nodev: %s", p, point, l)
			}
		}
		// The last mount at a point covers the ones before (the host may stack two there).
		for _, point := range []string{"/dev/shm", "/dev/mqueue"} {
			if l, ok := top[point]; ok && !strings.Contains(","+strings.Fields(l)[5]+",", ",nodev,") {
				t.Errorf("%s: %s, which users write, is not nodev: %s", p, point, l)
			}
		}
	}
}

// TestStarterSandboxRefused: the starter mounts no sandbox directory; where user namespaces are
// disabled, such a launch is refused with one line saying what to run instead.
func TestStarterSandboxRefused(t *testing.T) {
	e := starterSetup(t)
	dir := workDir(t, e.u)
	sbx := filepath.Join(dir, "sandbox")
	if out, err := exec.Command("cp", "-a", e.tree, sbx).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	r := e.run(t, true, nil, "hpcctl", "exec", sbx, "true")
	if r.Code == 0 || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 || !strings.Contains(r.Stderr, "does not run sandbox directories") || !strings.Contains(r.Stderr, "hpcctl build") {
		t.Errorf("sandbox without user namespaces: status %d, stderr %q; want one line saying to build a SIF", r.Code, r.Stderr)
	}
	e.run(t, false, nil, "hpcctl", "exec", sbx, "true").mustSucceed(t, "sandbox with user namespaces")
}
