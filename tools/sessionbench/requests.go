package main

import (
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"github.com/hpcctl/hpcctl/internal/session"
)

// requestsArg makes sessionbench print the FUSE request counts of the plain user's session of
// an image (hpcctl's own server counts them), as `hpcctl session list` shows them.
const requestsArg = "-print-session-requests"

func printRequests(image string) int {
	infos, err := session.List("")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for _, i := range infos {
		if i.Image == image {
			fmt.Print(i.Requests)
			return 0
		}
	}
	fmt.Fprintln(os.Stderr, "no session of", image)
	return 1
}

// requests asks, as the plain user, for the counts of the session of image, by kind.
func (b *bench) requests(image string) (map[string]int, error) {
	cmd := exec.Command("/proc/self/exe", requestsArg, image)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: b.cred}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("session requests: %w", err)
	}
	m := map[string]int{}
	for _, f := range strings.Fields(string(out)) {
		k, v, _ := strings.Cut(f, "=")
		m[k], _ = strconv.Atoi(v)
	}
	return m, nil
}

// warmRequests runs argv once more in the warm session of image (hpcctl's server) and says
// which requests that run sent.
func (b *bench) warmRequests(image string, argv []string) (string, error) {
	before, err := b.requests(image)
	if err != nil {
		return "", err
	}
	if _, err = b.timeAs(b.cred, b.execImage(b.conf, image, true, argv...)); err != nil {
		return "", err
	}
	after, err := b.requests(image)
	if err != nil {
		return "", err
	}
	var parts []string
	total := 0
	for k, v := range after {
		if d := v - before[k]; d > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, d))
			total += d
		}
	}
	slices.Sort(parts)
	return fmt.Sprintf("%d (%s)", total, strings.Join(parts, ", ")), nil
}
