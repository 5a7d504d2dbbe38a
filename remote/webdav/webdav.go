// Package webdav is the remote.Client for a WebDAV server, in the layout
// Litestream v0.5 writes:
//
//	<path>/ltx/<level decimal>/<%016x-%016x>.ltx
//
// URLs: webdav://[user[:password]@]host[:port]/path over HTTP, webdavs://
// over HTTPS.
//
// Timestamps. WebDAV has no user metadata on PUT, and Litestream v0.5 lists
// a file's creation time as the server's getlastmodified (upload time, to
// the second). This client stores the LTX header timestamp as the dead
// property {urn:litestream:}timestamp (RFC 3339) with PROPPATCH, and lists
// it when the server kept it; on a server without dead properties (nginx,
// a plain directory behind golang.org/x/net/webdav) it falls back to
// getlastmodified, as Litestream does. Either way the files are the same,
// so both tools read each other's replicas.
//
// Writes are atomic: the file is PUT under a hidden temporary name in the
// level collection, given its timestamp, then MOVEd over the final name,
// so a reader never sees a partial file. The upload is spooled first (to
// memory, or a temporary file past 8 MiB) so that it is sent with a
// Content-Length, which many servers require, and can be re-sent on a
// retry. Reads are Range requests; a server that ignores Range is detected
// and the range is cut from its full response.
//
// The client speaks HTTP itself (Basic authentication) rather than through
// gowebdav v0.13.0, because that library's requests take no context (no
// cancellation or per-request deadline) and cannot read or write custom
// properties.
package webdav

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/superfly/ltx"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/internal/backend"
	"github.com/litestream-go/litestream/remote/retry"
)

// PropNamespace and PropTimestamp name the dead property holding a file's
// creation time.
const (
	PropNamespace = "urn:litestream:"
	PropTimestamp = "timestamp"
)

// Config configures a Client.
type Config struct {
	// URL is the server's base URL, http:// or https://, e.g.
	// "https://dav.example.com/remote.php/dav/files/me". Credentials do not
	// belong here.
	URL string
	// Path is the replica root below URL.
	Path string
	// Username and Password, if set, are sent with Basic authentication.
	Username, Password string
	// SkipVerify disables TLS certificate verification.
	SkipVerify bool
	// Timeout bounds each request, and each pause in the body it sends or
	// receives (default 30s).
	Timeout time.Duration
	// HTTPClient replaces the default client (tests, proxies).
	HTTPClient *http.Client
	// Retry is the policy for transient failures (zero: retry.Default).
	Retry retry.Policy
	// Logger receives debug and retry messages (nil: slog.Default()).
	Logger *slog.Logger
}

// Client is a replica on a WebDAV server. It is safe for concurrent use.
type Client struct {
	cfg  Config
	keys remote.Keys
	base *url.URL
	http *http.Client
	log  *slog.Logger
	what string

	// noDeadProps is set once the server refused the timestamp property,
	// so later writes skip the PROPPATCH.
	noDeadProps atomic.Bool

	// reqs counts the HTTP requests sent, by kind.
	reqs remote.Requests
}

// RequestCounts returns the HTTP requests sent so far, by kind.
func (c *Client) RequestCounts() remote.RequestCounts { return c.reqs.RequestCounts() }

var _ remote.Client = (*Client)(nil)

// New returns a client for cfg. It does not contact the server.
func New(cfg Config) (*Client, error) {
	base, err := url.Parse(cfg.URL)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return nil, fmt.Errorf("webdav replica: invalid server URL %q: want http(s)://host[/path]", cfg.URL)
	}
	if base.User != nil {
		return nil, errors.New("webdav replica: put credentials in Username/Password, not in the server URL")
	}
	base.Path = strings.TrimSuffix(base.Path, "/")
	base.RawQuery, base.Fragment = "", ""
	cfg.Path = remote.CleanRoot(cfg.Path)
	if cfg.Timeout <= 0 {
		cfg.Timeout = 30 * time.Second
	}
	log := backend.Logger(cfg.Logger, &cfg.Retry, "backend", "webdav", "server", base.Host)
	hc := cfg.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		if cfg.SkipVerify {
			tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
		}
		hc = &http.Client{Transport: tr}
	}
	return &Client{
		cfg:  cfg,
		keys: remote.Keys{Root: cfg.Path, Layout: remote.LayoutLTX},
		base: base,
		http: hc,
		log:  log,
		what: "webdav " + base.Host,
	}, nil
}

