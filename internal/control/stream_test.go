package control

import (
	"context"
	"errors"
	"net"
	"net/http"
	"os"
	"testing"
)

// TestRotateReplyThatBreaksOff: a rotation reply that ends before every
// policy's outcome arrived, cleanly or by a connection cut in the middle of
// the stream (the daemon crashed), is ErrConnectionLost; a whole reply is
// not.
func TestRotateReplyThatBreaksOff(t *testing.T) {
	for name, c := range map[string]struct {
		handler http.HandlerFunc
		lost    bool
	}{
		"whole": {handler: func(w http.ResponseWriter, _ *http.Request) {
			w.Write([]byte("{\"event\":{\"policy\":\"p\",\"step\":\"create\",\"result\":\"ok\"}}\n{\"outcome\":{\"policy\":\"p\",\"step\":\"done\",\"result\":\"done\"}}\n"))
		}},
		"ended without the outcome": {lost: true, handler: func(w http.ResponseWriter, _ *http.Request) {
			w.Write([]byte("{\"event\":{\"policy\":\"p\",\"step\":\"create\",\"result\":\"ok\"}}\n"))
		}},
		"connection cut": {lost: true, handler: func(w http.ResponseWriter, _ *http.Request) {
			w.Write([]byte("{\"event\":{\"policy\":\"p\",\"step\":\"create\",\"result\":\"ok\"}}\n"))
			w.(http.Flusher).Flush()
			conn, _, err := w.(http.Hijacker).Hijack()
			if err != nil {
				t.Error(err)
				return
			}
			conn.Close()
		}},
	} {
		t.Run(name, func(t *testing.T) {
			dir, err := os.MkdirTemp("", "rekey-control")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { os.RemoveAll(dir) })
			ln, err := net.Listen("unix", SocketPath(dir))
			if err != nil {
				t.Fatal(err)
			}
			srv := &http.Server{Handler: c.handler}
			go srv.Serve(ln)
			t.Cleanup(func() { srv.Close() })
			cl := Dial(dir)
			if cl == nil {
				t.Fatal("no client for the socket")
			}
			var events, outcomes int
			err = cl.Rotate(context.Background(), RotateRequest{Policies: []string{"p"}}, func(m Message) {
				if m.Event != nil {
					events++
				}
				if m.Outcome != nil {
					outcomes++
				}
			})
			if got := errors.Is(err, ErrConnectionLost); got != c.lost || events != 1 {
				t.Fatalf("Rotate = %v (%d events, %d outcomes), want connection lost %v", err, events, outcomes, c.lost)
			}
		})
	}
}
