package bus_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/patbus/patbus/bus"
)

// tlsServer accepts TLS connections on 127.0.0.1 with a self-signed
// certificate for 127.0.0.1, completes the handshake and hangs up (it
// speaks no AMQP). It returns the address and a pool trusting it.
func tlsServer(t *testing.T, maxVersion uint16) (string, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "patbus test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}},
		MinVersion:   tls.VersionTLS10,
		MaxVersion:   maxVersion,
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_ = c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	return l.Addr().String(), pool
}

// TestRabbitTLS checks what the client demands of an amqps:// server: a
// certificate it trusts for the host it dialled, and TLS 1.2 or later even
// when the caller's configuration allows less.
func TestRabbitTLS(t *testing.T) {
	dial := func(addr string, opts ...bus.Option) error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		opts = append(opts, bus.WithMaxReconnects(1), bus.WithDialTimeout(2*time.Second))
		b, err := bus.Dial(ctx, []string{"amqps://user:s3cret-pw@" + addr + "/"}, opts...)
		if err == nil {
			b.Close()
			return errors.New("dial succeeded against a server that speaks no AMQP")
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error shows the password: %v", err)
		}
		return err
	}
	addr, pool := tlsServer(t, tls.VersionTLS13)
	if err := dial(addr); !strings.Contains(err.Error(), "certificate") {
		t.Errorf("untrusted certificate: %v, want a certificate error", err)
	}
	if err := dial(addr, bus.WithTLS(&tls.Config{RootCAs: pool})); strings.Contains(err.Error(), "certificate") || !errors.Is(err, bus.ErrDisconnected) {
		t.Errorf("trusted certificate: %v, want a failure after the TLS handshake", err)
	}
	old, oldPool := tlsServer(t, tls.VersionTLS11)
	if err := dial(old, bus.WithTLS(&tls.Config{RootCAs: oldPool, MinVersion: tls.VersionTLS10})); !strings.Contains(err.Error(), "version") {
		t.Errorf("TLS 1.1 server: %v, want a protocol version error", err)
	}
}
