package sif

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/sylabs/sif/v2/pkg/sif"
)

// testImage returns the bytes of a small hpcctl SIF: system partition, config, labels, provenance.
func testImage(t testing.TB) []byte {
	t.Helper()
	var buf sif.Buffer
	if err := Write(&buf, bytes.NewReader(bytes.Repeat([]byte("hsqs"), 512)), testMetadata()); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// smallImage is a SIF with room for four objects, a tiny partition and a config: fuzzing
// mutates it faster than testImage's 48 descriptors, and its seeds stay small.
func smallImage(t testing.TB) []byte {
	t.Helper()
	part, err := sif.NewDescriptorInput(sif.DataPartition, bytes.NewReader([]byte("hsqs0123")),
		sif.OptGroupID(SystemGroup), sif.OptPartitionMetadata(sif.FsSquash, sif.PartPrimSys, "amd64"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := sif.NewDescriptorInput(sif.DataGenericJSON, bytes.NewReader([]byte(`{"config":{"Cmd":["/bin/sh"]}}`)),
		sif.OptGroupID(SystemGroup), sif.OptObjectName(ConfigObjectName))
	if err != nil {
		t.Fatal(err)
	}
	var buf sif.Buffer
	if _, err := sif.CreateContainer(&buf, sif.OptCreateDeterministic(), sif.OptCreateWithDescriptorCapacity(4),
		sif.OptCreateWithDescriptors(part, cfg)); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestCheckLayout reads the descriptors where Check's constants say they are and compares them
// with what the SIF library reports: the constants must describe the library's format.
func TestCheckLayout(t *testing.T) {
	b := testImage(t)
	fi, err := sif.LoadContainer(sif.NewBuffer(b))
	if err != nil {
		t.Fatal(err)
	}
	le := binary.LittleEndian
	if got := int64(le.Uint64(b[offDescTotal:])); got != fi.DescriptorsTotal() {
		t.Errorf("descriptor count at %d = %d, library says %d", offDescTotal, got, fi.DescriptorsTotal())
	}
	if got := int64(le.Uint64(b[offDescSize:])); got != fi.DescriptorsSize() || got != fi.DescriptorsTotal()*descriptorSize {
		t.Errorf("descriptor table size = %d, library says %d for %d descriptors", got, fi.DescriptorsSize(), fi.DescriptorsTotal())
	}
	if off := int64(le.Uint64(b[offDescOff:])); off != fi.DescriptorsOffset() || int64(le.Uint64(b[offDataOff:])) != fi.DataOffset() ||
		int64(le.Uint64(b[offDataSize:])) != fi.DataSize() || int64(le.Uint64(b[offDescFree:])) != fi.DescriptorsFree() {
		t.Errorf("header offsets disagree with the library")
	}
	ods, err := fi.GetDescriptors()
	if err != nil {
		t.Fatal(err)
	}
	for i, od := range ods {
		d := b[fi.DescriptorsOffset()+int64(i)*descriptorSize:]
		if d[offUsed] != 1 || int64(le.Uint64(d[offObjOff:])) != od.Offset() || int64(le.Uint64(d[offObjSz:])) != od.Size() ||
			!strings.Contains(describeRaw(d), od.Name()) || sif.DataType(le.Uint32(d[offDType:])) != od.DataType() {
			t.Errorf("descriptor %d: raw reading differs from the library's %v %q at %d size %d", i+1, od.DataType(), od.Name(), od.Offset(), od.Size())
		}
	}
	if err := Check(bytes.NewReader(b), int64(len(b)), "ok.sif"); err != nil {
		t.Errorf("Check of a good image: %v", err)
	}
}

// corruptions damage a good image; want is what the one-line error must say.
var corruptions = []struct {
	name   string
	damage func(b []byte) []byte
	want   string
}{
	{"descriptor count 1<<40", func(b []byte) []byte { return put64(b, offDescTotal, 0x00000100_00000000) }, "descriptor count 1099511627776"},
	{"negative descriptor count", func(b []byte) []byte { return put64(b, offDescTotal, -1) }, "descriptor count -1"},
	{"free count over total", func(b []byte) []byte { return put64(b, offDescFree, 1000) }, "free descriptor count 1000"},
	{"descriptor table past the end", func(b []byte) []byte { return put64(b, offDescOff, int64(len(b))-10) }, "descriptor table"},
	{"config size 1 TiB", func(b []byte) []byte { return putObject(b, 2, offObjSz, 1<<40) }, "descriptor 2 size 1099511627776 exceeds the file"},
	{"negative object offset", func(b []byte) []byte { return putObject(b, 1, offObjOff, -5) }, "descriptor 1 offset -5"},
	{"truncated", func(b []byte) []byte { return b[:len(b)-100] }, "exceeds the file"},
	{"header cut short", func(b []byte) []byte { return b[:100] }, "header is cut short"},
}

func put64(b []byte, off int, v int64) []byte {
	binary.LittleEndian.PutUint64(b[off:], uint64(v))
	return b
}

// putObject sets a field of the i-th (from 1) descriptor.
func putObject(b []byte, i int, field int, v int64) []byte {
	base := int(binary.LittleEndian.Uint64(b[offDescOff:])) + (i-1)*descriptorSize
	return put64(b, base+field, v)
}

// TestCheckCorrupt: every opener refuses a damaged image with one line naming the field and
// what to do, before the library allocates or panics.
func TestCheckCorrupt(t *testing.T) {
	for _, c := range corruptions {
		t.Run(c.name, func(t *testing.T) {
			b := c.damage(testImage(t))
			p := filepath.Join(t.TempDir(), "bad.sif")
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			_, derr := Describe(p)
			_, oerr := Open(p)
			for _, err := range []error{Check(bytes.NewReader(b), int64(len(b)), p), derr, oerr} {
				var ce *CorruptError
				if !errors.As(err, &ce) || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), p) ||
					!strings.HasSuffix(err.Error(), "copy or build it again") || strings.Contains(err.Error(), "\n") {
					t.Errorf("err = %v, want a CorruptError naming %s and %q", err, p, c.want)
				}
			}
		})
	}
}

func TestCheckNotSIF(t *testing.T) {
	for _, b := range [][]byte{nil, []byte("hello"), bytes.Repeat([]byte{0}, 4096)} {
		if err := Check(bytes.NewReader(b), int64(len(b)), "x"); !errors.Is(err, ErrNotSIF) {
			t.Errorf("Check(%d bytes) = %v, want ErrNotSIF", len(b), err)
		}
	}
}

// TestMetadataObjectLimit: an object inside a large file but too large for metadata is refused
// rather than read into memory.
func TestMetadataObjectLimit(t *testing.T) {
	b := testImage(t)
	big := make([]byte, maxMetadataObject+1)
	b = putObject(b, 2, offObjOff, 0)
	b = putObject(b, 2, offObjSz, int64(len(big)))
	b = append(b, big...)
	fi, err := sif.LoadContainer(sif.NewBuffer(b))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := describe(fi, "big.sif"); err == nil || !strings.Contains(err.Error(), "more than image metadata can be") {
		t.Errorf("describe = %v, want the metadata limit", err)
	}
}

// FuzzCheck feeds damaged SIFs to Check and then, for those it admits, to what every hpcctl
// opener does with the library: no input may panic or allocate beyond the file's size.
func FuzzCheck(f *testing.F) {
	good := smallImage(f)
	f.Add(good)
	for _, c := range corruptions {
		f.Add(c.damage(bytes.Clone(good)))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if Check(bytes.NewReader(data), int64(len(data)), "fuzz.sif") != nil {
			return
		}
		fi, err := sif.LoadContainer(sif.NewBuffer(bytes.Clone(data)))
		if err != nil {
			return
		}
		_, _ = describe(fi, "fuzz.sif")
		_, _ = locate(fi, "fuzz.sif")
	})
}

// TestWriteFuzzSeeds rewrites the checked-in seed corpus of FuzzCheck (testdata/fuzz) when
// HPCCTL_WRITE_FUZZ_SEEDS is set: a good image and a few of the corruptions above.
func TestWriteFuzzSeeds(t *testing.T) {
	if os.Getenv("HPCCTL_WRITE_FUZZ_SEEDS") == "" {
		t.Skip("set HPCCTL_WRITE_FUZZ_SEEDS=1 to rewrite testdata/fuzz/FuzzCheck")
	}
	dir := filepath.Join("testdata", "fuzz", "FuzzCheck")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	seeds := map[string][]byte{"good": smallImage(t)}
	for _, c := range corruptions[:5] {
		seeds[strings.NewReplacer(" ", "-", "<", "").Replace(c.name)] = c.damage(smallImage(t))
	}
	for name, b := range seeds {
		body := "go test fuzz v1\n[]byte(" + strconv.Quote(string(b)) + ")\n"
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
