package ocitest

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/hpcctl/hpcctl/internal/testutil"
)

func fixture() Image {
	return Image{
		Layers:  [][]byte{Layer(map[string]string{"a/b": "hello", "c": "world"})},
		Env:     []string{"A=1"},
		Cmd:     []string{"/bin/true"},
		Labels:  map[string]string{"k": "v"},
		Gzip:    true,
		Variant: "",
	}
}

func TestDeterministic(t *testing.T) {
	dir := t.TempDir()
	arm := fixture()
	arm.Arch = "arm64"
	a := WriteOCIArchive(t, filepath.Join(dir, "a.tar"), "x", fixture(), arm)
	b := WriteOCIArchive(t, filepath.Join(dir, "b.tar"), "x", fixture(), arm)
	WriteDockerArchive(t, filepath.Join(dir, "a.docker"), "r:1", fixture())
	WriteDockerArchive(t, filepath.Join(dir, "b.docker"), "r:1", fixture())
	if a.Index != b.Index || a.Index == "" || len(a.Manifests) != 2 {
		t.Errorf("index digests %s, %s; manifests %v", a.Index, b.Index, a.Manifests)
	}
	for _, pair := range [][2]string{{"a.tar", "b.tar"}, {"a.docker", "b.docker"}} {
		x, _ := os.ReadFile(filepath.Join(dir, pair[0]))
		y, _ := os.ReadFile(filepath.Join(dir, pair[1]))
		if len(x) == 0 || !bytes.Equal(x, y) {
			t.Errorf("%s and %s differ", pair[0], pair[1])
		}
	}
}

// skopeo (containers/image's own CLI) must accept every fixture kind.
func TestFixturesReadableBySkopeo(t *testing.T) {
	skopeo := testutil.NeedCommands(t, "skopeo")[0]
	dir := t.TempDir()
	w := WriteLayout(t, filepath.Join(dir, "layout"), "v1", fixture())
	WriteOCIArchive(t, filepath.Join(dir, "img.tar"), "v1", fixture())
	WriteDockerArchive(t, filepath.Join(dir, "img.docker"), "r:1", fixture())
	for _, ref := range []string{"oci:" + filepath.Join(dir, "layout") + ":v1", "oci-archive:" + filepath.Join(dir, "img.tar"), "docker-archive:" + filepath.Join(dir, "img.docker")} {
		out, err := exec.Command(skopeo, "inspect", "--config", ref).CombinedOutput()
		if err != nil {
			t.Fatalf("skopeo inspect %s: %v: %s", ref, err, out)
		}
		var cfg struct{ Config struct{ Env, Cmd []string } }
		if err := json.Unmarshal(out, &cfg); err != nil || len(cfg.Config.Env) != 1 || cfg.Config.Cmd[0] != "/bin/true" {
			t.Errorf("skopeo inspect %s: config %+v (%v)", ref, cfg, err)
		}
	}
	out, err := exec.Command(skopeo, "inspect", "--raw", "oci:"+filepath.Join(dir, "layout")+":v1").Output()
	if err != nil {
		t.Fatal(err)
	}
	if got := digestOf(out); got != w.Manifests[0].String() {
		t.Errorf("manifest digest %s, Written says %s", got, w.Manifests[0])
	}
}

func digestOf(b []byte) string {
	var s store
	return s.add("", b).Digest.String()
}
