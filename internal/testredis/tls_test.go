package testredis

import (
	"bufio"
	"crypto/tls"
	"strings"
	"testing"
)

func TestTLSFront(t *testing.T) {
	s := Start(t)
	if _, err := s.Do("SET", "tls:k", "v"); err != nil {
		t.Fatalf("SET: %v", err)
	}
	f := StartTLSFront(t, s.Addr())

	c, err := tls.Dial("tcp", f.Addr(), &tls.Config{RootCAs: f.CAPool})
	if err != nil {
		t.Fatalf("dial with the CA: %v", err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("*2\r\n$3\r\nGET\r\n$5\r\ntls:k\r\n")); err != nil {
		t.Fatal(err)
	}
	got, err := readReply(bufio.NewReader(c))
	if err != nil || got != "v" {
		t.Fatalf("GET over TLS = %q, %v; want v", got, err)
	}

	if _, err := tls.Dial("tcp", f.Addr(), &tls.Config{}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("dial without the CA: err = %v, want a certificate error", err)
	}
	if _, err := tls.Dial("tcp", f.Addr(), &tls.Config{RootCAs: f.CAPool, ServerName: "other.test"}); err == nil {
		t.Errorf("dial with a wrong server name succeeded")
	}
	if _, err := tls.Dial("tcp", f.Addr(), &tls.Config{RootCAs: f.CAPool, ServerName: TLSServerName}); err != nil {
		t.Errorf("dial with the certificate's host name: %v", err)
	}

	keys, err := s.Scan("tls:*")
	if err != nil || len(keys) != 1 || keys[0] != "tls:k" {
		t.Errorf("Scan = %q, %v; want [tls:k]", keys, err)
	}
}
