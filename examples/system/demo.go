package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/patbus/patbus/examples/system/account"
	"github.com/patbus/patbus/examples/system/user"
)

// step is one request of the walkthrough and the answer it expects.
type step struct {
	title  string
	method string
	path   string // may hold {id}: the id of the user the walkthrough created
	body   string
	ctype  string // the Content-Type of the body; default application/json
	status int
	// want is a piece of the answer's body that must be there.
	want string
}

// walkthroughSteps are the requests of the walkthrough, in order.
func walkthroughSteps() []step {
	return []step{
		{title: "list the users (the sample users were created on the first start)", method: "GET", path: "/user", status: 200, want: `"name":"甲"`},
		{title: "create a user", method: "POST", path: "/user", body: `{"name":"丁","password":"丁的密码"}`, status: 200, want: `"name":"丁"`},
		{title: "load it", method: "GET", path: "/user/{id}", status: 200, want: `"name":"丁"`},
		{title: "rename it", method: "PUT", path: "/user/{id}", body: `{"name":"戊"}`, status: 200, want: `"success":true`},
		{title: "log in with its password (bcrypt hash in MongoDB)", method: "POST", path: "/login", body: `{"user":"戊","password":"丁的密码"}`, status: 200, want: `{"code":1000}`},
		{title: "log in with a wrong password", method: "POST", path: "/login", body: `{"user":"戊","password":"wrong"}`, status: 200, want: `{"code":2100}`},
		{title: "a name that is taken: 409", method: "POST", path: "/user", body: `{"name":"甲"}`, status: 409, want: `"code":"conflict"`},
		{title: "a body that is not JSON: 400", method: "POST", path: "/user", body: `{"name":`, status: 400, want: `"code":"invalid_input"`},
		{title: "an id that is not an id: 400", method: "GET", path: "/user/42", status: 400, want: `"code":"invalid_input"`},
		{title: "delete it", method: "DELETE", path: "/user/{id}", status: 200, want: `{"success":true}`},
		{title: "load it again: 404", method: "GET", path: "/user/{id}", status: 404, want: `"code":"not_found"`},
		{title: "delete it again: {success:false}, as the reference system answers", method: "DELETE", path: "/user/{id}", status: 200, want: `{"success":false}`},
		{title: "a path no route has: 404", method: "GET", path: "/nowhere", status: 404, want: `"code":"not_found"`},
		{title: "the configuration, from the config service", method: "GET", path: "/config", status: 200, want: `"system":"patbus reference system"`},
	}
}

// walkthrough plays walkthroughSteps against the gateway at base, printing
// each request and response to out, then asks the account service for a
// sample user on its queue. It fails at the first answer that is not the
// expected one.
func walkthrough(ctx context.Context, out io.Writer, base string, sys *system) error {
	client := &http.Client{Timeout: 15 * time.Second}
	defer client.CloseIdleConnections()
	fmt.Fprintf(out, "\nwalkthrough against %s\n", base)
	var id string
	for i, st := range walkthroughSteps() {
		path := strings.ReplaceAll(st.path, "{id}", id)
		fmt.Fprintf(out, "\n%d. %s\n   > %s %s", i+1, st.title, st.method, path)
		if st.body != "" {
			fmt.Fprintf(out, " %s", st.body)
		}
		fmt.Fprintln(out)
		status, body, err := send(ctx, client, st.method, base+path, st.body, st.ctype)
		if err != nil {
			return fmt.Errorf("walkthrough step %d (%s %s): %w", i+1, st.method, path, err)
		}
		fmt.Fprintf(out, "   < %d %s %s\n", status, http.StatusText(status), body)
		if status != st.status || !strings.Contains(string(body), st.want) {
			return fmt.Errorf("walkthrough step %d (%s %s): answered %d %s, want %d with %s", i+1, st.method, path, status, body, st.status, st.want)
		}
		if id == "" && st.method == "POST" && st.path == "/user" && status == 200 {
			var u user.User
			if err := json.Unmarshal(body, &u); err != nil || u.ID == "" {
				return fmt.Errorf("walkthrough step %d: no id in %s", i+1, body)
			}
			id = u.ID
		}
	}

	// The account service, on its queue as in RabbitMQ's RPC tutorial.
	first, err := sys.users.Collection().List(ctx, nil)
	if err != nil || len(first) == 0 {
		return fmt.Errorf("walkthrough: no user to ask the account service for: %v", err)
	}
	req := account.Request{Method: account.Method, UID: first[0].ID}
	reqBody, _ := json.Marshal(req)
	fmt.Fprintf(out, "\n%d. ask the account service on its queue (RPC)\n   > %s %s\n", len(walkthroughSteps())+1, sys.s.accountQueue(), reqBody)
	resp, err := account.Call(ctx, sys.b, sys.s.accountQueue(), req)
	if err != nil {
		return fmt.Errorf("walkthrough: account RPC: %w", err)
	}
	respBody, _ := json.Marshal(resp)
	fmt.Fprintf(out, "   < %s\n", respBody)
	if resp.State != account.StateOK {
		return fmt.Errorf("walkthrough: account RPC answered %s, want state %d", respBody, account.StateOK)
	}
	fmt.Fprintln(out, "\nwalkthrough done: every answer was the expected one")
	return nil
}

// send makes one request and returns the status and the body.
func send(ctx context.Context, c *http.Client, method, url, body, ctype string) (int, []byte, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, nil, err
	}
	if body != "" {
		if ctype == "" {
			ctype = "application/json"
		}
		req.Header.Set("Content-Type", ctype)
	}
	res, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	return res.StatusCode, bytes.TrimSpace(b), err
}
