package oci

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hpcctl/hpcctl/internal/testutil"
	"github.com/hpcctl/hpcctl/internal/testutil/ocitest"
	"go.podman.io/image/v5/copy"
	"go.podman.io/image/v5/types"
	"golang.org/x/crypto/bcrypt"
)

// registry is a real docker-registry (Debian's docker/distribution) on a loopback port.
type registry struct {
	addr string // 127.0.0.1:PORT
	user string // basic-auth user, if htpasswd auth is on
	pass string
}

// startRegistry runs docker-registry on a free loopback port with storage in a temporary
// directory, and stops it when the test ends. With user set it requires basic auth.
func startRegistry(t testing.TB, user, pass string) *registry {
	t.Helper()
	bin := testutil.NeedCommands(t, "docker-registry")[0]
	dir := t.TempDir()
	r := &registry{addr: freeLoopbackAddr(t), user: user, pass: pass}
	auth := ""
	if user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(pass), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		htpasswd := filepath.Join(dir, "htpasswd")
		if err := os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		auth = fmt.Sprintf("auth:\n  htpasswd:\n    realm: hpcctl-test\n    path: %s\n", htpasswd)
	}
	config := filepath.Join(dir, "config.yml")
	yml := fmt.Sprintf("version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n"+
		"storage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n  secret: hpcctl-test-secret\n%s",
		filepath.Join(dir, "storage"), r.addr, auth)
	if err := os.WriteFile(config, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", config)
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill() //nolint:errcheck // cleanup: it may have exited
		<-exited           //nolint:errcheck // killed on purpose
	})
	waitReady(t, r.addr, exited, &logs)
	return r
}

// freeLoopbackAddr returns a loopback address with a port that was free a moment ago.
func freeLoopbackAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func waitReady(t testing.TB, addr string, exited <-chan error, logs *strings.Builder) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case err := <-exited:
			t.Fatalf("docker-registry exited: %v\n%s", err, logs.String())
		default:
		}
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("docker-registry on %s not ready after 20s", addr)
}

// push copies every image in an OCI layout to the registry under repo:tag.
func (r *registry) push(t testing.TB, layout, repoTag string) {
	t.Helper()
	src, err := imageReference("oci:" + layout)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := imageReference("docker://" + r.addr + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	sys := &types.SystemContext{DockerInsecureSkipTLSVerify: types.OptionalBoolTrue}
	if r.user != "" {
		sys.DockerAuthConfig = &types.DockerAuthConfig{Username: r.user, Password: r.pass}
	}
	pc, err := policyContext()
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Destroy() //nolint:errcheck // releases nothing that matters to the test
	_, err = copy.Image(context.Background(), pc, dst, src, &copy.Options{
		SourceCtx: &types.SystemContext{}, DestinationCtx: sys, ImageListSelection: copy.CopyAllImages,
	})
	if err != nil {
		t.Fatalf("push %s: %v", repoTag, err)
	}
}

// authFile writes a containers auth.json for the registry with the given password.
func (r *registry) authFile(t testing.TB, pass string) string {
	t.Helper()
	cred := base64.StdEncoding.EncodeToString([]byte(r.user + ":" + pass))
	path := filepath.Join(t.TempDir(), "auth.json")
	data := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, r.addr, cred)
	if err := os.WriteFile(path, []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// countingProxy forwards to the registry and counts blob downloads, to prove what a pull fetched.
type countingProxy struct {
	addr      string
	blobGets  atomic.Int64
	manifests atomic.Int64
}

func newCountingProxy(t testing.TB, target string) *countingProxy {
	t.Helper()
	p := &countingProxy{}
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: "http", Host: target})
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = l.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/") {
			p.blobGets.Add(1)
		}
		if strings.Contains(req.URL.Path, "/manifests/") {
			p.manifests.Add(1)
		}
		rp.ServeHTTP(w, req)
	})}
	go srv.Serve(l) //nolint:errcheck // ends with ErrServerClosed at cleanup
	t.Cleanup(func() { srv.Close() })
	return p
}

