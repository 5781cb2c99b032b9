package cache

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
)

// Scale-out support: deployments with several instances on a Redis Cluster
// or a managed TLS Redis (rediss://). See docs/DEPLOYMENT.md and the tests in
// scaletest/.

// tlsVerifyError reports whether err is a server certificate that does not
// verify (unknown authority, wrong host name, expired…): a configuration
// problem that retrying will not fix, so it deserves its own log line.
func tlsVerifyError(err error) bool {
	var (
		ve *tls.CertificateVerificationError
		ua x509.UnknownAuthorityError
		he x509.HostnameError
		ci x509.CertificateInvalidError
	)
	return errors.As(err, &ve) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci)
}

// dialFailureMessage is the log message for a client that cannot be built.
func dialFailureMessage(err error) string {
	if tlsVerifyError(err) {
		return "cache: redis TLS certificate does not verify; Redis is NOT used, serving from memory (for a private CA set SSL_CERT_FILE; check the host name in the URL); retrying in background"
	}
	return "cache: redis unreachable, serving from memory; retrying in background"
}

// announceDialFailure logs, once, that Redis cannot be used; and once more
// if a later attempt shows the cause is a certificate that does not verify
// (the first attempt may only have timed out, e.g. while the system roots
// were being loaded). Called with c.r.mu held.
func (c *Cache) announceDialFailure(err error) {
	isTLS := tlsVerifyError(err)
	if c.r.announced && (!isTLS || c.r.tlsLogged) {
		return
	}
	c.r.announced = true
	c.r.tlsLogged = c.r.tlsLogged || isTLS
	c.log().Warn(dialFailureMessage(err), "err", err)
}

// redisTopology is what the client knows of the deployment, without I/O:
// "standalone", "cluster" or "sentinel", and the number of nodes it routes
// to (every master of a cluster, and replicas if it knows of any).
func (c *Cache) redisTopology() (mode string, nodes int) {
	rc := c.r.conn.Load()
	if rc == nil {
		return "", 0
	}
	return string(rc.client.Mode()), len(rc.client.Nodes())
}
