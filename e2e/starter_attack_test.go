package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/hpcctl/hpcctl/internal/sif"
	"github.com/hpcctl/hpcctl/internal/sif/siftest"
	"github.com/hpcctl/hpcctl/internal/spec"
)

// The attacks below must gain the plain user nothing through the setuid starter. Each runs
// without user namespaces (where the starter is the only way in) unless it says otherwise.

// stImage makes a root-owned SIF in the root-owned images directory from the busybox tree plus
// what change adds.
func stImage(t *testing.T, e *stEnv, name string, change func(tree string)) string {
	t.Helper()
	tree := filepath.Join(t.TempDir(), "tree")
	if out, err := exec.Command("cp", "-a", e.tree, tree).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	change(tree)
	img := filepath.Join(filepath.Dir(e.img), name)
	if err := siftest.Make(img, tree, nil); err != nil {
		t.Fatal(err)
	}
	os.Chmod(img, 0o644) //nolint:errcheck // checked by the launch
	t.Cleanup(func() { os.Remove(img) })
	return img
}

// rawSpec is a minimal Spec for the starter (no user namespace, the image on a loop device).
func rawSpec(t *testing.T, img string, args ...string) *spec.Spec {
	t.Helper()
	f, err := os.Open(img)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	si, err := sif.OpenFile(f)
	if err != nil {
		t.Fatal(err)
	}
	return &spec.Spec{
		Namespaces: spec.Namespaces{Mount: true},
		RootFS:     spec.RootFS{Backend: spec.BackendLoop, Image: img, Offset: si.Offset, Size: si.Size},
		Mounts:     []spec.Mount{{Kind: spec.KindBind, Source: "/proc", Destination: "/proc", Recursive: true}},
		Env:        []string{"PATH=/bin"}, Args: args, Cwd: "/",
	}
}

// runRaw runs the starter as the user with the Spec as it is, through rawstarter.
func (e *stEnv) runRaw(t *testing.T, s *spec.Spec, starter string) result {
	t.Helper()
	dir := workDir(t, e.u)
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "spec.json")
	writeFile(t, e.u, file, string(b), 0o644)
	args := []string{e.rawstarter, starter, file, s.RootFS.Image}
	if s.Namespaces.PID {
		args = append(args, "--pid")
	}
	return runCmd(t, e.cmd(t, true, dir, nil, args...))
}

func TestStarterAttackBinds(t *testing.T) {
	e := starterSetup(t)
	secret := filepath.Join("/root", fmt.Sprintf("hpcctl-secret-%d", time.Now().UnixNano()))
	if err := os.WriteFile(secret, []byte("TOPSECRET\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(secret)
	os.Chmod("/root", 0o700) //nolint:errcheck // the usual mode
	for _, c := range []struct{ name, bind, probe string }{
		{"shadow", "/etc/shadow:/s", "cat /s"},
		{"root", "/root:/r", "ls -a /r; cat /r/" + filepath.Base(secret)},
		{"root file", secret + ":/f", "cat /f"},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := e.run(t, true, nil, "hpcctl", "exec", "--bind", c.bind, e.img, "sh", "-c", c.probe)
			if strings.Contains(r.Stdout, "TOPSECRET") || strings.Contains(r.Stdout, "root:") || strings.Contains(r.Stdout, "hpcctl-secret") {
				t.Fatalf("read through the starter: %q", r.Stdout)
			}
		})
	}
	// The same binds in a Spec that no hpcctl checked: the starter opens bind sources as the
	// user, and root's files keep their modes inside.
	for _, src := range []string{"/root", secret, "/etc/shadow"} {
		s := rawSpec(t, e.img, "sh", "-c", "cat /x 2>&1; ls /x 2>&1")
		s.Mounts = append(s.Mounts, spec.Mount{Kind: spec.KindBind, Source: src, Destination: "/x"})
		r := e.runRaw(t, s, bins.starter)
		if strings.Contains(r.Stdout, "TOPSECRET") || strings.Contains(r.Stdout, "root:") || strings.Contains(r.Stdout, "hpcctl-secret") {
			t.Fatalf("raw bind of %s: %q", src, r.Stdout)
		}
	}
	// Another user's (root's) process links: following them needs ptrace rights over it.
	for _, src := range []string{"/proc/1/cwd", "/proc/1/root"} {
		s := rawSpec(t, e.img, "true")
		s.Mounts = append(s.Mounts, spec.Mount{Kind: spec.KindBind, Source: src, Destination: "/x"})
		if r := e.runRaw(t, s, bins.starter); r.Code == 0 {
			t.Errorf("raw bind of %s was made", src)
		}
	}
	// /root as a read-only overlay layer: overlayfs would read it with the starter's credentials.
	s := rawSpec(t, e.img, "sh", "-c", "ls -a /; cat /"+filepath.Base(secret))
	s.Overlays = []spec.Overlay{{Dir: "/root", ReadOnly: true}}
	if r := e.runRaw(t, s, bins.starter); r.Code == 0 || strings.Contains(r.Stdout, "TOPSECRET") || !strings.Contains(r.Stderr, "cannot read") {
		t.Fatalf("raw overlay of /root: status %d, stdout %q, stderr %q", r.Code, r.Stdout, r.Stderr)
	}
}

