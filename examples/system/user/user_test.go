package user_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/patbus/patbus"
	"github.com/patbus/patbus/examples/system/internal/systest"
	"github.com/patbus/patbus/examples/system/user"
	"github.com/patbus/patbus/gateway"
	"github.com/patbus/patbus/store"
)

// newModule returns a module over a database of its own, with cheap
// hashes.
func newModule(t *testing.T, opts ...user.Option) (*user.Module, *store.DB) {
	t.Helper()
	db, _ := systest.DB(t)
	m, err := user.New(ctxT(t), db, append([]user.Option{user.WithBcryptCost(bcrypt.MinCost)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return m, db
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// req builds the gateway's input.
func req(id, body string) gateway.Request {
	r := gateway.Request{Args: gateway.Args{Params: map[string]string{}, Body: json.RawMessage(body)}}
	if id != "" {
		r.Args.Params["id"] = id
	}
	if body == "" {
		r.Args.Body = json.RawMessage("{}")
	}
	return r
}

func code(err error) string { return patbus.Code(err) }

func TestSamplesAreCreatedOnce(t *testing.T) {
	m, db := newModule(t)
	ctx := ctxT(t)
	users, err := m.List(ctx, req("", ""))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range users {
		names = append(names, u.Name)
	}
	if fmt.Sprint(names) != "[asd 甲 乙 丙]" {
		t.Fatalf("the users are %q, want the samples asd 甲 乙 丙 in order", names)
	}
	// A second module on the same database (another instance) creates
	// nothing more.
	if _, err := user.New(ctx, db, user.WithBcryptCost(bcrypt.MinCost)); err != nil {
		t.Fatal(err)
	}
	if again, _ := m.List(ctx, req("", "")); len(again) != 4 {
		t.Fatalf("after a second start there are %d users, want 4", len(again))
	}
	// The samples log in with "123".
	for _, n := range names {
		res, err := m.Login(ctx, user.Credentials{User: n, Password: "123"})
		if err != nil || res.Code != user.LoginOK {
			t.Errorf("login %s/123: %v %v, want code %d", n, res, err, user.LoginOK)
		}
	}
}

func TestInstancesStartingAtOnceCreateTheSamplesOnce(t *testing.T) {
	db, _ := systest.DB(t)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := user.New(ctx, db, user.WithBcryptCost(bcrypt.MinCost))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	coll, _ := store.NewCollection[user.User](db, user.CollectionName)
	if n, err := coll.Count(ctx, nil); err != nil || n != 4 {
		t.Fatalf("%d users (%v), want the 4 samples once", n, err)
	}
}

func TestCRUD(t *testing.T) {
	m, _ := newModule(t, user.WithSamples(nil))
	ctx := ctxT(t)
	if all, err := m.List(ctx, req("", "")); err != nil || len(all) != 0 {
		t.Fatalf("list without samples: %v %v, want none", all, err)
	}
	u, err := m.Create(ctx, req("", `{"name":"  丁  ","password":"pw"}`))
	if err != nil {
		t.Fatal(err)
	}
	if u.Name != "丁" || !store.ValidID(u.ID) || u.Created.IsZero() {
		t.Fatalf("created %+v", u)
	}
	raw, _ := json.Marshal(u)
	var asJSON map[string]any
	_ = json.Unmarshal(raw, &asJSON)
	if _, ok := asJSON["password"]; ok || asJSON["id"] != u.ID || asJSON["name"] != "丁" {
		t.Fatalf("a user's JSON is %s", raw)
	}

	got, err := m.Load(ctx, req(u.ID, ""))
	if err != nil || got.Name != "丁" || got.ID != u.ID {
		t.Fatalf("load: %+v %v", got, err)
	}

	res, err := m.Edit(ctx, req(u.ID, `{"name":"戊"}`))
	if err != nil || !res.Success || res.User == nil || res.User.Name != "戊" || !res.User.Created.Equal(u.Created) {
		t.Fatalf("edit: %+v %v", res, err)
	}
	// The password is kept by an edit of the name...
	if r, _ := m.Login(ctx, user.Credentials{User: "戊", Password: "pw"}); r.Code != user.LoginOK {
		t.Fatalf("login after a rename: %v", r)
	}
	// ... and the name by an edit of the password.
	if res, err := m.Edit(ctx, req(u.ID, `{"password":"new"}`)); err != nil || !res.Success || res.User.Name != "戊" {
		t.Fatalf("edit of the password: %+v %v", res, err)
	}
	if r, _ := m.Login(ctx, user.Credentials{User: "戊", Password: "new"}); r.Code != user.LoginOK {
		t.Fatalf("login with the new password: %v", r)
	}
	if r, _ := m.Login(ctx, user.Credentials{User: "戊", Password: "pw"}); r.Code != user.LoginFailed {
		t.Fatalf("login with the old password: %v", r)
	}

	if res, err := m.Delete(ctx, req(u.ID, "")); err != nil || !res.Success {
		t.Fatalf("delete: %+v %v", res, err)
	}
	if _, err := m.Load(ctx, req(u.ID, "")); code(err) != patbus.CodeNotFound {
		t.Fatalf("load after delete: %v, want not_found", err)
	}
	// Edit and delete of a missing id answer {success:false}, as the
	// reference system does.
	if res, err := m.Edit(ctx, req(u.ID, `{"name":"己"}`)); err != nil || res.Success || res.User != nil {
		t.Fatalf("edit of a missing id: %+v %v, want {success:false}", res, err)
	}
	if res, err := m.Delete(ctx, req(u.ID, "")); err != nil || res.Success {
		t.Fatalf("delete of a missing id: %+v %v, want {success:false}", res, err)
	}
	b, _ := json.Marshal(user.Result{})
	if string(b) != `{"success":false}` {
		t.Fatalf("Result{} is %s", b)
	}
}

func TestConflicts(t *testing.T) {
	m, _ := newModule(t)
	ctx := ctxT(t)
	if _, err := m.Create(ctx, req("", `{"name":"甲"}`)); code(err) != patbus.CodeConflict {
		t.Fatalf("create of a taken name: %v, want conflict", err)
	}
	u, err := m.Create(ctx, req("", `{"name":"丁"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Edit(ctx, req(u.ID, `{"name":"乙"}`)); code(err) != patbus.CodeConflict {
		t.Fatalf("rename to a taken name: %v, want conflict", err)
	}
	if got, _ := m.Load(ctx, req(u.ID, "")); got.Name != "丁" {
		t.Fatalf("after a refused rename the name is %q", got.Name)
	}
}

func TestBadInput(t *testing.T) {
	m, _ := newModule(t)
	ctx := ctxT(t)
	u, err := m.Create(ctx, req("", `{"name":"丁"}`))
	if err != nil {
		t.Fatal(err)
	}
	long := make([]rune, user.MaxNameLength+1)
	for i := range long {
		long[i] = '名'
	}
	pw73 := `"` + strings.Repeat("p", user.MaxPasswordLength+1) + `"`
	tests := []struct {
		name string
		call func() error
	}{
		{"create without a name", func() error { _, err := m.Create(ctx, req("", `{"password":"x"}`)); return err }},
		{"create with an empty name", func() error { _, err := m.Create(ctx, req("", `{"name":"   "}`)); return err }},
		{"create with a long name", func() error {
			_, err := m.Create(ctx, req("", `{"name":"`+string(long)+`"}`))
			return err
		}},
		{"create with a control character", func() error { _, err := m.Create(ctx, req("", `{"name":"a\u0007b"}`)); return err }},
		{"create with an unknown field", func() error { _, err := m.Create(ctx, req("", `{"name":"x","admin":true}`)); return err }},
		{"create with a name that is a number", func() error { _, err := m.Create(ctx, req("", `{"name":7}`)); return err }},
		{"create with an empty password", func() error { _, err := m.Create(ctx, req("", `{"name":"x","password":""}`)); return err }},
		{"create with a password over 72 bytes", func() error { _, err := m.Create(ctx, req("", `{"name":"x","password":`+pw73+`}`)); return err }},
		{"edit with nothing to change", func() error { _, err := m.Edit(ctx, req(u.ID, `{}`)); return err }},
		{"load of an id that is not one", func() error { _, err := m.Load(ctx, req("42", "")); return err }},
		{"load without an id", func() error { _, err := m.Load(ctx, req("", "")); return err }},
		{"edit of an id that is not one", func() error { _, err := m.Edit(ctx, req("../x", `{"name":"y"}`)); return err }},
		{"delete of an id that is not one", func() error { _, err := m.Delete(ctx, req("ZZZ", "")); return err }},
		{"login with a body that is not an object", func() error {
			_, err := m.Login(ctx, user.Credentials{Args: &gateway.Args{Body: json.RawMessage(`[1]`)}})
			return err
		}},
	}
	for _, tt := range tests {
		if err := tt.call(); code(err) != patbus.CodeInvalidInput {
			t.Errorf("%s: %v, want invalid_input", tt.name, err)
		}
	}
	if all, _ := m.List(ctx, req("", "")); len(all) != 5 {
		t.Errorf("%d users after the refused requests, want 5", len(all))
	}
}

// Two spellings of one name are one user, and invisible characters are
// refused, on create, on edit and in the sample users.
func TestLookAlikeNames(t *testing.T) {
	m, db := newModule(t)
	ctx := ctxT(t)
	// "é" as e and a combining acute accent is stored composed, as one
	// character, and with its password logs in under either spelling.
	u, err := m.Create(ctx, req("", `{"name":" e\u0301 ","password":"pw"}`))
	if err != nil {
		t.Fatal(err)
	}
	if u.Name != "\u00e9" {
		t.Fatalf("the decomposed name is stored as %+q, want %+q", u.Name, "\u00e9")
	}
	if got, _ := m.Load(ctx, req(u.ID, "")); got.Name != "\u00e9" {
		t.Fatalf("the stored name is %+q, want %+q", got.Name, "\u00e9")
	}
	if _, err := m.Create(ctx, req("", `{"name":"\u00e9"}`)); code(err) != patbus.CodeConflict {
		t.Fatalf("create of the composed spelling of a taken name: %v, want conflict", err)
	}
	other, err := m.Create(ctx, req("", `{"name":"丁"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Edit(ctx, req(other.ID, `{"name":"e\u0301"}`)); code(err) != patbus.CodeConflict {
		t.Fatalf("rename to the decomposed spelling of a taken name: %v, want conflict", err)
	}
	// Hangul: a syllable written as its jamo is the syllable.
	if _, err := m.Create(ctx, req("", `{"name":"\u1100\u1161"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create(ctx, req("", `{"name":"\uac00"}`)); code(err) != patbus.CodeConflict {
		t.Fatalf("create of 가 after its jamo: %v, want conflict", err)
	}

	invisible := []struct{ name, json string }{
		{"a zero-width space after 甲", `甲\u200b`},
		{"a byte order mark before 甲", `\ufeff甲`},
		{"a zero-width joiner inside", `甲\u200d乙`},
		{"a right-to-left override", `a\u202eb`},
		{"a left-to-right isolate", `\u2066甲\u2069`},
		{"a soft hyphen", `a\u00adb`},
	}
	for _, tt := range invisible {
		if _, err := m.Create(ctx, req("", `{"name":"`+tt.json+`"}`)); code(err) != patbus.CodeInvalidInput {
			t.Errorf("create with %s: %v, want invalid_input", tt.name, err)
		}
		if _, err := m.Edit(ctx, req(other.ID, `{"name":"`+tt.json+`"}`)); code(err) != patbus.CodeInvalidInput {
			t.Errorf("rename with %s: %v, want invalid_input", tt.name, err)
		}
	}
	all, err := m.List(ctx, req("", ""))
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 4+3 {
		t.Errorf("%d users after the refused requests, want the 4 samples and 3 more", len(all))
	}

	for _, name := range []string{"e\u0301", "\u00e9", "  e\u0301\t"} {
		if r, err := m.Login(ctx, user.Credentials{User: name, Password: "pw"}); err != nil || r.Code != user.LoginOK {
			t.Errorf("login as %+q: %+v %v, want code %d", name, r, err, user.LoginOK)
		}
	}
	body := &gateway.Args{Body: json.RawMessage(`{"user":" e\u0301","password":"pw"}`)}
	if r, err := m.Login(ctx, user.Credentials{Args: body}); err != nil || r.Code != user.LoginOK {
		t.Errorf("login as a decomposed name in args.body: %+v %v, want code %d", r, err, user.LoginOK)
	}
	if r, err := m.Login(ctx, user.Credentials{User: "甲\u200b", Password: "123"}); err != nil || r.Code != user.LoginFailed {
		t.Errorf("login as 甲 with a zero-width space: %+v %v, want code %d", r, err, user.LoginFailed)
	}

	// A sample user's name is checked the same way.
	if _, err := user.New(ctx, db, user.WithSamples([]user.Sample{{Name: "丙\u200b"}})); !errors.Is(err, patbus.ErrInvalidConfig) {
		t.Fatalf("a sample user with a zero-width space: %v, want ErrInvalidConfig", err)
	}
}

// A sample user is stored as create stores a name: trimmed, in NFC.
func TestSampleNamesAreNormalised(t *testing.T) {
	m, _ := newModule(t, user.WithSamples([]user.Sample{{Name: " e\u0301 ", Password: "123"}}))
	ctx := ctxT(t)
	all, err := m.List(ctx, req("", ""))
	if err != nil || len(all) != 1 || all[0].Name != "\u00e9" {
		t.Fatalf("the sample users are %+v (%v), want one named %+q", all, err, "\u00e9")
	}
	if r, err := m.Login(ctx, user.Credentials{User: "\u00e9", Password: "123"}); err != nil || r.Code != user.LoginOK {
		t.Fatalf("login as the sample: %+v %v", r, err)
	}
}

// Login trims the name it is given, as create does.
func TestLoginTrimsTheName(t *testing.T) {
	m, _ := newModule(t)
	ctx := ctxT(t)
	for _, name := range []string{" 甲", "甲 ", "\t甲\n", "\u3000甲"} {
		if r, err := m.Login(ctx, user.Credentials{User: name, Password: "123"}); err != nil || r.Code != user.LoginOK {
			t.Errorf("login as %+q: %+v %v, want code %d", name, r, err, user.LoginOK)
		}
	}
}

func TestLogin(t *testing.T) {
	m, _ := newModule(t)
	ctx := ctxT(t)
	if _, err := m.Create(ctx, req("", `{"name":"nopassword"}`)); err != nil {
		t.Fatal(err)
	}
	body := func(s string) *gateway.Args { return &gateway.Args{Body: json.RawMessage(s)} }
	tests := []struct {
		name string
		in   user.Credentials
		want int
	}{
		{"the login example's user", user.Credentials{User: "asd", Password: "123"}, user.LoginOK},
		{"a UTF-8 name", user.Credentials{User: "甲", Password: "123"}, user.LoginOK},
		{"a wrong password", user.Credentials{User: "asd", Password: "1234"}, user.LoginFailed},
		{"an empty password", user.Credentials{User: "asd"}, user.LoginFailed},
		{"no such user", user.Credentials{User: "bob", Password: "123"}, user.LoginFailed},
		{"no user at all", user.Credentials{Password: "123"}, user.LoginFailed},
		{"a user without a password", user.Credentials{User: "nopassword"}, user.LoginFailed},
		{"in the gateway's args.body", user.Credentials{Args: body(`{"user":"乙","password":"123"}`)}, user.LoginOK},
		{"a wrong password in args.body", user.Credentials{Args: body(`{"user":"乙","password":"x"}`)}, user.LoginFailed},
		{"a name that is a query", user.Credentials{User: `{"$ne":""}`, Password: "123"}, user.LoginFailed},
	}
	for _, tt := range tests {
		res, err := m.Login(ctx, tt.in)
		if err != nil || res.Code != tt.want {
			t.Errorf("%s: %+v %v, want code %d", tt.name, res, err, tt.want)
		}
	}
	// The hash is bcrypt's, in MongoDB.
	u, err := m.Collection().LoadBy(ctx, store.Filter{"name": "asd"})
	if err != nil {
		t.Fatal(err)
	}
	if bcrypt.CompareHashAndPassword(u.Password, []byte("123")) != nil {
		t.Fatalf("the stored password of asd is not a bcrypt hash of 123: %q", u.Password)
	}
}

// Two edits of one user at once, one of the name and one of the
// password, both stay: the user has the new name and logs in with the new
// password.
func TestConcurrentEditsOfOneUser(t *testing.T) {
	m, _ := newModule(t, user.WithSamples(nil))
	ctx := ctxT(t)
	for i := range 20 {
		u, err := m.Create(ctx, req("", fmt.Sprintf(`{"name":"甲%d","password":"old"}`, i)))
		if err != nil {
			t.Fatal(err)
		}
		renamed := fmt.Sprintf("乙%d", i)
		var wg sync.WaitGroup
		results := make([]user.Result, 2)
		errs := make([]error, 2)
		for j, body := range []string{`{"name":"` + renamed + `"}`, `{"password":"new"}`} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				results[j], errs[j] = m.Edit(ctx, req(u.ID, body))
			}()
		}
		wg.Wait()
		for j := range results {
			if errs[j] != nil || !results[j].Success {
				t.Fatalf("trial %d: edit %d: %+v %v", i, j, results[j], errs[j])
			}
		}
		got, err := m.Load(ctx, req(u.ID, ""))
		if err != nil || got.Name != renamed {
			t.Fatalf("trial %d: after the edits the user is %+v (%v), want the name %s", i, got, err, renamed)
		}
		if r, err := m.Login(ctx, user.Credentials{User: renamed, Password: "new"}); err != nil || r.Code != user.LoginOK {
			t.Fatalf("trial %d: login with the new password: %+v %v; one edit was lost", i, r, err)
		}
	}
}

func TestConcurrentCreates(t *testing.T) {
	m, _ := newModule(t, user.WithSamples(nil))
	ctx := ctxT(t)
	const n = 100
	ids := make(chan string, 2*n)
	errs := make(chan error, 2*n)
	var wg sync.WaitGroup
	for i := 0; i < 2*n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Every name twice: one of the two must lose.
			u, err := m.Create(ctx, req("", fmt.Sprintf(`{"name":"用户%d"}`, i%n)))
			if err != nil {
				errs <- err
				return
			}
			ids <- u.ID
		}()
	}
	wg.Wait()
	close(ids)
	close(errs)
	seen := map[string]bool{}
	for id := range ids {
		if seen[id] {
			t.Fatalf("id %s twice", id)
		}
		seen[id] = true
	}
	conflicts := 0
	for err := range errs {
		if !errors.Is(err, store.ErrConflict) {
			t.Fatalf("a create failed with %v", err)
		}
		conflicts++
	}
	all, _ := m.List(ctx, req("", ""))
	names := map[string]bool{}
	for _, u := range all {
		names[u.Name] = true
	}
	if len(seen) != n || conflicts != n || len(all) != n || len(names) != n {
		t.Fatalf("%d created, %d conflicts, %d stored with %d names; want %d, %d, %d, %d", len(seen), conflicts, len(all), len(names), n, n, n, n)
	}
}

func TestInvalidOptions(t *testing.T) {
	db, _ := systest.DB(t)
	_, err := user.New(ctxT(t), db, user.WithBcryptCost(1), user.WithSamples([]user.Sample{{Name: ""}}))
	if !errors.Is(err, patbus.ErrInvalidConfig) {
		t.Fatalf("bad options: %v, want ErrInvalidConfig", err)
	}
	for _, want := range []string{"bcrypt cost", "sample user"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the error %q does not say %q", err, want)
		}
	}
	if _, err := user.New(ctxT(t), nil); !errors.Is(err, patbus.ErrInvalidConfig) {
		t.Fatalf("nil DB: %v", err)
	}
}
