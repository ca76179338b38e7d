package layer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hpcctl/hpcctl/internal/squashfs"
	"github.com/hpcctl/hpcctl/internal/testutil"
	lt "github.com/hpcctl/hpcctl/internal/testutil/layertest"
)

func sampleTar() []byte {
	return lt.Tar([]F{lt.Dir("d"), lt.Reg("d/f", strings.Repeat("content ", 1000)), lt.Symlink("s", "d/f"), lt.Hardlink("h", "d/f")})
}

func TestCompressionDetection(t *testing.T) {
	plain := sampleTar()
	want, _, err := flatten(t, blobs(plain), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for name, blob := range map[string][]byte{"gzip": lt.Gzip(plain), "zstd": lt.Zstd(plain)} {
		t.Run(name, func(t *testing.T) {
			got, _, err := flatten(t, blobs(blob), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s gives %v, plain gives %v", name, got, want)
			}
		})
	}
	t.Run("mixed stack", func(t *testing.T) {
		top := lt.Tar([]F{lt.Reg("top", "t")})
		got, _, err := flatten(t, blobs(lt.Zstd(plain), lt.Gzip(top)), Options{})
		if err != nil || len(got) != len(want)+1 {
			t.Fatalf("got %d entries, err %v; want %d", len(got), err, len(want)+1)
		}
	})
	t.Run("xz is refused", func(t *testing.T) {
		_, _, err := flatten(t, blobs(append([]byte{0xfd, '7', 'z', 'X', 'Z', 0}, plain...)), Options{})
		if err == nil || !strings.Contains(err.Error(), "sha256:l0") || !strings.Contains(err.Error(), "xz or bzip2") {
			t.Fatalf("error = %v", err)
		}
	})
}

func TestCorruptBlobs(t *testing.T) {
	plain := sampleTar()
	gz := lt.Gzip(plain)
	badCRC := bytes.Clone(gz)
	badCRC[len(badCRC)-6] ^= 0xff // the CRC32 in the gzip trailer
	zs := lt.Zstd(plain)
	headerless := bytes.Clone(plain)
	copy(headerless[148:156], "garbage!") // the header checksum field
	tests := map[string][]byte{
		"truncated tar":        plain[:len(plain)/2],
		"truncated gzip":       gz[:len(gz)/2],
		"gzip CRC mismatch":    badCRC,
		"truncated zstd":       zs[:len(zs)/2],
		"bad header checksum":  headerless,
		"not a tar":            []byte(strings.Repeat("hello world\n", 100)),
		"gzip of garbage tail": lt.Gzip(plain[:700]),
	}
	for name, blob := range tests {
		t.Run(name, func(t *testing.T) {
			ls := blobs(lt.Tar([]F{lt.Reg("ok", "")}), blob)
			entries, _, err := flatten(t, ls, Options{})
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), "layer 2/2 sha256:l1") {
				t.Errorf("error does not name the layer: %v", err)
			}
			if len(entries) != 0 {
				t.Errorf("%d entries reached the sink before the error", len(entries))
			}
		})
	}
}

func TestOpenErrorNamesLayer(t *testing.T) {
	ls := []Layer{{Digest: "sha256:missing", Open: func() (io.ReadCloser, error) { return nil, os.ErrNotExist }}}
	_, _, err := flatten(t, ls, Options{})
	if !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "sha256:missing") {
		t.Fatalf("error = %v", err)
	}
}

func TestBlobChangedBetweenReads(t *testing.T) {
	first, second := lt.Tar([]F{lt.Reg("a", "")}), lt.Tar([]F{lt.Reg("b", "")})
	opened := 0
	ls := []Layer{{Digest: "sha256:x", Open: func() (io.ReadCloser, error) {
		opened++
		if opened == 1 {
			return io.NopCloser(bytes.NewReader(first)), nil
		}
		return io.NopCloser(bytes.NewReader(second)), nil
	}}}
	_, _, err := flatten(t, ls, Options{})
	if err == nil || !strings.Contains(err.Error(), "changed between reads") {
		t.Fatalf("error = %v", err)
	}
}

func TestMaxBytes(t *testing.T) {
	ls := stack([]F{lt.Reg("a", strings.Repeat("x", 600))}, []F{lt.Reg("b", strings.Repeat("y", 600))})
	if _, _, err := flatten(t, ls, Options{MaxBytes: 1200}); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	entries, _, err := flatten(t, ls, Options{MaxBytes: 1000})
	if err == nil || !strings.Contains(err.Error(), "exceeds the limit of 1000 bytes") || len(entries) != 0 {
		t.Fatalf("over the limit: err %v, %d entries", err, len(entries))
	}
}

func TestMaxEntries(t *testing.T) {
	ls := stack([]F{lt.Reg("a", ""), lt.Reg("b", "")}, []F{lt.Reg("c", "")})
	if _, _, err := flatten(t, ls, Options{MaxEntries: 3}); err != nil {
		t.Fatalf("at the limit: %v", err)
	}
	if _, _, err := flatten(t, ls, Options{MaxEntries: 2}); err == nil || !strings.Contains(err.Error(), "more than 2 entries") {
		t.Fatalf("over the limit: %v", err)
	}
}

