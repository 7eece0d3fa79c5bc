package formatted

import (
	"strconv"
	"sync"
	"testing"
)

// Values gives format's value for every number, shared and capped, from
// its slot once formatted; a number that takes another's slot is
// formatted again, and both are always right; concurrent callers agree.
func TestValues(t *testing.T) {
	calls := 0
	c := New(func(n int64) string { calls++; return strconv.FormatInt(n, 10) })
	for _, n := range []int64{0, 7, 4096 + 7, -3, 1 << 40} {
		v := c.Values(n)
		if len(v) != 1 || cap(v) != 1 || v[0] != strconv.FormatInt(n, 10) {
			t.Errorf("Values(%d) = %q (cap %d)", n, v, cap(v))
		}
	}
	before := calls
	if v := c.Values(1 << 40); v[0] != "1099511627776" || calls != before {
		t.Errorf("a number in its slot was formatted again (%d calls)", calls-before)
	}
	if c.Values(7)[0] != "7" || calls != before+1 {
		t.Errorf("7, whose slot 4103 took, not formatted again")
	}
	if n := testing.AllocsPerRun(100, func() { c.Values(7) }); n != 0 {
		t.Errorf("Values of a number in its slot: %v allocations", n)
	}
	c = New(func(n int64) string { return strconv.FormatInt(n, 10) })
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20000 {
				n := int64(i%8192 + g)
				if v := c.Values(n); v[0] != strconv.FormatInt(n, 10) {
					t.Errorf("Values(%d) = %q", n, v)
					return
				}
			}
		}()
	}
	wg.Wait()
}
