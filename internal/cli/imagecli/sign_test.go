package imagecli

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sylabs/sif/v2/pkg/sif"

	"github.com/hpcctl/hpcctl/internal/cli"
	"github.com/hpcctl/hpcctl/internal/sign"
)

// run calls the CLI in-process and returns its exit status and output.
func run(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = cli.Main(args, strings.NewReader(""), &out, &errb, cli.CommonVerbs, Verbs)
	return code, out.String(), errb.String()
}

// signEnv gives each test its own key directory and a passphrase for batch use.
func signEnv(t *testing.T) string {
	t.Helper()
	cfg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfg)
	t.Setenv(sign.PassphraseEnv, "s3cret")
	t.Setenv("SOURCE_DATE_EPOCH", "")
	return filepath.Join(cfg, "hpcctl", "keys")
}

// testImage writes a small SIF with a squashfs-typed system partition and a JSON object.
func testImage(t *testing.T) string {
	t.Helper()
	part, err := sif.NewDescriptorInput(sif.DataPartition, bytes.NewReader(bytes.Repeat([]byte("squash"), 512)),
		sif.OptPartitionMetadata(sif.FsSquash, sif.PartPrimSys, "amd64"), sif.OptGroupID(1))
	if err != nil {
		t.Fatal(err)
	}
	js, err := sif.NewDescriptorInput(sif.DataGenericJSON, strings.NewReader(`{}`), sif.OptObjectName("config.json"), sif.OptGroupID(1))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "image.sif")
	f, err := sif.CreateContainerAtPath(path, sif.OptCreateWithDescriptors(part, js), sif.OptCreateDeterministic())
	if err != nil {
		t.Fatal(err)
	}
	if err := f.UnloadContainer(); err != nil {
		t.Fatal(err)
	}
	return path
}

