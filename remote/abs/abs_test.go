package abs

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob/sas"

	"github.com/litestream-go/litestream/internal/faultproxy"
	"github.com/litestream-go/litestream/internal/testserver"
	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/remotetest"
	"github.com/litestream-go/litestream/remote/retry"
)

var fastRetry = retry.Policy{Attempts: 4, Base: time.Millisecond, Max: 10 * time.Millisecond}

func newClient(t *testing.T, endpoint, container, p string) *Client {
	t.Helper()
	c, err := New(Config{AccountName: testserver.AzuriteAccount, AccountKey: testserver.AzuriteKey, Endpoint: endpoint,
		Container: container, Path: p, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func createContainer(t *testing.T, endpoint, name string) {
	t.Helper()
	cred, _ := azblob.NewSharedKeyCredential(testserver.AzuriteAccount, testserver.AzuriteKey)
	azb, err := azblob.NewClientWithSharedKeyCredential(endpoint, cred, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := azb.CreateContainer(t.Context(), name, nil); err != nil {
		t.Fatalf("create container %s: %v", name, err)
	}
}

func TestContract(t *testing.T) {
	endpoint := testserver.StartAzurite(t, t.TempDir()).Endpoint
	var n atomic.Int64
	remotetest.RunContract(t, func(t *testing.T) remote.Client {
		name := fmt.Sprintf("contract-%d", n.Add(1))
		createContainer(t, endpoint, name)
		return newClient(t, endpoint, name, "db/app")
	})
}

// TestLayoutAndSAS checks blob names and metadata as Litestream writes
// them, and SAS token authentication, which must not leak into errors.
func TestLayoutAndSAS(t *testing.T) {
	endpoint := testserver.StartAzurite(t, t.TempDir()).Endpoint
	createContainer(t, endpoint, "layout")
	c := newClient(t, endpoint, "layout", "backups/app")
	ts := time.Date(2021, 3, 4, 5, 6, 7, 89_000_000, time.UTC)
	data := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 0x1a, MaxTXID: 0x2b, Timestamp: ts, Pages: 2})
	if _, err := c.WriteLTXFile(t.Context(), 3, 0x1a, 0x2b, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	azb, _ := c.client()
	props, err := azb.ServiceClient().NewContainerClient("layout").NewBlobClient("backups/app/ltx/3/000000000000001a-000000000000002b.ltx").GetProperties(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	// Header-borne metadata names come back canonicalized.
	var stored string
	for k, v := range props.Metadata {
		if strings.EqualFold(k, "litestreamtimestamp") && v != nil {
			stored = *v
		}
	}
	if stored != "2021-03-04T05:06:07.089Z" {
		t.Fatalf("litestreamtimestamp = %q", stored)
	}

	// A container SAS with read and list rights.
	cred, _ := azblob.NewSharedKeyCredential(testserver.AzuriteAccount, testserver.AzuriteKey)
	qp, err := sas.BlobSignatureValues{
		Protocol:      sas.ProtocolHTTPSandHTTP,
		ExpiryTime:    time.Now().Add(time.Hour),
		ContainerName: "layout",
		Permissions:   (&sas.ContainerPermissions{Read: true, List: true}).String(),
	}.SignWithSharedKey(cred)
	if err != nil {
		t.Fatal(err)
	}
	token := qp.Encode()
	sc, err := New(Config{Endpoint: endpoint, Container: "layout", Path: "backups/app", SASToken: token, Retry: fastRetry})
	if err != nil {
		t.Fatal(err)
	}
	infos, err := sc.LTXFiles(t.Context(), 3, 0)
	if err != nil || len(infos) != 1 || !infos[0].CreatedAt.Equal(ts) {
		t.Fatalf("list with SAS: %v %v", infos, err)
	}
	if got, err := remotetest.ReadRange(t.Context(), sc, 3, 0x1a, 0x2b, 10, 20); err != nil || !bytes.Equal(got, data[10:30]) {
		t.Fatalf("ranged read with SAS differs (%v)", err)
	}
	// No write permission: a permanent error, without the signature.
	_, err = sc.WriteLTXFile(t.Context(), 3, 0x1a, 0x2b, bytes.NewReader(data))
	if err == nil {
		t.Fatal("write with a read-only SAS succeeded")
	}
	if sig := qp.Signature(); strings.Contains(err.Error(), sig) || strings.Contains(err.Error(), url.QueryEscape(sig)) {
		t.Fatalf("error leaks the SAS signature: %v", err)
	}
	t.Log(err)
}

// TestFaults puts a proxy that injects 503s and 403s in front of Azurite.
func TestFaults(t *testing.T) {
	endpoint := testserver.StartAzurite(t, t.TempDir()).Endpoint
	createContainer(t, endpoint, "faults")
	target, _ := url.Parse(endpoint)
	rp := httputil.NewSingleHostReverseProxy(&url.URL{Scheme: target.Scheme, Host: target.Host})
	var failNext, failCode, requests atomic.Int64
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if failNext.Add(-1) >= 0 {
			code := int(failCode.Load())
			w.Header().Set("x-ms-error-code", map[int]string{503: "ServerBusy", 403: "AuthorizationFailure"}[code])
			w.WriteHeader(code)
			return
		}
		rp.ServeHTTP(w, r)
	})}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	proxied := "http://" + l.Addr().String() + target.Path
	c := newClient(t, proxied, "faults", "db")
	data := remotetest.BuildLTX(t, remotetest.LTXSpec{MinTXID: 1, MaxTXID: 1, Timestamp: time.Now(), Pages: 3})

	failCode.Store(503)
	failNext.Store(2)
	if _, err := c.WriteLTXFile(t.Context(), 0, 1, 1, bytes.NewReader(data)); err != nil {
		t.Fatalf("write through 503s: %v", err)
	}
	failNext.Store(2)
	if infos, err := c.LTXFiles(t.Context(), 0, 0); err != nil || len(infos) != 1 {
		t.Fatalf("list through 503s: %d %v", len(infos), err)
	}
	failNext.Store(2)
	rc, err := c.OpenLTXFile(t.Context(), 0, 1, 1, 5, 10)
	if err != nil {
		t.Fatalf("read through 503s: %v", err)
	}
	rc.Close()

	failCode.Store(403)
	failNext.Store(1)
	requests.Store(0)
	_, err = c.LTXFiles(t.Context(), 0, 0)
	if err == nil || requests.Load() != 1 || !strings.Contains(err.Error(), "access denied") {
		t.Fatalf("403: %v after %d requests", err, requests.Load())
	}
	if !strings.Contains(err.Error(), `container "faults"`) || !strings.Contains(err.Error(), `"db/ltx/0/"`) {
		t.Fatalf("error does not name container and key: %v", err)
	}

	missing := newClient(t, endpoint, "no-such-container", "db")
	_, err = missing.WriteLTXFile(t.Context(), 0, 1, 1, bytes.NewReader(data))
	if err == nil || !strings.Contains(err.Error(), "container does not exist") {
		t.Fatalf("missing container: %v", err)
	}
	if strings.Contains(err.Error(), testserver.AzuriteKey) {
		t.Fatal("error leaks the account key")
	}
}

func TestNewErrors(t *testing.T) {
	if _, err := New(Config{AccountName: "a"}); err == nil {
		t.Fatal("no container accepted")
	}
	if _, err := New(Config{Container: "c"}); err == nil || !strings.Contains(err.Error(), "account name") {
		t.Fatalf("no account: %v", err)
	}
	c, err := New(Config{AccountName: "acct", Container: "c"})
	if err != nil || c.Config().Endpoint != "https://acct.blob.core.windows.net/" {
		t.Fatalf("endpoint %q %v", c.Config().Endpoint, err)
	}
}

// TestFaultProxy runs remotetest.RunFaults through the fault proxy in front
// of Azurite: every fault kind on every operation.
func TestFaultProxy(t *testing.T) {
	endpoint := testserver.StartAzurite(t, t.TempDir()).Endpoint
	createContainer(t, endpoint, "faults")
	u, _ := url.Parse(endpoint)
	proxy := faultproxy.StartT(t, u.Scheme+"://"+u.Host, faultproxy.Options{SlowFor: 50 * time.Millisecond, Logf: t.Logf})
	c, err := New(Config{AccountName: testserver.AzuriteAccount, AccountKey: testserver.AzuriteKey, Endpoint: proxy.URL() + u.Path,
		Container: "faults", Path: "db", Retry: fastRetry, TryTimeout: time.Second, BlockSize: 2 << 20,
		Logger: remotetest.Quiet})
	if err != nil {
		t.Fatal(err)
	}
	remotetest.RunFaults(t, proxy, c, remotetest.FaultOptions{LargeSize: 5 << 20})
}