func TestStarterAttackSymlinkDestination(t *testing.T) {
	e := starterSetup(t)
	img := stImage(t, e, "symlink.sif", func(tree string) {
		os.Symlink("/root", filepath.Join(tree, "evil"))   //nolint:errcheck // checked below
		os.Symlink("../../etc", filepath.Join(tree, "up")) //nolint:errcheck // checked below
	})
	dir := workDir(t, e.u)
	writeFile(t, e.u, filepath.Join(dir, "planted"), "planted\n", 0o644)
	name := fmt.Sprintf("planted-%d", time.Now().UnixNano())
	for _, dst := range []string{"/evil/" + name, "/up/" + name} {
		e.run(t, true, nil, "hpcctl", "exec", "--bind", filepath.Join(dir, "planted")+":"+dst, img, "true")
		for _, host := range []string{"/root/" + name, "/etc/" + name} {
			if _, err := os.Lstat(host); err == nil {
				os.Remove(host)
				t.Fatalf("bind to %s created %s on the host", dst, host)
			}
		}
	}
}

func TestStarterAttackSetuidImage(t *testing.T) {
	e := starterSetup(t)
	src := filepath.Join(t.TempDir(), "euid.go")
	if err := os.WriteFile(src, []byte("package main\nimport (\"fmt\"; \"os\")\nfunc main() { fmt.Println(os.Geteuid(), os.Getuid()) }\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	prog := filepath.Join(t.TempDir(), "euid")
	cmd := exec.Command(goTool(), "build", "-o", prog, src)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v: %s", err, out)
	}
	img := stImage(t, e, "setuid.sif", func(tree string) {
		b, _ := os.ReadFile(prog)
		os.WriteFile(filepath.Join(tree, "bin/euid"), b, 0o755) //nolint:errcheck // checked by the run
		os.Chmod(filepath.Join(tree, "bin/euid"), 0o4755)       //nolint:errcheck // checked by the run
		b, _ = os.ReadFile(filepath.Join(tree, "bin/busybox"))
		// busybox picks its applet by name: a setuid-root "sh".
		os.MkdirAll(filepath.Join(tree, "opt/suid"), 0o755)        //nolint:errcheck // checked by the run
		os.WriteFile(filepath.Join(tree, "opt/suid/sh"), b, 0o755) //nolint:errcheck // checked by the run
		os.Chmod(filepath.Join(tree, "opt/suid/sh"), 0o4755)       //nolint:errcheck // checked by the run
	})
	want := fmt.Sprintf("%d %d\n", e.u.UID, e.u.UID)
	for _, p := range []string{"default", "containall", "isolate"} {
		r := e.run(t, true, nil, "hpcctl", "exec", "--profile", p, img, "/bin/euid").mustSucceed(t, p+": setuid program")
		if r.Stdout != want {
			t.Errorf("%s: setuid-root program in the image: euid uid %q, want %q", p, r.Stdout, want)
		}
		r = e.run(t, true, nil, "hpcctl", "exec", "--profile", p, "--writable-tmpfs", img, "/opt/suid/sh", "-c", "id -u").mustSucceed(t, p+": setuid shell")
		if strings.TrimSpace(r.Stdout) != fmt.Sprint(e.u.UID) {
			t.Errorf("%s: setuid-root shell: id -u %q", p, r.Stdout)
		}
	}
	// A Spec that asks to keep capabilities and no no_new_privs gets neither.
	s := rawSpec(t, img, "sh", "-c", statusProbe)
	s.KeepCapabilities, s.NoNewPrivileges = true, false
	r := e.runRaw(t, s, bins.starter).mustSucceed(t, "raw spec keeping capabilities")
	checkDropped(t, e, r.Stdout)
}

func TestStarterAttackWritableImage(t *testing.T) {
	e := starterSetup(t)
	dir := workDir(t, e.u)
	mine := filepath.Join(dir, "mine.sif")
	if out, err := exec.Command("cp", e.img, mine).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	os.Chown(mine, e.u.UID, e.u.GID) //nolint:errcheck // checked below
	rootInUserDir := filepath.Join(dir, "root-owned.sif")
	exec.Command("cp", e.img, rootInUserDir).Run() //nolint:errcheck // checked below
	groupWritable := stImage(t, e, "gw.sif", func(string) {})
	os.Chmod(groupWritable, 0o664) //nolint:errcheck // checked below
	for _, img := range []string{mine, rootInUserDir, groupWritable} {
		r := e.run(t, true, nil, "hpcctl", "exec", img, "true")
		if r.Code == 0 || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 || !strings.Contains(r.Stderr, "cannot change") || !strings.Contains(r.Stderr, "user namespaces are disabled") {
			t.Errorf("%s without user namespaces: status %d, stderr %q; want one line refusing it", img, r.Code, r.Stderr)
		}
		// With user namespaces it goes through squashfuse_ll.
		e.run(t, false, nil, "hpcctl", "exec", img, "true").mustSucceed(t, "user-writable image with user namespaces")
		// A hostile hpcctl cannot make the starter mount it.
		s := rawSpec(t, img, "true")
		if r := e.runRaw(t, s, bins.starter); r.Code == 0 || !strings.Contains(r.Stderr, "cannot change") {
			t.Errorf("raw spec with %s: status %d, stderr %q", img, r.Code, r.Stderr)
		}
	}
	if l := loopsOf(t, mine); len(l) != 0 {
		t.Errorf("user's image on loop devices: %v", l)
	}
	// A sandbox directory is refused by the starter.
	s := rawSpec(t, e.img, "true")
	s.RootFS = spec.RootFS{Backend: spec.BackendDir, Image: dir}
	if r := e.runRaw(t, s, bins.starter); r.Code == 0 {
		t.Errorf("raw spec with a sandbox directory ran")
	}
	// So is a user namespace it did not make.
	s = rawSpec(t, e.img, "true")
	s.Namespaces.User = true
	if r := e.runRaw(t, s, bins.starter); r.Code == 0 {
		t.Errorf("raw spec with a user namespace ran")
	}
}

// TestStarterAttackConfig: the starter reads only its root-owned configuration.
func TestStarterAttackConfig(t *testing.T) {
	e := starterSetup(t)
	dir := workDir(t, e.u)
	mine := filepath.Join(dir, "mine.sif")
	exec.Command("cp", e.img, mine).Run() //nolint:errcheck // checked below
	os.Chown(mine, e.u.UID, e.u.GID)      //nolint:errcheck // checked below
	conf := filepath.Join(dir, "my.conf")
	writeFile(t, e.u, conf, fmt.Sprintf("allow_setuid = true\nkernel_mount_owners = [%q]\n", e.u.Name), 0o644)
	for _, how := range [][]string{{"--config", conf}, {}} {
		env := []string{}
		if len(how) == 0 {
			env = []string{"HPCCTL_CONFIG=" + conf}
		}
		r := e.run(t, true, env, append(append([]string{"hpcctl", "exec"}, how...), mine, "true")...)
		if r.Code == 0 {
			t.Errorf("the user's configuration (%v %v) let the starter mount the user's image", how, env)
		}
	}
	// A site file the user owns, or that is group-writable, turns the starter off.
	for _, c := range []struct {
		name  string
		alter func(path string)
		why   string // in the starter's refusal
	}{
		{"user-owned", func(p string) { os.Chown(p, e.u.UID, e.u.GID) }, "the setuid starter is off"},                         //nolint:errcheck // checked below
		{"group-writable", func(p string) { os.Chmod(p, 0o664) }, "the setuid starter is off"},                                //nolint:errcheck // checked below
		{"user-owned directory", func(p string) { os.Chown(filepath.Dir(p), e.u.UID, e.u.GID) }, "the setuid starter is off"}, //nolint:errcheck // checked below
		{"not allowed", func(p string) { os.WriteFile(p, []byte("allow_setuid = false\n"), 0o644) }, "allow_setuid is false"}, //nolint:errcheck // checked below
	} {
		t.Run(c.name, func(t *testing.T) {
			prefix := filepath.Join(bins.root, "suid-"+sanitize(c.name))
			installSuid(t, prefix)
			c.alter(filepath.Join(prefix, "etc", "hpcctl", "hpcctl.conf"))
			r := runCmd(t, e.cmd(t, false, workDir(t, e.u), nil, filepath.Join(prefix, "bin", "hpcctl"), "doctor"))
			if strings.Contains(r.Stdout, "launch path: setuid") {
				t.Errorf("doctor: %q", r.Stdout)
			}
			r = runCmd(t, e.cmd(t, true, workDir(t, e.u), nil, filepath.Join(prefix, "bin", "hpcctl"), "exec", e.img, "true"))
			if r.Code == 0 {
				t.Errorf("ran without user namespaces through a starter whose configuration the user controls")
			}
			// With user namespaces, hpcctl falls back to them.
			runCmd(t, e.cmd(t, false, workDir(t, e.u), nil, filepath.Join(prefix, "bin", "hpcctl"), "exec", e.img, "true")).mustSucceed(t, "fallback to user namespaces")
			r = e.runRaw(t, rawSpec(t, e.img, "true"), filepath.Join(prefix, "libexec", "hpcctl", "hpcctl-starter"))
			if r.Code == 0 || !strings.Contains(r.Stderr, c.why) {
				t.Errorf("starter with that configuration: status %d, stderr %q", r.Code, r.Stderr)
			}
		})
	}
}

func installSuid(t *testing.T, prefix string) {
	t.Helper()
	modRoot, err := moduleRoot()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "--no-print-directory", "install-suid", "PREFIX="+prefix, "BIN="+filepath.Join(bins.root, "bin"))
	cmd.Dir = modRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make install-suid: %v: %s", err, out)
	}
	t.Cleanup(func() { os.RemoveAll(prefix) })
}

