package redistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TLSFiles are the PEM files of a TLS server: a test CA, the server's
// certificate (for 127.0.0.1) and a client certificate, both signed by
// the CA.
type TLSFiles struct {
	CA                    string
	ServerCert, ServerKey string
	ClientCert, ClientKey string
}

// StartTLS starts a redis-server that listens only with TLS (--port 0,
// --tls-port), on a free loopback port, with a certificate authority
// generated for the test, and requires clients to present a certificate
// it signed (--tls-auth-clients yes). Its URL is rediss://; its Client
// presents the client certificate.
func StartTLS(t testing.TB) (*Server, TLSFiles) {
	t.Helper()
	files := makeCerts(t, t.TempDir())
	conf := clientTLS(t, files)
	s := startWith(t, nil, func(s *Server) {
		s.tls = conf
		s.args = []string{"--tls-cert-file", files.ServerCert, "--tls-key-file", files.ServerKey,
			"--tls-ca-cert-file", files.CA, "--tls-auth-clients", "yes"}
	})
	return s, files
}

// clientTLS returns the TLS configuration of a client presenting the
// client certificate of files and trusting their CA.
func clientTLS(t testing.TB, files TLSFiles) *tls.Config {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(files.ClientCert, files.ClientKey)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	pem, err := os.ReadFile(files.CA)
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

// makeCerts writes a CA, a server certificate for 127.0.0.1 and a
// client certificate into dir.
func makeCerts(t testing.TB, dir string) TLSFiles {
	t.Helper()
	must := func(err error) {
		if err != nil {
			t.Fatalf("redistest: making certificates: %v", err)
		}
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		must(os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600))
		return p
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		must(err)
		return k
	}
	now := time.Now()
	caKey := newKey()
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "redistest CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	must(err)
	caCert, err := x509.ParseCertificate(caDER)
	must(err)
	files := TLSFiles{CA: write("ca.pem", "CERTIFICATE", caDER)}
	leaf := func(serial int64, name string, usage x509.ExtKeyUsage) (certFile, keyFile string) {
		k := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		must(err)
		kder, err := x509.MarshalECPrivateKey(k)
		must(err)
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kder)
	}
	files.ServerCert, files.ServerKey = leaf(2, "server", x509.ExtKeyUsageServerAuth)
	files.ClientCert, files.ClientKey = leaf(3, "client", x509.ExtKeyUsageClientAuth)
	return files
}
