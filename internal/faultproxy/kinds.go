package faultproxy

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
)

// Kind is one kind of injected fault.
type Kind uint8

// The fault kinds. Every kind but SlowBody makes the request fail as the
// client sees it; all of them are transient (the next try may succeed).
const (
	// Status500 answers 500 Internal Server Error without forwarding.
	Status500 Kind = iota + 1
	// Status503 answers 503 Service Unavailable (S3's SlowDown) without
	// forwarding.
	Status503
	// Reset resets the connection before any response byte; the request
	// never reaches the server.
	Reset
	// LostResponse forwards the request (the server applies it), then
	// resets the connection instead of answering: a write that happened
	// although the client saw it fail.
	LostResponse
	// ResetMidBody sends the status, the headers and part of the body,
	// then resets the connection.
	ResetMidBody
	// Truncate sends the status, the headers with the full Content-Length
	// and part of the body, then closes the connection cleanly.
	Truncate
	// Stall holds the request without answering (and without forwarding
	// it) until Options.StallFor has passed or the client gives up, then
	// resets the connection.
	Stall
	// StallMidBody sends the status, the headers and part of the body,
	// then stalls like Stall.
	StallMidBody
	// SlowBody delivers the whole response, in pieces spread over
	// Options.SlowFor. It is not a failure: a client must not mistake a
	// slow body for a stalled one.
	SlowBody

	numKinds
)

// Kinds lists every kind, in order.
var Kinds = []Kind{Status500, Status503, Reset, LostResponse, ResetMidBody, Truncate, Stall, StallMidBody, SlowBody}

var kindNames = [numKinds]string{"", "500", "503", "reset", "lost-response", "reset-mid-body", "truncate", "stall", "stall-mid-body", "slow-body"}

func (k Kind) String() string {
	if k == 0 || k >= numKinds {
		return "kind(" + strconv.Itoa(int(k)) + ")"
	}
	return kindNames[k]
}

// Failure reports whether the kind makes the request fail (every kind but
// SlowBody).
func (k Kind) Failure() bool { return k != SlowBody && k > 0 && k < numKinds }

// needsUpstream reports whether the kind forwards the request to the server
// and works on its response.
func (k Kind) needsUpstream() bool {
	switch k {
	case LostResponse, ResetMidBody, Truncate, StallMidBody, SlowBody:
		return true
	}
	return false
}

// ParseKind parses a kind's name as String writes it.
func ParseKind(s string) (Kind, error) {
	for k := Kind(1); k < numKinds; k++ {
		if kindNames[k] == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("unknown fault kind %q (kinds: %s)", s, strings.Join(kindNames[1:], ", "))
}

// Rates maps a kind to the probability that a request gets it. The sum must
// not exceed 1; the rest of the requests pass through unharmed.
type Rates map[Kind]float64

// Failing returns the summed probability of the kinds that fail a request.
func (r Rates) Failing() float64 {
	var sum float64
	for k, p := range r {
		if k.Failure() {
			sum += p
		}
	}
	return sum
}

// Plus returns the kind-wise sum of r and o.
func (r Rates) Plus(o Rates) Rates {
	out := Rates{}
	for k, p := range r {
		out[k] += p
	}
	for k, p := range o {
		out[k] += p
	}
	return out
}

// String formats the rates as ParseRates reads them, in kind order, e.g.
// "500=0.05,reset=0.05".
func (r Rates) String() string {
	var parts []string
	for _, k := range Kinds {
		if p, ok := r[k]; ok && p > 0 {
			parts = append(parts, k.String()+"="+strconv.FormatFloat(p, 'g', -1, 64))
		}
	}
	return strings.Join(parts, ",")
}

// Validate rejects unknown kinds, negative probabilities and a sum above 1.
func (r Rates) Validate() error {
	var sum float64
	for k, p := range r {
		if k == 0 || k >= numKinds {
			return fmt.Errorf("fault rates: unknown kind %d", k)
		}
		if p < 0 || p > 1 {
			return fmt.Errorf("fault rates: %s=%g is not a probability", k, p)
		}
		sum += p
	}
	if sum > 1+1e-9 {
		return fmt.Errorf("fault rates %s sum to %g, more than 1", r, sum)
	}
	return nil
}

// ParseRates parses "kind=p,kind=p,..." (kind names as Kind.String writes
// them). The special names "transient=p" and "stalls=p" expand to
// Transient(p) and Stalls(p). An empty string is no faults.
func ParseRates(s string) (Rates, error) {
	r := Rates{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		name, val, ok := strings.Cut(part, "=")
		if !ok {
			return nil, fmt.Errorf("fault rates %q: %q is not kind=probability", s, part)
		}
		p, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			return nil, fmt.Errorf("fault rates %q: %q: %w", s, part, err)
		}
		switch name = strings.TrimSpace(name); name {
		case "transient":
			r = r.Plus(Transient(p))
		case "stalls":
			r = r.Plus(Stalls(p))
		default:
			k, err := ParseKind(name)
			if err != nil {
				return nil, fmt.Errorf("fault rates %q: %w", s, err)
			}
			r[k] += p
		}
	}
	if err := r.Validate(); err != nil {
		return nil, err
	}
	return r, nil
}

