package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"time"
)

// ErrNoDaemon is returned (wrapped) when nothing listens on the socket.
var ErrNoDaemon = errors.New("no daemon listening")

// Client talks to a daemon's control socket (this program's or
// Litestream's). Its errors read as Litestream's commands print them:
// "failed to connect to control socket: ..." when nobody answers, and
// "<op> failed: <the daemon's message>" for a refused request.
type Client struct {
	Socket  string
	Timeout time.Duration // whole request, dial included; 0 means none
}

// NewClient returns a client of the socket at path.
func NewClient(path string, timeout time.Duration) *Client {
	return &Client{Socket: path, Timeout: timeout}
}

func (c *Client) http() *http.Client {
	return &http.Client{
		Timeout: c.Timeout,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				d := net.Dialer{Timeout: c.Timeout}
				return d.DialContext(ctx, "unix", c.Socket)
			},
		},
	}
}

// do sends a request and decodes a 200 answer into out. op names the
// operation in errors ("start", "sync", ...).
func (c *Client) do(ctx context.Context, op, method, endpoint string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("failed to marshal request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://localhost"+endpoint, body)
	if err != nil {
		return err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	hc := c.http()
	defer hc.CloseIdleConnections()
	resp, err := hc.Do(req)
	if err != nil {
		var op *net.OpError
		if errors.As(err, &op) && op.Op == "dial" {
			return fmt.Errorf("failed to connect to control socket: %w: %w", ErrNoDaemon, err)
		}
		return fmt.Errorf("failed to connect to control socket: %w", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return fmt.Errorf("failed to read response: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e ErrorResponse
		if json.Unmarshal(b, &e) == nil && e.Error != "" {
			return fmt.Errorf("%s failed: %s", op, e.Error)
		}
		return fmt.Errorf("%s failed: %s", op, bytes.TrimSpace(b))
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("failed to parse response: %w", err)
	}
	return nil
}

// ask sends one request (in is nil for a GET) and returns the decoded
// answer; op names the operation in errors.
func ask[T any](ctx context.Context, c *Client, op, method, endpoint string, in any) (*T, error) {
	var r T
	return &r, c.do(ctx, op, method, endpoint, in, &r)
}

// Info asks GET /info.
func (c *Client) Info(ctx context.Context) (*InfoResponse, error) {
	return ask[InfoResponse](ctx, c, "info", http.MethodGet, "/info", nil)
}

// List asks GET /list.
func (c *Client) List(ctx context.Context) (*ListResponse, error) {
	return ask[ListResponse](ctx, c, "list", http.MethodGet, "/list", nil)
}

// Status asks GET /status (this program's daemon only).
func (c *Client) Status(ctx context.Context) (*Status, error) {
	return ask[Status](ctx, c, "status", http.MethodGet, "/status", nil)
}

// TXID asks GET /txid.
func (c *Client) TXID(ctx context.Context, path string) (uint64, error) {
	r, err := ask[TXIDResponse](ctx, c, "txid", http.MethodGet, "/txid?path="+url.QueryEscape(path), nil)
	return r.TXID, err
}

// Start asks POST /start.
func (c *Client) Start(ctx context.Context, req StartRequest) (*StartResponse, error) {
	return ask[StartResponse](ctx, c, "start", http.MethodPost, "/start", req)
}

// Stop asks POST /stop.
func (c *Client) Stop(ctx context.Context, req StopRequest) (*StopResponse, error) {
	return ask[StopResponse](ctx, c, "stop", http.MethodPost, "/stop", req)
}

// Sync asks POST /sync.
func (c *Client) Sync(ctx context.Context, req SyncRequest) (*SyncResponse, error) {
	return ask[SyncResponse](ctx, c, "sync", http.MethodPost, "/sync", req)
}

// Register asks POST /register.
func (c *Client) Register(ctx context.Context, req RegisterDatabaseRequest) (*RegisterDatabaseResponse, error) {
	return ask[RegisterDatabaseResponse](ctx, c, "register", http.MethodPost, "/register", req)
}

// Unregister asks POST /unregister.
func (c *Client) Unregister(ctx context.Context, req UnregisterDatabaseRequest) (*UnregisterDatabaseResponse, error) {
	return ask[UnregisterDatabaseResponse](ctx, c, "unregister", http.MethodPost, "/unregister", req)
}

// GetStatus asks the daemon on the socket at path for its status.
func GetStatus(ctx context.Context, path string) (*Status, error) {
	return NewClient(path, 10*time.Second).Status(ctx)
}
