package bench

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestSenderAgainstNetHTTPServer posts through a Sender to a real net/http
// server and checks what the server received and what the Sender reports,
// for each way an answer can be framed.
func TestSenderAgainstNetHTTPServer(t *testing.T) {
	var conns atomic.Int32
	release := make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("POST /ok", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if r.Header.Get("Authorization") != "Bearer tok" || r.Header.Get("Content-Type") != "application/json" || string(body) != `{"message":"AAEC"}` {
			http.Error(w, "unexpected request: "+r.Header.Get("Authorization")+" "+string(body), http.StatusBadRequest)
			return
		}
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"seq":1}`))
	})
	mux.HandleFunc("POST /chunked", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		for range 3 {
			_, _ = w.Write([]byte(strings.Repeat("x", 3000)))
			w.(http.Flusher).Flush()
		}
	})
	mux.HandleFunc("POST /full", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, `{"code":"group_quota_exceeded"}`, http.StatusInsufficientStorage)
	})
	mux.HandleFunc("POST /close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		w.WriteHeader(http.StatusAccepted)
	})
	mux.HandleFunc("POST /empty", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	})
	mux.HandleFunc("POST /slow", func(w http.ResponseWriter, r *http.Request) {
		<-release
	})
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	defer close(release)

	s, err := NewSender(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	body := []byte(`{"message":"AAEC"}`)

	for i := range 3 {
		if st, err := s.Post(ctx, "/ok", "tok", body); err != nil || st != http.StatusCreated {
			t.Fatalf("post %d: %d %v", i, st, err)
		}
		if string(s.body) != `{"seq":1}` {
			t.Fatalf("post %d: body %q", i, s.body)
		}
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("three posts used %d connections, want one kept alive", n)
	}
	if st, err := s.Post(ctx, "/chunked", "tok", body); err != nil || st != http.StatusOK || len(s.body) != 9000 {
		t.Fatalf("chunked: %d %v, %d body bytes", st, err, len(s.body))
	}
	st, err := s.Post(ctx, "/full", "tok", body)
	var se *StatusError
	if !errors.As(err, &se) || st != http.StatusInsufficientStorage || se.Status != st || !strings.Contains(se.Body, "group_quota_exceeded") {
		t.Fatalf("non-2xx: %d %v", st, err)
	}
	if st, err := s.Post(ctx, "/empty", "tok", body); err != nil || st != http.StatusNoContent {
		t.Fatalf("204: %d %v", st, err)
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("answers of every framing used %d connections, want 1", n)
	}
	if st, err := s.Post(ctx, "/close", "tok", body); err != nil || st != http.StatusAccepted {
		t.Fatalf("Connection: close: %d %v", st, err)
	}
	if st, err := s.Post(ctx, "/ok", "tok", body); err != nil || st != http.StatusCreated {
		t.Fatalf("after Connection: close: %d %v", st, err)
	}
	if n := conns.Load(); n != 2 {
		t.Fatalf("after Connection: close the sender used %d connections, want a second one", n)
	}

	// The server going away mid-connection fails one request, and the
	// next one reconnects.
	srv.CloseClientConnections()
	time.Sleep(50 * time.Millisecond)
	if _, err := s.Post(ctx, "/ok", "tok", body); err == nil {
		t.Fatal("a post on a connection the server closed succeeded")
	}
	if st, err := s.Post(ctx, "/ok", "tok", body); err != nil || st != http.StatusCreated {
		t.Fatalf("after the server closed the connection: %d %v", st, err)
	}

	// A context ending aborts the request in flight.
	cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	if _, err := s.Post(cctx, "/slow", "tok", body); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow post under a 100 ms deadline: %v", err)
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Fatalf("the deadline took %v to end the post", d)
	}
}

func TestSenderRefusesWhatItCannotSpeak(t *testing.T) {
	for _, base := range []string{"https://example.test", "ftp://x", "::"} {
		if _, err := NewSender(base); err == nil {
			t.Errorf("NewSender(%q) accepted", base)
		}
	}
}

// TestSenderRejectsMalformedAnswers feeds the Sender answers no HTTP/1.1
// server would send.
func TestSenderRejectsMalformedAnswers(t *testing.T) {
	for name, answer := range map[string]string{
		"no status":       "hello\r\n\r\n",
		"bad status":      "HTTP/1.1 2x1 OK\r\n\r\n",
		"bad length":      "HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\n",
		"bad encoding":    "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		"bad chunk":       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
		"short body":      "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc",
		"header no colon": "HTTP/1.1 200 OK\r\nbroken\r\n\r\n",
	} {
		t.Run(name, func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			go func() {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
				buf := make([]byte, 4096)
				_, _ = c.Read(buf)
				_, _ = c.Write([]byte(answer))
			}()
			s, err := NewSender("http://" + ln.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if st, err := s.Post(context.Background(), "/x", "", []byte("{}")); err == nil {
				t.Fatalf("answer %q: status %d, no error", answer, st)
			}
		})
	}
}

// TestSenderStreamsSSE reads a real net/http SSE handler's events through
// Stream and OpenSSEWith: events split over chunks arrive whole, a non-200
// answer is a StatusError, and the context ending closes the stream.
func TestSenderStreamsSSE(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/events", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Accept") != "text/event-stream" || r.Header.Get("Authorization") != "Bearer tok" {
			http.Error(w, `{"code":"unauthorized"}`, http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		f := w.(http.Flusher)
		_, _ = io.WriteString(w, ": hello\n\n")
		f.Flush()
		for i := range 3 {
			// Each event in two flushes: the event's lines span chunks.
			_, _ = io.WriteString(w, "event: message\ndata: {\"seq\":")
			f.Flush()
			_, _ = io.WriteString(w, string(rune('1'+i))+"}\n\n")
			f.Flush()
		}
		_, _ = io.WriteString(w, "event: ping\ndata: {}\n\n")
		f.Flush()
		<-r.Context().Done()
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	s, err := NewSender(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSSEWith(context.Background(), s, "wrong", -1); err == nil {
		t.Fatal("a 401 opened a stream")
	} else if se := (*StatusError)(nil); !errors.As(err, &se) || se.Status != http.StatusUnauthorized || !strings.Contains(se.Body, "unauthorized") {
		t.Fatalf("401: %v", err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st, err := OpenSSEWith(ctx, s, "tok", -1)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	for i := range 3 {
		ev, data, err := st.Next()
		if err != nil || ev != "message" || string(data) != `{"seq":`+string(rune('1'+i))+`}` {
			t.Fatalf("event %d: %q %q %v", i, ev, data, err)
		}
	}
	if ev, _, err := st.Next(); err != nil || ev != "ping" {
		t.Fatalf("ping: %q %v", ev, err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := st.Next()
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Next after the context ended returned an event")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the context ending did not end the stream")
	}
}
