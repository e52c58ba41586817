// Command caddyportal is Caddy with the caddyportal module compiled in.
// It is the same binary an xcaddy build with this plugin produces.
package main

import (
	_ "time/tzdata"

	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/caddyserver/caddy/v2/modules/standard"

	_ "github.com/caddyportal/caddyportal/caddyportal"
)

func main() {
	enableExtendedConnect()
	caddycmd.Main()
}
