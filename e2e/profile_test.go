package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// profileProbe prints, one per line, what a program sees of the host. HOSTPID is a process of the
// host (this test), visible only without a PID namespace.
const profileProbe = `m=hpcctl-marker-$TOKEN
yn() { if "$@" 2>/dev/null; then echo yes; else echo no; fi; }
echo "home=$(yn test -e "$HOME/$m")"
echo "tmp=$(yn test -e /tmp/$m)"
echo "env=${HPCCTL_E2E_HOSTVAR:-none}"
echo "hostpid=$(yn test -d /proc/$HOSTPID)"
echo "net=$(ls /sys/class/net | tr '\n' ' ')"
echo "lo=$(cat /sys/class/net/lo/flags)"
echo "host=$(hostname)"
echo "cwd=$(pwd)"
echo "rootw=$(yn touch /.w-$TOKEN)"
echo "tmpw=$(yn touch /tmp/w-$TOKEN)"
echo "dev=$(ls /dev | wc -l)"
echo "umask=$(umask)"
echo "nnp=$(grep NoNewPrivs /proc/self/status | tr -dc 0-9)"
echo "procsysro=$(yn sh -c "awk '\$5==\"/proc/sys\" {print \$6}' /proc/self/mountinfo | grep -q '^ro'")"
`

func hostNet(t *testing.T) string {
	t.Helper()
	ents, err := os.ReadDir("/sys/class/net")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name()+" ")
	}
	return strings.Join(names, "")
}

func probeLines(out string) map[string]string {
	m := map[string]string{}
	for _, l := range strings.Split(out, "\n") {
		if k, v, ok := strings.Cut(l, "="); ok {
			m[k] = v
		}
	}
	return m
}

// TestProfileWalls runs each profile as root and as the plain user and checks what the program
// sees of the host: home and /tmp markers, a host variable, host PIDs, network interfaces, host
// name, working directory, writable / and /tmp.
func TestProfileWalls(t *testing.T) {
	e := ltSetup(t)
	hostname, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	before := ltTake(t)
	for _, as := range ltWho {
		home := "/root"
		if as == asUser {
			home = ltNeedUser(t).HomeDir
		}
		token := e.token + string(as)
		marker := "hpcctl-marker-" + token
		for _, f := range []string{filepath.Join(home, marker), filepath.Join("/tmp", marker)} {
			if err := os.WriteFile(f, nil, 0o644); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.Remove(f) })
		}
		t.Cleanup(func() { os.Remove("/tmp/w-" + token) })
		tests := []struct {
			flags []string
			want  map[string]string
		}{
			{nil, map[string]string{"home": "yes", "tmp": "yes", "env": "host", "hostpid": "yes", "net": hostNet(t), "host": hostname, "rootw": "no", "tmpw": "yes", "nnp": "0", "procsysro": "no"}},
			{[]string{"--contain"}, map[string]string{"home": "no", "tmp": "no", "env": "host", "hostpid": "yes", "net": hostNet(t), "host": hostname, "cwd": home, "rootw": "no", "tmpw": "yes", "dev": "13"}},
			{[]string{"-C"}, map[string]string{"home": "no", "tmp": "no", "env": "none", "hostpid": "no", "net": hostNet(t), "host": hostname, "cwd": home, "rootw": "no", "tmpw": "yes", "dev": "13"}},
			{[]string{"--isolate"}, map[string]string{"home": "no", "tmp": "no", "env": "none", "hostpid": "no", "net": "lo ", "lo": "0x9", "host": "hpcctl", "cwd": "/", "rootw": "no", "tmpw": "yes", "dev": "13", "umask": "0022", "nnp": "1", "procsysro": "yes"}},
			{[]string{"--net", "--hostname", "node7", "--pid"}, map[string]string{"home": "yes", "env": "host", "hostpid": "no", "net": "lo ", "lo": "0x9", "host": "node7"}},
			{[]string{"--network", "none", "--uts", "--no-mount", "home,tmp"}, map[string]string{"home": "no", "tmp": "no", "net": "lo ", "host": hostname, "hostpid": "yes"}},
			{[]string{"--contain", "--writable-tmpfs"}, map[string]string{"rootw": "yes"}},
		}
		for _, tt := range tests {
			t.Run(string(as)+"/"+strings.Join(tt.flags, "_"), func(t *testing.T) {
				dir := e.workdir(t)
				if _, ok := tt.want["cwd"]; !ok && tt.flags == nil {
					tt.want["cwd"] = dir
				}
				env := []string{"HPCCTL_E2E_HOSTVAR=host", "TOKEN=" + token, "HOSTPID=" + strconv.Itoa(os.Getpid()), "HPCCTLENV_TOKEN=" + token, "HPCCTLENV_HOSTPID=" + strconv.Itoa(os.Getpid())}
				args := append(append([]string{"exec"}, tt.flags...), e.bb, "sh", "-c", profileProbe)
				// --isolate passes no HPCCTLENV_ variable: give the probe its inputs explicitly.
				args = append(append(append([]string{"exec"}, tt.flags...), "--env", "TOKEN="+token, "--env", "HOSTPID="+strconv.Itoa(os.Getpid())), args[1+len(tt.flags):]...)
				r := e.run(t, as, dir, env, "", args...)
				if r.code != 0 {
					t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
				}
				got := probeLines(r.stdout)
				if _, ok := tt.want["nnp"]; ok && ltStarter(as) {
					tt.want["nnp"] = "1" // the setuid starter always sets no_new_privs
				}
				for k, v := range tt.want {
					if got[k] != v {
						t.Errorf("%s = %q, want %q", k, got[k], v)
					}
				}
				if t.Failed() {
					t.Logf("probe output:\n%s\nstderr: %s", r.stdout, r.stderr)
				}
			})
		}
	}
	e.nothingLeft(t, before, e.bb)
}

