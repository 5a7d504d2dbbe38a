// Package flight holds the one rule for ending a shared read: the page
// fetcher (pagecache) and the encrypted client's header reads (remote/crypt)
// each let the first caller of a key do the read while later callers wait
// for its result in a table of calls in flight.
package flight

import "sync"

// Finish ends the call of key: it removes key from inflight under mu, then
// closes done, which releases the waiters. The caller stores the call's
// result (and adds it to any cache) before: a caller that no longer finds
// key in inflight must find the result in the cache, and a waiter released
// by done must find it in the call.
func Finish[K comparable, C any](mu *sync.Mutex, inflight map[K]C, key K, done chan struct{}) {
	mu.Lock()
	delete(inflight, key)
	mu.Unlock()
	close(done)
}
