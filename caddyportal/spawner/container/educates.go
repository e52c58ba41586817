package container

import (
	"net/url"
	"time"

	"github.com/caddyportal/caddyportal/caddyportal/spawner"
)

// What an Educates workshop image expects, read from Educates 3.7's sources
// (client-programs/pkg/cmd/docker_workshop_deploy_cmd.go, which runs one
// image standalone, and workshop-images/base-environment: start-container
// and the gateway). The portal's gate already admits only the session's
// learner, so the image runs without its own login: PORTAL_CLIENT_ID stays
// unset, which is also what `educates docker workshop deploy` does.
const (
	// EducatesPort is where the image's gateway serves the dashboard.
	EducatesPort = 10081
	// EducatesReadyPath answers 200 without a login once the gateway
	// listens, which it does only after the workshop content is set up;
	// unlike /session/poll it does not reset the idle timer.
	EducatesReadyPath = "/session/activity"
	// EducatesUser is the user the images are built for.
	EducatesUser = "1001:0"
	// EducatesWorkshopPath is where start-container reads the workshop
	// definition (applications, dashboards, ingresses).
	EducatesWorkshopPath = "/opt/eduk8s/config/workshop.yaml"
	// EducatesReadyTimeout is the default start timeout: content download,
	// setup scripts and the Hugo build come before the gateway listens
	// (Educates' own CLI waits 300 s).
	EducatesReadyTimeout = 300 * time.Second
)

// educatesDefaults fills in what an Educates image needs where the
// operator said nothing.
func educatesDefaults(cfg *Config) {
	cfg.Educates = true
	if cfg.Port == 0 {
		cfg.Port = EducatesPort
	}
	if cfg.ReadyPath == "" {
		cfg.ReadyPath = EducatesReadyPath
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = EducatesReadyTimeout
	}
	if cfg.User == "" {
		cfg.User = EducatesUser
	}
	if cfg.EducatesWorkshop != "" {
		cfg.Mounts = append(cfg.Mounts, Mount{Source: cfg.EducatesWorkshop, Target: EducatesWorkshopPath})
	}
}

// educatesEnv is what Educates sets beyond spawner.Environment's common
// variables (SESSION_NAME, SESSION_URL, SESSION_HOSTNAME, INGRESS_DOMAIN,
// INGRESS_PROTOCOL, WORKSHOP_NAME, ENVIRONMENT_NAME, TRAINING_PORTAL).
// SESSION_NAMESPACE must equal the session name: the editor, console and
// slides URLs are built from it. INGRESS_PORT_SUFFIX is always set, empty
// on a default port: unset, start-container puts ":10081" into every URL.
func educatesEnv(spec spawner.Spec) []string {
	suffix := ""
	if u, err := url.Parse(spec.URL); err == nil && u.Port() != "" {
		suffix = ":" + u.Port()
	}
	env := []string{
		"SESSION_NAMESPACE=" + spec.Session,
		"SESSION_ID=" + spec.Session,
		"WORKSHOP_NAMESPACE=" + spec.Environment,
		"INGRESS_PORT_SUFFIX=" + suffix,
	}
	if l := spec.Login; l != nil {
		// With the portal login the gateway can read the schedule: show
		// the countdown, and end the session through the portal's delete
		// link on the session's host (Educates' RESTART_URL).
		env = append(env, "ENABLE_COUNTDOWN=true", "RESTART_URL="+l.URL+spec.Prefix+"delete/")
	}
	return env
}
