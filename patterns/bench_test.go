package patterns

import (
	"fmt"
	"math"
	"math/rand"
	"runtime"
	"strconv"
	"sync"
	"testing"
)

// benchPattern returns pattern i of a set of n: {cmd:c<i/w>, role:r<i%w>,
// v:<i%3>}, w = sqrt(n), so the tree is as wide at cmd as at role.
func benchPattern(i, n int) Pattern {
	w := int(math.Ceil(math.Sqrt(float64(n))))
	return Pattern{pairs: []Pair{
		{Key: "cmd", Value: "c" + strconv.Itoa(i/w)},
		{Key: "role", Value: "r" + strconv.Itoa(i%w)},
		{Key: "v", Value: strconv.Itoa(i % 3)},
	}}
}

// benchMessages returns 1024 messages of 3 to 5 pairs, each matching one of
// the n patterns (v is a float64, as encoding/json decodes it; some carry
// an unmatched number, a bool and a metadata key).
func benchMessages(n int) []map[string]any {
	rng := rand.New(rand.NewSource(1))
	msgs := make([]map[string]any, 1024)
	for j := range msgs {
		i := rng.Intn(n)
		p := benchPattern(i, n)
		m := map[string]any{}
		for _, pr := range p.pairs {
			m[pr.Key] = pr.Value
		}
		m["v"] = float64(i % 3)
		switch j % 3 {
		case 1:
			m["id"] = float64(j) + 0.5
		case 2:
			m["id"] = float64(j)
			m["ok"] = true
			m["tx$"] = "abc"
		}
		msgs[j] = m
	}
	return msgs
}

type benchSet struct {
	r    *Router[int]
	msgs []map[string]any
	heap float64 // heap bytes per pattern, patterns included
}

// benchSets caches the routers across benchmark runs of one process (the
// 1,000,000-pattern one takes seconds to build).
var (
	benchMu   sync.Mutex
	benchSets = map[int]*benchSet{}
)

func getBenchSet(n int) *benchSet {
	benchMu.Lock()
	defer benchMu.Unlock()
	if s := benchSets[n]; s != nil {
		return s
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	r := NewRouter[int]()
	for i := 0; i < n; i++ {
		r.Add(benchPattern(i, n), i)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	s := &benchSet{r: r, msgs: benchMessages(n), heap: float64(after.HeapAlloc-before.HeapAlloc) / float64(n)}
	benchSets[n] = s
	return s
}

func BenchmarkFind(b *testing.B) {
	for _, n := range []int{100, 10000, 1000000} {
		b.Run(fmt.Sprintf("patterns=%d", n), func(b *testing.B) {
			s := getBenchSet(n)
			for _, m := range s.msgs {
				if _, ok := s.r.Find(m); !ok {
					b.Fatalf("no match for %v", m)
				}
			}
			runtime.GC() // settle the heap the build left behind
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				s.r.Find(s.msgs[i&1023])
			}
			b.ReportMetric(s.heap, "heapB/pattern")
		})
	}
	// Baseline in the same run: a plain map lookup keyed by the message's
	// canonical pattern string, built per message as a naive router would.
	b.Run("baseline=map-by-canonical-string/patterns=10000", func(b *testing.B) {
		s := getBenchSet(10000)
		m := make(map[string]int, 10000)
		for i := 0; i < 10000; i++ {
			m[benchPattern(i, 10000).String()] = i
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := 0; i < b.N; i++ {
			msg := s.msgs[i&1023]
			k := "cmd:" + msg["cmd"].(string) + ",role:" + msg["role"].(string) + ",v:" + strconv.FormatFloat(msg["v"].(float64), 'g', -1, 64)
			_ = m[k]
		}
	})
}

func BenchmarkFindParallel(b *testing.B) {
	s := getBenchSet(10000)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			s.r.Find(s.msgs[i&1023])
			i++
		}
	})
}

func BenchmarkFindPattern(b *testing.B) {
	s := getBenchSet(10000)
	p := benchPattern(4242, 10000).With("x", "y")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s.r.FindPattern(p)
	}
}

func BenchmarkFindGlob(b *testing.B) {
	r := NewRouter[int]()
	r.Add(MustParse("role:user,cmd:log*"), 1)
	r.Add(MustParse("role:user,cmd:sign?up"), 2)
	r.Add(MustParse("role:*"), 3)
	msg := map[string]any{"role": "user", "cmd": "login", "id": 7.0}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		r.Find(msg)
	}
}

func BenchmarkAdd(b *testing.B) {
	const n = 1 << 16
	pats := make([]Pattern, n)
	for i := range pats {
		pats[i] = benchPattern(i, n)
	}
	b.ReportAllocs()
	b.ResetTimer()
	var r *Router[int]
	for i := 0; i < b.N; i++ {
		if i%n == 0 {
			b.StopTimer()
			r = NewRouter[int]()
			b.StartTimer()
		}
		r.Add(pats[i%n], i)
	}
}

func BenchmarkKey(b *testing.B) {
	p := MustParse("role:user,cmd:login,v:1")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Key(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParseKey(b *testing.B) {
	k, _ := Key(MustParse("role:user,cmd:login,v:1"))
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := ParseKey(k); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Parse("role:user,cmd:login,v:1"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkString(b *testing.B) {
	p := MustParse("role:user,cmd:login,v:1")
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = p.String()
	}
}

func BenchmarkMatch(b *testing.B) {
	p := MustParse("role:user,cmd:log*,v:1")
	msg := map[string]any{"role": "user", "cmd": "login", "v": 1.0, "id": 7.0}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if !p.Match(msg) {
			b.Fatal("no match")
		}
	}
}
