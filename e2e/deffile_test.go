package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/testutil"
)

// dfRecipe installs a small Debian package from the machine's own apt mirror (given as a build
// argument: no mirror's name is written here), copies a host file, and sets everything
// Apptainer's metadata holds. at's spool directories belong to daemon (1:1): ownership a
// package sets up as another user.
const dfRecipe = `Bootstrap: oci-archive
From: {{ base }}

%arguments
    suite=bookworm

%files
    {{ data }} /opt/data/greeting.txt

%post
    echo "deb {{ mirror }} {{ suite }} main" > /etc/apt/sources.list
    rm -f /etc/apt/sources.list.d/*
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y --no-install-recommends at || { apt-get update && apt-get install -y --no-install-recommends at; }
    echo "export FROM_POST=post-was-here" >> "$APPTAINER_ENVIRONMENT"
    echo "post.label yes" >> "$APPTAINER_LABELS"

%environment
    export GREETING="hello from %environment"

%runscript
    echo "runscript: $GREETING / $FROM_POST / $(cat /opt/data/greeting.txt) / args $*"

%labels
    Author hpcctl-e2e
    Version 1.0

%help
    This image says hello.

%test
    test "$(id -u)" = 0 || true
    test -x /usr/bin/at
    echo "test section ran"
`

// dfMirror reads the first Debian mirror of the host's apt configuration (deb822 .sources or
// one-line sources.list), so the test uses whatever this machine uses.
func dfMirror(t *testing.T) string {
	t.Helper()
	files, _ := filepath.Glob("/etc/apt/sources.list.d/*.sources")
	files = append(files, "/etc/apt/sources.list")
	files2, _ := filepath.Glob("/etc/apt/sources.list.d/*.list")
	for _, f := range append(files, files2...) {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(strings.NewReader(string(b)))
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			switch {
			case len(fields) >= 2 && fields[0] == "URIs:" && !strings.Contains(fields[1], "security"):
				return fields[1]
			case len(fields) >= 3 && fields[0] == "deb" && !strings.HasPrefix(fields[1], "["):
				return fields[1]
			}
		}
	}
	testutil.Need(t, false, "needs a Debian mirror in the host's apt configuration (/etc/apt/sources.list*)")
	return ""
}

// dfDir makes a build directory readable by u holding the recipe and a data file.
func dfDir(t *testing.T, u *testUser) (dir, recipe string) {
	t.Helper()
	if u != nil {
		dir = workDir(t, *u)
	} else {
		dir = t.TempDir()
	}
	recipe = filepath.Join(dir, "hello.def")
	if err := os.WriteFile(recipe, []byte(dfRecipe), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "greeting.txt"), []byte("data from the host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if u != nil {
		run(t, "chown", "-R", fmt.Sprintf("%d:%d", u.UID, u.GID), dir).mustSucceed(t, "chown the build directory")
	}
	return dir, recipe
}

// dfRun runs hpcctl in dir, as root (u nil) or as u.
func dfRun(t *testing.T, u *testUser, dir string, args ...string) result {
	t.Helper()
	return dfRunEnv(t, u, dir, nil, args...)
}

// dfRunEnv is dfRun with NAME=value variables.
func dfRunEnv(t *testing.T, u *testUser, dir string, env []string, args ...string) result {
	t.Helper()
	if u == nil {
		return btRun(t, dir, env, args...)
	}
	words := append(append([]string{"HPCCTL_CACHEDIR=" + filepath.Join(dir, "cache")}, env...), bins.hpcctl)
	return runCmd(t, userCmd(t, *u, dir, append(words, args...)...))
}