// Type returns "webdav".
func (c *Client) Type() string { return "webdav" }

// Config returns the client's configuration, defaults applied.
func (c *Client) Config() Config { return c.cfg }

// FilePath returns the path of one LTX file below the server URL.
func (c *Client) FilePath(level int, minTXID, maxTXID ltx.TXID) string {
	return c.keys.File(level, minTXID, maxTXID)
}

// fail builds an error naming the server, operation and path, with the
// password removed.
func (c *Client) fail(op, p string, err error) error {
	return backend.Redact(fmt.Errorf("%s: %s %q: %w", c.what, op, "/"+p, err), c.cfg.Password)
}

// statusError is an unexpected HTTP status.
type statusError struct {
	method string
	code   int
	body   string
}

func (e *statusError) Error() string {
	s := fmt.Sprintf("%s: HTTP %d %s", e.method, e.code, http.StatusText(e.code))
	if e.body != "" {
		s += ": " + e.body
	}
	return s
}

func newStatusError(method string, resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	body := strings.Join(strings.Fields(string(b)), " ")
	err := &statusError{method: method, code: resp.StatusCode, body: body}
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("%w: %w", remote.ErrNotExist, err)
	}
	return err
}

func transient(err error) bool {
	var se *statusError
	if errors.As(err, &se) {
		// 423 Locked: another client holds the resource's lock for the
		// moment, e.g. a concurrent writer's MKCOL of the same collection.
		return se.code == http.StatusLocked || retry.IsTransientStatus(se.code)
	}
	return retry.IsTransientNet(err)
}

// urlFor returns the absolute URL of a path below the base, escaped.
func (c *Client) urlFor(p string, dir bool) string {
	u := *c.base
	u.Path = c.base.Path + "/" + p
	if dir {
		u.Path += "/"
	}
	u.RawPath = ""
	return u.String()
}

// do sends one request. body may be nil; it is sent with contentLength.
func (c *Client) do(ctx context.Context, method, target string, body io.Reader, contentLength int64, hdr map[string]string) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, target, body)
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.ContentLength = contentLength
		if contentLength == 0 {
			req.Body = http.NoBody
		}
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if c.cfg.Username != "" || c.cfg.Password != "" {
		req.SetBasicAuth(c.cfg.Username, c.cfg.Password)
	}
	c.reqs.Add(backend.RequestKind(req))
	resp, err := c.http.Do(req)
	if err != nil {
		// *url.Error repeats the URL; it has no credentials (they are
		// in the header), so keep it for context.
		return nil, err
	}
	return resp, nil
}

// simple sends a request without a response body of interest and accepts
// the given statuses.
func (c *Client) simple(ctx context.Context, method, target string, body []byte, hdr map[string]string, ok ...int) (int, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	resp, err := c.do(ctx, method, target, r, int64(len(body)), hdr)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	for _, code := range ok {
		if resp.StatusCode == code {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			return resp.StatusCode, nil
		}
	}
	return resp.StatusCode, newStatusError(method, resp)
}

func (c *Client) retry() retry.Policy { return c.cfg.Retry.WithAttemptTimeout(c.cfg.Timeout) }

