package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/patbus/patbus/internal/testenv"
)

// repoRoot is the repository's top level, where docker-compose.yml, the
// Dockerfile and deploy/ live.
const repoRoot = "../.."

// lookTool returns the path of a program the test needs: outside CI a
// missing one skips the test, in CI it fails it.
func lookTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if testenv.Required() {
			t.Fatalf("%s is required here but not installed (scripts/services.sh installs it): %v", name, err)
		}
		t.Skipf("%s not installed (scripts/services.sh installs it)", name)
	}
	return p
}

// composeService is what the test reads of a service of the compose file.
type composeService struct {
	Build       any                       `yaml:"build"`
	Image       string                    `yaml:"image"`
	Command     any                       `yaml:"command"`
	Environment map[string]any            `yaml:"environment"`
	DependsOn   map[string]map[string]any `yaml:"depends_on"`
	Healthcheck *struct {
		Test []string `yaml:"test"`
	} `yaml:"healthcheck"`
	Ports   []any `yaml:"ports"`
	Volumes []any `yaml:"volumes"`
}

// The compose file is valid for docker-compose, and every part it runs
// is a subcommand of the binary, with flags it takes, and environment
// variables it reads.
func TestComposeFile(t *testing.T) {
	bin := lookTool(t, "docker-compose")
	cmd := exec.Command(bin, "-f", "docker-compose.yml", "config")
	cmd.Dir = repoRoot
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("docker-compose config: %v\n%s", err, stderr.String())
	}
	var file struct {
		Services map[string]composeService `yaml:"services"`
	}
	if err := yaml.Unmarshal(out, &file); err != nil {
		t.Fatalf("the output of docker-compose config: %v", err)
	}
	services := file.Services
	entry := dockerEntrypoint(t)

	parts := map[string]int{}
	readable := map[string]bool{}
	for _, v := range environment() {
		readable[v.name] = true
	}
	for name, svc := range services {
		if svc.Healthcheck == nil || len(svc.Healthcheck.Test) == 0 {
			t.Errorf("%s has no health check", name)
		}
		for dep, cond := range svc.DependsOn {
			if cond["condition"] != "service_healthy" {
				t.Errorf("%s depends on %s with %v, want condition: service_healthy", name, dep, cond)
			}
			if services[dep].Healthcheck == nil {
				t.Errorf("%s waits for %s to be healthy, which has no health check", name, dep)
			}
		}
		if svc.Build == nil {
			continue
		}
		// A part of the system, built from the Dockerfile.
		argv := commandList(t, name, svc.Command)
		if len(argv) == 0 || !slices.Contains([]string{"user", "account", "config", "gateway"}, argv[0]) {
			t.Errorf("%s runs %q, not a part of the system (user, account, config, gateway)", name, argv)
			continue
		}
		parts[argv[0]]++
		// Its flags parse: -h after them exits 0, a bad flag before it 2.
		var usage strings.Builder
		if code := run(context.Background(), append(slices.Clone(argv), "-h"), io.Discard, &usage); code != 0 {
			t.Errorf("%s: system %q does not parse (exit %d):\n%s", name, argv, code, usage.String())
		}
		for k, v := range svc.Environment {
			if !readable[k] {
				t.Errorf("%s sets %s, which the command does not read (env.go lists what it reads)", name, k)
			}
			checkAddress(t, name, k, fmt.Sprint(v), services)
		}
		if hc := svc.Healthcheck; hc != nil && len(hc.Test) >= 3 {
			if hc.Test[0] != "CMD" || hc.Test[1] != entry {
				t.Errorf("%s's health check runs %q, want [CMD %s …]", name, hc.Test, entry)
			} else if _, ok := commands()[hc.Test[2]]; !ok {
				t.Errorf("%s's health check runs the subcommand %q, which the command does not have", name, hc.Test[2])
			}
		}
	}
	for _, p := range []string{"user", "account", "config"} {
		if parts[p] < 1 {
			t.Errorf("no service runs the %s part", p)
		}
	}
	if parts["gateway"] < 2 {
		t.Errorf("%d gateway replicas, want 2", parts["gateway"])
	}

	// The real components.
	for name, image := range map[string]string{"rabbitmq": "rabbitmq:", "mongodb": "mongo:", "consul": "hashicorp/consul:", "nginx": "nginx:"} {
		if !strings.HasPrefix(services[name].Image, image) {
			t.Errorf("the service %s runs the image %q, want %s…", name, services[name].Image, image)
		}
	}
	if !strings.Contains(services["rabbitmq"].Image, "management") {
		t.Errorf("RabbitMQ's image %q is not the management image", services["rabbitmq"].Image)
	}
	// nginx: the repository's config, port 80 published, after the gateways.
	ng := services["nginx"]
	if !slices.ContainsFunc(ng.Volumes, func(v any) bool {
		return strings.Contains(fmt.Sprint(v), "deploy/nginx.conf") && strings.Contains(fmt.Sprint(v), "/etc/nginx/nginx.conf")
	}) {
		t.Errorf("nginx does not mount deploy/nginx.conf as its config: %v", ng.Volumes)
	}
	if !slices.ContainsFunc(ng.Ports, publishes80) {
		t.Errorf("nginx publishes %v, not its port 80", ng.Ports)
	}
	for name, svc := range services {
		if c := commandList(t, name, svc.Command); len(c) > 0 && c[0] == "gateway" {
			if _, ok := ng.DependsOn[name]; !ok {
				t.Errorf("nginx does not wait for %s", name)
			}
		}
	}
}

