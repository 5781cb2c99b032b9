package testredis

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// TLSFront is a TLS-terminating proxy in front of a redis-server, the way a
// managed Redis such as Upstash is reached (rediss://). Its certificate is
// issued by a throw-away CA made for the test; it names the IP 127.0.0.1
// and the host name TLSServerName, nothing else.
type TLSFront struct {
	// CAFile is the PEM file of the CA (for SSL_CERT_FILE).
	CAFile string
	// CAPool holds the CA (for tls.Config.RootCAs in-process).
	CAPool *x509.CertPool

	ln      net.Listener
	backend string

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

// TLSServerName is the DNS name in the front's certificate.
const TLSServerName = "redis.test"

// StartTLSFront starts a TLS proxy on a free 127.0.0.1 port forwarding to
// backend (host:port, e.g. Server.Addr()). It is stopped by t.Cleanup.
func StartTLSFront(t testing.TB, backend string) *TLSFront {
	t.Helper()
	caCert, caKey, caPEM := newCA(t)
	leaf := newLeaf(t, caCert, caKey)
	dir := t.TempDir()
	f := &TLSFront{
		CAFile:  filepath.Join(dir, "ca.pem"),
		CAPool:  x509.NewCertPool(),
		backend: backend,
		conns:   make(map[net.Conn]struct{}),
	}
	if err := os.WriteFile(f.CAFile, caPEM, 0o600); err != nil {
		t.Fatalf("testredis: write CA: %v", err)
	}
	f.CAPool.AddCert(caCert)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{leaf},
		MinVersion:   tls.VersionTLS12,
	})
	if err != nil {
		t.Fatalf("testredis: TLS listen: %v", err)
	}
	f.ln = ln
	f.wg.Add(1)
	go f.accept()
	t.Cleanup(f.Close)
	return f
}

// Addr is host:port of the TLS front.
func (f *TLSFront) Addr() string { return f.ln.Addr().String() }

// Port is the TCP port of the TLS front.
func (f *TLSFront) Port() int { return f.ln.Addr().(*net.TCPAddr).Port }

// URL is rediss://127.0.0.1:port of the front.
func (f *TLSFront) URL() string { return "rediss://" + f.Addr() }

// HostURL is rediss://host:port, for checks of the name verification.
func (f *TLSFront) HostURL(host string) string {
	return "rediss://" + net.JoinHostPort(host, strconv.Itoa(f.Port()))
}

// Close stops accepting and cuts every proxied connection.
func (f *TLSFront) Close() {
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		return
	}
	f.closed = true
	f.ln.Close()
	for c := range f.conns {
		c.Close()
	}
	f.mu.Unlock()
	f.wg.Wait()
}

func (f *TLSFront) track(c net.Conn) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		c.Close()
		return false
	}
	f.conns[c] = struct{}{}
	return true
}

func (f *TLSFront) untrack(c net.Conn) {
	f.mu.Lock()
	delete(f.conns, c)
	f.mu.Unlock()
	c.Close()
}

func (f *TLSFront) accept() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		if !f.track(c) {
			return
		}
		f.wg.Add(1)
		go f.proxy(c)
	}
}

func (f *TLSFront) proxy(c net.Conn) {
	defer f.wg.Done()
	defer f.untrack(c)
	// Handshake first: a client that rejects the certificate never reaches
	// the backend.
	tc := c.(*tls.Conn)
	tc.SetDeadline(time.Now().Add(5 * time.Second))
	if err := tc.Handshake(); err != nil {
		return
	}
	tc.SetDeadline(time.Time{})
	b, err := net.DialTimeout("tcp", f.backend, time.Second)
	if err != nil {
		return
	}
	if !f.track(b) {
		return
	}
	defer f.untrack(b)
	done := make(chan struct{}, 2)
	go func() { io.Copy(b, c); done <- struct{}{} }()
	go func() { io.Copy(c, b); done <- struct{}{} }()
	<-done // one side ended: close both (deferred), then let the other copy end
	c.Close()
	b.Close()
	<-done
}

func newCA(t testing.TB) (*x509.Certificate, *ecdsa.PrivateKey, []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testredis: CA key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "modellab test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatalf("testredis: CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testredis: CA certificate: %v", err)
	}
	return cert, key, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func newLeaf(t testing.TB, ca *x509.Certificate, caKey *ecdsa.PrivateKey) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testredis: leaf key: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: TLSServerName},
		DNSNames:     []string{TLSServerName},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatalf("testredis: leaf certificate: %v", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