// TestProfileProcessesEnd checks that the PID namespace of the contained profiles ends what the
// program left running in the background, and that the program's status comes back through init.
func TestProfileProcessesEnd(t *testing.T) {
	e := ltSetup(t)
	before := ltTake(t)
	for _, as := range ltWho {
		t.Run(string(as), func(t *testing.T) {
			r := e.run(t, as, e.workdir(t), nil, "", "exec", "--containall", "--env", "HPCCTL_E2E_TOKEN="+e.token, e.bb, "sh", "-c", "sleep 300 & echo pid1=$(cat /proc/1/cmdline | tr '\\0' ' '); exit 5")
			if r.code != 5 || !strings.Contains(r.stdout, "pid1=") {
				t.Errorf("exit %d, stdout %q, stderr %q", r.code, r.stdout, r.stderr)
			}
		})
	}
	e.nothingLeft(t, before, e.bb)
}

// TestProfilePythonUserSite is the classic case: a module in the host's ~/.local site-packages
// shadows the image's module of the same name under the default profile, and not under
// --containall or --isolate. The image's module lives in its dist-packages (bound read-only, the
// same for every profile).
func TestProfilePythonUserSite(t *testing.T) {
	e := ltSetup(t)
	deb, pyver, imageMods := shadowImage(t, e)
	for _, as := range ltWho {
		shadowInHome(t, as, pyver)
		for _, tt := range []struct {
			flag, want string
		}{{"", "host-home"}, {"--contain", "image"}, {"--containall", "image"}, {"--isolate", "image"}} {
			t.Run(string(as)+"/"+tt.flag, func(t *testing.T) {
				args := []string{"exec", "-B", imageMods + ":/usr/local/lib/python" + pyver + "/dist-packages:ro"}
				if tt.flag != "" {
					args = append(args, tt.flag)
				}
				r := e.run(t, as, e.workdir(t), nil, "", append(args, deb, "python3", "-c", "import shadowme; print(shadowme.WHO)")...)
				if r.code != 0 || strings.TrimSpace(r.stdout) != tt.want {
					t.Errorf("exit %d, imported %q, want %q (stderr %q)", r.code, r.stdout, tt.want, r.stderr)
				}
			})
		}
	}
}

