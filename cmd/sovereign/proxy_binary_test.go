package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sovereign-im/sovereign/bench"
	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/handlers"
	"github.com/sovereign-im/sovereign/testutil"
)

// proxyClientIP is the address the test client connects to the proxy from;
// the proxy reaches the server from 127.0.0.1.
var proxyClientIP = net.IPv4(127, 0, 0, 2)

// proxyTransport dials the proxy's port on 127.0.0.1 from proxyClientIP and
// trusts pool's certificate for localhost. http2 selects whether it offers
// h2 (WebSocket upgrades need HTTP/1.1).
func proxyTransport(pool *x509.CertPool, http2 bool) *http.Transport {
	dialer := &net.Dialer{LocalAddr: &net.TCPAddr{IP: proxyClientIP}, Timeout: 10 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			_, port, _ := net.SplitHostPort(addr)
			return dialer.DialContext(ctx, "tcp4", "127.0.0.1:"+port)
		},
		TLSClientConfig:   &tls.Config{RootCAs: pool, ServerName: "localhost"},
		ForceAttemptHTTP2: http2,
	}
	if !http2 {
		tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
		tr.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	}
	return tr
}

// startProxy starts a reverse proxy's command in its own process group (a
// master and its workers end together) with its output in logPath (a file,
// not a pipe a surviving worker would hold open), kills the group when the
// test ends (printing the log if it failed) and waits until port accepts
// connections.
func startProxy(t *testing.T, cmd *exec.Cmd, logPath string, port int) {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		_ = logFile.Close()
		if t.Failed() {
			out, _ := os.ReadFile(logPath)
			t.Logf("%s:\n%s", filepath.Base(logPath), out)
		}
	})
	waitFor(t, 30*time.Second, func() bool {
		c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
}

// checkThroughProxy is what every shipped reverse-proxy configuration must
// pass with the real binary p behind it on origin (https, certificate in
// pool): a passkey registration on the proxied origin; SSE events that
// arrive unbuffered (each within 100 ms of the send's answer at best, 1 s at
// worst); a WebSocket upgrade that delivers an event; a long-poll that a
// publish wakes; and the server seeing the client's own address
// (proxyClientIP), never the proxy's. p must log at debug level: only there
// do request lines carry the path and the client address.
func checkThroughProxy(t *testing.T, p *Process, origin string, pool *x509.CertPool) {
	t.Helper()
	tr := proxyTransport(pool, true)
	cfg := config.Default()
	cfg.RPOrigins = []string{origin}
	config.Derive(&cfg)
	s := testutil.Attach(t, origin, cfg)
	s.Client = &http.Client{Transport: &testutil.ValidatingTransport{T: t, Base: tr}}
	code := logCodeRE.FindStringSubmatch(p.logs.String())
	if code == nil {
		t.Fatalf("no admin invite:\n%s", p.logs.String())
	}
	root, _ := s.Register(t, code[1], "root")

	c := bench.NewClient(origin, 4)
	c.HTTP.Transport = tr
	ctx := context.Background()
	acc := bench.Account{UserID: root.UserID, DeviceID: root.DeviceID, Token: root.Token}
	g, err := bench.CreateGroup(ctx, c, acc)
	if err != nil {
		t.Fatal(err)
	}
	send := func() bench.Receipt {
		t.Helper()
		r, err := bench.Send(ctx, c, g, acc, bench.MessageBody(g, nil, 200))
		if err != nil {
			t.Fatal(err)
		}
		return r
	}

	// SSE, unbuffered.
	req, _ := http.NewRequest(http.MethodGet, origin+"/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+root.Token)
	sctx, cancel := context.WithCancel(ctx)
	defer cancel()
	resp, err := (&http.Client{Transport: tr}).Do(req.WithContext(sctx))
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("SSE through the proxy: %v %v", err, resp)
	}
	defer resp.Body.Close()
	var (
		mu      sync.Mutex
		arrived = map[int64]time.Time{}
	)
	go func() {
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			if id, ok := strings.CutPrefix(sc.Text(), "id: "); ok {
				if seq, err := strconv.ParseInt(id, 10, 64); err == nil {
					mu.Lock()
					arrived[seq] = time.Now()
					mu.Unlock()
				}
			}
		}
	}()
	const sends = 5
	var lags []time.Duration
	for range sends {
		r := send()
		acked := time.Now()
		var at time.Time
		waitFor(t, 10*time.Second, func() bool {
			mu.Lock()
			defer mu.Unlock()
			at = arrived[r.Seq]
			return !at.IsZero()
		})
		lags = append(lags, max(at.Sub(acked), 0))
	}
	sort.Slice(lags, func(i, j int) bool { return lags[i] < lags[j] })
	t.Logf("SSE event through the proxy, after the send's answer: min %v, median %v, max %v", lags[0], lags[sends/2], lags[sends-1])
	// A buffering proxy holds small events until its buffer fills or the
	// stream ends: they would not arrive at all within these bounds.
	if lags[0] > 100*time.Millisecond || lags[sends-1] > time.Second {
		t.Fatalf("SSE events arrive late through the proxy (buffered?): %v", lags)
	}
	cancel()

	// WebSocket upgrade through the proxy (HTTP/1.1).
	wsURL := "wss" + strings.TrimPrefix(origin, "https") + "/v1/ws"
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	ws, wresp, err := websocket.Dial(wctx, wsURL, &websocket.DialOptions{
		HTTPClient: &http.Client{Transport: proxyTransport(pool, false)},
		HTTPHeader: http.Header{"Authorization": {"Bearer " + root.Token}},
	})
	if err != nil {
		t.Fatalf("WebSocket through the proxy: %v %v", err, wresp)
	}
	defer ws.CloseNow()
	ws.SetReadLimit(16 << 20)
	last := send().Seq
	for {
		_, b, err := ws.Read(wctx)
		if err != nil {
			t.Fatalf("WebSocket read through the proxy: %v", err)
		}
		var f handlers.WSFrame
		if err := json.Unmarshal(b, &f); err != nil {
			t.Fatalf("WebSocket frame %s: %v", b, err)
		}
		if f.Type == "events" && len(f.Events) > 0 && f.Events[len(f.Events)-1].Seq >= last {
			break
		}
	}
	_ = ws.Close(websocket.StatusNormalClosure, "")

	// A long-poll waits through the proxy and is woken by a publish.
	hc := &http.Client{Transport: tr}
	type polled struct {
		body string
		err  error
	}
	ch := make(chan polled, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("%s/v1/sync?after=%d&timeout=30", origin, last), nil)
		req.Header.Set("Authorization", "Bearer "+root.Token)
		r, err := hc.Do(req)
		if err != nil {
			ch <- polled{err: err}
			return
		}
		defer r.Body.Close()
		b, err := io.ReadAll(r.Body)
		ch <- polled{string(b), err}
	}()
	time.Sleep(300 * time.Millisecond) // let the poll reach the server and wait
	woke := send().Seq
	select {
	case got := <-ch:
		if got.err != nil || !strings.Contains(got.body, `"seq":`+strconv.FormatInt(woke, 10)) {
			t.Fatalf("long-poll through the proxy: %v %s", got.err, got.body)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("long-poll through the proxy was not woken by a publish")
	}

	logs := p.logs.String()
	var seen []string
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "msg=request") && (strings.Contains(line, "path=/v1/events") || strings.Contains(line, "/messages") ||
			strings.Contains(line, "path=/v1/ws") || strings.Contains(line, "path=/v1/sync")) {
			seen = append(seen, line)
			if !strings.Contains(line, "client="+proxyClientIP.String()) {
				t.Errorf("the server saw the proxy, not the client: %s", line)
			}
		}
	}
	if len(seen) < sends+2 {
		t.Fatalf("%d proxied requests logged, want at least %d:\n%s", len(seen), sends+2, logs)
	}
}