// LTXFiles lists the files of level with MinTXID >= seek, by MinTXID, with
// one PROPFIND of depth 1 on the level collection.
func (c *Client) LTXFiles(ctx context.Context, level int, seek ltx.TXID) ([]*ltx.FileInfo, error) {
	dir := c.keys.LevelDir(level)
	if err := backend.CheckLevel(level); err != nil {
		return nil, c.fail("list", dir, err)
	}
	var ms multistatus
	err := c.retry().Do(ctx, c.what+": list "+dir, transient, func(ctx context.Context) error {
		ms = multistatus{}
		resp, err := c.do(ctx, "PROPFIND", c.urlFor(dir, true), strings.NewReader(propfindBody), int64(len(propfindBody)),
			map[string]string{"Depth": "1", "Content-Type": "application/xml; charset=utf-8"})
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusMultiStatus {
			return newStatusError("PROPFIND", resp)
		}
		if err := xml.NewDecoder(resp.Body).Decode(&ms); err != nil {
			return fmt.Errorf("PROPFIND: decode multistatus: %w", err)
		}
		return nil
	})
	if errors.Is(err, remote.ErrNotExist) {
		return nil, nil
	} else if err != nil {
		return nil, c.fail("list", dir, err)
	}

	var infos []*ltx.FileInfo
	for _, r := range ms.Responses {
		name, ok := hrefName(r.Href)
		if !ok {
			continue
		}
		minTXID, maxTXID, ok := remote.ParseFileName(name)
		if !ok || minTXID < seek {
			continue
		}
		p, ok := r.okProp()
		if !ok || p.ResourceType.Collection != nil {
			continue
		}
		size, err := strconv.ParseInt(strings.TrimSpace(p.ContentLength), 10, 64)
		if err != nil {
			return nil, c.fail("list", dir, fmt.Errorf("%s: bad getcontentlength %q", name, p.ContentLength))
		}
		createdAt, ok := backend.ParseTimestamp(p.Timestamp)
		if !ok {
			t, err := http.ParseTime(p.LastModified)
			if err != nil {
				return nil, c.fail("list", dir, fmt.Errorf("%s: no timestamp and bad getlastmodified %q", name, p.LastModified))
			}
			createdAt = t.UTC()
		}
		infos = append(infos, &ltx.FileInfo{Level: level, MinTXID: minTXID, MaxTXID: maxTXID, Size: size, CreatedAt: createdAt})
	}
	backend.SortInfos(infos)
	return infos, nil
}

// hrefName returns the last segment of a multistatus href, unescaped; the
// collection itself (ending in "/") yields false.
func hrefName(href string) (string, bool) {
	u, err := url.Parse(strings.TrimSpace(href))
	if err != nil || strings.HasSuffix(u.Path, "/") || u.Path == "" {
		return "", false
	}
	return path.Base(u.Path), true
}

// OpenLTXFile opens bytes [offset, offset+size) of a file (size 0: to the
// end) with a Range request. A read that fails or stalls in the middle
// resumes with a request for the rest (retry.Policy.OpenRange); Timeout
// bounds the wait for the answer and every pause in its body.
func (c *Client) OpenLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, offset, size int64) (io.ReadCloser, error) {
	p := c.FilePath(level, minTXID, maxTXID)
	if err := backend.CheckOpen(c.fail, p, level, offset, size); err != nil {
		return nil, err
	}
	desc := fmt.Sprintf("%s: read %q", c.what, "/"+p)
	rc, err := c.retry().OpenRange(ctx, desc, transient, offset, size, func(ctx context.Context, offset, size int64) (io.ReadCloser, int64, error) {
		return c.get(ctx, p, offset, size)
	})
	if err != nil {
		return nil, c.fail("open", p, err)
	}
	return rc, nil
}

