package main

import (
	"fmt"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// machine prints what the start figures are made of on this machine: the page faults of a warm
// joined start, of the Go floor and of a Go process that does nothing, and what one page fault
// and one system call cost here. On a virtual machine a fault can cost ten times what it costs
// on bare metal, so a start's time does not carry from one machine to another; its faults do.
func (b *bench) machine() error {
	type run struct {
		label string
		cred  *syscall.Credential
		argv  []string
	}
	runs := []run{
		{"warm joined exec IMAGE /bin/true", b.cred, b.exec(true, "/bin/true")},
		{"Go floor (startfloor /bin/true)", b.cred, []string{b.floor, "/bin/true"}},
		{"a Go process that does nothing (startfloor -nothing)", b.cred, []string{b.floor, "-nothing"}},
	}
	for _, r := range runs {
		times := make([]time.Duration, 0, b.n)
		faults := make([]int64, 0, b.n)
		for range b.n {
			d, ru, err := b.runIn("/", r.cred, r.argv)
			if err != nil {
				return err
			}
			times = append(times, d)
			if ru != nil {
				faults = append(faults, ru.Minflt)
			}
		}
		if len(faults) == 0 {
			return fmt.Errorf("%s: no resource use reported", r.label)
		}
		fmt.Printf("%s: median %s, %d page faults (its own and its waited-for children's)\n", r.label, ms(median(times)), medianInt(faults))
	}
	touch, populate, err := faultCost(4096, 5)
	if err != nil {
		return err
	}
	fmt.Printf("this machine: a page fault (first touch of an anonymous page) %.1f us; the same pages mapped up front (MAP_POPULATE) %.2f us each; a system call from Go %.2f us\n",
		us(touch), us(populate), us(syscallCost(200000)))
	return nil
}

// faultCost returns the median time per page, over rounds, of touching n fresh anonymous pages
// one by one (a fault each) and of mapping n pages with MAP_POPULATE (no fault).
func faultCost(n, rounds int) (touch, populate time.Duration, err error) {
	size := n * unix.Getpagesize()
	var t, p []time.Duration
	for range rounds {
		mem, err := unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
		if err != nil {
			return 0, 0, fmt.Errorf("mmap: %w", err)
		}
		start := time.Now()
		for i := 0; i < size; i += unix.Getpagesize() {
			mem[i] = 1
		}
		t = append(t, time.Since(start)/time.Duration(n))
		unix.Munmap(mem) //nolint:errcheck // a measurement's scratch memory
		start = time.Now()
		mem, err = unix.Mmap(-1, 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS|unix.MAP_POPULATE)
		if err != nil {
			return 0, 0, fmt.Errorf("mmap: %w", err)
		}
		p = append(p, time.Since(start)/time.Duration(n))
		unix.Munmap(mem) //nolint:errcheck // a measurement's scratch memory
	}
	return median(t), median(p), nil
}

// syscallCost returns the time of one getppid(2), the cheapest system call, from Go.
func syscallCost(n int) time.Duration {
	start := time.Now()
	for range n {
		unix.Getppid()
	}
	return time.Since(start) / time.Duration(n)
}

func us(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1000 }
