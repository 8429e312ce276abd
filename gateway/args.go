package gateway

import "encoding/json"

// Request is the input of the acts the gateway makes, beside the pairs of
// the pattern acted on, for actions to decode:
//
//	services.AddFunc(svc, "module:user,if:load", func(ctx context.Context, in gateway.Request) (User, error) {
//		return load(ctx, in.Args.Params["id"])
//	})
type Request struct {
	Args Args `json:"args"`
}

// Args is what seneca-web calls args: the request's path parameters, query
// and body.
type Args struct {
	// Params holds the path's parameters by name (":id" gives "id"),
	// unescaped.
	Params map[string]string `json:"params"`
	// Query holds the query string's parameters: a string for a name that
	// appears once, an array of strings for one that appears more often
	// (as Express's query parser gives them; "a[b]=1" is the name "a[b]",
	// not an object). Decoded from JSON, arrays are []any.
	Query map[string]any `json:"query"`
	// Body is the request's JSON body as it arrived (every number with its
	// digits), or {} for a request without one.
	Body json.RawMessage `json:"body"`
}

// QueryValue returns the first value of the query parameter name, or "".
func (a Args) QueryValue(name string) string {
	switch v := a.Query[name].(type) {
	case string:
		return v
	case []string:
		if len(v) > 0 {
			return v[0]
		}
	case []any:
		if len(v) > 0 {
			s, _ := v[0].(string)
			return s
		}
	}
	return ""
}
