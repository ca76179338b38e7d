package cli

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/hpcctl/hpcctl/internal/config"
	"github.com/hpcctl/hpcctl/internal/isolation"
)

func TestProfileName(t *testing.T) {
	tests := []struct {
		name string
		o    launchOptions
		want string
		err  bool
	}{
		{"none gives the configured default", launchOptions{}, "site", false},
		{"contain", launchOptions{contain: true}, "contain", false},
		{"strongest wins", launchOptions{contain: true, containAll: true, isolate: true}, "isolate", false},
		{"profile flag", launchOptions{profile: "gpu"}, "gpu", false},
		{"same profile twice", launchOptions{profile: "isolate", isolate: true}, "isolate", false},
		{"conflict", launchOptions{profile: "gpu", contain: true}, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.o.profileName("site")
			if (err != nil) != tt.err || got != tt.want {
				t.Errorf("got %q, %v; want %q (error %v)", got, err, tt.want, tt.err)
			}
		})
	}
}

func TestSwitches(t *testing.T) {
	sw, err := (&launchOptions{network: "none", pid: true, hostname: "h"}).switches()
	if err != nil || sw != (isolation.Switches{PID: true, Net: true, Hostname: "h"}) {
		t.Errorf("got %+v, %v", sw, err)
	}
	if _, err := (&launchOptions{network: "bridge"}).switches(); err == nil || !strings.Contains(err.Error(), "no CNI networks") || !strings.Contains(err.Error(), "and none") {
		t.Errorf("--network bridge: %v", err)
	}
	if _, err := (&launchOptions{hostname: "a b"}).switches(); err == nil || !strings.Contains(err.Error(), "--hostname") {
		t.Errorf("--hostname 'a b': %v", err)
	}
}

func TestLoadConfigFromEnv(t *testing.T) {
	p := filepath.Join(t.TempDir(), "c.conf")
	if err := os.WriteFile(p, []byte("default_profile = \"contain\"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv(configEnv, p)
	c, err := loadConfig("")
	if err != nil || c.DefaultProfile != "contain" || c.Path != p {
		t.Fatalf("got %+v, %v", c, err)
	}
	// The flag wins over the variable.
	if _, err := loadConfig(filepath.Join(t.TempDir(), "missing.conf")); err == nil {
		t.Error("missing --config file: no error")
	}
}

func TestCheckImageLimits(t *testing.T) {
	dir := t.TempDir()
	img := filepath.Join(dir, "a.sif")
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	me := os.Getuid()
	tests := []struct {
		name string
		c    config.Config
		err  string
	}{
		{"no limits", config.Config{}, ""},
		{"inside", config.Config{LimitContainerPaths: []string{dir}}, ""},
		{"outside", config.Config{LimitContainerPaths: []string{"/opt/images"}}, "limit_container_paths"},
		{"prefix is not a parent", config.Config{LimitContainerPaths: []string{dir[:len(dir)-1]}}, "limit_container_paths"},
		{"owner by UID", config.Config{LimitContainerOwners: []string{"nobody", itoa(me)}}, ""},
		{"other owner", config.Config{LimitContainerOwners: []string{"4242424"}}, "limit_container_owners"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.c.Path = "/etc/hpcctl/hpcctl.conf"
			err := checkImageLimits(context.Background(), &tt.c, img)
			if (tt.err == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tt.err)) {
				t.Errorf("err %v, want %q", err, tt.err)
			}
		})
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func TestRootOnly(t *testing.T) {
	if !rootOnly("/") {
		t.Error("/ is root's alone")
	}
	f := filepath.Join(t.TempDir(), "hpcctl.conf")
	if err := os.WriteFile(f, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Below /tmp (sticky, world-writable), nothing is root's alone, whoever owns the file.
	if rootOnly(f) {
		t.Errorf("%s counted as root's alone", f)
	}
}