// get sends one GET for bytes [offset, offset+size) of p (size 0: to the
// end) and returns the body positioned at offset and its length (-1:
// unknown, to the end).
func (c *Client) get(ctx context.Context, p string, offset, size int64) (io.ReadCloser, int64, error) {
	hdr := map[string]string{}
	if offset > 0 || size > 0 {
		if size > 0 {
			hdr["Range"] = fmt.Sprintf("bytes=%d-%d", offset, offset+size-1)
		} else {
			hdr["Range"] = fmt.Sprintf("bytes=%d-", offset)
		}
	}
	resp, err := c.do(ctx, http.MethodGet, c.urlFor(p, false), nil, 0, hdr)
	if err != nil {
		return nil, 0, err
	}
	switch {
	case resp.StatusCode == http.StatusPartialContent && len(hdr) > 0:
		n, err := backend.CheckContentRange(resp.Header.Get("Content-Range"), offset, size)
		if err != nil {
			resp.Body.Close()
			return nil, 0, err
		}
		return resp.Body, n, nil
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		resp.Body.Close()
		return nil, 0, retry.Permanent(fmt.Errorf("range offset=%d size=%d is outside the file", offset, size))
	default:
		defer resp.Body.Close()
		return nil, 0, newStatusError("GET", resp)
	}
	// 200: the whole file. The server ignored Range (or none was sent):
	// skip to the range in the full body.
	n := size
	if total := resp.ContentLength; total >= 0 {
		want, err := backend.RangeEnd(offset, size, total)
		if err != nil {
			resp.Body.Close()
			return nil, 0, retry.Permanent(err)
		}
		n = want - offset
	} else if size == 0 {
		n = -1 // unknown length: the body's end is the file's
	}
	if offset > 0 {
		if _, err := io.CopyN(io.Discard, resp.Body, offset); err != nil {
			resp.Body.Close()
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return nil, 0, fmt.Errorf("skip to offset %d: %w", offset, err)
		}
	}
	return resp.Body, n, nil
}

// WriteLTXFile stores the LTX file read from r atomically (see the package
// doc), with its header timestamp as a dead property where the server
// keeps one.
func (c *Client) WriteLTXFile(ctx context.Context, level int, minTXID, maxTXID ltx.TXID, r io.Reader) (*ltx.FileInfo, error) {
	p := c.FilePath(level, minTXID, maxTXID)
	return backend.WriteSpooled(ctx, c.fail, p, level, minTXID, maxTXID, r, 0, func(ctx context.Context, spool *backend.Spool, createdAt time.Time) error {
		tmp := backend.TempPath(p)
		if err := c.upload(ctx, tmp, p, spool, createdAt); err != nil {
			c.removeTemp(tmp)
			return err
		}
		c.log.Debug("wrote ltx file", "path", p, "size", spool.Size())
		return nil
	})
}

// upload stores spool at tmp, sets its timestamp property and moves it to p.
func (c *Client) upload(ctx context.Context, tmp, p string, spool *backend.Spool, createdAt time.Time) error {
	err := c.retry().Do(ctx, c.what+": put "+p, transient, func(ctx context.Context) error {
		return c.put(ctx, tmp, spool)
	})
	if err != nil {
		return err
	}
	if !c.noDeadProps.Load() {
		if err := c.retry().Do(ctx, c.what+": proppatch "+tmp, transient, func(ctx context.Context) error {
			return c.setTimestamp(ctx, tmp, createdAt)
		}); err != nil {
			var refused *propRefusedError
			if !errors.As(err, &refused) {
				return fmt.Errorf("set timestamp property: %w", err)
			}
			c.noDeadProps.Store(true)
			c.log.Info("server does not keep dead properties; listing will show upload times (getlastmodified) instead of LTX timestamps", "error", err)
		}
	}
	tries := 0
	err = c.retry().Do(ctx, c.what+": move "+tmp, transient, func(ctx context.Context) error {
		if tries++; tries > 1 {
			// An earlier MOVE whose answer was lost may have happened.
			// Sending another would then delete the file in place
			// (Overwrite: T deletes the destination first, RFC 4918
			// 9.9.3) and fail on the missing source: look first.
			done, err := c.moved(ctx, tmp, p, spool.Size())
			if err != nil || done {
				return err
			}
		}
		_, err := c.simple(ctx, "MOVE", c.urlFor(tmp, false), nil,
			map[string]string{"Destination": c.urlFor(p, false), "Overwrite": "T"}, http.StatusCreated, http.StatusNoContent)
		return err
	})
	if err != nil {
		return fmt.Errorf("move into place: %w", err)
	}
	return nil
}

