package components

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/testcontainers/testcontainers-go"
	"github.com/testcontainers/testcontainers-go/wait"

	"github.com/patbus/patbus/internal/testenv"
)

// The images the containers run: the versions the project's machines run
// from Debian (RabbitMQ 3.10, Redis 7) and from the tools module (Consul).
const (
	rabbitImage = "rabbitmq:3.10"
	consulImage = "hashicorp/consul:" + testenv.ConsulVersion
	mongoImage  = "mongo:7"
	redisImage  = "redis:7"
)

// containerTimeout bounds the wait for one container to be ready.
const containerTimeout = 3 * time.Minute

// dockerHealth reports whether a Docker engine answers, as testcontainers-go
// finds it (DOCKER_HOST, the Docker context, the usual sockets). Finding
// none is an error, never a panic.
func dockerHealth(ctx context.Context) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("no Docker engine: %v", r)
		}
	}()
	p, err := testcontainers.NewDockerProvider()
	if err != nil {
		return fmt.Errorf("no Docker engine: %w", err)
	}
	defer p.Close()
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := p.Health(ctx); err != nil {
		return fmt.Errorf("no Docker engine: %w", err)
	}
	return nil
}

// run starts image with opts and returns host:port of its port, and a stop
// function (also when it fails after creating the container).
func run(ctx context.Context, image, port string, opts ...testcontainers.ContainerCustomizer) (string, func(context.Context) error, error) {
	opts = append([]testcontainers.ContainerCustomizer{testcontainers.WithExposedPorts(port)}, opts...)
	c, err := testcontainers.Run(ctx, image, opts...)
	var stop func(context.Context) error
	if c != nil {
		stop = func(ctx context.Context) error { return c.Terminate(ctx) }
	}
	if err != nil {
		return "", stop, err
	}
	hostPort, err := c.PortEndpoint(ctx, port, "")
	if err != nil {
		return "", stop, err
	}
	return hostPort, stop, nil
}

// startRabbitMQ runs RabbitMQ; the image lets guest log in from outside
// loopback.
func startRabbitMQ(ctx context.Context) (string, func(context.Context) error, error) {
	hp, stop, err := run(ctx, rabbitImage, "5672/tcp",
		testcontainers.WithWaitStrategy(wait.ForLog("Server startup complete").WithStartupTimeout(containerTimeout)))
	if err != nil {
		return "", stop, err
	}
	return "amqp://guest:guest@" + hp + "/", stop, nil
}

// startConsul runs one Consul dev agent, ready once it has a leader.
func startConsul(ctx context.Context) (string, func(context.Context) error, error) {
	hasLeader := func(body io.Reader) bool {
		b, _ := io.ReadAll(body)
		return strings.Trim(strings.TrimSpace(string(b)), `"`) != ""
	}
	return run(ctx, consulImage, "8500/tcp",
		testcontainers.WithCmd("agent", "-dev", "-client", "0.0.0.0"),
		testcontainers.WithWaitStrategy(wait.ForHTTP("/v1/status/leader").
			WithPort("8500/tcp").
			WithResponseMatcher(hasLeader).
			WithStartupTimeout(containerTimeout)))
}

// startMongoDB runs a single MongoDB server without authentication.
func startMongoDB(ctx context.Context) (string, func(context.Context) error, error) {
	hp, stop, err := run(ctx, mongoImage, "27017/tcp",
		testcontainers.WithWaitStrategy(wait.ForLog("Waiting for connections").WithStartupTimeout(containerTimeout)))
	if err != nil {
		return "", stop, err
	}
	return "mongodb://" + hp, stop, nil
}

// startRedis runs a Redis server without persistence.
func startRedis(ctx context.Context) (string, func(context.Context) error, error) {
	return run(ctx, redisImage, "6379/tcp",
		testcontainers.WithCmd("redis-server", "--save", "", "--appendonly", "no"),
		testcontainers.WithWaitStrategy(wait.ForLog("Ready to accept connections").WithStartupTimeout(containerTimeout)))
}
