package handlers

import (
	"context"
	"encoding/json"
	"errors"
	"net/url"
	"time"

	"github.com/coder/websocket"
	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/sovereign-im/sovereign/realtime"
)

// WebSocket protocol (docs/sync.md): the server sends text frames holding
// one JSON object each; the client may send acks.
const (
	// WSCloseSessionEnded closes a socket whose session was revoked or expired.
	WSCloseSessionEnded websocket.StatusCode = 4001
	// WSCloseResume closes a socket that fell too far behind to write; the
	// client reconnects with its cursor.
	WSCloseResume websocket.StatusCode = 4008

	wsWriteTimeout = 5 * time.Second
	wsReadLimit    = 4096
)

// WSFrame is a frame from the server.
type WSFrame struct {
	Type     string      `json:"type"` // "events", "acked" or "error"
	Events   []EventBody `json:"events,omitempty"`
	AckedSeq *int64      `json:"acked_seq,omitempty"`
	Code     string      `json:"code,omitempty"`
	Detail   string      `json:"detail,omitempty"`
}

// WSClientFrame is a frame from the client: {"type":"ack","seq":N}.
type WSClientFrame struct {
	Type string `json:"type"`
	Seq  int64  `json:"seq"`
}

func (h *handler) websocketFeed(ctx context.Context, in *WSInput) (*huma.StreamResponse, error) {
	p := PrincipalFrom(ctx)
	st, err := h.openStream(ctx, p, in.After, in.afterSet, transportWebSocket)
	if err != nil {
		return nil, h.fail(ctx, err)
	}
	return &huma.StreamResponse{Body: func(hctx huma.Context) {
		defer st.close()
		r, w := humago.Unwrap(hctx)
		conn, err := websocket.Accept(w, r, &websocket.AcceptOptions{
			OriginPatterns:  h.wsOrigins(),
			CompressionMode: websocket.CompressionDisabled, // ciphertext does not compress
		})
		if err != nil {
			return // Accept has answered the client
		}
		defer conn.CloseNow()
		conn.SetReadLimit(wsReadLimit)
		h.serveWS(hctx.Context(), conn, st)
	}}, nil
}

// wsOrigins allows browser pages from the configured WebAuthn origins (the
// web app) and the --cors-origins (web apps served elsewhere) besides
// same-origin requests; clients that send no Origin
// (native apps) are always accepted.
func (h *handler) wsOrigins() []string {
	var out []string
	for _, o := range append(append([]string(nil), h.d.Config.RPOrigins...), h.d.Config.CORSOrigins...) {
		if u, err := url.Parse(o); err == nil && u.Host != "" {
			out = append(out, u.Host)
		}
	}
	return out
}

func (h *handler) serveWS(parent context.Context, conn *websocket.Conn, st *stream) {
	ctx, cancel := st.context(parent)
	defer cancel()
	go h.readWS(ctx, cancel, conn, st)

	writeRaw := func(b []byte) error {
		wctx, wcancel := context.WithTimeout(ctx, wsWriteTimeout)
		defer wcancel()
		return conn.Write(wctx, websocket.MessageText, b)
	}

	tick := time.NewTicker(streamTick)
	defer tick.Stop()
	lastBeat := time.Now()
	for {
		evs, err := st.reader.Next(ctx, streamBatch, tick.C)
		switch {
		case errors.Is(err, realtime.ErrSessionEnded):
			_ = conn.Close(WSCloseSessionEnded, "session ended")
			return
		case errors.Is(err, realtime.ErrHubClosed) || (err != nil && h.d.Stopping != nil && h.d.Stopping.Err() != nil):
			_ = conn.Close(websocket.StatusGoingAway, "server shutting down")
			return
		case err != nil:
			if !errors.Is(err, context.Canceled) {
				h.log().WarnContext(ctx, "websocket stream", "err", err)
				_ = conn.Close(websocket.StatusInternalError, "internal error")
			}
			return
		}
		if len(evs) > 0 {
			// One frame per batch, written and flushed once, holding the
			// events' shared encodings.
			if err := writeRaw(eventsFrame(evs)); err != nil {
				_ = conn.Close(WSCloseResume, "too slow: reconnect with your cursor")
				return
			}
			h.delivered(evs)
			continue
		}
		if st.expired() {
			_ = conn.Close(WSCloseSessionEnded, "session expired")
			return
		}
		if time.Since(lastBeat) >= st.heartbeat {
			lastBeat = time.Now()
			if !st.stillValid(ctx) {
				_ = conn.Close(WSCloseSessionEnded, "session ended")
				return
			}
			pctx, pcancel := context.WithTimeout(ctx, st.heartbeat)
			err := conn.Ping(pctx)
			pcancel()
			if err != nil {
				return // the peer is gone
			}
		}
	}
}

// eventsFrame builds {"type":"events","events":[…]} from the events'
// shared encodings.
func eventsFrame(items []*realtime.Item) []byte {
	n := 32
	raws := make([][]byte, len(items))
	for i, it := range items {
		raws[i] = it.Wire(encodeEvent)
		n += len(raws[i]) + 1
	}
	b := make([]byte, 0, n)
	b = append(b, `{"type":"events","events":[`...)
	for i, r := range raws {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, r...)
	}
	return append(b, "]}"...)
}

// readWS reads client frames (acks) and keeps control frames (pongs,
// close) flowing; it ends the stream when the peer goes away.
func (h *handler) readWS(ctx context.Context, cancel context.CancelFunc, conn *websocket.Conn, st *stream) {
	defer cancel()
	for {
		typ, b, err := conn.Read(ctx)
		if err != nil {
			return
		}
		var f WSClientFrame
		if typ != websocket.MessageText || json.Unmarshal(b, &f) != nil || f.Type != "ack" {
			_ = conn.Close(websocket.StatusUnsupportedData, `expected {"type":"ack","seq":N}`)
			return
		}
		reply := &WSFrame{Type: "acked"}
		acked, err := h.ack(ctx, st.p.DeviceID, f.Seq, true)
		if err != nil {
			p, _ := h.fail(ctx, err).(*Problem)
			reply = &WSFrame{Type: "error", Code: "internal", Detail: "internal error"}
			if p != nil {
				reply.Code, reply.Detail = p.Code, p.Detail
			}
		} else {
			reply.AckedSeq = &acked
		}
		b, _ = json.Marshal(reply)
		wctx, wcancel := context.WithTimeout(ctx, wsWriteTimeout)
		err = conn.Write(wctx, websocket.MessageText, b)
		wcancel()
		if err != nil {
			return
		}
	}
}
