package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// buildTags match the Makefile's TAGS: containers/image needs them to build without cgo.
const buildTags = "containers_image_openpgp exclude_graphdriver_btrfs exclude_graphdriver_devicemapper"

// testVersion is linked into the binaries under test, so that a test can tell them from any
// other hpcctl on the machine.
const testVersion = "e2e-test"

// bins holds the binaries TestMain builds once for the whole package. Tests only read it.
var bins binaries

type binaries struct {
	// root is a world-readable temporary directory: the unprivileged test user and Slurm jobs
	// reach the binaries and work directories there, never in the checkout, which may sit under
	// a directory only root can enter.
	root    string
	hpcctl  string
	starter string // the setuid-root starter installed under suid, or "" (not root)
	suid    string // the prefix make install-suid installed: suid/bin/hpcctl uses the starter
}

// viaStarterEnv set to 1 runs the tests with bins.hpcctl as installed by make install-suid, so
// that the launcher, profile, policy and Slurm suites check the setuid starter's path as they do
// the user-namespace path (scripts/test-all.sh, phase e2e-via-starter).
const viaStarterEnv = "HPCCTL_TEST_VIA_STARTER"

func TestMain(m *testing.M) {
	os.Exit(mainStatus(m))
}

func mainStatus(m *testing.M) int {
	b, err := buildBinaries()
	if err != nil {
		fmt.Fprintf(os.Stderr, "e2e: %v\n", err)
		return 1
	}
	if os.Getenv(viaStarterEnv) == "1" {
		if b.suid == "" {
			fmt.Fprintf(os.Stderr, "e2e: %s=1 needs the setuid starter installed: run the tests as root\n", viaStarterEnv)
			os.RemoveAll(b.root)
			return 1
		}
		// Every launch of the tests, the plain user's included, goes through the setuid
		// installation: the user's take the starter for the images they cannot change.
		b.hpcctl = filepath.Join(b.suid, "bin", "hpcctl")
	}
	bins = b
	// HPCCTL_TEST_SESSIONS=off runs the suite with shared image sessions off (CI's e2e-no-session
	// phase): every hpcctl the tests start, directly or through Slurm, inherits the switch.
	if os.Getenv("HPCCTL_TEST_SESSIONS") == "off" {
		os.Setenv("HPCCTL_NO_SESSION", "1")
	}
	code := m.Run()
	if os.Getenv("HPCCTL_E2E_KEEP") == "" {
		os.RemoveAll(b.root)
	} else {
		fmt.Fprintf(os.Stderr, "e2e: kept binaries and work directories in %s\n", b.root)
	}
	return code
}

// buildBinaries builds every command under cmd/ into a fresh world-readable directory and makes
// the starter setuid root when it exists and the tests run as root.
func buildBinaries() (binaries, error) {
	root, err := os.MkdirTemp("", "hpcctl-e2e-")
	if err != nil {
		return binaries{}, fmt.Errorf("make the e2e directory: %w", err)
	}
	b := binaries{root: root, hpcctl: filepath.Join(root, "bin", "hpcctl")}
	if err := b.build(); err != nil {
		os.RemoveAll(root)
		return binaries{}, err
	}
	return b, nil
}

func (b *binaries) build() error {
	bin := filepath.Join(b.root, "bin")
	for _, dir := range []string{b.root, bin, filepath.Join(b.root, "work")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		// MkdirTemp makes 0700 and the umask may narrow MkdirAll: set the mode explicitly.
		if err := os.Chmod(dir, 0o755); err != nil {
			return err
		}
	}
	modRoot, err := moduleRoot()
	if err != nil {
		return err
	}
	ldflags := "-X github.com/hpcctl/hpcctl/internal/cli.Version=" + testVersion
	cmd := exec.Command(goTool(), "build", "-trimpath", "-tags", buildTags, "-ldflags", ldflags,
		"-o", bin+string(filepath.Separator), "./cmd/...")
	cmd.Dir = modRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build ./cmd/...: %w\n%s", err, out)
	}
	return b.installStarter(filepath.Join(bin, "hpcctl-starter"))
}

// installStarter installs the binaries as a site would with the setuid starter, with `make
// install-suid` into the prefix suid/ (the starter root-owned and setuid, hpcctl.conf with
// allow_setuid = true), when the tests run as root. bin/hpcctl-starter itself stays an ordinary
// file: hpcctl in bin/ then takes the user-namespace path, as without a starter.
func (b *binaries) installStarter(path string) error {
	if _, err := os.Stat(path); err != nil {
		return nil // no starter
	}
	if os.Geteuid() != 0 {
		return nil // tests that need it probe for root and skip
	}
	modRoot, err := moduleRoot()
	if err != nil {
		return err
	}
	prefix := filepath.Join(b.root, "suid")
	cmd := exec.Command("make", "--no-print-directory", "install-suid", "PREFIX="+prefix, "BIN="+filepath.Dir(path))
	cmd.Dir = modRoot
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("make install-suid: %w\n%s", err, out)
	}
	b.suid = prefix
	b.starter = filepath.Join(prefix, "libexec", "hpcctl", "hpcctl-starter")
	return nil
}

func moduleRoot() (string, error) {
	out, err := exec.Command(goTool(), "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", fmt.Errorf("run the e2e tests inside the hpcctl module (go env GOMOD is empty)")
	}
	return filepath.Dir(gomod), nil
}

// goTool finds the go command: `go test` puts its GOROOT in the environment, not always on PATH.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	if root := os.Getenv("GOROOT"); root != "" {
		return filepath.Join(root, "bin", "go")
	}
	return "go"
}
