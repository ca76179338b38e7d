package e2e

import (
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/hpcctl/hpcctl/internal/testutil"
)

// The probes below test the capability itself, the way the code under test will use it, and skip
// with the reason (or fail under HPCCTL_TEST_STRICT=1, as in CI).

func needRoot(t testing.TB) { t.Helper(); testutil.NeedRoot(t) }

// needUser returns the unprivileged test user; running as it needs root (setpriv).
func needUser(t testing.TB) testUser {
	t.Helper()
	needRoot(t)
	testutil.NeedCommands(t, "setpriv")
	u, err := lookupUser()
	testutil.Need(t, err == nil, "needs the unprivileged test user (scripts/install-test-deps.sh makes hpcuser): "+errString(err))
	return u
}

// needUserNS requires that u can make a user namespace, which the launcher does for every
// unprivileged run.
func needUserNS(t testing.TB, u testUser) {
	t.Helper()
	testutil.NeedCommands(t, "unshare")
	r := runAsUser(t, u, "unshare", "--user", "--map-root-user", "true")
	testutil.Need(t, r.Code == 0, "needs unprivileged user namespaces: 'unshare --user' as "+u.Name+" failed: "+strings.TrimSpace(r.Stderr))
}

// needFUSE requires that u can open /dev/fuse for reading and writing (it is 0600 on a new
// machine of this kind: scripts/install-test-deps.sh opens it up).
func needFUSE(t testing.TB, u testUser) {
	t.Helper()
	r := runAsUser(t, u, "sh", "-c", "exec 3<>/dev/fuse")
	testutil.Need(t, r.Code == 0, "needs /dev/fuse readable and writable by "+u.Name+" (chmod 0666 /dev/fuse): "+strings.TrimSpace(r.Stderr))
}

// needLoop requires root and the loop device control file, for kernel squashfs mounts.
func needLoop(t testing.TB) {
	t.Helper()
	needRoot(t)
	testutil.NeedCommands(t, "losetup")
	_, err := os.Stat("/dev/loop-control")
	testutil.Need(t, err == nil, "needs loop devices (/dev/loop-control): "+errString(err))
}

// needSlurm requires the one-node cluster of scripts/services.sh: HPCCTL_TEST_SLURM=1 and a
// controller that answers.
func needSlurm(t testing.TB) {
	t.Helper()
	testutil.Need(t, os.Getenv("HPCCTL_TEST_SLURM") == "1", "needs a Slurm cluster: HPCCTL_TEST_SLURM=1 (make services-start)")
	testutil.NeedCommands(t, "sbatch", "squeue", "scontrol", "scancel", "sinfo")
	out, err := exec.Command("sinfo", "-h", "-o", "%a").CombinedOutput()
	testutil.Need(t, err == nil, "needs a Slurm controller that answers: sinfo: "+strings.TrimSpace(string(out)))
}

// needRegistry returns the host:port of the local OCI registry of scripts/services.sh.
func needRegistry(t testing.TB) string {
	t.Helper()
	addr := os.Getenv("HPCCTL_TEST_REGISTRY")
	testutil.Need(t, addr != "", "needs a local OCI registry: HPCCTL_TEST_REGISTRY=host:port (make services-start)")
	client := &http.Client{Timeout: 10 * time.Second}
	status := "no answer"
	resp, err := client.Get("http://" + addr + "/v2/")
	if err == nil {
		resp.Body.Close()
		status = resp.Status
	}
	testutil.Need(t, err == nil && resp.StatusCode == http.StatusOK, "needs the registry at "+addr+" to answer /v2/ with 200: "+status+" "+errString(err))
	return addr
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
