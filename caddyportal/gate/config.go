package gate

import (
	"encoding/json"
	"net/http"
	"strings"

	"go.uber.org/zap"

	"github.com/caddyportal/caddyportal/caddyportal/httperr"
	"github.com/caddyportal/caddyportal/caddyportal/routes"
	"github.com/caddyportal/caddyportal/caddyportal/sessions"
)

// configVariables are the keys of Educates' workshop-variables.json that
// come from the environment (its template's add_param_from_environ): each
// is the variable of the same name in upper case, or "" when the
// environment has none.
var configVariables = []string{"google_tracking_id", "clarity_tracking_id", "amplitude_tracking_id",
	"platform_arch", "image_repository", "oci_image_cache", "assets_repository", "workshop_name",
	"environment_name", "session_name", "session_id", "session_url", "session_namespace",
	"workshop_namespace", "training_portal", "session_hostname", "cluster_domain", "ingress_domain",
	"ingress_protocol", "ingress_port_suffix", "ingress_port", "ingress_class", "storage_class",
	"policy_engine", "policy_name", "services_password", "config_password", "kubernetes_api_url",
	"registry_host", "registry_username", "registry_password", "registry_auth_token", "registry_secret",
	"registry_auth_file", "git_protocol", "git_host", "git_username", "git_password", "git_auth_token",
	"restart_url"}

// configEmpty are the keys of workshop-variables.json that come from
// files an Educates session has (SSH keys, a Kubernetes service account)
// and a portal environment does not: always "".
var configEmpty = []string{"ssh_private_key", "ssh_public_key", "kubernetes_token", "kubernetes_ca_crt", "pathway_name"}

// serveConfig serves a session's config/<type>?token=<config password>,
// which Educates' workshop gateway serves on the session's host; here the
// gate answers it for every kind of workshop, from the variables the
// portal gives the environment. tail is the escaped path after the
// session's prefix (path mode) or the session host's path (host mode).
// It reports whether it answered: a request without the right token is
// any other dashboard request, as in Educates, whose gateway passes it on
// to its login and then to the dashboard.
func (g *Gate) serveConfig(w http.ResponseWriter, r *http.Request, name, tail string) bool {
	typ, ok := routes.ConfigType(tail)
	if !ok || r.Method != http.MethodGet && r.Method != http.MethodHead {
		return false
	}
	token := r.URL.Query().Get("token")
	if token == "" {
		return false
	}
	sess, err := g.svc.GetCached(r.Context(), name)
	if err == nil && sess.ConfigPassword == "" {
		// The cache may predate the password the config route gave a
		// session from before config passwords.
		sess, err = g.svc.Get(r.Context(), name)
	}
	if err != nil || sess.State.Ending() || !sess.ConfigPasswordMatches(token) {
		return false
	}
	var body any
	switch typ {
	case "environment", "variables":
		env, err := g.environment(sess)
		if err != nil {
			g.log.Warn("gate: session config", zap.String("session", name), zap.Error(err))
			g.metrics.GateRequest(sess.Environment, http.StatusInternalServerError)
			httperr.Write(w, http.StatusInternalServerError, "The session's environment cannot be described")
			return true
		}
		body = env
		if typ == "variables" {
			body = g.variables(sess, env)
		}
	default:
		// No Kubernetes account, no SSH key: what Educates' gateway
		// answers for a file its session does not have.
		g.metrics.GateRequest(sess.Environment, http.StatusNotFound)
		httperr.Write(w, http.StatusNotFound, "The session's environment has no "+typ)
		return true
	}
	b, err := json.MarshalIndent(body, "", "  ")
	if err != nil {
		return false
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(append(b, '\n'))
	}
	g.metrics.GateRequest(sess.Environment, http.StatusOK)
	return true
}

// environment is the session's environment as Educates' workshop-environment.json
// has it: an object of variable names and values.
func (g *Gate) environment(sess *sessions.Session) (map[string]string, error) {
	list, err := g.svc.EnvironmentOf(sess)
	if err != nil {
		return nil, err
	}
	env := make(map[string]string, len(list))
	for _, kv := range list {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env, nil
}

// variables is Educates' workshop-variables.json for the session: the
// variables its template takes from the environment, the workshop's title
// and description, and "" for what a portal environment does not have.
func (g *Gate) variables(sess *sessions.Session, env map[string]string) map[string]string {
	out := make(map[string]string, len(configVariables)+len(configEmpty)+2)
	for _, k := range configVariables {
		out[k] = env[strings.ToUpper(k)]
	}
	for _, k := range configEmpty {
		out[k] = ""
	}
	out["workshop_title"], out["workshop_description"] = "Workshop", ""
	if e := g.svc.Environment(sess.Environment); e != nil {
		if e.Workshop.Title != "" {
			out["workshop_title"] = e.Workshop.Title
		}
		out["workshop_description"] = e.Workshop.Description
	}
	return out
}
