package models

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestNormalizeUsername(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"alice", "alice", true},
		{"Alice.B_C-1", "alice.b_c-1", true},
		{"  bob  ", "bob", true},
		{"abc", "abc", true},
		{strings.Repeat("a", 32), strings.Repeat("a", 32), true},
		{"ab", "", false},
		{strings.Repeat("a", 33), "", false},
		{"al ice", "", false},
		{"alice@home", "", false},
		{"ålice", "", false},
		{"ａｌｉｃｅ", "", false}, // full-width letters do not fold into ASCII
		{"", "", false},
	}
	for _, tt := range tests {
		got, err := NormalizeUsername(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("NormalizeUsername(%q) = %q, %v", tt.in, got, err)
		}
		if err != nil && !IsCode(err, EINVALID) {
			t.Errorf("error code %v", err)
		}
	}
}

func TestCleanName(t *testing.T) {
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"Alice's phone", "Alice's phone", true},
		{"  Zoë  ", "Zoë", true},
		{"", "", false},
		{"   ", "", false},
		{"a\nb", "", false},
		{"a\u2028b", "", false},
		{strings.Repeat("é", 64), strings.Repeat("é", 64), true},
		{strings.Repeat("é", 65), "", false},
		{"bad\xffutf8", "", false},
	}
	for _, tt := range tests {
		got, err := CleanName("device_name", tt.in, 64)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("CleanName(%q) = %q, %v", tt.in, got, err)
		}
	}
}

func TestInviteCodes(t *testing.T) {
	code, hash := NewInviteCode()
	raw := strings.ReplaceAll(code, "-", "")
	if len(raw) != 32 || len(code) != 39 { // 160 bits in base32, 8 groups of 4
		t.Fatalf("code %q", code)
	}
	if !bytes.Equal(HashInviteCode(strings.ToUpper(code)), hash) || !bytes.Equal(HashInviteCode(raw), hash) ||
		!bytes.Equal(HashInviteCode(strings.ReplaceAll(code, "-", " ")), hash) {
		t.Fatal("typing variants do not hash alike")
	}
	other, _ := NewInviteCode()
	if other == code || bytes.Equal(HashInviteCode(other), hash) {
		t.Fatal("codes repeat")
	}
}

// FuzzNames: the validators never panic, and what they accept satisfies
// the documented rules.
func FuzzNames(f *testing.F) {
	for _, s := range []string{"alice", "A.b-c_d", "x\x00y", "ålice", "   ", strings.Repeat("z", 40)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if u, err := NormalizeUsername(s); err == nil {
			if len(u) < 3 || len(u) > 32 || strings.ToLower(u) != u {
				t.Fatalf("accepted username %q", u)
			}
			if again, err := NormalizeUsername(u); err != nil || again != u {
				t.Fatalf("not idempotent: %q", u)
			}
		}
		if n, err := CleanName("name", s, 64); err == nil {
			if n == "" || utf8.RuneCountInString(n) > 64 || !utf8.ValidString(n) || strings.ContainsAny(n, "\x00\n\r\t") {
				t.Fatalf("accepted name %q", n)
			}
		}
		_ = HashInviteCode(s)
	})
}
