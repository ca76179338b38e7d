package fetch

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sylabs/sif/v2/pkg/sif"

	"github.com/hpcctl/hpcctl/internal/refcache"
)

func TestPinTag(t *testing.T) {
	for ref, want := range map[string]string{
		"docker://127.0.0.1:5000/a/b:1": "docker://127.0.0.1:5000/a/b@sha256:00",
		"docker://127.0.0.1:5000/a/b":   "docker://127.0.0.1:5000/a/b@sha256:00",
		"docker://host/b:latest":        "docker://host/b@sha256:00",
	} {
		if got := pinTag(ref, "sha256:00"); got != want {
			t.Errorf("pinTag(%q) = %q, want %q", ref, got, want)
		}
	}
}

// minimalSIF writes an empty but valid SIF and returns its bytes.
func minimalSIF(t *testing.T) []byte {
	t.Helper()
	p := filepath.Join(t.TempDir(), "min.sif")
	f, err := sif.CreateContainerAtPath(p, sif.OptCreateDeterministic())
	if err != nil {
		t.Fatal(err)
	}
	if err = f.UnloadContainer(); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestFetchHTTP(t *testing.T) {
	good := minimalSIF(t)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/good.sif":
			w.Write(good) //nolint:errcheck // the client checks what it got
		case "/page.sif":
			w.Write([]byte("<html>sign in first</html>")) //nolint:errcheck // as above
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	root := t.TempDir()
	opts := Options{CacheDir: root}
	res, err := Fetch(context.Background(), srv.URL+"/good.sif", opts)
	if err != nil {
		t.Fatalf("Fetch of a SIF: %v", err)
	}
	if b, _ := os.ReadFile(res.SIF); string(b) != string(good) || !strings.HasPrefix(res.Digest, "sha256:") {
		t.Errorf("Fetch gave %s (digest %s), not the served SIF", res.SIF, res.Digest)
	}
	if p, ok := refcache.Lookup(root, srv.URL+"/good.sif", timeNow()); !ok || p != res.SIF {
		t.Errorf("no fresh record for the fetched URL: %q, %v", p, ok)
	}
	for path, want := range map[string]string{"/missing.sif": "404", "/page.sif": "not a SIF"} {
		empty := t.TempDir()
		_, err := Fetch(context.Background(), srv.URL+path, Options{CacheDir: empty})
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), srv.URL+path) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Fetch %s: %v; want one line naming it and %q", path, err, want)
		}
		left, _ := filepath.Glob(filepath.Join(empty, "sif", "*", "*"))
		hidden, _ := filepath.Glob(filepath.Join(empty, "sif", "*", ".*"))
		if len(left)+len(hidden) != 0 {
			t.Errorf("Fetch %s left %q %q in the cache", path, left, hidden)
		}
	}
}

func TestPushRefusesNonSIF(t *testing.T) {
	p := filepath.Join(t.TempDir(), "x.sif")
	if err := os.WriteFile(p, []byte("not a sif at all, just text"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Push(context.Background(), p, "oras://127.0.0.1:1/a/b:1", Options{CacheDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "only SIF files") {
		t.Errorf("Push of a text file: %v, want a refusal before any network", err)
	}
}

func timeNow() time.Time { return time.Now() }
