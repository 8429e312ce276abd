package patterns_test

import (
	"encoding/json"
	"fmt"

	"github.com/patbus/patbus/patterns"
)

func ExampleParse() {
	p, err := patterns.Parse(`{ role: user, cmd: login, v: 1.0, note: "a,b:c" }`)
	if err != nil {
		panic(err)
	}
	fmt.Println(p)

	_, err = patterns.Parse("role:user,cmd")
	fmt.Println(err)
	// Output:
	// cmd:login,note:"a,b:c",role:user,v:1
	// patterns: invalid pattern: missing value for "cmd" (expected ':') at offset 13
}

// Keys are visited in sorted order and the router commits to the first key
// that matches: {a:1} wins for {a:1,b:1,c:1} although {b:1,c:1} has more
// pairs. More pairs win only among patterns that share their leading keys.
func ExampleRouter_Find() {
	r := patterns.NewRouter[string]()
	r.Add(patterns.MustParse("b:1,c:1"), "{b:1,c:1}")
	r.Add(patterns.MustParse("a:1"), "{a:1}")

	for _, js := range []string{`{"a":1,"b":1,"c":1}`, `{"b":1,"c":1}`, `{"a":2,"b":1,"c":1}`} {
		var msg map[string]any
		_ = json.Unmarshal([]byte(js), &msg)
		v, ok := r.Find(msg)
		fmt.Println(js, "->", v, ok)
	}

	// Among patterns that share the leading key a, more pairs win.
	r.Add(patterns.MustParse("a:1,b:1"), "{a:1,b:1}")
	v, _ := r.Find(map[string]any{"a": 1, "b": 1, "c": 1})
	fmt.Println(v)
	// Output:
	// {"a":1,"b":1,"c":1} -> {a:1} true
	// {"b":1,"c":1} -> {b:1,c:1} true
	// {"a":2,"b":1,"c":1} -> {b:1,c:1} true
	// {a:1,b:1}
}

func ExampleKey() {
	key, _ := patterns.Key(patterns.MustParse("role:user,cmd:login"))
	fmt.Println(key)

	key, _ = patterns.Key(patterns.MustParse(`host:"db.local",v:1.5`))
	fmt.Println(key)
	p, _ := patterns.ParseKey(key)
	fmt.Println(p)

	bind, _ := patterns.BindingKey(patterns.MustParse("role:user,cmd:log*,zone:eu"))
	fmt.Println(bind)
	// Output:
	// cmd:login.role:user
	// host:db%2Elocal.v:1%2E5
	// host:db.local,v:1.5
	// #.role:user.#.zone:eu.#
}

func ExampleRouter_Explain() {
	r := patterns.NewRouter[string]()
	r.Add(patterns.MustParse("a:1,b:2"), "X")
	r.Add(patterns.MustParse("c:3"), "Y")

	fmt.Println(r.Explain(map[string]any{"a": 1, "b": 0, "c": 3}))
	// Output:
	// found c:3
	//   a: "1" exact
	//   b: "0" skip (no match)
	//   backtrack to c
	//   c: "3" exact -> c:3
}

// Collect gathers every pattern the walk meets, in walk order: keys sort
// cmd < role < zone, so the branch that tests cmd comes first.
func ExampleRouter_Collect() {
	r := patterns.NewRouter[string]()
	r.Add(patterns.MustParse(""), "all")
	r.Add(patterns.MustParse("role:user"), "user")
	r.Add(patterns.MustParse("role:user,cmd:log*"), "log")
	r.Add(patterns.MustParse("zone:eu"), "eu")

	fmt.Println(r.Collect(map[string]any{"role": "user", "cmd": "login", "zone": "eu"}))
	// Output:
	// [all log user eu]
}

func ExamplePattern_Match() {
	sub := patterns.MustParse("role:user,cmd:log*")
	fmt.Println(sub.Match(map[string]any{"role": "user", "cmd": "logout", "id": 7}))
	fmt.Println(sub.Match(map[string]any{"role": "user", "cmd": "signup"}))
	// Output:
	// true
	// false
}
