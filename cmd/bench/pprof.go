package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"
)

// pprofEnv names the variable the profiling build of the shop reads its
// net/http/pprof address from.
const pprofEnv = "BENCH_PPROF_ADDR"

// pprofFile is added to cmd/server by a build overlay (go build -overlay),
// so the profiling build needs no change to the shop's source.
const pprofFile = `package main

import (
	"net"
	"net/http"
	_ "net/http/pprof" // registers /debug/pprof on http.DefaultServeMux, which the shop does not use
	"os"
)

func init() {
	if addr := os.Getenv("` + pprofEnv + `"); addr != "" {
		if ln, err := net.Listen("tcp", addr); err == nil {
			go http.Serve(ln, nil)
		}
	}
}
`

// pprofOverlay writes the overlay that adds pprofFile to cmd/server and
// returns its path.
func pprofOverlay(dir string) (string, error) {
	src := filepath.Join(dir, "zz_bench_pprof.go")
	if err := os.WriteFile(src, []byte(pprofFile), 0o644); err != nil {
		return "", err
	}
	target, err := filepath.Abs(filepath.Join("cmd", "server", "zz_bench_pprof.go"))
	if err != nil {
		return "", err
	}
	b, err := json.Marshal(map[string]map[string]string{"Replace": {target: src}})
	if err != nil {
		return "", err
	}
	overlay := filepath.Join(dir, "overlay.json")
	return overlay, os.WriteFile(overlay, b, 0o644)
}

// cpuProfile waits out the warm-up, then saves a CPU profile of d from the
// shop's net/http/pprof to path.
func cpuProfile(addr string, warmup, d time.Duration, path string) error {
	time.Sleep(warmup)
	client := &http.Client{Timeout: d + 10*time.Second}
	res, err := client.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, max(1, int(d.Seconds()))))
	if err != nil {
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof: %s", res.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, res.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
