package indextest

import (
	"testing"

	"github.com/litestream-go/litestream/remote"
	"github.com/litestream-go/litestream/remote/remotetest"
)

// TestMemContract runs the contract every backend passes against the
// in-memory client, so that tests written against it (index, pagecache,
// vfs, restore) rely on nothing a real backend does not do.
func TestMemContract(t *testing.T) {
	remotetest.RunContract(t, func(t *testing.T) remote.Client { return NewMem() })
}