// TestStarterAttackEnvironment: the privileged part runs with an empty environment, whatever the
// user sets (the Go runtime honours GODEBUG, GOMAXPROCS, ... even when setuid).
func TestStarterAttackEnvironment(t *testing.T) {
	e := starterSetup(t)
	needCommand(t, "strace")
	hostile := []string{"LD_PRELOAD=/nonexistent/evil.so", "LD_LIBRARY_PATH=/nonexistent", "GODEBUG=inittrace=1", "GOTRACEBACK=crash", "GOMAXPROCS=1"}
	dir := workDir(t, e.u)
	trace := filepath.Join(t.TempDir(), "trace")
	inner := e.cmd(t, true, dir, hostile, "hpcctl", "exec", e.img, "true")
	r := runCmd(t, exec.Command("strace", append([]string{"-f", "-qq", "-e", "trace=execve", "-o", trace}, inner.Args...)...))
	r.mustSucceed(t, "exec with a hostile environment")
	checkStarterExecs(t, trace, 1)
	// Run by hand with that environment, it starts itself again with none.
	by := e.cmd(t, true, dir, hostile, bins.starter)
	runCmd(t, exec.Command("strace", append([]string{"-f", "-qq", "-e", "trace=execve", "-o", trace}, by.Args...)...))
	checkStarterExecs(t, trace, 2)
}

