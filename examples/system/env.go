package main

import "os"

// envVar is an environment variable the command reads.
type envVar struct {
	name  string
	usage string
}

// The environment variables the command reads.
const (
	envAMQPURL    = "PATBUS_AMQP_URL"
	envMongoDBURI = "MONGODB_URI"
	envConsulAddr = "CONSUL_HTTP_ADDR"
)

// environment lists every environment variable the command reads, for
// --help and for the test that checks docker-compose.yml against it. The
// command reads them through getenv only; a test fails if any other file
// of the module calls os.Getenv or os.LookupEnv.
func environment() []envVar {
	return []envVar{
		{envAMQPURL, "RabbitMQ address, amqp://user:password@host:5672/vhost (several, comma-separated, for failover); unset: the in-memory broker"},
		{envMongoDBURI, "MongoDB connection string; unset: an embedded FerretDB in the process"},
		{envConsulAddr, "Consul agent, host:port, for health and versions (the other CONSUL_* variables of the Consul client apply too); unset: no Consul"},
	}
}

// getenv returns the value of an environment variable of environment();
// for any other name it returns "", so that a variable missing from the
// list is never read.
func getenv(name string) string {
	for _, v := range environment() {
		if v.name == name {
			return os.Getenv(name)
		}
	}
	return ""
}
