package spawner

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Vars are the values of the placeholders in a backend's command, environment
// and probe path, keyed by name without braces.
type Vars map[string]string

// PlaceholderNames are the placeholders every backend fills in:
//
//	{port}        the port the dashboard must listen on (chosen by the backend)
//	{host}        the address the dashboard must bind to (the backend's bind host)
//	{dir}         the session's own directory
//	{session}     the session name
//	{user}        the user the session is for ("" for a reserve)
//	{workshop}    the workshop name
//	{environment} the workshop environment name
//	{prefix}      the session's path-mode base, /workshops/session/<s>/
//	{url}         the dashboard's public URL
var PlaceholderNames = []string{"port", "host", "dir", "session", "user", "workshop", "environment", "prefix", "url"}

// NewVars returns the placeholder values for spec's environment listening on
// host:port with its directory dir (any of them may be empty for a backend
// that has no such thing; the placeholder then expands to "").
func NewVars(spec Spec, host string, port int, dir string) Vars {
	p := ""
	if port > 0 {
		p = strconv.Itoa(port)
	}
	return Vars{
		"port":        p,
		"host":        host,
		"dir":         dir,
		"session":     spec.Session,
		"user":        spec.User,
		"workshop":    spec.Workshop,
		"environment": spec.Environment,
		"prefix":      spec.Prefix,
		"url":         spec.URL,
	}
}

// placeholder matches {name} with a lower-case identifier inside. Anything
// else in braces (a shell function body "{ echo; }", JSON "{"a":1}", find's
// "{}", Caddy's "{http.request.host}" with its dots) is not a placeholder and
// stays as written, so commands that need braces keep working.
var placeholder = regexp.MustCompile(`\{([a-z][a-z0-9_]*)\}`)

// Expand replaces every {name} in s with its value in v. An unknown name is an
// error rather than left alone: a typo such as {prot} would otherwise reach
// the dashboard as a literal and fail far from its cause.
func Expand(s string, v Vars) (string, error) {
	var bad []string
	out := placeholder.ReplaceAllStringFunc(s, func(m string) string {
		name := m[1 : len(m)-1]
		val, ok := v[name]
		if !ok {
			bad = append(bad, m)
			return m
		}
		return val
	})
	if len(bad) > 0 {
		return "", fmt.Errorf("unknown placeholder %s in %q (known: %s)", strings.Join(bad, ", "), s, known())
	}
	return out, nil
}

// ExpandAll expands every element of list (a command line), see Expand.
func ExpandAll(list []string, v Vars) ([]string, error) {
	out := make([]string, len(list))
	for i, s := range list {
		e, err := Expand(s, v)
		if err != nil {
			return nil, err
		}
		out[i] = e
	}
	return out, nil
}

// CheckTemplate reports an unknown placeholder in s, for validating a
// configuration when it is loaded instead of at the first start.
func CheckTemplate(s string) error {
	v := Vars{}
	for _, n := range PlaceholderNames {
		v[n] = ""
	}
	_, err := Expand(s, v)
	return err
}

func known() string {
	names := make([]string, len(PlaceholderNames))
	for i, n := range PlaceholderNames {
		names[i] = "{" + n + "}"
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}
