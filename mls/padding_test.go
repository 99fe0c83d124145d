package mls

import "testing"

func TestPaddingBuckets(t *testing.T) {
	for _, c := range []struct{ n, want int }{
		{0, 256}, {1, 256}, {256, 256}, {257, 272}, {300, 304}, {511, 512}, {512, 512}, {513, 544},
		{1000, 1024}, {1025, 1088}, {65000, 65536},
	} {
		if got := PaddedLength(c.n); got != c.want {
			t.Errorf("PaddedLength(%d) = %d, want %d", c.n, got, c.want)
		}
	}
	prev := 0
	for n := 0; n < 1<<17; n++ {
		p := PaddedLength(n)
		if p < n || !IsPaddedLength(p) || p < prev || float64(p) > 1.12*float64(max(n, MinPaddedBytes)) {
			t.Fatalf("PaddedLength(%d) = %d (previous %d)", n, p, prev)
		}
		if IsPaddedLength(n) != (p == n) {
			t.Fatalf("IsPaddedLength(%d) = %v but PaddedLength = %d", n, IsPaddedLength(n), p)
		}
		prev = p
	}
	if IsPaddedLength(255) || IsPaddedLength(257) || !IsPaddedLength(272) {
		t.Fatal("bucket membership")
	}
}
