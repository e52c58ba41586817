package spawner

import (
	"fmt"
	"net/url"
	"regexp"
	"sort"
	"strings"
)

// The variables Environment sets. Where Educates has a name for the value its
// name is used, so workshop content written for Educates (`$SESSION_NAME`,
// `$INGRESS_DOMAIN`) works unchanged; SESSION_NAMESPACE and
// WORKSHOP_NAMESPACE are Kubernetes-only and not set.
const (
	EnvTrainingPortal  = "TRAINING_PORTAL"  // Educates: the training portal's name
	EnvWorkshopName    = "WORKSHOP_NAME"    // Educates: the workshop's name
	EnvEnvironmentName = "ENVIRONMENT_NAME" // Educates: the workshop environment's name
	EnvSessionName     = "SESSION_NAME"     // Educates: the session's name
	EnvSessionURL      = "SESSION_URL"      // Educates: the dashboard's full URL
	EnvSessionHostname = "SESSION_HOSTNAME" // Educates: the host name of the session URL
	EnvIngressDomain   = "INGRESS_DOMAIN"   // Educates: the ingress domain
	EnvIngressProtocol = "INGRESS_PROTOCOL" // Educates: http or https
	EnvPortalUser      = "PORTAL_USER"      // caddyportal: the user the session is for ("" for a reserve)
	EnvPortalPrefix    = "PORTAL_PREFIX"    // caddyportal: the session's path-mode base, /workshops/session/<s>/
	// Set only for a spawner that asks for a login client (PortalLogin):
	EnvPortalClientID     = "PORTAL_CLIENT_ID"     // Educates: the session's OAuth client
	EnvPortalClientSecret = "PORTAL_CLIENT_SECRET" // Educates: its secret
	EnvPortalURL          = "PORTAL_URL"           // Educates: where the browser is sent to authorize
	EnvPortalAPIURL       = "PORTAL_API_URL"       // Educates: where the dashboard reaches the portal
)

// reservedNames are never taken from request parameters: the portal's own
// variables (a request must not pose as another session), the ones backends
// set themselves, and the ones that make a loader, shell or interpreter run
// code of the caller's choosing before the dashboard's own.
var reservedNames = map[string]bool{
	EnvTrainingPortal: true, EnvWorkshopName: true, EnvEnvironmentName: true, EnvSessionName: true,
	EnvSessionURL: true, EnvSessionHostname: true, EnvIngressDomain: true, EnvIngressProtocol: true,
	EnvPortalUser: true, EnvPortalPrefix: true, EnvPortalClientID: true, EnvPortalClientSecret: true,
	EnvPortalURL: true, EnvPortalAPIURL: true,
	"PATH": true, "HOME": true, "USER": true, "LOGNAME": true, "SHELL": true, "PORT": true, "HOST": true,
	"TMPDIR": true, "IFS": true, "ENV": true, "BASH_ENV": true, "PS4": true, "PROMPT_COMMAND": true,
	"PYTHONSTARTUP": true, "PYTHONPATH": true, "PYTHONHOME": true, "PERL5LIB": true, "PERL5OPT": true,
	"NODE_OPTIONS": true, "RUBYOPT": true, "GCONV_PATH": true, "HOSTALIASES": true, "LOCALDOMAIN": true,
	"RES_OPTIONS": true,
}

var reservedPrefixes = []string{"LD_", "DYLD_", "BASH_FUNC_", "CADDYPORTAL_"}

var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// validParameterName reports why a request parameter's name cannot become an
// environment variable: not a portable variable name ([A-Za-z_][A-Za-z0-9_]*,
// at most 128 characters), or a reserved one.
func validParameterName(name string) error {
	if !envName.MatchString(name) {
		return fmt.Errorf("parameter name %q is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)", name)
	}
	up := strings.ToUpper(name)
	if reservedNames[up] {
		return fmt.Errorf("parameter name %q is reserved", name)
	}
	for _, p := range reservedPrefixes {
		if strings.HasPrefix(up, p) {
			return fmt.Errorf("parameter name %q is reserved (%s*)", name, p)
		}
	}
	return nil
}

// ValidParameter reports why a request parameter cannot become an
// environment variable: its name fails validParameterName, or its value
// holds a NUL byte, which no environment variable can carry. The portal
// calls it when a request arrives, to refuse it with a 400 instead of
// failing the start.
func ValidParameter(name, value string) error {
	if err := validParameterName(name); err != nil {
		return err
	}
	if strings.IndexByte(value, 0) >= 0 {
		return fmt.Errorf("parameter %q contains a NUL byte", name)
	}
	return nil
}

// Environment returns the variables a workshop expects for spec, as
// KEY=VALUE strings in a stable order: the Educates-named ones above, then
// the request parameters sorted by name. A parameter that fails
// ValidParameter is an error, never silently dropped or allowed to
// override the portal's own values.
func Environment(spec Spec) ([]string, error) {
	host := ""
	if u, err := url.Parse(spec.URL); err == nil {
		host = u.Hostname()
	}
	env := []string{
		EnvTrainingPortal + "=" + spec.Portal,
		EnvWorkshopName + "=" + spec.Workshop,
		EnvEnvironmentName + "=" + spec.Environment,
		EnvSessionName + "=" + spec.Session,
		EnvSessionURL + "=" + spec.URL,
		EnvSessionHostname + "=" + host,
		EnvIngressDomain + "=" + spec.Domain,
		EnvIngressProtocol + "=" + spec.Protocol,
		EnvPortalUser + "=" + spec.User,
		EnvPortalPrefix + "=" + spec.Prefix,
	}
	if l := spec.Login; l != nil {
		env = append(env, EnvPortalClientID+"="+l.ID, EnvPortalClientSecret+"="+l.Secret,
			EnvPortalURL+"="+l.URL, EnvPortalAPIURL+"="+l.APIURL)
	}
	names := make([]string, 0, len(spec.Parameters))
	for n := range spec.Parameters {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		v := spec.Parameters[n]
		if err := ValidParameter(n, v); err != nil {
			return nil, err
		}
		env = append(env, n+"="+v)
	}
	return env, nil
}
