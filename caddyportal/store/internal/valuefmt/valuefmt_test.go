package valuefmt

import (
	"bytes"
	"testing"
	"time"
)

func TestRoundTripAndExpiry(t *testing.T) {
	at := time.Unix(1700000000, 123456789)
	for _, c := range []struct {
		value    []byte
		expiring bool
	}{{[]byte("plain"), false}, {[]byte("expiring"), true}, {nil, false}, {nil, true}} {
		raw := Encode(c.value, c.expiring, at.UnixNano())
		r, err := Decode("test", raw)
		if err != nil || !bytes.Equal(r.Value, c.value) || r.Expiring != c.expiring {
			t.Fatalf("%q/%v: decoded %+v, %v", c.value, c.expiring, r, err)
		}
		if got := r.ExpiredAt(at.Add(-time.Nanosecond)); got {
			t.Fatalf("%q/%v expired a nanosecond early", c.value, c.expiring)
		}
		if got := r.ExpiredAt(at); got != c.expiring {
			t.Fatalf("%q/%v expired at its instant = %v", c.value, c.expiring, got)
		}
	}
	for _, raw := range [][]byte{nil, {0x01, 0, 0}, {0x07, 'x'}} {
		if _, err := Decode("test", raw); err == nil {
			t.Fatalf("%x decoded without error", raw)
		}
	}
}