// shadowImage prepares the "same container, different results" case: the Debian+python3 image,
// its Python version, and a directory holding the image's module shadowme (WHO = 'image'), to be
// bound read-only at /usr/local/lib/pythonX.Y/dist-packages.
func shadowImage(t *testing.T, e *ltEnv) (deb, pyver, imageMods string) {
	t.Helper()
	deb, tree := ltDebian(t, e)
	ver, err := exec.Command("chroot", tree, "/usr/bin/python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])").Output()
	if err != nil {
		t.Fatal(err)
	}
	imageMods = e.workdir(t)
	if err := os.MkdirAll(filepath.Join(imageMods, "shadowme"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(imageMods, "shadowme", "__init__.py"), []byte("WHO = 'image'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return deb, strings.TrimSpace(string(ver)), imageMods
}

// shadowInHome puts a module shadowme (WHO = 'host-home') in the user site directory of as's
// host home, removed when the test ends.
func shadowInHome(t *testing.T, as ltAs, pyver string) {
	t.Helper()
	home, uid, gid := "/root", 0, 0
	if as == asUser {
		u := ltNeedUser(t)
		home = u.HomeDir
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
	}
	site := filepath.Join(home, ".local", "lib", "python"+pyver, "site-packages")
	made := mkdirAllAs(t, filepath.Join(site, "shadowme"), uid, gid)
	t.Cleanup(func() { os.RemoveAll(made) })
	if err := os.WriteFile(filepath.Join(site, "shadowme", "__init__.py"), []byte("WHO = 'host-home'\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// mkdirAllAs makes dir and its missing parents, owned by uid and gid, and returns the topmost
// directory it made (to remove afterwards without touching what was there before).
func mkdirAllAs(t *testing.T, dir string, uid, gid int) string {
	t.Helper()
	top := dir
	for p := dir; ; p = filepath.Dir(p) {
		if _, err := os.Stat(p); err == nil {
			break
		}
		top = p
	}
	if _, err := os.Stat(top); err == nil {
		t.Fatalf("%s exists already", dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for p := dir; ; p = filepath.Dir(p) {
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
		if p == top {
			break
		}
	}
	return top
}

// TestProfileNoPrivs checks that root keeps its capabilities by default, as Apptainer's root does,
// and loses them all with --no-privs; a plain user never has any.
func TestProfileNoPrivs(t *testing.T) {
	e := ltSetup(t)
	probe := []string{e.bb, "sh", "-c", "grep -E '^(CapEff|NoNewPrivs)' /proc/self/status | tr -s '\\t' ' '"}
	cases := []struct {
		as    ltAs
		flags []string
		caps  bool
		nnp   string
	}{
		{asRoot, nil, true, "0"},
		{asRoot, []string{"--no-privs"}, false, "1"},
		{asUser, nil, false, "0"},
	}
	for _, c := range cases {
		args := append(append([]string{"exec"}, c.flags...), probe...)
		r := e.run(t, c.as, e.workdir(t), nil, "", args...)
		if r.code != 0 {
			t.Fatalf("%s %v: exit %d: %s", c.as, c.flags, r.code, r.stderr)
		}
		if ltStarter(c.as) {
			c.nnp = "1" // the setuid starter always sets no_new_privs
		}
		noCaps := strings.Contains(r.stdout, "CapEff: 0000000000000000")
		if noCaps == c.caps || !strings.Contains(r.stdout, "NoNewPrivs: "+c.nnp) {
			t.Errorf("%s %v: %q, want capabilities %v and NoNewPrivs %s", c.as, c.flags, r.stdout, c.caps, c.nnp)
		}
	}
}
