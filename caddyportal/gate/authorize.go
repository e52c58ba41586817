package gate

import (
	"context"
	"net/http"
	"net/url"

	"github.com/caddyportal/caddyportal/caddyportal/oauth"
	"go.uber.org/zap"
)

// CodeIssuer issues authorization codes (oauth.Issuer does).
type CodeIssuer interface {
	NewCode(ctx context.Context, g oauth.CodeGrant) (string, error)
}

// callbackPath is where an Educates workshop gateway receives its code
// (access.ts: INGRESS_PROTOCOL://<Host>/oauth_callback); the only redirect
// URI a session's client may name.
const callbackPath = "/oauth_callback"

// serveAuthorize is the authorization endpoint of a session's own OAuth
// client, on the session's host (host mode): the learner the dashboard
// cookie names consents by being there, so the dashboard gets a code for
// that learner and that session only. The redirect URI must be the
// session's own callback exactly; anything wrong with the client or the
// redirect URI is shown to the browser, never redirected to (RFC 6749
// 4.1.2.1), and other errors go back to the client.
func (g *Gate) serveAuthorize(w http.ResponseWriter, r *http.Request, name string) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		g.refused(page(w, http.StatusMethodNotAllowed, "Method not allowed", "The authorization endpoint answers GET only."))
		return
	}
	sess, user := g.admit(w, r, name)
	if sess == nil {
		return
	}
	q := r.URL.Query()
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	callback := scheme + "://" + r.Host + callbackPath
	why := ""
	switch {
	case g.o.Codes == nil || sess.ClientSecretHash == "":
		why = "this session's dashboard has no login client"
	case q.Get("client_id") != name:
		why = "the client is not this session's"
	case q.Get("redirect_uri") != callback:
		why = "the return address is not " + callback
	}
	if why != "" {
		g.refused(page(w, http.StatusBadRequest, "Login refused",
			"This workshop dashboard asked the portal to log you in, but "+why+"."))
		return
	}
	back := func(v url.Values) {
		v.Set("state", q.Get("state"))
		http.Redirect(w, r, callback+"?"+v.Encode(), http.StatusFound)
		g.metrics.GateRequest(sess.Environment, http.StatusFound)
	}
	method := q.Get("code_challenge_method")
	if q.Get("code_challenge") != "" && method == "" {
		method = "plain"
	}
	switch {
	case q.Get("response_type") != "code":
		back(url.Values{"error": {"unsupported_response_type"}})
		return
	case method != "" && method != "S256" && method != "plain":
		back(url.Values{"error": {"invalid_request"}, "error_description": {"unsupported code_challenge_method"}})
		return
	}
	code, err := g.o.Codes.NewCode(r.Context(), oauth.CodeGrant{Session: name, User: user, RedirectURI: callback,
		Challenge: q.Get("code_challenge"), Method: method})
	if err != nil {
		g.log.Warn("gate: issuing an authorization code", zap.String("session", name), zap.Error(err))
		back(url.Values{"error": {"temporarily_unavailable"}})
		return
	}
	back(url.Values{"code": {code}})
}