// publishes80 reports whether a port of the compose file (short form
// "8080:80", or the long form docker-compose config prints) publishes
// the container's port 80.
func publishes80(p any) bool {
	switch p := p.(type) {
	case string:
		return strings.HasSuffix(p, ":80") || strings.Contains(p, ":80/")
	case map[string]any:
		return fmt.Sprint(p["target"]) == "80" && fmt.Sprint(p["published"]) != ""
	}
	return false
}

// commandList returns a compose command as a list.
func commandList(t *testing.T, name string, c any) []string {
	switch c := c.(type) {
	case nil:
		return nil
	case string:
		return strings.Fields(c)
	case []any:
		var out []string
		for _, a := range c {
			out = append(out, fmt.Sprint(a))
		}
		return out
	}
	t.Errorf("%s: command %v is neither a string nor a list", name, c)
	return nil
}

// checkAddress checks that an address variable points at a service of
// the compose file.
func checkAddress(t *testing.T, name, key, value string, services map[string]composeService) {
	var host string
	switch key {
	case envAMQPURL, envMongoDBURI:
		u, err := url.Parse(value)
		if err != nil {
			t.Errorf("%s: %s=%q: %v", name, key, value, err)
			return
		}
		host = u.Hostname()
	case envConsulAddr:
		h, _, err := net.SplitHostPort(value)
		if err != nil {
			t.Errorf("%s: %s=%q: %v", name, key, value, err)
			return
		}
		host = h
	default:
		return
	}
	if _, ok := services[host]; !ok {
		t.Errorf("%s: %s=%q names %q, not a service of the compose file", name, key, value, host)
	} else if _, ok := services[name].DependsOn[host]; !ok {
		t.Errorf("%s uses %s (%s) without waiting for it", name, host, key)
	}
}

// dockerEntrypoint returns the binary the Dockerfile's image runs, and
// checks that its build stage builds the command of this module.
func dockerEntrypoint(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	if n := strings.Count(text, "\nFROM "); n < 1 || !strings.HasPrefix(text, "#") && !strings.HasPrefix(text, "FROM ") {
		t.Errorf("the Dockerfile has %d later stages", n)
	}
	build := regexp.MustCompile(`(?m)^RUN cd examples/system && .*go build .*-o (\S+) \.$`).FindStringSubmatch(text)
	if build == nil {
		t.Fatal("the Dockerfile does not build examples/system")
	}
	m := regexp.MustCompile(`(?m)^ENTRYPOINT (\[.*\])$`).FindStringSubmatch(text)
	if m == nil {
		t.Fatal("the Dockerfile has no ENTRYPOINT in exec form")
	}
	var entry []string
	if err := json.Unmarshal([]byte(m[1]), &entry); err != nil || len(entry) != 1 {
		t.Fatalf("ENTRYPOINT %s: want one path", m[1])
	}
	copyLine := fmt.Sprintf("COPY --from=build %s %s", build[1], entry[0])
	if !strings.Contains(text, copyLine) {
		t.Errorf("the Dockerfile does not %q", copyLine)
	}
	return entry[0]
}

