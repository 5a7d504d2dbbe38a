package testserver

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// MinIOKMSKey is the name of the static KMS key StartMinIOTLS configures
// (MinIO's MINIO_KMS_SECRET_KEY): the key ID for SSE-KMS requests.
const MinIOKMSKey = "litestream-test-key"

// TLSServer is a MinIO server over HTTPS.
type TLSServer struct {
	*Server
	// CAFile is the PEM file of the server's self-signed certificate, for
	// AWS_CA_BUNDLE or a client's root CAs.
	CAFile string
	// DataDir is MinIO's data directory (what the storage holds at rest).
	DataDir string
}

// StartMinIOTLS starts MinIO on 127.0.0.1 over HTTPS with a self-signed
// certificate made here (MinIO refuses SSE-C without TLS) and a static KMS
// key named MinIOKMSKey (for SSE-KMS), or skips/fails the test if MinIO is
// not installed. It stops when the test ends.
func StartMinIOTLS(tb testing.TB, dir string) *TLSServer {
	tb.Helper()
	certs, data := filepath.Join(dir, "certs"), filepath.Join(dir, "data")
	for _, d := range []string{certs, data} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.Fatal(err)
		}
	}
	pool := writeSelfSigned(tb, certs)
	kms := make([]byte, 32)
	if _, err := rand.Read(kms); err != nil {
		tb.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	s := startMinIO(tb, "MinIO (TLS)", "https", client,
		[]string{"MINIO_KMS_SECRET_KEY=" + MinIOKMSKey + ":" + base64.StdEncoding.EncodeToString(kms)},
		data, "--certs-dir", certs)
	return &TLSServer{Server: s, CAFile: filepath.Join(certs, "public.crt"), DataDir: data}
}

// writeSelfSigned writes a self-signed certificate for 127.0.0.1 and
// localhost as MinIO's certs directory expects it (public.crt,
// private.key) and returns a pool that trusts it.
func writeSelfSigned(tb testing.TB, dir string) *x509.CertPool {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: "litestream test MinIO"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
		DNSNames:              []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	crt := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	if err := os.WriteFile(filepath.Join(dir, "public.crt"), crt, 0o644); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "private.key"), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		tb.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(crt)
	return pool
}
