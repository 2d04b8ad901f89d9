package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"
)

// defaultTimeout bounds one probe; it stays below the 5 s timeout that the
// Dockerfiles and the Helm chart give a health check, so a hung server is
// reported by this program rather than killed by the runtime.
const defaultTimeout = 3 * time.Second

// maxBodyInReport is how much of a failing HTTP response is quoted in the report.
const maxBodyInReport = 512

// run probes once and writes one line, "healthy: ..." or "unhealthy: ...",
// to stdout (Docker keeps it in the container's health log). It returns an
// error when the target is not healthy or the arguments are wrong.
func run(ctx context.Context, args []string, stdout io.Writer) error {
	return runEnv(ctx, args, os.Getenv, stdout)
}

// runEnv is run with the environment read through getenv.
func runEnv(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fs := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	fs.SetOutput(stdout)
	grpcAddr := fs.String("grpc", "", "probe this gRPC address with grpc.health.v1 Check")
	service := fs.String("service", "", "service name for -grpc (empty: the server as a whole)")
	httpAddr := fs.String("http", "", "probe this HTTP address with GET -path")
	path := fs.String("path", "/ready", "path for -http")
	timeout := fs.Duration("timeout", defaultTimeout, "give up after this long")
	var tlsf tlsFlags
	tlsf.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(stdout, fmt.Sprintf("unexpected arguments %q", fs.Args()))
	}
	if (*grpcAddr == "") == (*httpAddr == "") {
		return usageError(stdout, "exactly one of -grpc and -http is required")
	}

	tlsCfg, err := tlsf.config(*grpcAddr != "", getenv)
	if err != nil {
		return usageError(stdout, err.Error())
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var status string
	if *grpcAddr != "" {
		status, err = probeGRPC(ctx, *grpcAddr, *service, tlsCfg)
	} else {
		status, err = probeHTTP(ctx, *httpAddr, *path, tlsCfg)
	}
	if err != nil {
		fmt.Fprintf(stdout, "unhealthy: %v\n", err)
		return err
	}
	fmt.Fprintf(stdout, "healthy: %s\n", status)
	return nil
}

func usageError(stdout io.Writer, msg string) error {
	fmt.Fprintf(stdout, "healthcheck: %s\n", msg)
	return errors.New(msg)
}

// probeAddr turns a listen address into one to connect to: an empty or
// unspecified host (":8000", "0.0.0.0:8000", "[::]:8000") becomes loopback.
func probeAddr(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("address %q: %w", addr, err)
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return net.JoinHostPort(host, port), nil
}

func probeHTTP(ctx context.Context, addr, path string, tlsCfg *tls.Config) (string, error) {
	target, err := probeAddr(addr)
	if err != nil {
		return "", err
	}
	scheme, client := "http", http.DefaultClient
	if tlsCfg != nil {
		scheme, client = "https", &http.Client{Transport: &http.Transport{TLSClientConfig: tlsCfg}}
	}
	url := scheme + "://" + target + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("request for %s: %w", url, err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("GET %s: %w", url, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxBodyInReport))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return "", fmt.Errorf("GET %s: %s: %s", url, resp.Status, body)
	}
	return fmt.Sprintf("GET %s: %s", url, resp.Status), nil
}
