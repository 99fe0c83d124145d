package handlers_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/sovereign-im/sovereign/config"
	"github.com/sovereign-im/sovereign/handlers"
	"github.com/sovereign-im/sovereign/models"
	"github.com/sovereign-im/sovereign/store"
	"github.com/sovereign-im/sovereign/testutil"
)

// sseEvent is one parsed Server-Sent Event.
type sseEvent struct {
	ID    string
	Event string
	Data  string
}

// sseStream is an open GET /v1/events read with a real HTTP client.
type sseStream struct {
	resp   *http.Response
	events chan sseEvent
	done   chan struct{} // closed when the server ends the stream
	cancel context.CancelFunc
	err    error // why reading ended (nil: a clean end of the body); read after done
}

func openSSE(t *testing.T, s *testutil.Server, token string, query string, headers ...string) (*sseStream, *http.Response) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", s.URL+"/v1/events"+query, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Accept", "text/event-stream")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := s.Client.Do(req)
	if err != nil {
		cancel()
		t.Fatalf("GET /v1/events: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		cancel()
		return nil, resp
	}
	st := &sseStream{resp: resp, events: make(chan sseEvent, 4096), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(st.done)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var cur sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case line == "":
				select {
				case st.events <- cur:
				case <-ctx.Done():
					return
				}
				cur = sseEvent{}
			case strings.HasPrefix(line, "id: "):
				cur.ID = line[4:]
			case strings.HasPrefix(line, "event: "):
				cur.Event = line[7:]
			case strings.HasPrefix(line, "data: "):
				cur.Data = line[6:]
			}
		}
		st.err = sc.Err()
	}()
	t.Cleanup(st.close)
	return st, resp
}

func (st *sseStream) close() { st.cancel() }

// next returns the next event that is not a ping, or fails after d.
func (st *sseStream) next(t *testing.T, d time.Duration) (handlers.EventBody, bool) {
	t.Helper()
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		select {
		case e := <-st.events:
			if e.Event == "ping" {
				continue
			}
			var fe handlers.EventBody
			if err := json.Unmarshal([]byte(e.Data), &fe); err != nil {
				t.Fatalf("decode event %q: %v", e.Data, err)
			}
			if e.ID != strconv.FormatInt(fe.Seq, 10) {
				t.Fatalf("event id %q != seq %d", e.ID, fe.Seq)
			}
			return fe, true
		case <-st.done:
			return handlers.EventBody{}, false
		case <-timer.C:
			return handlers.EventBody{}, false
		}
	}
}

// wsConn is an open /v1/ws.
type wsConn struct {
	c *websocket.Conn
}

func dialWS(t *testing.T, s *testutil.Server, token, query string) (*wsConn, *http.Response, error) {
	t.Helper()
	url := "ws" + strings.TrimPrefix(s.URL, "http") + "/v1/ws" + query
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		HTTPHeader: http.Header{"Authorization": {"Bearer " + token}},
	})
	if err != nil {
		return nil, resp, err
	}
	c.SetReadLimit(16 << 20)
	t.Cleanup(func() { _ = c.CloseNow() })
	return &wsConn{c: c}, resp, nil
}

func (w *wsConn) frame(t *testing.T, d time.Duration) (*handlers.WSFrame, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	typ, b, err := w.c.Read(ctx)
	if err != nil {
		return nil, err
	}
	if typ != websocket.MessageText {
		t.Fatalf("frame type %v", typ)
	}
	var f handlers.WSFrame
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("decode frame %s: %v", b, err)
	}
	return &f, nil
}

// feedServer is a test server with accounts in one group.
type feedServer struct {
	*testutil.Server
	feed  testutil.Feed
	group []byte
	accs  []testutil.Account
}

func newFeedServer(t *testing.T, members int, mutate ...func(*config.Config)) *feedServer {
	t.Helper()
	s := testutil.NewServer(t, mutate...)
	fs := &feedServer{Server: s, feed: testutil.Feed{St: s.Store}, group: []byte("group-one")}
	var ids []string
	for i := range members {
		a := s.SeedAccount(t, fmt.Sprintf("user%d", i), models.RoleMember)
		fs.accs = append(fs.accs, a)
		ids = append(ids, a.DeviceID)
	}
	if err := fs.feed.CreateGroup(context.Background(), fs.group, ids...); err != nil {
		t.Fatal(err)
	}
	return fs
}

func (fs *feedServer) send(t *testing.T, from int, payload string) *models.Event {
	t.Helper()
	e, err := fs.feed.Send(context.Background(), fs.group, fs.accs[from].DeviceID, models.KindApplication, []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func (fs *feedServer) sessionID(t *testing.T, token string) string {
	t.Helper()
	p, err := fs.Store.Authenticate(context.Background(), models.HashToken(token))
	if err != nil {
		t.Fatal(err)
	}
	return p.SessionID
}

type syncBody struct {
	Events  []handlers.EventBody `json:"events"`
	Next    int64                `json:"next"`
	HasMore bool                 `json:"has_more"`
}

type storeTx = store.Tx
