package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/hpcctl/hpcctl/internal/sif/siftest"
)

// cpCase is one Apptainer-style command line: its environment, arguments, and what it prints.
type cpCase struct {
	name   string
	env    []string
	args   func(dir string) []string // dir: a directory the user owns, holding f (content "data")
	stdout string
	code   int
	stderr string // a word the one line on stderr must hold (code 255 only)
}

// cpRun runs each case as root and as the plain user, in a fresh directory holding a file f.
func cpRun(t *testing.T, e *ltEnv, cases []cpCase) {
	t.Helper()
	for _, as := range ltWho {
		for _, c := range cases {
			t.Run(string(as)+"/"+c.name, func(t *testing.T) {
				dir := e.workdir(t)
				if err := os.WriteFile(filepath.Join(dir, "f"), []byte("data"), 0o644); err != nil {
					t.Fatal(err)
				}
				r := e.run(t, as, dir, c.env, "", c.args(dir)...)
				if r.code != c.code || (c.code != 255 && r.stdout != c.stdout) {
					t.Fatalf("exit %d (want %d), stdout %q (want %q), stderr %q", r.code, c.code, r.stdout, c.stdout, r.stderr)
				}
				if c.code == 255 && (strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, c.stderr)) {
					t.Errorf("stderr %q: want one line naming %q", r.stderr, c.stderr)
				}
			})
		}
	}
}

