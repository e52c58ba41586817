package e2e

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/caddyportal/caddyportal/internal/e2etest"
	"github.com/caddyportal/caddyportal/internal/e2etest/echo"
)

// TestHostModeOnDemandTLS runs README's host-mode site for real: one HTTPS
// site serves the portal and its session hosts under one on-demand TLS
// policy (certificates from Caddy's local CA), and the portal's internal
// site answers the policy's `ask`. The portal's own host and a live
// session's host get certificates for their names and serve (the learner
// follows the activation link to the dashboard); a host of no live session
// gets no certificate. The portal's own host used to be refused: Caddy
// asks for it too, and the portal's HTTPS failed its handshake.
func TestHostModeOnDemandTLS(t *testing.T) {
	up := echo.Start(t, "alpha")
	dir := t.TempDir()
	tlsPort := e2etest.FreePort(t)
	portalHost := fmt.Sprintf("portal.localhost:%d", tlsPort)
	body := gateBody("url https://"+portalHost+"\n\t\tdashboards host sessions.localhost", up.Addr)
	p := &portal{&e2etest.Portal{T: t, Dir: dir, Port: e2etest.FreePort(t)}}
	p.Global = fmt.Sprintf(`	local_certs
	skip_install_trust
	auto_https disable_redirects
	on_demand_tls {
		ask http://127.0.0.1:%d/workshops/tls/ask
	}`, p.Port)
	p.Extra = fmt.Sprintf(`https://portal.localhost:%[1]d, https://*.sessions.localhost:%[1]d {
	bind 127.0.0.1
	tls {
		on_demand
	}
	portal {
%[2]s
	}
}
`, tlsPort, strings.ReplaceAll(body, "{dir}", filepath.Join(dir, "badger")))
	p.Start(body)
	e2etest.WaitOneListener(t, tlsPort)

	// Trust Caddy's local CA only, so a handshake that succeeds was served
	// a certificate that CA issued for the name asked.
	roots := x509.NewCertPool()
	root, err := os.ReadFile(filepath.Join(dir, "caddy", "pki", "authorities", "local", "root.crt"))
	if err != nil || !roots.AppendCertsFromPEM(root) {
		t.Fatalf("Caddy's local root certificate: %v", err)
	}
	jar, _ := cookiejar.New(nil)
	var d net.Dialer
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return d.DialContext(ctx, network, fmt.Sprintf("127.0.0.1:%d", tlsPort))
		},
		TLSClientConfig: &tls.Config{RootCAs: roots},
	}
	t.Cleanup(tr.CloseIdleConnections)
	client := &http.Client{Transport: tr, Jar: jar, Timeout: time.Minute}
	served := func(what, rawURL, header, value string) *http.Response {
		t.Helper()
		req, err := http.NewRequest("GET", rawURL, nil)
		if err != nil {
			t.Fatal(err)
		}
		if header != "" {
			req.Header.Set(header, value)
		}
		res, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		res.Body.Close()
		host := res.Request.URL.Hostname() // where the redirects ended
		if res.TLS == nil || len(res.TLS.PeerCertificates) == 0 || !slices.Contains(res.TLS.PeerCertificates[0].DNSNames, host) {
			t.Fatalf("%s: not served over TLS with a certificate for %s", what, host)
		}
		return res
	}

	tok := p.Token(e2etest.RobotUser, e2etest.RobotPass)
	if res := served("the portal's own host", "https://"+portalHost+"/workshops/catalog/environments/", "Authorization", "Bearer "+tok); res.StatusCode != http.StatusOK {
		t.Fatalf("the catalog over HTTPS: %d", res.StatusCode)
	}
	m := p.Request(tok, "demo-w01", "user=alice&index_url=https://hub.example.com/").JSON(t)
	name := m["name"].(string)
	// The activation link on the portal's host hands the browser over to
	// the session's host, which takes its ticket and shows the dashboard.
	res := served("the activation link and the session's host", "https://"+portalHost+m["url"].(string), "", "")
	if res.StatusCode != http.StatusOK || res.Request.URL.Host != fmt.Sprintf("%s.sessions.localhost:%d", name, tlsPort) {
		t.Fatalf("after the activation link: %d at %s, want the dashboard on the session's host", res.StatusCode, res.Request.URL)
	}
	page := get(t, client, fmt.Sprintf("https://%s.sessions.localhost:%d/", name, tlsPort), nil)
	if page.Status != http.StatusOK || !strings.Contains(string(page.Body), "Workshop dashboard") {
		t.Fatalf("the dashboard on the session's host: %d %s", page.Status, page.Body)
	}

	// No live session, no certificate: Caddy refuses the handshake.
	for _, host := range []string{"demo-w01-s999.sessions.localhost", "other.localhost"} {
		_, err := client.Get(fmt.Sprintf("https://%s:%d/", host, tlsPort))
		if err == nil || !strings.Contains(err.Error(), "tls") {
			t.Errorf("%s: %v, want a failed TLS handshake", host, err)
		}
	}
}
