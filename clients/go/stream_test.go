package client

import (
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestSSEReader(t *testing.T) {
	const in = "\ufeff: comment\r\nevent: ping\r\ndata: {}\r\n\r\nid: 7\ndata: a\ndata:b\n\nevent: message\rid: 8\rretry: 1500\rdata: c\r\r\n\ndata: ☃\r\n\r\ndata: no end"
	want := []SSEEvent{
		{Event: "ping", Data: "{}"},
		{Event: "message", ID: "7", Data: "a\nb"},
		{Event: "message", ID: "8", Data: "c", Retry: 1500},
		{Event: "message", ID: "8", Data: "☃"},
	}
	for name, r := range map[string]io.Reader{
		"whole":   strings.NewReader(in),
		"onebyte": iotest.OneByteReader(strings.NewReader(in)),
		"half":    iotest.HalfReader(strings.NewReader(in)),
	} {
		t.Run(name, func(t *testing.T) {
			sr := NewSSEReader(r)
			for i, w := range want {
				got, err := sr.Next()
				if err != nil {
					t.Fatalf("event %d: %v", i, err)
				}
				if *got != w {
					t.Fatalf("event %d: got %+v, want %+v", i, *got, w)
				}
			}
			if _, err := sr.Next(); err != io.EOF {
				t.Fatalf("after the last event: %v, want io.EOF", err)
			}
		})
	}
}

func TestSSEReaderLineLimit(t *testing.T) {
	sr := NewSSEReader(strings.NewReader("data: " + strings.Repeat("x", 2<<20) + "\n\n"))
	if _, err := sr.Next(); err != ErrLineTooLong {
		t.Fatalf("got %v, want ErrLineTooLong", err)
	}
}

func FuzzSSEReader(f *testing.F) {
	f.Add("data: a\n\n")
	f.Add("id: 1\revent: x\r\ndata: b\r\r")
	f.Fuzz(func(t *testing.T, s string) {
		sr := NewSSEReader(strings.NewReader(s))
		for i := 0; i < 10000; i++ {
			if _, err := sr.Next(); err != nil {
				return
			}
		}
	})
}