func mustRun(t *testing.T, args ...string) string {
	t.Helper()
	code, out, errOut := run(t, args...)
	if code != 0 {
		t.Fatalf("hpcctl %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

func TestKeyCommands(t *testing.T) {
	dir := signEnv(t)
	mustRun(t, "key", "newpair", "--name", "alice")
	mustRun(t, "key", "newpair", "--name", "bob", "--type", "pgp", "--email", "bob@example.org", "--no-passphrase")
	out := mustRun(t, "key", "list")
	for _, want := range []string{"alice", "ed25519", "yes (passphrase)", "bob", "pgp", "bob <bob@example.org>"} {
		if !strings.Contains(out, want) {
			t.Errorf("key list output lacks %q:\n%s", want, out)
		}
	}
	var keys []sign.KeyInfo
	if err := json.Unmarshal([]byte(mustRun(t, "key", "list", "--json")), &keys); err != nil || len(keys) != 2 {
		t.Fatalf("key list --json: %v %+v", err, keys)
	}
	pub := filepath.Join(t.TempDir(), "alice.pub")
	mustRun(t, "key", "export", "alice", "-o", pub)
	if exported := mustRun(t, "key", "export", "bob"); !strings.Contains(exported, "BEGIN PGP PUBLIC KEY BLOCK") {
		t.Errorf("key export bob printed:\n%s", exported)
	}
	if err := os.Remove(filepath.Join(dir, "alice.pub")); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "alice.key")); err != nil {
		t.Fatal(err)
	}
	out = mustRun(t, "key", "import", pub)
	if !strings.Contains(out, "Imported ed25519 key alice, fingerprint "+keys[0].Fingerprint) {
		t.Errorf("key import printed %q, want alice with fingerprint %s", out, keys[0].Fingerprint)
	}
	code, _, errOut := run(t, "key", "import", pub)
	if code != 255 || !strings.Contains(errOut, "already exists") || strings.Count(errOut, "\n") != 1 {
		t.Errorf("importing twice: exit %d, %q; want 1 and one line saying it exists", code, errOut)
	}
}

func TestSignVerifyCommands(t *testing.T) {
	signEnv(t)
	mustRun(t, "key", "newpair", "--name", "alice")
	mustRun(t, "key", "newpair", "--name", "carol", "--type", "pgp")
	mustRun(t, "key", "newpair", "--name", "mallory", "--no-passphrase")
	img := testImage(t)
	mustRun(t, "sign", "--key", "alice", img)
	mustRun(t, "sign", "--pgp", img)

	out := mustRun(t, "verify", "--key", "alice", img)
	if !strings.Contains(out, "Verified: "+img) || !strings.Contains(out, "object 1: FS (Squashfs/*System/amd64)") {
		t.Errorf("verify printed:\n%s", out)
	}
	out = mustRun(t, "verify", "--json", img) // the whole key directory
	var r sign.Report
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if !r.Verified || len(r.Signatures) != 2 || !r.Signatures[0].Verified || !r.Signatures[1].Verified {
		t.Errorf("verify --json report %+v: want two verified signatures", r)
	}
	if r.Signatures[1].Signer != "carol" {
		t.Errorf("OpenPGP signer %q, want carol", r.Signatures[1].Signer)
	}

	code, out, errOut := run(t, "verify", "--key", "mallory", "--json", img)
	if code != 255 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, "no signature verifies with a trusted key") {
		t.Errorf("wrong key: exit %d, stderr %q", code, errOut)
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil || r.Verified {
		t.Errorf("wrong key: JSON report %q (%v) should say not verified", out, err)
	}
}

func TestSignVerifyErrors(t *testing.T) {
	signEnv(t)
	mustRun(t, "key", "newpair", "--name", "alice")
	img := testImage(t)
	tests := []struct {
		name string
		args []string
		code int
		says string
	}{
		{"bad flag", []string{"verify", "--nope", img}, 255, "unknown flag: --nope"},
		{"no image", []string{"verify"}, 255, "verify needs an IMAGE.sif"},
		{"no key", []string{"sign", img}, 255, "sign needs --key KEY or --pgp"},
		{"missing image", []string{"verify", "/nonexistent/x.sif"}, 255, "no such file"},
		{"missing image to sign", []string{"sign", "--key", "alice", "/nonexistent/x.sif"}, 255, "no such file"},
		{"unknown key name", []string{"sign", "--key", "nobody", img}, 255, `no key "nobody"`},
		{"unsigned", []string{"verify", "--key", "alice", img}, 255, "image is not signed"},
		{"bad SOURCE_DATE_EPOCH", []string{"sign", "--key", "alice", img}, 255, "SOURCE_DATE_EPOCH"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.name == "bad SOURCE_DATE_EPOCH" {
				t.Setenv("SOURCE_DATE_EPOCH", "yesterday")
			}
			code, _, errOut := run(t, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.says) || strings.Count(errOut, "\n") != 1 || !strings.HasPrefix(errOut, "hpcctl: ") {
				t.Errorf("exit %d, stderr %q; want %d and one line containing %q", code, errOut, tc.code, tc.says)
			}
		})
	}
	t.Run("wrong passphrase", func(t *testing.T) {
		t.Setenv(sign.PassphraseEnv, "wrong")
		code, _, errOut := run(t, "sign", "--key", "alice", img)
		if code != 255 || !strings.Contains(errOut, "wrong passphrase") {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})
}

// TestVerifyApptainerFlags: verify works where the key directory cannot be created (a read-only
// home), takes Apptainer's flags and $APPTAINER_VERIFY_KEY, and refuses what it cannot do.
func TestVerifyApptainerFlags(t *testing.T) {
	signEnv(t)
	mustRun(t, "key", "newpair", "--name", "alice")
	img := testImage(t)
	mustRun(t, "sign", "--key", "alice", img)
	pub := filepath.Join(t.TempDir(), "alice.pub")
	mustRun(t, "key", "export", "alice", "-o", pub)
	t.Setenv("XDG_CONFIG_HOME", "/dev/null/config") // can be neither created nor read
	if out := mustRun(t, "verify", "--local", "--all", "-j", "--key", pub, img); !strings.Contains(out, `"verified": true`) {
		t.Errorf("verify with a key file and no key directory printed %q", out)
	}
	t.Setenv("APPTAINER_VERIFY_KEY", pub)
	if out := mustRun(t, "verify", img); !strings.Contains(out, "Verified: "+img) {
		t.Errorf("verify with $APPTAINER_VERIFY_KEY printed %q", out)
	}
	t.Setenv("APPTAINER_VERIFY_KEY", "")
	for _, c := range []struct {
		args []string
		says string
	}{
		{[]string{"verify", img}, "no keys to verify with"},
		{[]string{"verify", "--key", "alice", img}, "no key directory"},
		{[]string{"verify", "--sif-id", "1", "--key", pub, img}, "--group-id"},
		{[]string{"verify", "--legacy-insecure", "--key", pub, img}, "legacy"},
	} {
		code, _, errOut := run(t, c.args...)
		if code != 255 || strings.Count(errOut, "\n") != 1 || !strings.Contains(errOut, c.says) {
			t.Errorf("%v: exit %d, stderr %q; want 255 and one line saying %q", c.args, code, errOut, c.says)
		}
	}
}