// quickFailures are the kinds that fail a request at once (no stall).
var quickFailures = []Kind{Status500, Status503, Reset, LostResponse, ResetMidBody, Truncate}

// Transient returns rates under which a fraction rate of all requests fails
// quickly, spread evenly over 500, 503, reset, lost-response,
// reset-mid-body and truncate. Stalls cost the client its whole timeout, so
// they are separate (Stalls) and can be added with Plus.
func Transient(rate float64) Rates {
	r := Rates{}
	for _, k := range quickFailures {
		r[k] = rate / float64(len(quickFailures))
	}
	return r
}

// Stalls returns rates under which a fraction rate of all requests stalls,
// half before the response and half in the middle of its body.
func Stalls(rate float64) Rates {
	return Rates{Stall: rate / 2, StallMidBody: rate / 2}
}

// Class is the kind of storage request, as object stores bill them.
type Class uint8

// Request classes. S3 bills LIST like PUT and ten times a GET; DELETE is free.
const (
	ClassOther Class = iota
	ClassGET
	ClassHEAD
	ClassPUT
	ClassLIST
	ClassDELETE

	numClasses
)

// Classes lists every class, in order.
var Classes = []Class{ClassGET, ClassHEAD, ClassPUT, ClassLIST, ClassDELETE, ClassOther}

var classNames = [numClasses]string{"OTHER", "GET", "HEAD", "PUT", "LIST", "DELETE"}

func (c Class) String() string {
	if c >= numClasses {
		return "class(" + strconv.Itoa(int(c)) + ")"
	}
	return classNames[c]
}

// Classify returns the class of a request to an object store or WebDAV
// server, by method and URL shape:
//
//   - S3 (path or virtual-host style): GET on a bucket (no key) is a LIST,
//     GET on a key a GET; PUT, and the multipart POSTs (?uploads,
//     ?uploadId), are PUT; POST ?delete (DeleteObjects) and DELETE are
//     DELETE.
//   - Azure Blob: ?comp=list is a LIST; PUT (blocks, block lists) is PUT.
//   - GCS JSON API: GET .../b/BUCKET/o is a LIST; GET of an object (or its
//     media) a GET; uploads (/upload/...) are PUT.
//   - WebDAV: PROPFIND is a LIST; MKCOL, MOVE, COPY and PROPPATCH are PUT.
func Classify(r *http.Request) Class {
	q := r.URL.Query()
	p := strings.Trim(r.URL.Path, "/")
	switch r.Method {
	case http.MethodHead:
		return ClassHEAD
	case http.MethodDelete:
		return ClassDELETE
	case http.MethodPut, "MKCOL", "MOVE", "COPY", "PROPPATCH":
		return ClassPUT
	case "PROPFIND":
		return ClassLIST
	case http.MethodPost:
		switch {
		case q.Has("delete"):
			return ClassDELETE
		case q.Has("uploads"), q.Has("uploadId"), strings.HasPrefix(p, "upload/"):
			return ClassPUT
		}
		return ClassOther
	case http.MethodGet:
		switch {
		case q.Get("comp") == "list", q.Has("list-type"):
			return ClassLIST
		case strings.HasPrefix(p, "storage/v1/b/"):
			// GCS: storage/v1/b/BUCKET/o is the listing.
			parts := strings.Split(p, "/")
			if len(parts) == 5 && parts[4] == "o" {
				return ClassLIST
			}
			return ClassGET
		case q.Has("location"), q.Has("versioning"), q.Has("policy"):
			return ClassOther
		case p == "" || !strings.Contains(p, "/"):
			// "/" (virtual-host bucket) or "/bucket" (path style).
			return ClassLIST
		}
		return ClassGET
	}
	return ClassOther
}

// sortedKinds returns the kinds of r with a positive rate, in kind order.
func (r Rates) sortedKinds() []Kind {
	var ks []Kind
	for k, p := range r {
		if p > 0 {
			ks = append(ks, k)
		}
	}
	slices.Sort(ks)
	return ks
}