// The nginx config passes `nginx -t`, and nginx with it balances
// requests over two gateways of a running system. The test runs a copy
// whose listen port and upstream addresses point at this machine.
func TestNginxConfig(t *testing.T) {
	bin := lookTool(t, "nginx")
	raw, err := os.ReadFile(filepath.Join(repoRoot, "deploy", "nginx.conf"))
	if err != nil {
		t.Fatal(err)
	}
	conf := string(raw)
	for _, want := range []string{"listen 80;", "server gateway-1:8080 ", "server gateway-2:8080 "} {
		if !strings.Contains(conf, want) {
			t.Fatalf("deploy/nginx.conf does not hold %q", want)
		}
	}

	// One system, two gateways on its broker, each counting its requests.
	s := testSettings(t, "")
	sys, _ := startTestSystem(t, s, nil)
	g := &gatewayFlags{timeout: 10 * time.Second, maxBody: 1 << 20}
	routes, _ := g.routeMap()
	var counts [2]atomic.Int64
	var addrs [2]string
	for i := range 2 {
		client, gw, err := newGateway(s, sys.b, g, routes)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = client.Close() })
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			counts[i].Add(1)
			gw.ServeHTTP(w, r)
		})}
		go func() { _ = srv.Serve(ln) }()
		t.Cleanup(func() {
			// Shutdown, not Close: it also waits for the connection of the
			// refused large body, whose goroutine lingers in net/http's
			// wait before closing, so that no goroutine outlives the test.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				_ = srv.Close()
			}
		})
		addrs[i] = ln.Addr().String()
	}

	// The copy: this machine's addresses, files under a directory of the
	// test's own, so that neither root nor port 80 is needed.
	dir, err := os.MkdirTemp("", "patbus-nginx-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	port := freePort(t)
	temp := ""
	// Run as root, nginx's workers run as nobody: they must reach the
	// directories where they buffer bodies.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"client_body", "proxy", "fastcgi", "uwsgi", "scgi"} {
		p := filepath.Join(dir, k)
		if err := os.Mkdir(p, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o777); err != nil {
			t.Fatal(err)
		}
		temp += fmt.Sprintf("    %s_temp_path %s;\n", k, p)
	}
	rendered := strings.NewReplacer(
		"listen 80;", fmt.Sprintf("listen 127.0.0.1:%d;", port),
		"gateway-1:8080", addrs[0],
		"gateway-2:8080", addrs[1],
		"http {\n", "http {\n"+temp,
	).Replace(conf)
	confFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(rendered), 0o644); err != nil {
		t.Fatal(err)
	}
	global := fmt.Sprintf("pid %s;", filepath.Join(dir, "nginx.pid"))
	nginx := func(args ...string) *exec.Cmd {
		return exec.Command(bin, append([]string{"-p", dir, "-c", confFile, "-e", filepath.Join(dir, "error.log")}, args...)...)
	}
	if out, err := nginx("-t", "-g", global).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t: %v\n%s", err, out)
	}

	cmd := nginx("-g", global+" daemon off;")
	logFile, err := os.Create(filepath.Join(dir, "output.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logFile.Close()
	// A file, not a pipe, for its output: the workers hold it too.
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// SIGTERM: the master stops its workers, then exits.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	})
	nginxLog := func() string {
		b, _ := os.ReadFile(filepath.Join(dir, "output.log"))
		e, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		return string(b) + string(e)
	}
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	c := &http.Client{Timeout: 20 * time.Second}
	defer c.CloseIdleConnections() // no keep-alive goroutine outlives the test
	defer c.CloseIdleConnections()
	waitUntil(t, 30*time.Second, "nginx to answer", func() bool {
		select {
		case <-exited:
			t.Fatalf("nginx exited:\n%s", nginxLog())
		default:
		}
		res, err := c.Get(base + "/nginx-health")
		if err != nil {
			return false
		}
		readAll(res)
		return res.StatusCode == 200
	})

	for i := 0; i < 40; i++ {
		if status, _, body := do(t, c, "GET", base+"/user", ""); status != 200 || !strings.Contains(body, `"name":"甲"`) {
			t.Fatalf("GET /user through nginx: %d %s", status, body)
		}
	}
	if status, _, body := do(t, c, "POST", base+"/user", `{"name":"丁"}`); status != 200 {
		t.Fatalf("POST /user through nginx: %d %s", status, body)
	}
	big := `{"name":"` + strings.Repeat("x", 1<<20) + `"}`
	if status, _, body := do(t, c, "POST", base+"/user", big); status != 413 || !strings.Contains(body, `"code":"too_large"`) {
		t.Fatalf("a body over 1 MiB through nginx: %d %s, want the gateway's 413\n%s", status, body, nginxLog())
	}
	if counts[0].Load() == 0 || counts[1].Load() == 0 {
		t.Fatalf("requests per gateway: %d and %d, want both used", counts[0].Load(), counts[1].Load())
	}
	t.Logf("requests per gateway: %d and %d", counts[0].Load(), counts[1].Load())
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// The command reads the environment only through getenv, so that
// environment() lists every variable it reads and the compose test
// cannot drift.
func TestEnvironmentIsReadThroughTheList(t *testing.T) {
	reads := regexp.MustCompile(`\b(os\.(Getenv|LookupEnv|Environ)|syscall\.Getenv)\(`)
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && path == filepath.Join("internal", "systest") {
			return filepath.SkipDir // test support, not linked into the command
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") || path == "env.go" {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		if loc := reads.FindIndex(b); loc != nil {
			t.Errorf("%s reads the environment directly (%s); read it through getenv, listed in env.go", path, b[loc[0]:loc[1]])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range environment() {
		if getenv(v.name) != os.Getenv(v.name) {
			t.Errorf("getenv(%s) differs from os.Getenv", v.name)
		}
	}
	t.Setenv("PATBUS_NOT_LISTED", "x")
	if getenv("PATBUS_NOT_LISTED") != "" {
		t.Error("getenv read a variable that is not listed")
	}
}
