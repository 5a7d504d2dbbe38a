package testserver

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
)

// MinIO over HTTP and HTTPS starts and serves S3 requests; creating a
// bucket twice is success (the second try of a create that timed out but
// was applied gets BucketAlreadyOwnedByYou).
func TestMinIO(t *testing.T) {
	s := StartMinIO(t, t.TempDir())
	CreateMinIOBucket(t, s.Endpoint, "twice")
	CreateMinIOBucket(t, s.Endpoint, "twice")
	out, err := S3Client(s.Endpoint).ListBuckets(t.Context(), &s3.ListBucketsInput{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, b := range out.Buckets {
		names = append(names, aws.ToString(b.Name))
	}
	if !slices.Equal(names, []string{"twice"}) {
		t.Fatalf("buckets %v, want [twice]", names)
	}

	tls := StartMinIOTLS(t, t.TempDir())
	if !strings.HasPrefix(tls.Endpoint, "https://127.0.0.1:") || tls.CAFile == "" {
		t.Fatalf("TLS server: endpoint %s, CA file %q", tls.Endpoint, tls.CAFile)
	}
}

// The SFTP server logs in by password and, when given, by public key,
// serves its root, counts logins and cuts connections on DropAll.
func TestSFTP(t *testing.T) {
	signer := NewSSHKey(t)
	s := StartSFTPWith(t, SFTPOptions{ClientKey: signer.PublicKey()})
	hostKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(s.HostKey))
	if err != nil {
		t.Fatal(err)
	}
	dial := func(auth ssh.AuthMethod) (*sftp.Client, error) {
		conn, err := ssh.Dial("tcp", s.Addr, &ssh.ClientConfig{User: s.User, Auth: []ssh.AuthMethod{auth},
			HostKeyCallback: ssh.FixedHostKey(hostKey), Timeout: 10 * time.Second})
		if err != nil {
			return nil, err
		}
		c, err := sftp.NewClient(conn)
		if err != nil {
			conn.Close()
			return nil, err
		}
		return c, nil
	}
	if _, err := dial(ssh.Password("wrong")); err == nil {
		t.Fatal("logged in with a wrong password")
	}
	byPassword, err := dial(ssh.Password(s.Password))
	if err != nil {
		t.Fatal(err)
	}
	defer byPassword.Close()
	byKey, err := dial(ssh.PublicKeys(signer))
	if err != nil {
		t.Fatal(err)
	}
	defer byKey.Close()
	f, err := byKey.Create("hello")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write([]byte("world")); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(s.Root, "hello")); err != nil || string(b) != "world" {
		t.Fatalf("file on the server: %q, %v", b, err)
	}
	if n := s.Logins(); n != 2 {
		t.Fatalf("%d logins, want 2", n)
	}
	s.DropAll()
	if _, err := byPassword.Stat("hello"); err == nil {
		t.Fatal("a request succeeded after DropAll")
	}
}
