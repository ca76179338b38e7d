package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/hpcctl/hpcctl/internal/testutil"
)

// TestWritableSandbox runs sandbox directories read-write with --writable / -w: a plain user's
// own sandbox in their user namespace (with --fakeroot too), root's any; a SIF, another user's
// sandbox and --writable with --writable-tmpfs are refused in one line; without --writable a
// sandbox stays read-only as before.
func TestWritableSandbox(t *testing.T) {
	busybox := btNeedEnvFile(t, "HPCCTL_TEST_BUSYBOX_OCI_ARCHIVE")
	u := needUser(t)
	needUserNS(t, u)
	needFUSE(t, u)
	testutil.NeedCommands(t, "newuidmap", "newgidmap")
	dir := workDir(t, u)
	hpc := func(args ...string) result {
		t.Helper()
		return dfRun(t, &u, dir, args...)
	}
	sb := filepath.Join(dir, "sb")
	hpc("build", "--sandbox", sb, "oci-archive:"+busybox).mustSucceed(t, "build a sandbox as the user")
	passwd, err := os.ReadFile(filepath.Join(sb, "etc", "passwd"))
	if err != nil {
		t.Fatal(err)
	}

	r := hpc("exec", "--writable", sb, "sh", "-c", "echo hi > /newfile && grep -c '^"+u.Name+":' /etc/passwd")
	r.mustSucceed(t, "exec --writable")
	if r.Stdout != "1\n" {
		t.Errorf("the user's passwd entry inside: %q, want it once", r.Stdout)
	}
	wrFile(t, filepath.Join(sb, "newfile"), "hi\n", u.UID)
	if b, _ := os.ReadFile(filepath.Join(sb, "etc", "passwd")); string(b) != string(passwd) {
		t.Errorf("the sandbox's /etc/passwd changed:\n%s", b)
	}
	runCmd(t, userCmd(t, u, dir, "sh", "-c", "echo 'touch /from-shell' | "+bins.hpcctl+" shell -w "+sb)).mustSucceed(t, "shell -w")
	wrFile(t, filepath.Join(sb, "from-shell"), "", u.UID)

	// Without --writable the sandbox is read-only, as before.
	if out := hpc("exec", sb, "cat", "/newfile").mustSucceed(t, "exec a sandbox").Stdout; out != "hi\n" {
		t.Errorf("cat /newfile printed %q", out)
	}
	if r = hpc("exec", sb, "sh", "-c", "echo x > /not-written"); r.Code == 0 || !strings.Contains(r.Stderr, "Read-only file system") {
		t.Errorf("a write without --writable: exit status %d, stderr %q", r.Code, r.Stderr)
	}
	if _, err := os.Lstat(filepath.Join(sb, "not-written")); err == nil {
		t.Error("a write without --writable reached the sandbox")
	}

	// With --fakeroot: root inside, chown to a subordinate ID.
	r = hpc("exec", "-f", "-w", sb, "sh", "-c", "mkdir /owned && chown 5:5 /owned && id -u")
	if r.mustSucceed(t, "exec -f -w").Stdout != "0\n" {
		t.Errorf("id -u printed %q", r.Stdout)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(sb, "owned"), &st); err != nil {
		t.Error(err)
	} else if int(st.Uid) == u.UID || st.Uid == 5 {
		t.Errorf("/owned belongs to host UID %d, want the user's subordinate ID for 5", st.Uid)
	}

	img := filepath.Join(dir, "busybox.sif")
	rootCache := []string{"HPCCTL_CACHEDIR=" + filepath.Join(dir, "root-cache")}
	btRun(t, dir, rootCache, "build", img, "oci-archive:"+busybox).mustSucceed(t, "build a SIF")
	rootSB := filepath.Join(dir, "root-sb")
	btRun(t, dir, rootCache, "build", "--sandbox", rootSB, "oci-archive:"+busybox).mustSucceed(t, "build a sandbox as root")
	for _, tt := range []struct {
		args  []string
		names []string
	}{
		{[]string{"exec", "-w", img, "true"}, []string{"--writable", img, "writable overlay partition", "--sandbox"}},
		{[]string{"exec", "--writable", rootSB, "true"}, []string{"--writable", rootSB, "belongs to UID 0"}},
		{[]string{"exec", "-w", "--writable-tmpfs", sb, "true"}, []string{"--writable", "leave out --writable-tmpfs"}},
	} {
		btCheckFailure(t, hpc(tt.args...), 255, tt.names...)
	}

	// Root writes any sandbox; its files are root's.
	btRun(t, dir, nil, "exec", "--writable", rootSB, "touch", "/by-root").mustSucceed(t, "root's exec --writable")
	wrFile(t, filepath.Join(rootSB, "by-root"), "", 0)
}

// wrFile checks a file's content and owner on the host.
func wrFile(t *testing.T, path, content string, uid int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Errorf("the write inside did not reach the sandbox: %v", err)
		return
	}
	if string(b) != content {
		t.Errorf("%s holds %q, want %q", path, b, content)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err == nil && int(st.Uid) != uid {
		t.Errorf("%s belongs to UID %d, want %d", path, st.Uid, uid)
	}
}
