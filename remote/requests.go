package remote

import (
	"io"
	"sync/atomic"
)

// RequestKind is a class of storage request, as object stores bill them:
// on S3 a LIST costs as much as a PUT and 12.5 times a GET or HEAD, and a
// DELETE is free.
type RequestKind int

// The request kinds.
const (
	ReqList RequestKind = iota
	ReqHead
	ReqGet
	ReqPut
	ReqDelete
	numRequestKinds
)

// RequestKinds lists every kind, in the order RequestCounts holds them.
var RequestKinds = []RequestKind{ReqList, ReqHead, ReqGet, ReqPut, ReqDelete}

var requestKindNames = [numRequestKinds]string{"LIST", "HEAD", "GET", "PUT", "DELETE"}

// String returns the kind's name: "LIST", "HEAD", "GET", "PUT" or "DELETE".
func (k RequestKind) String() string {
	if k < 0 || k >= numRequestKinds {
		return "OTHER"
	}
	return requestKindNames[k]
}

// RequestCounts are the requests a client sent, by kind, retries included.
type RequestCounts struct {
	List, Head, Get, Put, Delete int64
}

// Of returns the count of one kind.
func (c RequestCounts) Of(k RequestKind) int64 {
	switch k {
	case ReqList:
		return c.List
	case ReqHead:
		return c.Head
	case ReqGet:
		return c.Get
	case ReqPut:
		return c.Put
	case ReqDelete:
		return c.Delete
	}
	return 0
}

// Total is the number of requests of every kind.
func (c RequestCounts) Total() int64 { return c.List + c.Head + c.Get + c.Put + c.Delete }

// Sub returns c minus o, kind by kind: the requests sent between two
// readings.
func (c RequestCounts) Sub(o RequestCounts) RequestCounts {
	return RequestCounts{List: c.List - o.List, Head: c.Head - o.Head, Get: c.Get - o.Get, Put: c.Put - o.Put, Delete: c.Delete - o.Delete}
}

// RequestCounter is implemented by clients that count the requests they
// send to the storage. The backends count what they send (s3 each HTTP
// request, a listing's pages and HEADs included); wrappers pass their
// inner client's counts on.
type RequestCounter interface {
	RequestCounts() RequestCounts
}

// CountsOf returns c's request counts, and false if c does not count.
func CountsOf(c Client) (RequestCounts, bool) {
	if rc, ok := c.(RequestCounter); ok {
		return rc.RequestCounts(), true
	}
	return RequestCounts{}, false
}

// Requests is a set of request counters for a backend to embed: Add counts
// one request, RequestCounts reads them. Safe for concurrent use; the zero
// value is ready.
type Requests struct {
	n [numRequestKinds]atomic.Int64
}

// Add counts one request of kind k.
func (r *Requests) Add(k RequestKind) {
	if k >= 0 && k < numRequestKinds {
		r.n[k].Add(1)
	}
}

// RequestCounts implements RequestCounter.
func (r *Requests) RequestCounts() RequestCounts {
	return RequestCounts{List: r.n[ReqList].Load(), Head: r.n[ReqHead].Load(), Get: r.n[ReqGet].Load(),
		Put: r.n[ReqPut].Load(), Delete: r.n[ReqDelete].Load()}
}

// CountingReader counts the bytes read through it: for a client, or a
// wrapper of one, that streams an upload and must tell its size (an
// upload API that does not report it, metrics of bytes written).
type CountingReader struct {
	R io.Reader
	N int64
}

func (c *CountingReader) Read(p []byte) (int, error) {
	n, err := c.R.Read(p)
	c.N += int64(n)
	return n, err
}