// moved reports whether a MOVE from tmp to p happened: tmp is gone and p
// has size bytes. If tmp is gone and p is not in place, the upload is lost
// and the write must start over: that is an error.
func (c *Client) moved(ctx context.Context, tmp, p string, size int64) (bool, error) {
	code, _, err := c.head(ctx, tmp)
	if err != nil || code == http.StatusOK {
		return false, err
	}
	code, n, err := c.head(ctx, p)
	if err != nil {
		return false, err
	}
	if code == http.StatusOK && n == size {
		return true, nil
	}
	return false, retry.Permanent(fmt.Errorf("the temporary upload /%s is gone and /%s is not in place (HTTP %d, %d bytes)", tmp, p, code, n))
}

// head returns the status and Content-Length of a HEAD request for p;
// statuses other than 200 and 404 are errors.
func (c *Client) head(ctx context.Context, p string) (int, int64, error) {
	resp, err := c.do(ctx, http.MethodHead, c.urlFor(p, false), nil, 0, nil)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNotFound {
		return 0, 0, newStatusError("HEAD", resp)
	}
	return resp.StatusCode, resp.ContentLength, nil
}

// put uploads the spool to p, creating the parent collections if the
// server says they are missing.
func (c *Client) put(ctx context.Context, p string, spool *backend.Spool) error {
	send := func() (int, error) {
		return c.putOnce(ctx, p, spool)
	}
	code, err := send()
	if code == http.StatusConflict || code == http.StatusNotFound {
		if err := c.mkcolAll(ctx, path.Dir(p)); err != nil {
			return err
		}
		_, err = send()
	}
	return err
}

func (c *Client) putOnce(ctx context.Context, p string, spool *backend.Spool) (int, error) {
	resp, err := c.do(ctx, http.MethodPut, c.urlFor(p, false), retry.Progress(ctx, backend.ContextReader(ctx, spool.Reader())), spool.Size(),
		map[string]string{"Content-Type": "application/octet-stream"})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK, http.StatusCreated, http.StatusNoContent:
		return resp.StatusCode, nil
	}
	return resp.StatusCode, newStatusError("PUT", resp)
}

// mkcolAll creates the collection dir and its missing parents.
func (c *Client) mkcolAll(ctx context.Context, dir string) error {
	if dir == "." || dir == "" {
		return nil
	}
	parts := strings.Split(dir, "/")
	for i := range parts {
		sub := strings.Join(parts[:i+1], "/")
		// 405: it exists already (possibly made by a concurrent writer).
		if _, err := c.simple(ctx, "MKCOL", c.urlFor(sub, true), nil, nil, http.StatusCreated, http.StatusMethodNotAllowed); err != nil {
			return fmt.Errorf("create collection %q: %w", "/"+sub, err)
		}
	}
	return nil
}

// removeTemp deletes a temporary upload, best effort, without the caller's
// context (which may be what ended the write).
func (c *Client) removeTemp(tmp string) {
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.Timeout)
	defer cancel()
	if _, err := c.simple(ctx, http.MethodDelete, c.urlFor(tmp, false), nil, nil, http.StatusOK, http.StatusNoContent, http.StatusNotFound); err != nil {
		c.log.Warn("could not remove temporary upload", "path", "/"+tmp, "error", backend.Redact(err, c.cfg.Password))
	}
}

// propRefusedError means the server does not store the property.
type propRefusedError struct{ status string }

func (e *propRefusedError) Error() string { return "server refused the property: " + e.status }

