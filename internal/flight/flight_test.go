package flight

import (
	"sync"
	"testing"
)

func TestFinish(t *testing.T) {
	var mu sync.Mutex
	inflight := map[string]int{"a": 1, "b": 2}
	done := make(chan struct{})
	Finish(&mu, inflight, "a", done)
	select {
	case <-done:
	default:
		t.Fatal("done is still open")
	}
	if _, ok := inflight["a"]; ok || len(inflight) != 1 {
		t.Fatalf("inflight after Finish: %v", inflight)
	}
}
