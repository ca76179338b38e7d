// Command probe is the example image's program: it prints what a job sees of its surroundings
// (user, working directory, home, /tmp, host name, network, environment), which is exactly what
// differs between hpcctl's isolation profiles.
package main

import (
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
)

func main() {
	greeting := os.Getenv("EXAMPLE_GREETING")
	if len(os.Args) > 1 {
		greeting = strings.Join(os.Args[1:], " ")
	}
	fmt.Printf("greeting:   %s\n", greeting)
	fmt.Printf("user:       uid=%d gid=%d\n", os.Getuid(), os.Getgid())
	cwd, _ := os.Getwd()
	fmt.Printf("cwd:        %s\n", cwd)
	fmt.Printf("home:       %s (%s)\n", os.Getenv("HOME"), entries(os.Getenv("HOME")))
	fmt.Printf("/tmp:       %s\n", entries("/tmp"))
	host, _ := os.Hostname()
	fmt.Printf("hostname:   %s\n", host)
	fmt.Printf("network:    %s\n", interfaces())
	fmt.Printf("pid:        %d\n", os.Getpid())
	fmt.Printf("env:        %d variables%s\n", len(os.Environ()), leaks())
	data, err := os.ReadFile("/data/input.txt")
	if err == nil {
		fmt.Printf("image data: %s", data)
	}
}

func entries(dir string) string {
	if dir == "" {
		return "unset"
	}
	list, err := os.ReadDir(dir)
	if err != nil {
		return "not readable"
	}
	return fmt.Sprintf("%d entries", len(list))
}

func interfaces() string {
	ifs, err := net.Interfaces()
	if err != nil {
		return "unknown"
	}
	var names []string
	for _, i := range ifs {
		names = append(names, i.Name)
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}

// leaks names the variables known to change a program's behaviour when they come from the host.
func leaks() string {
	var found []string
	for _, v := range []string{"PYTHONPATH", "LD_LIBRARY_PATH", "LD_PRELOAD", "R_LIBS", "LANG", "LC_ALL", "TZ"} {
		if _, ok := os.LookupEnv(v); ok {
			found = append(found, v)
		}
	}
	if len(found) == 0 {
		return ""
	}
	return ", from the host: " + strings.Join(found, " ")
}
