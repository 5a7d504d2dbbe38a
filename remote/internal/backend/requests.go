package backend

import (
	"net/http"

	"github.com/litestream-go/litestream/remote"
)

// RequestKind is the billing class of an HTTP request to an object store
// or WebDAV server: a listing (Azure's comp=list, PROPFIND) is a LIST;
// otherwise the method decides, and MKCOL, MOVE, COPY and PROPPATCH count
// as PUT, as writes are billed.
func RequestKind(r *http.Request) remote.RequestKind {
	switch r.Method {
	case http.MethodHead:
		return remote.ReqHead
	case http.MethodDelete:
		return remote.ReqDelete
	case "PROPFIND":
		return remote.ReqList
	case http.MethodGet:
		if r.URL.Query().Get("comp") == "list" {
			return remote.ReqList
		}
		return remote.ReqGet
	}
	return remote.ReqPut
}
