// Command mkman writes hpcctl's man pages (section 1), one per command, from its command tree:
// `make man` runs it and `make install-suid` installs the pages under PREFIX/share/man/man1.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra/doc"

	"github.com/hpcctl/hpcctl/internal/cli"
	"github.com/hpcctl/hpcctl/internal/cli/imagecli"
)

func main() {
	out := flag.String("out", "_out/man", "directory to write the pages into (replaced)")
	version := flag.String("version", cli.Version, "the version the pages name")
	date := flag.String("date", "", "the pages' date, YYYY-MM-DD (default: $SOURCE_DATE_EPOCH, else today)")
	flag.Parse()
	if err := run(*out, *version, *date); err != nil {
		fmt.Fprintf(os.Stderr, "mkman: %v\n", err)
		os.Exit(1)
	}
}

func run(out, version, date string) error {
	when, err := pageDate(date)
	if err != nil {
		return err
	}
	// Written beside the target and renamed: an interrupted run leaves the old pages whole, and
	// runs at once (e2e binaries installing in parallel) each write their own.
	if err = os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(filepath.Dir(out), filepath.Base(out)+".tmp-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	if err = os.Chmod(tmp, 0o755); err != nil {
		return err
	}
	// The companion's verbs (build, sign, verify, key, pull, push) replace hpcctl's forwarders.
	root := cli.DocTree(cli.CommonVerbs, cli.LaunchVerbs, imagecli.Verbs)
	hdr := &doc.GenManHeader{Title: "HPCCTL", Section: "1", Source: "hpcctl " + version, Manual: "hpcctl manual", Date: &when}
	if err = doc.GenManTree(root, hdr, tmp); err != nil {
		return fmt.Errorf("write the pages: %w", err)
	}
	old := tmp + ".old"
	if err = os.Rename(out, old); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	defer os.RemoveAll(old)
	return os.Rename(tmp, out)
}

// pageDate is the date the pages carry: a fixed one makes them reproducible.
func pageDate(date string) (time.Time, error) {
	if date != "" {
		t, err := time.Parse(time.DateOnly, date)
		if err != nil {
			return t, fmt.Errorf("-date %q: want YYYY-MM-DD", date)
		}
		return t, nil
	}
	if s := os.Getenv("SOURCE_DATE_EPOCH"); s != "" {
		var sec int64
		if _, err := fmt.Sscan(s, &sec); err != nil {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", s)
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	return time.Now().UTC(), nil
}
