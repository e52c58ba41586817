package gate

// The paths of a session on the portal host, written once: the gate serves
// them, and the REST API and the pages link to them.

// SessionPrefix starts every path-mode dashboard path:
// /workshops/session/<name>/...
const SessionPrefix = "/workshops/session/"

// SessionPath is the entry path of a session's dashboard in path mode,
// /workshops/session/<name>/, and the base of the session's own routes.
func SessionPath(name string) string { return SessionPrefix + name + "/" }

// ActivatePath is the session's activation link, without its query.
func ActivatePath(name string) string { return SessionPath(name) + "activate/" }

// DeletePath is the learner's link that ends the session.
func DeletePath(name string) string { return SessionPath(name) + "delete/" }