func TestCancel(t *testing.T) {
	t.Run("before start", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := Flatten(ctx, blobs(sampleTar()), func(squashfs.Entry) error { return nil }, Options{})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("error = %v", err)
		}
	})
	t.Run("from the sink", func(t *testing.T) {
		var files []F
		for i := range 500 {
			files = append(files, lt.Reg(strings.Repeat("f", 1+i%200)+string(rune('a'+i%26))+"x"+time.Duration(i).String(), "body"))
		}
		ls := blobs(lt.Gzip(lt.Tar(files)), lt.Gzip(lt.Tar(files)))
		ctx, cancel := context.WithCancel(context.Background())
		n := 0
		_, err := Flatten(ctx, ls, func(squashfs.Entry) error { n++; cancel(); return nil }, Options{})
		if !errors.Is(err, context.Canceled) || n != 1 {
			t.Fatalf("error = %v after %d entries, want context.Canceled after 1", err, n)
		}
	})
	t.Run("sink error stops", func(t *testing.T) {
		boom := errors.New("disk full")
		_, err := Flatten(context.Background(), blobs(sampleTar()), func(squashfs.Entry) error { return boom }, Options{})
		if !errors.Is(err, boom) || !strings.Contains(err.Error(), "sha256:l0") {
			t.Fatalf("error = %v", err)
		}
	})
}

func TestDeterministic(t *testing.T) {
	ls := randomStack(42, 6)
	a, _, errA := flatten(t, ls, Options{Parallel: 1})
	b, _, errB := flatten(t, ls, Options{Parallel: 4})
	if errA != nil || errB != nil {
		t.Fatalf("errors %v, %v", errA, errB)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatal("two runs over the same layers gave different entry sequences")
	}
}

func TestLongNames(t *testing.T) {
	long := strings.Repeat("d/", 80) + strings.Repeat("f", 200)
	for _, format := range []tar.Format{tar.FormatGNU, tar.FormatPAX} {
		t.Run(format.String(), func(t *testing.T) {
			var buf bytes.Buffer
			tw := tar.NewWriter(&buf)
			hdrs := []*tar.Header{
				{Name: long, Typeflag: tar.TypeReg, Mode: 0o644, Size: 1, Format: format},
				{Name: long + "-link", Typeflag: tar.TypeSymlink, Linkname: strings.Repeat("t", 300), Format: format},
			}
			for _, h := range hdrs {
				if err := tw.WriteHeader(h); err != nil {
					t.Fatal(err)
				}
				if h.Size > 0 {
					tw.Write([]byte("x")) //nolint:errcheck // a short entry is what this test writes
				}
			}
			tw.Close()
			entries, _, err := flatten(t, blobs(buf.Bytes()), Options{})
			if err != nil {
				t.Fatal(err)
			}
			tr := tree(entries)
			if tr[long] != `file 644 "x"` || tr[long+"-link"] != "symlink "+strings.Repeat("t", 300) {
				t.Fatalf("long names lost: %v", tr)
			}
		})
	}
}

// TestGNUSparse reads a sparse file that GNU tar wrote; archive/tar expands the holes.
func TestGNUSparse(t *testing.T) {
	tarBin := testutil.NeedCommands(t, "tar")[0]
	dir := t.TempDir()
	f, err := os.Create(filepath.Join(dir, "sparse"))
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("end"), 1<<20) //nolint:errcheck // the reads below fail if this did
	f.Close()
	for _, format := range []string{"gnu", "posix"} {
		t.Run(format, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "l.tar")
			cmd := exec.Command(tarBin, "--sparse", "--format="+format, "-C", dir, "-cf", out, "sparse")
			if b, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("tar: %v: %s", err, b)
			}
			blob, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			entries, _, err := flatten(t, blobs(blob), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 1 || entries[0].Type != squashfs.TypeRegular || entries[0].Size != 1<<20+3 ||
				!strings.HasSuffix(entries[0].body, "\x00end") {
				t.Fatalf("sparse file read as %+v", entries)
			}
		})
	}
}

func TestStats(t *testing.T) {
	ls := stack([]F{lt.Reg("f", "abc"), lt.Hardlink("l", "f"), lt.Reg("g", "zz")},
		[]F{lt.Whiteout("f"), lt.Reg("g", "new"), lt.CharDev("c", 1, 1)})
	_, st, err := flatten(t, ls, Options{})
	if err != nil {
		t.Fatal(err)
	}
	want := Stats{Layers: 2, Entries: 3, Bytes: 6, Hidden: 2, Whiteouts: 1, Hardlinks: 0, Copied: 1}
	if st != want {
		t.Fatalf("stats %+v, want %+v", st, want)
	}
}
