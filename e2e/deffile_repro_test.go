package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hpcctl/hpcctl/internal/testutil"
)

// dfReproRecipe copies a host file, gives %post's files to another ID, and leaves {{ base }}
// to be expanded: the SIF must keep the recipe as written.
const dfReproRecipe = `Bootstrap: oci-archive
From: {{ base }}

%files
    data.txt /opt/data.txt

%post
    mkdir -p /opt/made && echo made > /opt/made/file && chown -R 1:1 /opt/made

%runscript
    cat /opt/data.txt
`

// TestDeffileReproducible builds one recipe several times: as a plain user twice, the %files
// source touched and a second later (file times clamped to the base's creation time), as root
// (the same bytes: ownership inside is the namespace's, not the builder's), and with
// SOURCE_DATE_EPOCH twice (the same bytes, every time at most that epoch). The SIF holds the
// definition file as written, before {{ }} expansion.
func TestDeffileReproducible(t *testing.T) {
	busybox := btNeedEnvFile(t, "HPCCTL_TEST_BUSYBOX_OCI_ARCHIVE")
	u := needUser(t)
	needUserNS(t, u)
	needFUSE(t, u)
	testutil.NeedCommands(t, "newuidmap", "newgidmap", "squashfuse_ll", "unsquashfs")
	dir := workDir(t, u)
	recipe := filepath.Join(dir, "repro.def")
	writeFile(t, u, recipe, dfReproRecipe, 0o644)
	writeFile(t, u, filepath.Join(dir, "data.txt"), "data\n", 0o644)
	build := func(as *testUser, name string, env ...string) string {
		t.Helper()
		img := filepath.Join(dir, name)
		dfRunEnv(t, as, dir, env, "build", "--build-arg", "base="+busybox, img, "repro.def").mustSucceed(t, "build "+name)
		return btSHA256(t, img)
	}
	first := build(&u, "u1.sif")
	time.Sleep(1100 * time.Millisecond)
	now := time.Now()
	if err := os.Chtimes(filepath.Join(dir, "data.txt"), now, now); err != nil {
		t.Fatal(err)
	}
	if again := build(&u, "u2.sif"); again != first {
		t.Errorf("two builds by the user differ (%s, %s): file times are not clamped", first, again)
	}
	if root := build(nil, "r1.sif", "HPCCTL_CACHEDIR="+filepath.Join(dir, "root-cache")); root != first {
		t.Errorf("root's build differs from the user's (%s, %s)", root, first)
	}
	const epoch = 1600000000
	e1 := build(&u, "e1.sif", fmt.Sprintf("SOURCE_DATE_EPOCH=%d", epoch))
	if e2 := build(&u, "e2.sif", fmt.Sprintf("SOURCE_DATE_EPOCH=%d", epoch)); e1 != e2 {
		t.Errorf("two builds with SOURCE_DATE_EPOCH differ (%s, %s)", e1, e2)
	}
	dfCheckClamped(t, filepath.Join(dir, "e1.sif"), time.Unix(epoch, 0).UTC())
	def := btRun(t, dir, nil, "inspect", "--deffile", filepath.Join(dir, "u1.sif")).mustSucceed(t, "inspect --deffile").Stdout
	if strings.TrimRight(def, "\n") != strings.TrimRight(dfReproRecipe, "\n") {
		t.Errorf("inspect --deffile printed\n%s\nwant the recipe as written:\n%s", def, dfReproRecipe)
	}
}

// dfCheckClamped lists the image's squashfs (unsquashfs -lln, in UTC) and checks that no entry
// is newer than limit.
func dfCheckClamped(t *testing.T, img string, limit time.Time) {
	t.Helper()
	cmd := exec.Command("unsquashfs", "-o", fmt.Sprint(dfOffset(t, img)), "-lln", "-d", "/x", img)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	list := runCmd(t, cmd).mustSucceed(t, "unsquashfs -lln").Stdout
	n := 0
	for _, l := range strings.Split(list, "\n") {
		f := strings.Fields(l)
		if len(f) < 6 || !strings.HasPrefix(f[5], "/x") {
			continue
		}
		at, err := time.Parse("2006-01-02 15:04", f[3]+" "+f[4])
		if err != nil {
			t.Fatalf("unsquashfs line %q: %v", l, err)
		}
		if at.After(limit) {
			t.Errorf("%s has time %s, after SOURCE_DATE_EPOCH %s", f[5], at, limit)
		}
		n++
	}
	if n < 10 {
		t.Fatalf("unsquashfs listed %d entries:\n%s", n, list)
	}
}
