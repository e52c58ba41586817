// Package caddyportal registers the caddyportal Caddy modules. Blank-import
// it (or build with `xcaddy build --with github.com/caddyportal/caddyportal`)
// to compile the portal into Caddy.
package caddyportal

import (
	_ "github.com/caddyportal/caddyportal/caddyportal"
)