// setTimestamp stores the creation time as a dead property of p.
func (c *Client) setTimestamp(ctx context.Context, p string, t time.Time) error {
	var body bytes.Buffer
	body.WriteString(`<?xml version="1.0" encoding="utf-8"?><D:propertyupdate xmlns:D="DAV:" xmlns:L="` + PropNamespace + `"><D:set><D:prop><L:` + PropTimestamp + `>`)
	_ = xml.EscapeText(&body, []byte(backend.FormatTimestamp(t)))
	body.WriteString(`</L:` + PropTimestamp + `></D:prop></D:set></D:propertyupdate>`)
	resp, err := c.do(ctx, "PROPPATCH", c.urlFor(p, false), bytes.NewReader(body.Bytes()), int64(body.Len()),
		map[string]string{"Content-Type": "application/xml; charset=utf-8"})
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent:
		return nil
	case http.StatusMultiStatus:
	case http.StatusMethodNotAllowed, http.StatusNotImplemented, http.StatusForbidden:
		return &propRefusedError{status: resp.Status}
	default:
		return newStatusError("PROPPATCH", resp)
	}
	var ms multistatus
	if err := xml.NewDecoder(resp.Body).Decode(&ms); err != nil {
		return fmt.Errorf("PROPPATCH: decode multistatus: %w", err)
	}
	for _, r := range ms.Responses {
		for _, ps := range r.PropStats {
			if code := statusCode(ps.Status); code < 200 || code > 299 {
				if code >= 500 && code != 501 {
					return &statusError{method: "PROPPATCH", code: code}
				}
				return &propRefusedError{status: ps.Status}
			}
		}
	}
	return nil
}

// statusCode parses "HTTP/1.1 200 OK".
func statusCode(s string) int {
	f := strings.Fields(s)
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// DeleteLTXFiles removes files; missing ones are skipped. It tries every
// file and returns all failures.
func (c *Client) DeleteLTXFiles(ctx context.Context, files []*ltx.FileInfo) error {
	return backend.DeleteFiles(ctx, files, c.FilePath, c.fail, func(ctx context.Context, paths []string) error {
		return backend.DeleteEach(ctx, c.fail, paths, func(ctx context.Context, p string) error {
			if err := c.delete(ctx, p, false); err != nil {
				return c.fail("delete", p, err)
			}
			return nil
		})
	})
}

func (c *Client) delete(ctx context.Context, p string, dir bool) error {
	return c.retry().Do(ctx, c.what+": delete "+p, transient, func(ctx context.Context) error {
		_, err := c.simple(ctx, http.MethodDelete, c.urlFor(p, dir), nil, nil, http.StatusOK, http.StatusNoContent, http.StatusNotFound)
		return err
	})
}

// DeleteAll removes the collection <path>/ltx and everything in it.
func (c *Client) DeleteAll(ctx context.Context) error {
	p := strings.TrimSuffix(c.keys.DeletePrefixes()[0], "/")
	if err := c.delete(ctx, p, true); err != nil {
		return c.fail("delete all", p, err)
	}
	return nil
}

// propfindBody asks for what listing needs, the timestamp included.
const propfindBody = `<?xml version="1.0" encoding="utf-8"?><D:propfind xmlns:D="DAV:" xmlns:L="` + PropNamespace + `"><D:prop>` +
	`<D:resourcetype/><D:getcontentlength/><D:getlastmodified/><L:` + PropTimestamp + `/></D:prop></D:propfind>`

type multistatus struct {
	Responses []response `xml:"DAV: response"`
}

type response struct {
	Href      string     `xml:"DAV: href"`
	PropStats []propstat `xml:"DAV: propstat"`
}

type propstat struct {
	Prop   prop   `xml:"DAV: prop"`
	Status string `xml:"DAV: status"`
}

type prop struct {
	ResourceType struct {
		Collection *struct{} `xml:"DAV: collection"`
	} `xml:"DAV: resourcetype"`
	ContentLength string `xml:"DAV: getcontentlength"`
	LastModified  string `xml:"DAV: getlastmodified"`
	Timestamp     string `xml:"urn:litestream: timestamp"`
}

// okProp merges the properties of the response's 2xx propstats.
func (r response) okProp() (prop, bool) {
	var out prop
	found := false
	for _, ps := range r.PropStats {
		if code := statusCode(ps.Status); code < 200 || code > 299 {
			continue
		}
		found = true
		if ps.Prop.ResourceType.Collection != nil {
			out.ResourceType = ps.Prop.ResourceType
		}
		out.ContentLength = cmpOr(out.ContentLength, ps.Prop.ContentLength)
		out.LastModified = cmpOr(out.LastModified, ps.Prop.LastModified)
		out.Timestamp = cmpOr(out.Timestamp, ps.Prop.Timestamp)
	}
	return out, found
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
