package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"time"
)

// runProbe is the probe subcommand: a health check for images without
// curl. It GETs the URL and succeeds on a 2xx answer.
func runProbe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("probe", "system probe [-timeout 2s] URL",
		"GETs URL and exits 0 when the answer is 2xx, 1 otherwise: the health check of docker-compose.yml.",
		"  system probe http://127.0.0.1:8080/readyz")
	timeout := fs.Duration("timeout", 2*time.Second, "how long to wait for the answer")
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return usageError{err}
	}
	if fs.NArg() != 1 || *timeout <= 0 {
		fmt.Fprintln(stderr, "probe: give one URL and a positive -timeout")
		return usageError{fmt.Errorf("bad arguments")}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fs.Arg(0), nil)
	if err != nil {
		return err
	}
	// One request: no connection to keep alive after it.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	res, err := client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
	if res.StatusCode/100 != 2 {
		return fmt.Errorf("%s answered %s", fs.Arg(0), res.Status)
	}
	fmt.Fprintln(stdout, res.Status)
	return nil
}
