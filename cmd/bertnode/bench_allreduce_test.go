package main

import (
	"strings"
	"testing"
)

// Bad slow-link flags are refused before any rank starts, naming the flag.
func TestBenchAllReduceFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"--codec", "none,nope"}, "--codec"},
		{[]string{"--netns", "--link-rate", "fast"}, "--link-rate"},
		{[]string{"--link-rate", "1gbit"}, "--link-rate needs --netns"},
		{[]string{"--peers", "a:1,b:2", "--codec", "none,bf16"}, "one codec at a time"},
		{[]string{"--peers", "a:1,b:2", "--raw-tcp"}, "raw TCP"},
	} {
		_, _, err := bertnode(t, "", append([]string{"bench", "allreduce", "--sizes", "4K", "--iters", "1"}, c.args...)...)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v: err = %v, want one saying %q", c.args, err, c.want)
		}
	}
}