// TestDeffileBuild builds a recipe from the local Debian fixture as root and as a plain user
// with subordinate IDs, and checks what Apptainer's build would have put in the image.
func TestDeffileBuild(t *testing.T) {
	archive := btNeedEnvFile(t, "HPCCTL_TEST_DEBIAN_OCI_ARCHIVE")
	testutil.NeedCommands(t, "unsquashfs")
	mirror := dfMirror(t)
	t.Run("root", func(t *testing.T) {
		needLoop(t)
		dfCheckBuild(t, nil, archive, mirror)
	})
	t.Run("user", func(t *testing.T) {
		u := needUser(t)
		needUserNS(t, u)
		needFUSE(t, u)
		testutil.NeedCommands(t, "newuidmap", "newgidmap", "squashfuse_ll")
		r := run(t, "grep", "-q", "^"+u.Name+":", "/etc/subuid", "/etc/subgid")
		testutil.Need(t, r.Code == 0, "needs subordinate ID ranges for "+u.Name+" in /etc/subuid and /etc/subgid")
		dfCheckBuild(t, &u, archive, mirror)
	})
}

func dfCheckBuild(t *testing.T, u *testUser, archive, mirror string) {
	dir, recipe := dfDir(t, u)
	img := filepath.Join(dir, "hello.sif")
	r := dfRun(t, u, dir, "build", "--build-arg", "base="+archive, "--build-arg", "mirror="+mirror,
		"--build-arg", "data="+filepath.Join(dir, "greeting.txt"), img, recipe).mustSucceed(t, "build the recipe")
	for _, want := range []string{"Setting up at", "test section ran", "built " + img} {
		if !strings.Contains(r.Stdout+r.Stderr, want) {
			t.Errorf("build output lacks %q:\nstdout: %s\nstderr: %s", want, r.Stdout, r.Stderr)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(os.TempDir(), "hpcctl-build-*")); u == nil && len(left) > 0 {
		t.Errorf("work directories left behind: %v", left)
	}

	// Ownership as %post left it, read from the image itself: root's files, daemon's spool.
	list := run(t, "unsquashfs", "-o", fmt.Sprint(dfOffset(t, img)), "-lln", "-d", "/x", img).mustSucceed(t, "list the image").Stdout
	// at's spool and its setuid, setgid program belong to daemon.
	if !dfLineWith(list, "/x/var/spool/cron/atjobs\n", " 1/1 ") {
		t.Errorf("/var/spool/cron/atjobs is not owned by daemon (1/1):\n%s", dfGrep(list, "/var/spool/cron"))
	}
	if !dfLineWith(list, "/x/usr/bin/at\n", "-rwsr-sr-x 1/1 ") {
		t.Errorf("/usr/bin/at is not setuid and setgid daemon:\n%s", dfGrep(list, "/x/usr/bin/at"))
	}
	for _, p := range []string{"/x/usr/sbin/atd", "/x/opt/data/greeting.txt", "/x/.singularity.d/runscript", "/x/etc/passwd"} {
		if !dfLineWith(list, p+"\n", " 0/0 ") {
			t.Errorf("%s is not owned by root:\n%s", p, dfGrep(list, p))
		}
	}
	for _, p := range []string{"/x/.singularity.d/Singularity", "/x/.singularity.d/labels.json", "/x/.singularity.d/runscript.help",
		"/x/.singularity.d/env/90-environment.sh", "/x/.singularity.d/env/91-environment.sh", "/x/.singularity.d/env/10-docker2singularity.sh",
		"/x/.singularity.d/test", "/x/.singularity.d/actions/run", "/x/singularity", "/x/environment"} {
		if !strings.Contains(list, p+"\n") && !strings.Contains(list, p+" -> ") {
			t.Errorf("the image lacks %s", p)
		}
	}
	if strings.Contains(list, "/x/.post.script") || strings.Contains(list, "/x/.build.labels") {
		t.Errorf("the image keeps the build's own files (/.post.script or /.build.labels)")
	}

	launch := func(args ...string) result {
		if u == nil {
			return btRun(t, dir, nil, args...)
		}
		return dfRun(t, u, dir, args...)
	}
	out := launch("run", img, "one", "two").mustSucceed(t, "run").Stdout
	if want := "runscript: hello from %environment / post-was-here / data from the host / args one two\n"; out != want {
		t.Errorf("run printed %q, want %q", out, want)
	}
	help := launch("exec", img, "cat", "/.singularity.d/runscript.help").mustSucceed(t, "read the help").Stdout
	if !strings.Contains(help, "This image says hello.") {
		t.Errorf("runscript.help is %q", help)
	}
	if rh := launch("run-help", img); rh.Code == 0 && !strings.Contains(rh.Stdout, "This image says hello.") {
		t.Errorf("run-help printed %q", rh.Stdout)
	}
	if u == nil {
		owner := launch("exec", img, "stat", "-c", "%u:%g", "/var/spool/cron/atjobs").mustSucceed(t, "stat").Stdout
		if owner != "1:1\n" {
			t.Errorf("stat in the container: %q, want 1:1", owner)
		}
	}

	var desc struct {
		Labels  map[string]string `json:"labels"`
		Deffile string            `json:"deffile"`
	}
	js := launch("inspect", "--json", img).mustSucceed(t, "inspect").Stdout
	if err := json.Unmarshal([]byte(js), &desc); err != nil {
		t.Fatalf("inspect --json: %v\n%s", err, js)
	}
	if desc.Labels["Author"] != "hpcctl-e2e" || desc.Labels["post.label"] != "yes" || desc.Labels["org.label-schema.usage.singularity.deffile.bootstrap"] != "oci-archive" {
		t.Errorf("labels %v", desc.Labels)
	}
	if desc.Deffile != dfRecipe {
		t.Errorf("the stored definition file is not the recipe as written:\n%s", desc.Deffile)
	}
	text := launch("inspect", img).mustSucceed(t, "inspect").Stdout
	if !strings.Contains(text, "Author=hpcctl-e2e") {
		t.Errorf("inspect does not show the labels:\n%s", text)
	}
}

func dfOffset(t *testing.T, img string) int64 {
	t.Helper()
	off, _ := btInspect(t, img).partition(t)
	return off
}

// dfLineWith reports whether the listing line ending in suffix contains want.
func dfLineWith(list, suffix, want string) bool {
	for _, l := range strings.SplitAfter(list, "\n") {
		if strings.HasSuffix(l, suffix) {
			return strings.Contains(l, want)
		}
	}
	return false
}

func dfGrep(list, s string) string {
	var out []string
	for _, l := range strings.Split(list, "\n") {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// dfTwoStage builds a program in a Debian stage and copies it to a busybox stage.
const dfTwoStage = `Bootstrap: oci-archive
From: {{ debian }}
Stage: build

%post
    mkdir -p /out
    printf '#!/bin/sh\necho "built in stage one, python was %s"\n' "$(python3 -c 'import sys; print(sys.version_info[0])')" > /out/hello
    chmod 755 /out/hello

Bootstrap: oci-archive
From: {{ busybox }}

%files from build
    /out/hello /usr/local/bin/hello

%runscript
    exec /usr/local/bin/hello
`

// TestDeffileTwoStage builds a two-stage recipe as the plain user, twice: the second stage gets
// only the first's product, and a recipe with no time-dependent step gives the same bytes.
func TestDeffileTwoStage(t *testing.T) {
	debian := btNeedEnvFile(t, "HPCCTL_TEST_DEBIAN_OCI_ARCHIVE")
	busybox := btNeedEnvFile(t, "HPCCTL_TEST_BUSYBOX_OCI_ARCHIVE")
	u := needUser(t)
	needUserNS(t, u)
	needFUSE(t, u)
	testutil.NeedCommands(t, "newuidmap", "newgidmap", "squashfuse_ll", "unsquashfs")
	dir, _ := dfDir(t, &u)
	recipe := filepath.Join(dir, "two.def")
	if err := os.WriteFile(recipe, []byte(dfTwoStage), 0o644); err != nil {
		t.Fatal(err)
	}
	var sums []string
	for _, name := range []string{"a.sif", "b.sif"} {
		img := filepath.Join(dir, name)
		dfRunEnv(t, &u, dir, []string{"SOURCE_DATE_EPOCH=1700000000"}, "build", "--build-arg", "debian="+debian,
			"--build-arg", "busybox="+busybox, img, recipe).mustSucceed(t, "build the two-stage recipe")
		sums = append(sums, btSHA256(t, img))
	}
	if sums[0] != sums[1] {
		t.Errorf("two builds of the same recipe differ: %s, %s", sums[0], sums[1])
	}
	img := filepath.Join(dir, "a.sif")
	out := dfRun(t, &u, dir, "run", img).mustSucceed(t, "run").Stdout
	if out != "built in stage one, python was 3\n" {
		t.Errorf("run printed %q", out)
	}
	list := run(t, "unsquashfs", "-o", fmt.Sprint(dfOffset(t, img)), "-lln", "-d", "/x", img).mustSucceed(t, "list").Stdout
	if strings.Contains(list, "python3") || !strings.Contains(list, "/x/bin/busybox") {
		t.Errorf("the final stage is not the busybox stage alone:\n%s", dfGrep(list, "bin/"))
	}
}

// TestDeffileFailures: a failing %post stops the build with its status and names the section
// and line, and bad recipes are refused in one line before anything runs (exit status 255, as
// every failure of hpcctl itself); no image is left.
func TestDeffileFailures(t *testing.T) {
	busybox := btNeedEnvFile(t, "HPCCTL_TEST_BUSYBOX_OCI_ARCHIVE")
	needLoop(t)
	dir := t.TempDir()
	for _, tt := range []struct {
		file, recipe string
		code         int
		names        []string
	}{
		{"post", "Bootstrap: oci-archive\nFrom: " + busybox + "\n\n%post\n    echo before\n    exit 3\n    echo after\n", 3,
			[]string{"post.def:4:", "%post", "exit status 3"}},
		{"unknown section", "Bootstrap: oci-archive\nFrom: " + busybox + "\n%postinstall\n    true\n", 255,
			[]string{"unknown section.def:3:", "%postinstall"}},
		{"unknown agent", "Bootstrap: yum\nFrom: centos\n", 255, []string{"unknown agent.def:1:", `"yum"`}},
		{"missing argument", "Bootstrap: oci-archive\nFrom: {{ base_image }}\n", 255, []string{"missing argument.def:2:", `"base_image"`}},
		{"app sections", "Bootstrap: oci-archive\nFrom: " + busybox + "\n%appinstall tool\n    true\n", 255, []string{"app sections.def:3:", "%appinstall tool"}},
	} {
		t.Run(tt.file, func(t *testing.T) {
			name := tt.file
			recipe := filepath.Join(dir, name+".def")
			if err := os.WriteFile(recipe, []byte(tt.recipe), 0o644); err != nil {
				t.Fatal(err)
			}
			img := filepath.Join(dir, name+".sif")
			r := btRun(t, dir, nil, "build", img, recipe)
			if tt.code == 3 {
				if r.Code != 3 || !strings.Contains(r.Stdout, "before") || strings.Contains(r.Stdout, "after") {
					t.Errorf("exit status %d, stdout %q (want 3, the output up to the failure)", r.Code, r.Stdout)
				}
				last := strings.TrimSpace(r.Stderr[strings.LastIndex(strings.TrimSpace(r.Stderr), "\n")+1:])
				for _, n := range tt.names {
					if !strings.Contains(last, n) {
						t.Errorf("last line %q does not name %q", last, n)
					}
				}
			} else {
				btCheckFailure(t, r, tt.code, tt.names...)
			}
			if _, err := os.Stat(img); err == nil {
				t.Errorf("%s was written", img)
			}
			if left, _ := filepath.Glob(filepath.Join(dir, "."+name+".sif*")); len(left) > 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
	if left, _ := filepath.Glob(filepath.Join(os.TempDir(), "hpcctl-build-*")); len(left) > 0 {
		t.Errorf("work directories left behind: %v", left)
	}
}