// TestCompatEnvironment: Apptainer's variables (flag variables, APPTAINERENV_, PREPEND_PATH,
// env files with $VAR) act as in Apptainer, as root and as a plain user.
func TestCompatEnvironment(t *testing.T) {
	e := ltSetup(t)
	before := ltTake(t)
	sh := func(script string) func(string) []string {
		return func(string) []string { return []string{"exec", e.bb, "sh", "-c", script} }
	}
	cpRun(t, e, []cpCase{
		{name: "APPTAINERENV_ and SINGULARITYENV_", env: []string{"SINGULARITYENV_A=s", "APPTAINERENV_A=a", "SINGULARITYENV_B=b", "HPCCTLENV_C=c", "APPTAINERENV_C=x"},
			args: sh(`echo $A $B $C`), stdout: "a b c\n"},
		{name: "container variables", args: sh(`echo $APPTAINER_NAME $SINGULARITY_CONTAINER`), stdout: "bb.sif " + e.bb + "\n"},
		{name: "flag variables not passed in", env: []string{"APPTAINER_NO_HOME=1", "SINGULARITY_NO_HOME=1"}, args: sh(`env | grep -c NO_HOME`), stdout: "0\n", code: 1},
		{name: "APPTAINER_CONTAIN", env: []string{"APPTAINER_CONTAIN=1"}, args: sh(`ls -A /tmp | wc -l; test "$PWD" = "$HOME" && echo home`), stdout: "0\nhome\n"},
		{name: "SINGULARITY_PWD", env: []string{"SINGULARITY_PWD=/etc"}, args: sh(`pwd`), stdout: "/etc\n"},
		{name: "HPCCTL_ wins", env: []string{"HPCCTL_PWD=/bin", "APPTAINER_PWD=/etc"}, args: sh(`pwd`), stdout: "/bin\n"},
		{name: "command line wins", env: []string{"APPTAINER_PWD=/etc"}, args: func(string) []string { return []string{"exec", "--pwd", "/dev", e.bb, "pwd"} }, stdout: "/dev\n"},
		{name: "APPTAINER_BIND adds to --bind", env: []string{"APPTAINER_BIND=/etc/hostname:/mnt/h"},
			args: func(d string) []string {
				return []string{"exec", "-B", d + ":/mnt/d", e.bb, "sh", "-c", "cat /mnt/d/f; test -f /mnt/h && echo h"}
			}, stdout: "datah\n"},
		{name: "SINGULARITY_BINDPATH", env: []string{"SINGULARITY_BINDPATH=/etc/hostname:/mnt/h"}, args: sh(`test -f /mnt/h && echo h`), stdout: "h\n"},
		{name: "bad variable", env: []string{"APPTAINER_CONTAIN=perhaps"}, args: sh(`true`), code: 255, stderr: "$APPTAINER_CONTAIN"},
		{name: "PREPEND_PATH and APPEND_PATH", env: []string{"APPTAINERENV_APPEND_PATH=/app"},
			args: func(string) []string {
				return []string{"exec", "--env", "PREPEND_PATH=/pre", e.bb, "sh", "-c", "echo $PATH"}
			}, stdout: "/pre:/bin:/app\n"},
		{name: "env file evaluated", env: []string{"HOSTVAR=hv"}, args: func(d string) []string {
			f := filepath.Join(d, "e.env")
			if err := os.WriteFile(f, []byte("X=$HOSTVAR/y\nY=\"${NOPE:-dflt}\"\nZ='$HOSTVAR'\nW=$X\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			// --no-eval: the file is still evaluated (as Apptainer's shell does) but the values are
			// not evaluated again in the container, so the single-quoted one stays as written.
			return []string{"exec", "--no-eval", "--env-file", f, e.bb, "sh", "-c", "echo $X $Y $Z $W"}
		}, stdout: "hv/y dflt $HOSTVAR hv/y\n"},
		{name: "--env evaluated", args: func(string) []string {
			return []string{"exec", "--env", "X=$FROM_IMAGE-1", e.bb, "sh", "-c", "echo $X"}
		}, stdout: "yes-1\n"},
		{name: "--no-eval", args: func(string) []string {
			return []string{"exec", "--no-eval", "--env", "X=$FROM_IMAGE", e.bb, "sh", "-c", "echo $X"}
		}, stdout: "$FROM_IMAGE\n"},
		{name: "--no-env", env: []string{"DROPME=1", "KEEPME=1"}, args: func(string) []string {
			return []string{"exec", "--no-env", "DROPME", e.bb, "sh", "-c", "echo ${DROPME:-gone} $KEEPME"}
		}, stdout: "gone 1\n"},
		{name: "apptainer image: --env beats its env scripts", args: func(string) []string {
			return []string{"exec", "--env", "FROM_APPTAINER_ENV=mine", "--env", "PREPEND_PATH=/pre", e.app, "sh", "-c", "echo $FROM_APPTAINER_ENV ${PATH%%:*}"}
		}, stdout: "mine /pre\n"},
		{name: "no PATH in the caller's environment", env: []string{"PATH="}, args: sh(`echo ok`), stdout: "ok\n"},
	})
	e.nothingLeft(t, before, e.bb, e.app)
}

// TestCompatVerboseNotice: -v says once which Apptainer variables were honoured; without -v
// nothing is said.
func TestCompatVerboseNotice(t *testing.T) {
	e := ltSetup(t)
	env := []string{"APPTAINER_CONTAIN=1", "SINGULARITY_UTS=1"}
	r := e.run(t, asRoot, e.workdir(t), env, "", "-v", "exec", e.bb, "true")
	if r.code != 0 || strings.Count(r.stderr, "honouring Apptainer's variables") != 1 ||
		!strings.Contains(r.stderr, "$APPTAINER_CONTAIN (--contain)") || !strings.Contains(r.stderr, "$SINGULARITY_UTS (--uts)") {
		t.Errorf("-v: exit %d, stderr %q", r.code, r.stderr)
	}
	if r := e.run(t, asRoot, e.workdir(t), env, "", "exec", e.bb, "true"); r.code != 0 || r.stderr != "" {
		t.Errorf("without -v: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestCompatFlags: Apptainer's launch flags, as root and as a plain user.
func TestCompatFlags(t *testing.T) {
	e := ltSetup(t)
	before := ltTake(t)
	run := func(script string, flags ...string) func(string) []string {
		return func(string) []string {
			return append(append(append([]string{"exec"}, flags...), e.bb), "sh", "-c", script)
		}
	}
	hostPidNS, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	cpRun(t, e, []cpCase{
		{name: "--cwd", args: run("pwd", "--cwd", "/etc"), stdout: "/etc\n"},
		{name: "-H", args: func(d string) []string {
			return []string{"exec", "-H", d + ":/myhome", e.bb, "sh", "-c", "echo $HOME; cat /myhome/f"}
		}, stdout: "/myhome\ndata"},
		{name: "--mount", args: func(d string) []string {
			return []string{"exec", "--mount", "type=bind,source=" + d + ",destination=/m,ro", e.bb, "sh", "-c", "cat /m/f; touch /m/g 2>/dev/null || echo ro"}
		}, stdout: "dataro\n"},
		{name: "bind escapes", args: func(d string) []string {
			if err := os.Mkdir(filepath.Join(d, "a,b:c"), 0o777); err != nil {
				t.Fatal(err)
			}
			return []string{"exec", "-B", d + `/a\,b\:c:/x\:y`, e.bb, "sh", "-c", "test -d /x:y && echo ok"}
		}, stdout: "ok\n"},
		{name: "--no-pid under --containall", args: run("readlink /proc/self/ns/pid", "--containall", "--no-pid"), stdout: hostPidNS + "\n"},
		{name: "--no-umask", args: run("umask", "--no-umask"), stdout: "0022\n"},
		{name: "--compat", env: []string{"LEAK=1"}, args: run("touch /new && echo w ${LEAK:-clean}; umask", "--compat"), stdout: "w clean\n0022\n"},
		{name: "-S tmpfs", args: run("touch /scr/a && ls /scr", "-S", "/scr"), stdout: "a\n"},
		{name: "-W and -S", args: func(d string) []string {
			return []string{"exec", "-W", d + "/wd", "-S", "/scr", "--contain", e.bb, "sh", "-c", "touch /scr/a /tmp/b && ls " + d + "/wd 2>/dev/null; echo done"}
		}, stdout: "done\n"},
		{name: "--no-mount /etc/hosts", args: run("cmp -s /etc/hosts /proc/1/root/etc/hosts 2>/dev/null && echo same || echo image", "--no-mount", "/etc/hosts"), stdout: "image\n"},
		{name: "-o", args: func(d string) []string {
			return []string{"exec", "-o", d + "/ov", e.bb, "sh", "-c", "echo hi > /made; cat /made"}
		}, stdout: "hi\n"},
		{name: "--writable-tmpfs with a read-only overlay", args: func(d string) []string {
			if err := os.MkdirAll(filepath.Join(d, "ro", "etc"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(d, "ro", "etc", "layer"), []byte("layer\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			return []string{"exec", "--writable-tmpfs", "-o", d + "/ro:ro", e.bb, "sh", "-c", "cat /etc/layer; echo x > /w && cat /w"}
		}, stdout: "layer\nx\n"},
		{name: "two writable overlays", args: func(d string) []string { return []string{"exec", "-o", d + "/a", "-o", d + "/b", e.bb, "true"} }, code: 255, stderr: "only one may be writable"},
		{name: "--home /", args: run(`echo $HOME`, "--home", "/"), stdout: "/\n"},
		{name: "run-help", args: func(string) []string { return []string{"run-help", e.app} }, stdout: "No help sections were defined for this image\n"},
		{name: "inspect --labels --json", args: func(string) []string { return []string{"inspect", "--labels", "--json", e.bb} }, stdout: "{\n    \"data\": {\n        \"attributes\": {\n            \"labels\": {}\n        }\n    },\n    \"type\": \"container\"\n}\n"},
		{name: "inspect --environment", args: func(string) []string { return []string{"inspect", "-e", e.bb} }, stdout: "export PATH='/bin'\nexport FROM_IMAGE='yes'\n"},
		{name: "inspect --test", args: func(string) []string { return []string{"inspect", "--test", e.bb} }, code: 255, stderr: "hpcctl exec"},
		{name: "--underlay and --no-init accepted", args: run("echo ok", "--underlay", "--no-init"), stdout: "ok\n"},
		{name: "--runscript-timeout", args: func(string) []string { return []string{"run", "--runscript-timeout", "30s", e.app, "x"} }, stdout: "runscript x yes\n"},
		{name: "--network bridge", args: run("true", "--network", "bridge"), code: 255, stderr: "none"},
		{name: "--network-args", args: run("true", "--network-args", "portmap=80:80/tcp"), code: 255, stderr: "CNI"},
		{name: "--security", args: run("true", "--security", "seccomp:x.json"), code: 255, stderr: "seccomp"},
		{name: "--netns-path", args: run("true", "--netns-path", "/run/netns/x"), code: 255, stderr: "--net"},
		{name: "--drop-caps bogus", args: run("true", "--drop-caps", "CAP_BOGUS"), code: 255, stderr: "--drop-caps"},
		{name: "image-src", args: run("true", "-B", "/etc:/x:image-src=/"), code: 255, stderr: "image-src"},
		{name: "bad --runscript-timeout", args: run("true", "--runscript-timeout", "soon"), code: 255, stderr: "--runscript-timeout"},
		{name: "unknown flag", args: run("true", "--nvccli"), code: 255, stderr: "--nvccli"},
		{name: "missing image", args: func(string) []string { return []string{"exec", "/no/such.sif", "true"} }, code: 255, stderr: "/no/such.sif"},
	})
	e.nothingLeft(t, before, e.bb, e.app)
}

// TestCompatCapabilities: root drops single capabilities (--drop-caps) or keeps only some
// (--no-privs --add-caps), from the bounding set too; a plain user is refused with one line.
func TestCompatCapabilities(t *testing.T) {
	e := ltSetup(t)
	status := func(flags ...string) []string {
		return append(append(append([]string{"exec"}, flags...), e.bb), "grep", "-E", "^(CapEff|CapBnd|NoNewPrivs)", "/proc/self/status")
	}
	r := e.run(t, asRoot, e.workdir(t), nil, "", status("--drop-caps", "CAP_NET_RAW,sys_admin")...)
	if r.code != 0 || strings.Count(r.stdout, "Cap") != 2 {
		t.Fatalf("--drop-caps: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	for _, line := range strings.Split(strings.TrimSpace(r.stdout), "\n") {
		if !strings.HasPrefix(line, "Cap") {
			continue
		}
		var v uint64
		if _, err := fmt.Sscanf(strings.Fields(line)[1], "%x", &v); err != nil {
			t.Fatal(err)
		}
		if v&(1<<13) != 0 || v&(1<<21) != 0 || v&1 == 0 {
			t.Errorf("--drop-caps CAP_NET_RAW,sys_admin: %s (want bits 13 and 21 clear, CAP_CHOWN kept)", line)
		}
	}
	r = e.run(t, asRoot, e.workdir(t), nil, "", status("--no-privs", "--add-caps", "net_raw")...)
	if r.code != 0 || r.stdout != "CapEff:\t0000000000002000\nCapBnd:\t0000000000002000\nNoNewPrivs:\t1\n" {
		t.Errorf("--no-privs --add-caps net_raw: exit %d, %q %q", r.code, r.stdout, r.stderr)
	}
	r = e.run(t, asUser, e.workdir(t), nil, "", status("--drop-caps", "CAP_NET_RAW")...)
	if r.code != 255 || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "for root") {
		t.Errorf("plain user --drop-caps: exit %d, stderr %q", r.code, r.stderr)
	}
}

// TestCompatApptainerSIFWithOCIConfig: a SIF built by Apptainer from an OCI image carries the OCI
// config too; run still runs its /.singularity.d/runscript and exec sources its env scripts, not
// the config's entrypoint and Env, as Apptainer does.
func TestCompatApptainerSIFWithOCIConfig(t *testing.T) {
	e := ltSetup(t)
	dir := e.workdir(t)
	img := filepath.Join(dir, "apptainer-oci.sif")
	cfg := &v1.ImageConfig{Entrypoint: []string{"/bin/echo", "oci-entrypoint"}, Env: []string{"PATH=/bin", "FROM_OCI=1"}}
	if err := siftest.MakeApptainer(img, filepath.Join(e.dir, "apptree"), cfg); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(img, 0o644); err != nil {
		t.Fatal(err)
	}
	cpRun(t, e, []cpCase{
		{name: "run", args: func(string) []string { return []string{"run", img, "x"} }, stdout: "runscript x yes\n"},
		{name: "exec", args: func(string) []string {
			return []string{"exec", img, "sh", "-c", "echo $FROM_APPTAINER_ENV ${FROM_OCI:-none}"}
		}, stdout: "yes none\n"},
	})
}

// TestCompatApp: --app runs a SCIF app of an Apptainer image: its runscript, its test and its
// environment (after the image's), as root and as a plain user.
func TestCompatApp(t *testing.T) {
	e := ltSetup(t)
	img := scifImage(t, e)
	cpRun(t, e, []cpCase{
		{name: "run --app", args: func(string) []string { return []string{"run", "--app", "hello", img, "x"} }, stdout: "hello-app x app-env yes hello\n"},
		{name: "exec --app", args: func(string) []string { return []string{"exec", "--app", "hello", img, "hello-tool"} }, stdout: "tool\n"},
		{name: "test --app", args: func(string) []string { return []string{"test", "--app", "hello", img} }, stdout: "hello-test\n", code: 3},
		{name: "APPTAINER_APP", env: []string{"APPTAINER_APP=hello"}, args: func(string) []string { return []string{"run", img} }, stdout: "hello-app app-env yes hello\n"},
		{name: "no such app", args: func(string) []string { return []string{"run", "--app", "nope", img} }, code: 255, stderr: "no app nope"},
		{name: "OCI image", args: func(string) []string { return []string{"run", "--app", "hello", e.bb} }, code: 255, stderr: "no SCIF apps"},
		{name: "bad name", args: func(string) []string { return []string{"run", "--app", "../x", img} }, code: 255, stderr: "--app"},
	})
}

// TestCompatInspectApps: inspect --list-apps lists the SCIF apps of an Apptainer image and
// inspect --app shows one app's sections (labels by default), as root and as a plain user; an
// OCI image is refused with one line.
func TestCompatInspectApps(t *testing.T) {
	e := ltSetup(t)
	img := scifImage(t, e)
	inspect := func(flags ...string) func(string) []string {
		return func(string) []string { return append(append([]string{"inspect"}, flags...), img) }
	}
	cpRun(t, e, []cpCase{
		{name: "list-apps", args: inspect("--list-apps"), stdout: "hello\nworld\n"},
		{name: "app labels", args: inspect("--app", "hello"), stdout: "AUTHOR: someone\n"},
		{name: "app runscript and environment", args: inspect("--app", "hello", "-r", "-e"),
			stdout: scifFiles["scif/apps/hello/scif/runscript"] + scifFiles["scif/apps/hello/scif/env/90-app.sh"]},
		{name: "app test and help", args: inspect("--app", "hello", "--test", "--helpfile"), stdout: scifFiles["scif/apps/hello/scif/test"] + "hello helps\n"},
		{name: "no such app", args: inspect("--app", "nope"), code: 255, stderr: "has no app nope"},
		{name: "OCI image", args: func(string) []string { return []string{"inspect", "--list-apps", e.bb} }, code: 255, stderr: "is an OCI image: it has no SCIF apps"},
		{name: "with --json", args: inspect("--list-apps", "--json"), code: 255, stderr: "run without --json"},
	})
}

// scifFiles are the files of scifImage besides its busybox tree: two SCIF apps as Apptainer lays
// them out.
var scifFiles = map[string]string{
	".singularity.d/env/90-test.sh":       "export FROM_IMAGE_ENV=yes\n",
	".singularity.d/runscript":            "#!/bin/sh\necho image-runscript\n",
	"scif/apps/hello/scif/runscript":      "#!/bin/sh\necho hello-app \"$@\" $APP_VAR $FROM_IMAGE_ENV $APPTAINER_APPNAME\n",
	"scif/apps/hello/scif/test":           "#!/bin/sh\necho hello-test\nexit 3\n",
	"scif/apps/hello/scif/env/90-app.sh":  "export APP_VAR=app-env\n",
	"scif/apps/hello/scif/labels.json":    "{\n\t\"AUTHOR\": \"someone\"\n}\n",
	"scif/apps/hello/scif/runscript.help": "hello helps\n",
	"scif/apps/hello/bin/hello-tool":      "#!/bin/sh\necho tool\n",
	"scif/apps/world/scif/runscript":      "#!/bin/sh\necho world\n",
}

// scifImage builds a SIF like Apptainer's definition-file builds, with the SCIF apps of files,
// readable by the plain user.
func scifImage(t *testing.T, e *ltEnv) string {
	t.Helper()
	dir := e.workdir(t)
	busybox, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal(err)
	}
	tree := filepath.Join(dir, "tree")
	if err := siftest.BusyboxTree(tree, busybox); err != nil {
		t.Fatal(err)
	}
	for name, content := range scifFiles {
		p := filepath.Join(tree, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	img := filepath.Join(dir, "scif.sif")
	if err := siftest.Make(img, tree, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(img, 0o644); err != nil {
		t.Fatal(err)
	}
	return img
}