// emptyAuth points containers/image at an empty auth file, so the host's credentials play no part.
func emptyAuth(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "auth.json")
	if err := os.WriteFile(path, []byte(`{"auths":{}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRegistryPull(t *testing.T) {
	reg := startRegistry(t, "", "")
	dir := t.TempDir()
	img := testImage("reg")
	img.Gzip = true
	img.Layers = append(img.Layers, randomLayer(5, 5<<20))
	single := ocitest.WriteLayout(t, filepath.Join(dir, "single"), "", img)
	reg.push(t, filepath.Join(dir, "single"), "test/img:1")
	amd, arm := testImage("amd"), testImage("arm")
	arm.Arch = "arm64"
	amd.Gzip, arm.Gzip = true, true // the registry destination would compress plain layers, changing digests
	multi := ocitest.WriteLayout(t, filepath.Join(dir, "multi"), "", amd, arm)
	reg.push(t, filepath.Join(dir, "multi"), "test/multi:1")

	proxy := newCountingProxy(t, reg.addr)
	opts := SourceOptions{Insecure: true, CacheDir: t.TempDir(), AuthFile: emptyAuth(t)}
	ref := "docker://" + proxy.addr + "/test/img:1"

	start := time.Now()
	cold := pull(t, ref, opts)
	coldTime, coldBlobs := time.Since(start), proxy.blobGets.Load()
	if cold.Digest != single.Manifests[0] || cold.Stats.CacheHit {
		t.Errorf("cold pull: digest %s stats %+v, want %s fetched", cold.Digest, cold.Stats, single.Manifests[0])
	}
	checkImage(t, cold, img)

	manifests := proxy.manifests.Load()
	start = time.Now()
	warm := pull(t, ref, opts)
	warmTime := time.Since(start)
	manifests = proxy.manifests.Load() - manifests
	if n := proxy.blobGets.Load() - coldBlobs; n != 0 || !warm.Stats.CacheHit || warm.Digest != cold.Digest {
		t.Errorf("warm pull fetched %d blobs (stats %+v), want none", n, warm.Stats)
	}
	t.Logf("~5 MiB image over loopback HTTP: cold pull %v (%d blob GETs, %d bytes), warm pull %v (0 blob GETs, %d manifest requests)",
		coldTime, coldBlobs, cold.Stats.BytesFetched, warmTime, manifests)

	arm64 := pull(t, "docker://"+reg.addr+"/test/multi:1", SourceOptions{Insecure: true, Arch: "arm64", CacheDir: opts.CacheDir, AuthFile: opts.AuthFile})
	if arm64.Digest != multi.Manifests[1] || arm64.IndexDigest != multi.Index {
		t.Errorf("arm64 from index: digest %s index %s, want %s from %s", arm64.Digest, arm64.IndexDigest, multi.Manifests[1], multi.Index)
	}
	checkImage(t, arm64, arm)
	_, err := Pull(context.Background(), "docker://"+reg.addr+"/test/multi:1", SourceOptions{Insecure: true, Arch: "riscv64", CacheDir: opts.CacheDir})
	if !errors.Is(err, ErrPlatform) || !strings.Contains(err.Error(), "linux/amd64, linux/arm64") {
		t.Errorf("missing platform: %v", err)
	}
}

func TestRegistryErrors(t *testing.T) {
	reg := startRegistry(t, "", "")
	dir := t.TempDir()
	ocitest.WriteLayout(t, dir, "", testImage("err"))

	reg.push(t, dir, "test/img:1")
	closed := freeLoopbackAddr(t)
	tests := []struct {
		name, ref string
		insecure  bool
		kind      ErrorKind
		want      []string
	}{
		{"plain http without --insecure", "docker://" + reg.addr + "/test/img:1", false, ErrUnreachable, []string{reg.addr, "--insecure"}},
		{"missing tag", "docker://" + reg.addr + "/test/img:2", true, ErrNotFound, []string{"image not found"}},
		{"missing repository", "docker://" + reg.addr + "/test/nothing:1", true, ErrNotFound, []string{"image not found"}},
		{"nothing listening", "docker://" + closed + "/test/img:1", true, ErrUnreachable, []string{"cannot reach registry " + closed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Pull(context.Background(), tt.ref, SourceOptions{Insecure: tt.insecure, CacheDir: t.TempDir(), AuthFile: emptyAuth(t)})
			t.Log(err)
			if !errors.Is(err, tt.kind) || strings.Contains(fmt.Sprint(err), "\n") {
				t.Fatalf("Pull(%s) = %v, want a one-line %v", tt.ref, err, tt.kind)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestRegistryAuth(t *testing.T) {
	reg := startRegistry(t, "alice", "s3cret")
	dir := t.TempDir()
	img := testImage("auth")
	img.Gzip = true
	w := ocitest.WriteLayout(t, dir, "", img)
	reg.push(t, dir, "test/img:1")
	ref := "docker://" + reg.addr + "/test/img:1"

	good := reg.authFile(t, "s3cret")
	got := pull(t, ref, SourceOptions{Insecure: true, AuthFile: good, CacheDir: t.TempDir()})
	if got.Digest != w.Manifests[0] {
		t.Errorf("digest %s, want %s", got.Digest, w.Manifests[0])
	}
	checkImage(t, got, img)

	t.Run("REGISTRY_AUTH_FILE", func(t *testing.T) {
		t.Setenv("REGISTRY_AUTH_FILE", good)
		pull(t, ref, SourceOptions{Insecure: true, CacheDir: t.TempDir()})
	})
	t.Run("docker config with a stale XDG_RUNTIME_DIR", func(t *testing.T) {
		home := t.TempDir()
		if err := os.MkdirAll(filepath.Join(home, ".docker"), 0o700); err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(good)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(home, ".docker", "config.json"), data, 0o600); err != nil {
			t.Fatal(err)
		}
		t.Setenv("HOME", home)
		t.Setenv("REGISTRY_AUTH_FILE", "")
		t.Setenv("XDG_RUNTIME_DIR", filepath.Join(home, "no-such-run-dir"))
		pull(t, ref, SourceOptions{Insecure: true, CacheDir: t.TempDir()})
	})
	for name, authFile := range map[string]string{"wrong password": reg.authFile(t, "wrong"), "no credentials": emptyAuth(t)} {
		t.Run(name, func(t *testing.T) {
			_, err := Pull(context.Background(), ref, SourceOptions{Insecure: true, AuthFile: authFile, CacheDir: t.TempDir()})
			t.Log(err)
			if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), authFile) || !strings.Contains(err.Error(), reg.addr) {
				t.Fatalf("error = %v, want ErrAuth naming %s and %s", err, reg.addr, authFile)
			}
		})
	}
}
