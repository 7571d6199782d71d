// Command vcsim serves a vCenter simulator (govmomi's simulator package) with a
// scenario shaped for the terraform-provider-vsphereipam tests.
//
// It builds the inventory in process (no HTTP round trips, so large scenarios
// come up fast), starts the simulator's HTTPS /sdk endpoint on 127.0.0.1, puts a
// request-counting HTTPS front in front of it, writes an info file describing
// how to reach it and what it contains, and serves until SIGTERM/SIGINT.
//
// Build (GOPATH mode, Debian's govmomi):
//
//	GOPATH=/usr/share/gocode GO111MODULE=off go build -o .sim/vcsim ./tests/vcsim
package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"io/ioutil"
	"log"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25"
)

// Only these credentials may log in; anything else gets InvalidLogin.
const (
	loginUser     = "user"
	loginPassword = "pass"
)

type options struct {
	scenario  string
	vms       int
	infoPath  string
	exitOnEOF bool
}

// info is the JSON document written to -info once the simulator is ready.
type info struct {
	URL          string    `json:"url"`
	Host         string    `json:"host"`
	User         string    `json:"user"`
	Password     string    `json:"password"`
	InstanceUUID string    `json:"instance_uuid"`
	StatsURL     string    `json:"stats_url"`
	StatsReset   string    `json:"stats_reset_url"`
	BackendURL   string    `json:"backend_url"`
	CertPEM      string    `json:"cert_pem"`
	PID          int       `json:"pid"`
	Scenario     string    `json:"scenario"`
	SetupMillis  int64     `json:"setup_ms"`
	Manifest     *manifest `json:"manifest"`
}

func main() {
	log.SetFlags(log.Ltime | log.Lmicroseconds)
	log.SetPrefix("vcsim: ")

	var opt options
	flag.StringVar(&opt.scenario, "scenario", "test", "scenario to build: demo, test or scale")
	flag.IntVar(&opt.vms, "vms", 2000, "number of VMs for the scale scenario")
	flag.StringVar(&opt.infoPath, "info", "", "write a JSON info file here once ready")
	flag.BoolVar(&opt.exitOnEOF, "exit-on-stdin-eof", false, "exit when stdin is closed (parent died)")
	flag.Parse()

	if err := run(opt); err != nil {
		log.Fatal(err)
	}
}

func run(opt options) error {
	build, ok := scenarios[opt.scenario]
	if !ok {
		return fmt.Errorf("unknown scenario %q (want demo, test or scale)", opt.scenario)
	}
	if opt.infoPath != "" {
		// A stale file from an earlier run must not look like "ready".
		_ = os.Remove(opt.infoPath)
	}

	start := time.Now()
	model := build.model(opt)
	if err := model.Create(); err != nil {
		return fmt.Errorf("create model: %w", err)
	}
	defer model.Remove()

	ctx := context.Background()
	// The simulator's Service is a soap.RoundTripper: a client on it calls the
	// simulator in process, which keeps large scenarios quick to build.
	c, err := vim25.NewClient(ctx, model.Service)
	if err != nil {
		return fmt.Errorf("in-process client: %w", err)
	}
	b := newBuilder(ctx, c)
	if err := build.shape(b, opt); err != nil {
		return fmt.Errorf("scenario %s: %w", opt.scenario, err)
	}
	if err := b.finish(); err != nil {
		return fmt.Errorf("scenario %s: finish: %w", opt.scenario, err)
	}
	setup := time.Since(start)
	log.Printf("scenario %s ready in %s (%d VMs)", opt.scenario, setup.Round(time.Millisecond), b.vmCount())

	backend := startBackend(model)
	defer backend.Close()

	fr, err := startFront(backend.URL, b.controlHandler())
	if err != nil {
		return fmt.Errorf("front: %w", err)
	}
	defer fr.Close()

	if opt.infoPath != "" {
		inf := info{
			URL:          fr.url + "/sdk",
			Host:         fr.host,
			User:         loginUser,
			Password:     loginPassword,
			InstanceUUID: c.ServiceContent.About.InstanceUuid,
			StatsURL:     fr.url + "/_stats",
			StatsReset:   fr.url + "/_stats/reset",
			BackendURL:   backendURL(backend),
			CertPEM:      fr.certPEM,
			PID:          os.Getpid(),
			Scenario:     opt.scenario,
			SetupMillis:  setup.Milliseconds(),
			Manifest:     collectManifest(),
		}
		if err := writeJSONAtomic(opt.infoPath, &inf); err != nil {
			return err
		}
	}
	fmt.Println(fr.url + "/sdk")

	waitForExit(opt.exitOnEOF)
	log.Printf("shutting down")
	return nil
}

// startBackend serves the simulator over HTTPS on a random loopback port and
// makes it accept only loginUser/loginPassword.
func startBackend(model *simulator.Model) *simulator.Server {
	model.Service.TLS = new(tls.Config)
	// A Listen.User other than simulator.DefaultLogin switches the simulator
	// from "any non-empty credentials" to an exact user/password check.
	model.Service.Listen = &url.URL{
		Host: "127.0.0.1:0",
		User: url.UserPassword(loginUser, loginPassword),
	}
	return model.Service.NewServer()
}

// backendURL is the simulator's own URL without credentials, for debugging.
func backendURL(s *simulator.Server) string {
	u := *s.URL
	u.User = nil
	return u.String()
}

// writeJSONAtomic writes v to path through a temporary file and a rename, so
// readers never see a partial file.
func writeJSONAtomic(path string, v interface{}) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := ioutil.TempFile(filepath.Dir(path), ".vcsim-info-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	// TempFile creates 0600; the info file holds nothing secret (test creds).
	if err := os.Chmod(tmp.Name(), 0644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// waitForExit blocks until SIGTERM/SIGINT, or stdin reaching EOF when asked to.
func waitForExit(exitOnEOF bool) {
	done := make(chan string, 2)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	go func() { done <- (<-sig).String() }()
	if exitOnEOF {
		go func() {
			_, _ = io.Copy(ioutil.Discard, os.Stdin)
			done <- "stdin closed"
		}()
	}
	log.Printf("exit requested: %s", <-done)
}
