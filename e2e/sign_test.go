// Package e2e runs the built hpcctl binary as a user would.
package e2e

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sylabs/sif/v2/pkg/sif"
)

type hpcctl struct {
	bin string
	env []string
}

func (h hpcctl) run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(h.bin, args...)
	cmd.Env = h.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return code, out.String(), errb.String()
}

func writeImage(t *testing.T) string {
	t.Helper()
	part, err := sif.NewDescriptorInput(sif.DataPartition, bytes.NewReader(bytes.Repeat([]byte("root fs "), 1024)),
		sif.OptPartitionMetadata(sif.FsSquash, sif.PartPrimSys, "amd64"), sif.OptGroupID(1))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "image.sif")
	f, err := sif.CreateContainerAtPath(path, sif.OptCreateWithDescriptors(part), sif.OptCreateDeterministic())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.UnloadContainer(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestSignVerifyBinary(t *testing.T) {
	h := hpcctl{bin: bins.hpcctl, env: []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "XDG_CONFIG_HOME=" + t.TempDir(),
		"HPCCTL_KEY_PASSPHRASE=e2e passphrase", "SOURCE_DATE_EPOCH=1700000000",
	}}
	if code, out, errOut := h.run(t, "key", "newpair", "--name", "site"); code != 0 {
		t.Fatalf("key newpair: %d %s %s", code, out, errOut)
	}
	img := writeImage(t)
	if code, _, errOut := h.run(t, "sign", "--key", "site", img); code != 0 {
		t.Fatalf("sign: %d %s", code, errOut)
	}
	if code, out, errOut := h.run(t, "verify", img); code != 0 || !strings.Contains(out, "Verified") {
		t.Fatalf("verify: %d %s %s", code, out, errOut)
	}

	tampered := filepath.Join(t.TempDir(), "tampered.sif")
	data, _ := os.ReadFile(img)
	i := bytes.Index(data, []byte("root fs root fs"))
	data[i] = 'R'
	if err := os.WriteFile(tampered, data, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errOut := h.run(t, "verify", tampered)
	if code != 255 || !strings.Contains(errOut, "modified after it was signed") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("verify tampered: exit %d, stderr %q; want 1 and one line saying it was modified", code, errOut)
	}
	if code, _, errOut := h.run(t, "verify", "--key"); code != 255 {
		t.Errorf("verify --key without value: exit %d (%s), want 2", code, errOut)
	}
}