// checkStarterExecs checks that the last execve of the starter in an strace log had no
// environment, and that there were at least n.
func checkStarterExecs(t *testing.T, trace string, n int) {
	t.Helper()
	b, err := os.ReadFile(trace)
	if err != nil {
		t.Fatal(err)
	}
	var last string
	count := 0
	for _, l := range strings.Split(string(b), "\n") {
		// strace may split an execve into "<unfinished ...>" and "<... execve resumed>" lines.
		if strings.Contains(l, "execve(") && (strings.Contains(l, "hpcctl-starter") || strings.Contains(l, "/proc/self/exe")) && !strings.Contains(l, "= -1") {
			last, count = l, count+1
		}
	}
	if count < n || !strings.Contains(last, "/* 0 vars */") {
		t.Errorf("starter execs (%d, want %d): last %q\n%s", count, n, last, b)
	}
}

func needCommand(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skip("needs " + name)
	}
}

// TestStarterAttackSpecPolicy: the starter decides itself where the partition is and whether the
// site's signature policy admits the image, whatever a hostile hpcctl says or skips.
func TestStarterAttackSpecPolicy(t *testing.T) {
	e := starterSetup(t)
	s := rawSpec(t, e.img, "true")
	s.RootFS.Offset, s.RootFS.Size = 0, 4096 // the SIF header, not the partition
	e.runRaw(t, s, bins.starter).mustSucceed(t, "raw spec with a wrong partition (the starter finds the right one)")

	prefix := filepath.Join(bins.root, "suid-signed")
	installSuid(t, prefix)
	conf := filepath.Join(prefix, "etc", "hpcctl", "hpcctl.conf")
	f, err := os.OpenFile(conf, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("\n[signature]\nrequire_signed = true\ntrusted_keys_dir = \"" + prefix + "/etc/hpcctl\"\n") //nolint:errcheck // checked by the run
	f.Close()
	r := e.runRaw(t, rawSpec(t, e.img, "true"), filepath.Join(prefix, "libexec", "hpcctl", "hpcctl-starter"))
	t.Logf("refused: %s", r.Stderr)
	if r.Code == 0 || !strings.Contains(r.Stderr, "signed") {
		t.Errorf("unsigned image under require_signed, policy check skipped by hpcctl: status %d, stderr %q", r.Code, r.Stderr)
	}
	r = runCmd(t, e.cmd(t, true, workDir(t, e.u), nil, filepath.Join(prefix, "bin", "hpcctl"), "exec", e.img, "true"))
	if r.Code == 0 {
		t.Errorf("unsigned image under require_signed ran")
	}
}

// TestStarterAttackFUSEImage: an image on a FUSE file system that a user mounted only seems
// root's: the server reports the owners it likes, and can serve other bytes later. The user's
// FUSE server is simulated by squashfuse_ll with the user's real UID (the mount's user_id) and
// allow_other, as a site with user_allow_other in /etc/fuse.conf allows, over a squashfs file
// the user owns, holding a root-owned copy of the image.
func TestStarterAttackFUSEImage(t *testing.T) {
	e := starterSetup(t)
	needCommand(t, "squashfuse_ll")
	needCommand(t, "setpriv")
	needCommand(t, "mksquashfs")
	src := t.TempDir()
	os.Chmod(src, 0o755) //nolint:errcheck // checked by the mount
	if out, err := exec.Command("cp", e.img, filepath.Join(src, "bb.sif")).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v: %s", err, out)
	}
	dir := workDir(t, e.u)
	outer := filepath.Join(dir, "outer.sqfs")
	if out, err := exec.Command("mksquashfs", src, outer, "-all-root", "-quiet", "-no-progress", "-noappend").CombinedOutput(); err != nil {
		t.Fatalf("mksquashfs: %v: %s", err, out)
	}
	os.Chown(outer, e.u.UID, e.u.GID) //nolint:errcheck // the user could rewrite it: the point
	mnt := workDir(t, e.u)
	mountCmd := exec.Command("setpriv", "--ruid", fmt.Sprint(e.u.UID), "--rgid", fmt.Sprint(e.u.GID), "--clear-groups",
		"squashfuse_ll", "-o", "allow_other", outer, mnt)
	if out, err := mountCmd.CombinedOutput(); err != nil {
		t.Fatalf("squashfuse_ll as the user: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("umount", "-l", mnt).Run() }) //nolint:errcheck // best effort
	img := filepath.Join(mnt, "bb.sif")
	if st, err := os.Stat(img); err != nil || st.Sys().(*syscall.Stat_t).Uid != 0 {
		t.Fatalf("the FUSE image should seem root's: %v", err)
	}
	r := e.runRaw(t, rawSpec(t, img, "true"), bins.starter)
	if r.Code == 0 || !strings.Contains(r.Stderr, "FUSE file system that a user mounted") {
		t.Errorf("raw spec with an image on the user's FUSE mount: status %d, stderr %q", r.Code, r.Stderr)
	}
	if l := loopsOf(t, img); len(l) != 0 {
		t.Errorf("the user's FUSE image on loop devices: %v", l)
	}
	r = e.run(t, true, nil, "hpcctl", "exec", img, "true")
	if r.Code == 0 || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 {
		t.Errorf("exec of an image on the user's FUSE mount without user namespaces: status %d, stderr %q; want one line refusing it", r.Code, r.Stderr)
	}
}

// TestStarterAttackDevPath: the bind of a host device keeps its devices (no nodev) only when the
// source really is under /dev: a Spec's "/dev/../DIR" must not carry a device node from elsewhere.
func TestStarterAttackDevPath(t *testing.T) {
	e := starterSetup(t)
	dir := workDir(t, e.u)
	node := filepath.Join(dir, "zero")
	if err := syscall.Mknod(node, syscall.S_IFCHR|0o666, int(unix.Mkdev(1, 5))); err != nil {
		t.Fatal(err)
	}
	for _, src := range []string{"/dev/.." + node, "/dev/../" + strings.TrimPrefix(dir, "/")} {
		s := rawSpec(t, e.img, "sh", "-c", "grep ' /x ' /proc/self/mountinfo")
		s.Mounts = append(s.Mounts, spec.Mount{Kind: spec.KindBind, Source: src, Destination: "/x"})
		r := e.runRaw(t, s, bins.starter).mustSucceed(t, "raw bind of "+src)
		if f := strings.Fields(r.Stdout); len(f) < 6 || !strings.Contains(","+f[5]+",", ",nodev,") {
			t.Errorf("bind of %s is not nodev: %q", src, r.Stdout)
		}
	}
}
